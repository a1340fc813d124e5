import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';

export interface ListArgs extends GlobalArgs {
  base: string;
  job?: string;
  verify?: boolean;
}

export const command: CommandModule<GlobalArgs, ListArgs> = {
  command: 'list <base>',
  describe: 'List the jobs, checkpoints and savepoints under a storage base (engine layout)',
  builder: (y) =>
    y
      .positional('base', { type: 'string', demandOption: true, describe: 'Storage base (or one job directory): local path, file:// or s3://bucket/prefix' })
      .option('job', { type: 'string', describe: 'Only this job id' })
      .option('verify', { type: 'boolean', default: false, describe: 'Run the full verify on each one (otherwise: only whether a manifest exists)' })
      .example('ksp list ./state-base', 'everything under a local base')
      .example('ksp list s3://prod-state --job orders --verify --json', 'one job in S3, each epoch verified, as JSON'),
  handler: async (args) => (await import('./run.js')).run(args),
};
