import type { CommandModule } from 'yargs';
import { KspError } from '../../errors.js';
import type { GlobalArgs } from '../main.js';
import { WRITE_EPILOG, writeOptions, type WriteArgs } from '../write/options.js';

interface ConvertArgs extends WriteArgs {
  to: 'canonical' | 'native';
  'format-version'?: number;
  compression?: 'none' | 'snappy' | 'zlib' | 'lz4' | 'zstd';
  checksum?: 'crc32c' | 'xxh3';
  'block-size'?: string;
  'bloom-bits'?: number;
  'sst-size'?: string;
  'ttl-prefix'?: 'strip' | 'keep';
  distributed?: boolean;
  shards?: number;
}

const NATIVE_ONLY = ['format-version', 'compression', 'checksum', 'block-size', 'bloom-bits', 'sst-size'] as const;

export const command: CommandModule<GlobalArgs, ConvertArgs> = {
  command: 'convert <src> [dst]',
  describe: 'Convert task state between native RocksDB and the portable canonical format (state.bin), with no RocksDB needed',
  builder: (y) =>
    writeOptions(y)
      .option('to', { choices: ['canonical', 'native'] as const, demandOption: true, describe: 'canonical: every task a state.bin of its live entries; native: every task a RocksDB database in the engine\'s incremental layout' })
      .option('format-version', { type: 'number', describe: '--to native: SST format_version 2–6 (default 5, which RocksDB 7.x and newer read; 6 is the engine\'s own)' })
      .option('compression', { choices: ['none', 'snappy', 'zlib', 'lz4', 'zstd'] as const, describe: '--to native: block compression (default snappy, as the engine)' })
      .option('checksum', { choices: ['crc32c', 'xxh3'] as const, describe: '--to native: block checksum (default xxh3, as RocksDB ≥ 7.8)' })
      .option('block-size', { type: 'string', describe: '--to native: data block size, e.g. 16KiB or 4096 (default 16 KiB, the engine\'s)' })
      .option('bloom-bits', { type: 'number', describe: '--to native: Bloom filter bits per key, 0 for none (default 10, the engine\'s)' })
      .option('ttl-prefix', { choices: ['strip', 'keep'] as const, describe: '--to canonical: native values of operators with a state TTL start with an 8-byte expiry (i64 LE ms). keep (default): as the engine\'s own native -> portable step at restore; strip: remove it, as the TTL backend\'s own portable snapshot does (expired entries are kept). ksp inspect/verify warn when values look prefixed' })
      .option('sst-size', { type: 'string', describe: '--to native: target size of each SST file, e.g. 64MiB (default 64 MiB)' })
      .option('distributed', { type: 'boolean', describe: 'Write only a plan of units to the target (_ksp/plan.json) and print how to run it as N shards (ksp work, ksp status, ksp commit); see README "Scale-out"' })
      .option('shards', { type: 'number', describe: 'With --distributed: the shard count the printed commands use' })
      .example('ksp convert s3://b/sp s3://b/sp-native --to native --mode relative --distributed --shards 8', 'plan a conversion to RocksDB for 8 shards')
      .example('ksp convert s3://prod/shop/savepoints/00000000000000000042 ./sp42 --to canonical --mode relative', 'a portable, self-contained copy of a native savepoint')
      .example('ksp convert ./checkpoint-9 ./sp9 --to canonical --dry-run', 'which tasks would be decoded and which copied')
      .example('ksp convert ./sp9-migrated ./sp9-native --to native', 'canonical state back to RocksDB tables the engine restores directly')
      .example('ksp convert ./sp9 --to native --base s3://prod --mode engine --format-version 6 --compression zstd', 'into the engine\'s layout, at the engine\'s own table format')
      .epilog(`--to canonical: native tasks are read straight from their SST, MANIFEST and WAL files (every
SST's SHA-256 and every block checksum checked); canonical tasks are copied unchanged.

--to native: every task holding state becomes one RocksDB database (SSTs of about --sst-size at the
bottom level, a MANIFEST and CURRENT) under incr/{op}/{task}/, with an sst_manifest.json listing each
SST's SHA-256 and an INCR-SST-V1 pointer at the task's state.bin. Keys follow the engine's layout and
are sorted (spilling to --temp-dir when a task does not fit in 96 MiB); if a task holds a key twice,
the later entry wins, as on the engine's restore. Native sources are re-encoded with these options.

${WRITE_EPILOG}`) as never,
  handler: async (args) => {
    if (args.to === 'canonical') {
      const given = NATIVE_ONLY.filter((k) => args[k] !== undefined);
      if (given.length) throw new KspError('USAGE', `--${given.join(', --')} appl${given.length === 1 ? 'ies' : 'y'} to --to native only`);
    } else if (args['ttl-prefix'] !== undefined) {
      throw new KspError('USAGE', '--ttl-prefix applies to --to canonical only (native values are written as given)');
    }
    if (args.shards !== undefined && !args.distributed) throw new KspError('USAGE', '--shards applies with --distributed only');
    const { runWrite } = await import('../write/run.js');
    if (args.to === 'canonical') {
      const ttlPrefix = args['ttl-prefix'];
      if (args.distributed) {
        const { runDistributedPlan } = await import('../distributed/plan-run.js');
        return runDistributedPlan('convert', args, (w) => w.convert('canonical', ttlPrefix ? { ttlPrefix } : {}));
      }
      await runWrite(args, (w) => w.convert('canonical', ttlPrefix ? { ttlPrefix } : {}));
      return;
    }
    const options = {
      formatVersion: args['format-version'] as 2 | 3 | 4 | 5 | 6 | undefined,
      compression: args.compression,
      checksum: args.checksum,
      blockSize: args['block-size'] === undefined ? undefined : parseSize(args['block-size'], '--block-size'),
      bloomBits: args['bloom-bits'],
      sstSize: args['sst-size'] === undefined ? undefined : parseSize(args['sst-size'], '--sst-size'),
    };
    if (args.distributed) {
      const { runDistributedPlan } = await import('../distributed/plan-run.js');
      return runDistributedPlan('convert', args, (w) => w.convert('native', options));
    }
    await runWrite(args, (w) => w.convert('native', options));
  },
};

/** Bytes from `4096`, `16KiB`, `16k`, `64MiB`, `1G` (binary units). */
export function parseSize(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) throw new KspError('USAGE', `${flag}: expected a size such as 4096, 16KiB or 64MiB, got ${JSON.stringify(text)}`, { found: text });
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  const n = Number(m[1]) * unit;
  if (!Number.isSafeInteger(n)) throw new KspError('USAGE', `${flag}: ${JSON.stringify(text)} is not a whole number of bytes`, { found: text });
  return n;
}
