import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';
import { sourceOptions, type SourceArgs } from '../source-options.js';

export interface VerifyArgs extends GlobalArgs, SourceArgs {
  savepoint: string;
  threads?: number;
  distributed?: string;
  shards?: number;
}

export const command: CommandModule<GlobalArgs, VerifyArgs> = {
  command: 'verify <savepoint>',
  describe: 'Check a savepoint or checkpoint: manifest, hashes, identity, paths, and a full decode of every state file',
  builder: (y) =>
    sourceOptions(y)
      .positional('savepoint', { type: 'string', demandOption: true, describe: 'Directory or its metadata.json: local path, file:// or s3://bucket/prefix' })
      .option('threads', { type: 'number', describe: 'Files checked at once (default: one per core)' })
      .option('distributed', { type: 'string', describe: 'Plan the verification as N shares in this (empty) work folder instead of running it: ksp work <folder> --shard i/N runs them anywhere, ksp commit <folder> merges the reports (README "Scale-out")' })
      .option('shards', { type: 'number', describe: 'With --distributed: the number of shares (default 8)' })
      .example('ksp verify s3://prod/j/savepoints/00000000000000000042 --distributed s3://prod/ksp-runs/verify-42 --shards 16', 'plan a verification for 16 shards, then ksp work / ksp commit on the work folder')
      .example('ksp verify ./base/orders/savepoints/00000000000000000042', 'verify a savepoint on disk')
      .example('ksp verify s3://prod-state/orders/checkpoints/00000000000000000107 --json', 'verify a checkpoint in S3, report as JSON')
      .epilog('Exit 0 when every check holds, 1 when any finding is an error. Warnings do not fail. Native (RocksDB) tasks are decoded too: the SHA-256 of each SST against its sst_manifest.json, every block checksum, every live entry.'),
  handler: async (args) => {
    if (args.distributed !== undefined) return (await import('../distributed/plan-run.js')).runVerifyPlan(args);
    if (args.shards !== undefined) throw new (await import('../../errors.js')).KspError('USAGE', '--shards applies with --distributed only');
    return (await import('./run.js')).run(args);
  },
};
