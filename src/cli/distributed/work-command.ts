import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';

export interface WorkArgs extends GlobalArgs {
  target: string;
  shard: string;
  'temp-dir'?: string;
  concurrency?: number;
}

export const command: CommandModule<GlobalArgs, WorkArgs> = {
  command: 'work <target>',
  describe: 'Run one shard of a distributed write planned with --distributed (idempotent: run it again after a crash)',
  builder: (y) =>
    y.positional('target', { type: 'string', demandOption: true, describe: 'The target the plan was written to (local, file:// or s3://)' })
      .option('shard', { type: 'string', demandOption: true, describe: 'i/N: shard i (from 0) of N; or N alone, with i from JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch array job)' })
      .option('temp-dir', { type: 'string', describe: 'Local folder for the spill files of shuffle units (default: KSP_TMPDIR or the OS temp dir)' })
      .option('concurrency', { type: 'number', describe: 'Units run at once in this shard (default 2)' })
      .example('ksp work s3://prod/j2/savepoints/00000000000000000042 --shard 3/16', 'shard 3 of 16')
      .example('ksp work s3://prod/j2/savepoints/00000000000000000042 --shard 16', 'in a pod of an Indexed Job: the index from JOB_COMPLETION_INDEX')
      .epilog(`Runs the units the plan gives shard i of N (the same split on every machine, no coordination), skipping
units already done. Each unit writes its outputs whole, then its completion record last, so a shard killed at
any point and started again finishes with the same bytes, and two shards running one unit cannot corrupt it.
A rescale's merge units wait for the route units they read (KSP_WORK_POLL_MS, KSP_WORK_TIMEOUT_S), and run
one themselves when no shard has started it or its shard stopped beating. The source must still have the
manifest the plan pinned. Exit codes: 0 this shard's units are done (or the target is committed), 1 a unit this
shard needs failed elsewhere, 2 usage, 3 bad input or a changed source, 4 no plan at the target, 5 storage or
a wait timed out, 129/130/143 interrupted (run it again).`),
  handler: async (args) => {
    const { runWork } = await import('./run.js');
    await runWork(args);
  },
};
