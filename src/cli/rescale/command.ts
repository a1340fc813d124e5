import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';
import { WRITE_EPILOG, writeOptions, type WriteArgs } from '../write/options.js';

interface RescaleArgs extends WriteArgs {
  parallelism: number;
  operator?: string[];
  routing?: 'state-key' | 'window';
  'task-ids'?: string;
  distributed?: boolean;
  shards?: number;
}

export const command: CommandModule<GlobalArgs, RescaleArgs> = {
  command: 'rescale <src> [dst]',
  describe: 'Re-partition operators to a new parallelism by the engine\'s key-group rules',
  builder: (y) =>
    writeOptions(y)
      .option('parallelism', { alias: 'p', type: 'number', demandOption: true, describe: 'New number of tasks (1 to 32768)' })
      .option('operator', { type: 'string', array: true, describe: 'Operator(s) to rescale (default: every operator holding state)' })
      .option('routing', { choices: ['window', 'state-key'] as const, describe: "window (default): the engine's own rescale: tw:/sw:/ses: keys by their group key, every other key broadcast to every task. state-key: every key by itself; the engine never routes this way, so a restore that rescales again would place keys differently" })
      .option('task-ids', { type: 'string', describe: 'New task ids with {i} for the index (default: the source\'s pattern, e.g. task-{i})' })
      .example('ksp rescale ./sp ./sp-p8 --parallelism 8', 'every keyed operator to 8 tasks')
      .example('ksp rescale ./sp ./out -p 3 --operator windows --dry-run', 'show the plan for one operator')
      .option('distributed', { type: 'boolean', describe: 'Write only a plan of units to the target (_ksp/plan.json) and print how to run it as N shards (ksp work, ksp status, ksp commit); see README "Scale-out"' })
      .option('shards', { type: 'number', describe: 'With --distributed: the shard count the printed commands use (default: one per 256 MiB read, at most 64)' })
      .example('ksp rescale s3://prod/j/savepoints/00000000000000000042 s3://prod/j2/savepoints/00000000000000000042 -p 64 --distributed --shards 16', 'plan a rescale for 16 shards (ksp work … --shard i/16), then ksp commit')
      .example('ksp rescale ./sp ./out -p 12 --fencing-token 3', 'as the engine would at 12 tasks (task-10 owns range 2), for a cluster whose coordinator token is 3')
      .epilog(`Entries are routed by key group (32,768 groups) exactly as the engine's own rescale does: new task ids
sorted as strings get the key-group ranges in order (at 12 tasks, task-10 owns range 2); the watermark key
wm: and keys outside the window layouts are broadcast to every task, duplicates merged (8-byte values keep
the minimum); each task holds its routed entries in source order, then the broadcast ones. Routed entries in
must equal entries out, or the run fails as corruption. An empty task is written as the 12-byte empty
snapshot. Spill files go to --temp-dir.\n\n${WRITE_EPILOG}`),
  handler: async (args) => {
    if (args.distributed) {
      const { runDistributedPlan } = await import('../distributed/plan-run.js');
      return runDistributedPlan('rescale', args, (w) => w.rescale(args.parallelism, { operators: args.operator, routing: args.routing, taskIds: args['task-ids'] }));
    }
    if (args.shards !== undefined) throw new (await import('../../errors.js')).KspError('USAGE', '--shards applies with --distributed only');
    const { runWrite } = await import('../write/run.js');
    await runWrite(args, (w) => w.rescale(args.parallelism, { operators: args.operator, routing: args.routing, taskIds: args['task-ids'] }));
  },
};
