import type { Argv } from 'yargs';
import { KspError } from '../../errors.js';
import type { Savepoint } from '../../model/savepoint.js';
import type { SavepointWriter } from '../../write/writer.js';
import type { WriteArgs } from '../write/options.js';

/** `--distributed` and `--shards` for a writing command (README "Scale-out"). */
export interface DistributedArgs {
  distributed?: boolean;
  shards?: number;
}

export function distributedOptions<T>(y: Argv<T>): Argv<T & DistributedArgs> {
  return y
    .option('distributed', { type: 'boolean', describe: 'Write only a plan of units to the target (_ksp/plan.json) and print how to run it as N shards (ksp work, ksp status, ksp commit); see README "Scale-out"' })
    .option('shards', { type: 'number', describe: 'With --distributed: the shard count the printed commands use' }) as unknown as Argv<T & DistributedArgs>;
}

/** Plans a distributed run when asked to; false when the command runs as one process. */
export async function planIfDistributed(command: string, args: WriteArgs & DistributedArgs, build: (w: SavepointWriter, sp: Savepoint) => Promise<SavepointWriter> | SavepointWriter): Promise<boolean> {
  if (!args.distributed) {
    if (args.shards !== undefined) throw new KspError('USAGE', '--shards applies with --distributed only');
    return false;
  }
  const { runDistributedPlan } = await import('./plan-run.js');
  await runDistributedPlan(command, args, build);
  return true;
}
