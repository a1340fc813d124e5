import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';
import { WRITE_EPILOG, writeOptions, type WriteArgs } from '../write/options.js';
import { distributedOptions, planIfDistributed, type DistributedArgs } from '../distributed/options.js';

export const command: CommandModule<GlobalArgs, WriteArgs & DistributedArgs> = {
  command: 'relocate <src> [dst]',
  describe: 'Copy a savepoint with every stored path rewritten (relative: self-contained and movable; engine: the engine\'s layout)',
  builder: (y) =>
    distributedOptions(writeOptions(y))
      .example('ksp relocate s3://prod/shop/savepoints/00000000000000000042 ./sp42 --mode relative', 'a self-contained copy on disk that can be moved anywhere')
      .example('ksp relocate ./sp42 s3://staging/shop/savepoints/00000000000000000042', 'back into the engine\'s layout in another bucket')
      .example('ksp relocate ./sp42 --base s3://staging --job-id shop-v2 --epoch 100 --mode engine', 'under a new job id and epoch')
      .epilog(WRITE_EPILOG),
  handler: async (args) => {
    if (await planIfDistributed('relocate', args, (w) => w.relocate())) return;
    const { runWrite } = await import('../write/run.js');
    await runWrite(args, (w) => w.relocate());
  },
};
