import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';
import { sourceOptions, type SourceArgs } from '../source-options.js';

export interface VerifyArgs extends GlobalArgs, SourceArgs {
  savepoint: string;
  threads?: number;
}

export const command: CommandModule<GlobalArgs, VerifyArgs> = {
  command: 'verify <savepoint>',
  describe: 'Check a savepoint or checkpoint: manifest, hashes, identity, paths, and a full decode of every state file',
  builder: (y) =>
    sourceOptions(y)
      .positional('savepoint', { type: 'string', demandOption: true, describe: 'Directory or its metadata.json: local path, file:// or s3://bucket/prefix' })
      .option('threads', { type: 'number', describe: 'Files checked at once (default: one per core)' })
      .example('ksp verify ./base/orders/savepoints/00000000000000000042', 'verify a savepoint on disk')
      .example('ksp verify s3://prod-state/orders/checkpoints/00000000000000000107 --json', 'verify a checkpoint in S3, report as JSON')
      .epilog('Exit 0 when every check holds, 1 when any finding is an error. Warnings do not fail. Native (RocksDB) tasks are decoded too: the SHA-256 of each SST against its sst_manifest.json, every block checksum, every live entry.'),
  handler: async (args) => (await import('./run.js')).run(args),
};
