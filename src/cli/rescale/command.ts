import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';
import { WRITE_EPILOG, writeOptions, type WriteArgs } from '../write/options.js';

interface RescaleArgs extends WriteArgs {
  parallelism: number;
  operator?: string[];
  routing?: 'auto' | 'state-key' | 'window';
  'task-ids'?: string;
}

export const command: CommandModule<GlobalArgs, RescaleArgs> = {
  command: 'rescale <src> [dst]',
  describe: 'Re-partition operators to a new parallelism by the engine\'s key-group rules',
  builder: (y) =>
    writeOptions(y)
      .option('parallelism', { alias: 'p', type: 'number', demandOption: true, describe: 'New number of tasks (1 to 32768)' })
      .option('operator', { type: 'string', array: true, describe: 'Operator(s) to rescale (default: every operator holding state)' })
      .option('routing', { choices: ['auto', 'state-key', 'window'] as const, default: 'auto' as const, describe: 'Route by the whole state key, or by the group key inside tw:/sw:/ses: window keys; auto looks at the keys' })
      .option('task-ids', { type: 'string', describe: 'New task ids with {i} for the index (default: the source\'s pattern, e.g. task-{i})' })
      .example('ksp rescale ./sp ./sp-p8 --parallelism 8', 'every keyed operator to 8 tasks')
      .example('ksp rescale ./sp ./out -p 3 --operator windows --routing window --dry-run', 'show the plan for one operator')
      .epilog(`Entries are routed by key group (32,768 groups); the watermark key wm: and keys outside the window
layouts are broadcast to every task, duplicates merged (8-byte values keep the minimum). Routed entries in
must equal entries out, or the run fails as corruption. Spill files go to --temp-dir.\n\n${WRITE_EPILOG}`),
  handler: async (args) => {
    const { runWrite } = await import('../write/run.js');
    await runWrite(args, (w) => w.rescale(args.parallelism, { operators: args.operator, routing: args.routing, taskIds: args['task-ids'] }));
  },
};
