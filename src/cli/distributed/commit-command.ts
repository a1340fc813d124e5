import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';

export interface CommitArgs extends GlobalArgs {
  target: string;
  threads?: number;
  'force-unlock'?: boolean;
  'full-verify'?: boolean;
}

export const command: CommandModule<GlobalArgs, CommitArgs> = {
  command: 'commit <target>',
  describe: 'Seal a distributed write: check every unit, write metadata, verify, then the manifest last',
  builder: (y) =>
    y.positional('target', { type: 'string', demandOption: true, describe: 'The target the plan was written to (local, file:// or s3://)' })
      .option('threads', { type: 'number', describe: 'Threads for the verification (default: one per core)' })
      .option('full-verify', { type: 'boolean', describe: 'Read every output file again here, even though the shards verified it in shares (verify units)' })
      .option('force-unlock', { type: 'boolean', describe: 'Take over the target\'s lock (.ksp-lock) left by a commit that died on another host' })
      .example('ksp commit s3://prod/j2/savepoints/00000000000000000042', 'seal the output once every shard is done')
      .example('ksp commit ./out --json', 'machine-readable report, or the typed error listing the units not done')
      .epilog(`Refuses (DISTRIBUTED_INCOMPLETE, exit 1) while any unit has no completion record, listing the missing,
running, stalled and failed ones with their errors; nothing is written then. Otherwise writes metadata.json and
meta.json from the plan and checks the output as ksp verify does, with the manifest in memory: the shards have
already read and decoded every file in shares (the plan's verify units, each task's entry count against its
record), so the commit checks metadata, coverage and identity (--full-verify reads everything again). Only then
it writes manifest.sha256 and removes the reserved folder
_ksp/. A sharded export (inspect --out FOLDER --distributed): checks each part against its record (--full-verify
hashes them), refuses a file in the folder that is not a part, writes _SUCCESS and prints the row totals. A failed verification removes metadata.json and meta.json again, so the target never verifies unsealed.
Running commit again on a sealed target only finishes the cleanup. Exit codes: 0 committed and verified,
1 units not done or the output does not verify, 2 usage, 3 bad input or a changed source, 4 no plan, 5 storage.`),
  handler: async (args) => {
    const { runCommit } = await import('./run.js');
    await runCommit(args);
  },
};
