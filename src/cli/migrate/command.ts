import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';
import { WRITE_EPILOG, writeOptions, type WriteArgs } from '../write/options.js';

export interface MigrateArgs extends WriteArgs {
  migrations: string;
  'from-version'?: string[];
  'to-version'?: string[];
  'on-collision'?: 'fail' | 'keep-first' | 'keep-last';
  'allow-unmatched'?: boolean;
  distributed?: boolean;
  shards?: number;
}

export const command: CommandModule<GlobalArgs, MigrateArgs> = {
  command: 'migrate <src> [dst]',
  describe: 'Rewrite values (and keys) by registered migration steps, version by version',
  builder: (y) =>
    writeOptions(y)
      .option('migrations', { type: 'string', demandOption: true, describe: 'ESM module (.mjs/.js, or .ts/.mts) whose default export registers steps' })
      .option('from-version', { type: 'string', array: true, describe: 'op=N: source version (default: meta.json operator_versions, else 1)' })
      .option('to-version', { type: 'string', array: true, describe: 'op=N: target version (default: the highest registered)' })
      .option('on-collision', { choices: ['fail', 'keep-first', 'keep-last'] as const, default: 'fail' as const, describe: 'When a key migration maps two entries onto one key' })
      .option('allow-unmatched', { type: 'boolean', describe: 'Run even when a registered step matches no entry (an operator or state name the savepoint does not have); refused by default (MIGRATION_MATCHED_NOTHING, exit 2)' })
      .option('distributed', { type: 'boolean', describe: 'Write only a plan of units to the target (_ksp/plan.json) and print how to run it as N shards (ksp work, ksp status, ksp commit); the module must be JavaScript at the same path on every machine; see README "Scale-out"' })
      .option('shards', { type: 'number', describe: 'With --distributed: the shard count the printed commands use' })
      .example('ksp migrate s3://b/sp s3://b/sp-v2 --migrations /app/m.mjs --distributed --shards 8', 'plan a migration for 8 shards')
      .example('ksp migrate ./sp ./sp-v2 --migrations ./migrations.mjs', 'migrate every operator with registered steps to its highest version')
      .example('ksp migrate ./sp ./out --migrations ./m.ts --to-version fraud=2 --dry-run', 'a TypeScript module; show the plan')
      .epilog(`A migrations module:
  export default (m, codecs) => {
    m.value('fraud', 1, 2, codecs.msgpack, codecs.msgpack,
      (old) => ({ ...old, model: 2 }), { state: 'score' });
  };
(or export default defineMigrations(...) from 'ksp'). Codecs: raw, utf8, json, msgpack, i64le, u64le, f64le,
codecs.custom(name, decode, encode). Operators without steps are copied unchanged. A step whose operator or
state matches no entry fails the run before anything is written, unless --allow-unmatched. A key step moves
each entry whose key changed to the task owning its new key, so the output keeps the engine's placement.
The report gives, per step, the entries transformed and passed through.\n\n${WRITE_EPILOG}`),
  handler: async (args) => {
    const { migrateOperations } = await import('./run.js');
    if (args.distributed) {
      const { runDistributedPlan } = await import('../distributed/plan-run.js');
      return runDistributedPlan('migrate', args, (w) => migrateOperations(w, args));
    }
    if (args.shards !== undefined) throw new (await import('../../errors.js')).KspError('USAGE', '--shards applies with --distributed only');
    const { runWrite } = await import('../write/run.js');
    await runWrite(args, (w) => migrateOperations(w, args));
  },
};
