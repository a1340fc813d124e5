import type { CommandModule } from 'yargs';
import { KspError } from '../../errors.js';
import type { GlobalArgs } from '../main.js';
import { WRITE_EPILOG, writeOptions, type WriteArgs } from '../write/options.js';

interface ConvertArgs extends WriteArgs {
  to: string;
}

export const command: CommandModule<GlobalArgs, ConvertArgs> = {
  command: 'convert <src> [dst]',
  describe: 'Convert native RocksDB task state to the portable canonical format (state.bin), with no RocksDB needed',
  builder: (y) =>
    writeOptions(y)
      .option('to', { choices: ['canonical', 'native'] as const, demandOption: true, describe: 'canonical: every task a state.bin of its live entries, the same entries the engine would restore' })
      .example('ksp convert s3://prod/shop/savepoints/00000000000000000042 ./sp42 --to canonical --mode relative', 'a portable, self-contained copy of a native savepoint')
      .example('ksp convert ./checkpoint-9 ./sp9 --to canonical --dry-run', 'which tasks would be decoded and which copied')
      .example('ksp convert ./sp9 --to canonical --base s3://staging --mode engine', 'into the engine\'s layout in another bucket')
      .epilog(`Native tasks are read straight from their SST, MANIFEST and WAL files (every SST's SHA-256 and
every block checksum checked); canonical tasks are copied unchanged.

${WRITE_EPILOG}`) as never,
  handler: async (args) => {
    if (args.to !== 'canonical') {
      throw new KspError('USAGE', `convert --to ${args.to}: writing native RocksDB state is not supported by this version; --to canonical is`, { found: args.to });
    }
    const { runWrite } = await import('../write/run.js');
    await runWrite(args, (w) => w.convert('canonical'));
  },
};
