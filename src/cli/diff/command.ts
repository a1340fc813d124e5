import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';
import { sourceOptions, type SourceArgs } from '../source-options.js';

export interface DiffArgs extends GlobalArgs, SourceArgs {
  a: string;
  b: string;
  operator?: string;
  state?: string;
  out?: string;
  keyCodec?: string;
  valueCodec?: string;
  compression?: string;
  overwrite?: boolean;
  examples?: number;
  'temp-dir'?: string;
  trustSource?: boolean;
}

const CODECS = 'utf8, json, msgpack, i64le, u64le, f64le, hex, raw';

export const DIFF_EPILOG = `Exit codes, as diff(1): 0 the two have the same content, 1 they differ (entries, or the
logical metadata: operators, operator versions, source offsets), 2 usage, 3 bad input,
4 not found, 5 storage, 6 unsupported, 70 internal error. Task counts, job id, paths, epoch,
label and metadata version are listed as notes and never make two savepoints differ.`;

export const command: CommandModule<GlobalArgs, DiffArgs> = {
  command: 'diff <a> <b>',
  describe: 'Compare the logical content of two savepoints (entries per operator, state and key, and metadata), whatever their tasks, format or storage',
  builder: (y) =>
    sourceOptions(y)
      .positional('a', { type: 'string', demandOption: true, describe: 'The old savepoint or checkpoint: local path, file:// or s3://bucket/prefix' })
      .positional('b', { type: 'string', demandOption: true, describe: 'The new one' })
      .option('operator', { type: 'string', describe: "Only this operator (the metadata's id, or the id stored in entries)" })
      .option('state', { type: 'string', describe: 'Only this state name' })
      .option('out', { type: 'string', describe: 'Write one row per difference (operator, state, key, change, old and new value) to .parquet, .arrow, .arrows or .jsonl; local or s3://' })
      .option('key-codec', { type: 'string', describe: `With --out: decode keys, as inspect does (one codec, or STATE=CODEC,…,*=CODEC). Codecs: ${CODECS}, window` })
      .option('value-codec', { type: 'string', describe: `With --out: decode old and new values, as inspect does. Codecs: ${CODECS}, aggstate` })
      .option('compression', { type: 'string', choices: ['zstd', 'snappy', 'gzip', 'lz4', 'none'], default: 'zstd', describe: 'Parquet compression' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'Replace an existing --out file' })
      .option('examples', { type: 'number', default: 3, describe: 'Differences shown per state in the summary' })
      .option('temp-dir', { type: 'string', describe: 'Local folder for the key sort\'s spill files (default: KSP_TMPDIR or the OS temp dir)' })
      .option('trust-source', { type: 'boolean', describe: 'Compare a savepoint whose manifest.sha256 is missing, malformed or disagrees with its metadata (each problem becomes a warning); refused by default' })
      .example('ksp diff ./sp-42 ./sp-42-p8', 'a savepoint and its rescaled copy: no differences, exit 0')
      .example('ksp diff ./sp-42 ./sp-42-migrated --operator orders-agg --json', 'per-state counts of added, removed, changed and unchanged entries, as JSON')
      .example('ksp diff s3://bucket/job/savepoints/00000000000000000042 ./sp-new --out diff.parquet --value-codec msgpack', 'every difference to Parquet, old and new values decoded (DuckDB: SELECT change, count(*) FROM \'diff.parquet\' GROUP BY 1)')
      .example('ksp diff ./before ./after > /dev/null; echo $?', 'gate a CI step: 0 same, 1 different, 2 and above an error')
      .epilog(DIFF_EPILOG),
  handler: async (args) => (await import('./run.js')).run(args),
};
