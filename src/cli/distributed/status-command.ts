import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';

export interface StatusArgs extends GlobalArgs {
  target: string;
}

export const command: CommandModule<GlobalArgs, StatusArgs> = {
  command: 'status <target>',
  describe: 'Progress of a distributed write: units done, running, stalled, missing and failed, bytes and ETA',
  builder: (y) =>
    y.positional('target', { type: 'string', demandOption: true, describe: 'The target the plan was written to (local, file:// or s3://)' })
      .example('ksp status s3://prod/j2/savepoints/00000000000000000042', 'how far the shards are')
      .example('ksp status ./out --json', 'every unit with its state, shard and error, as JSON')
      .epilog(`Reads only the target's _ksp/ folder. running: a shard took the unit and its heartbeat is fresh; stalled:
the heartbeat stopped (the shard died; another shard that needs the unit runs it, or run ksp work again);
failed: its last attempt failed (the error is shown). The ETA assumes the rest goes at the rate so far.
Exit codes: 0 every unit done (or the target committed), 1 units still open, 2 usage, 3 bad plan, 4 no plan, 5 storage.`),
  handler: async (args) => {
    const { runStatus } = await import('./run.js');
    await runStatus(args);
  },
};
