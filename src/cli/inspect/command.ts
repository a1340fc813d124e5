import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';
import { sourceOptions, type SourceArgs } from '../source-options.js';

export interface InspectArgs extends GlobalArgs, SourceArgs {
  savepoint: string;
  operator?: string;
  state?: string;
  key?: string;
  keyUtf8?: string;
  keyPrefix?: string;
  keyPrefixUtf8?: string;
  limit?: number;
  entries?: boolean;
  out?: string;
  keyCodec?: string;
  valueCodec?: string;
  compression?: string;
  overwrite?: boolean;
  threads?: number;
  allTasks?: boolean;
  trustSource?: boolean;
  distributed?: boolean;
  shards?: number;
}

const CODECS = 'utf8, json, msgpack, i64le, u64le, f64le, hex, raw';

export const command: CommandModule<GlobalArgs, InspectArgs> = {
  command: 'inspect <savepoint>',
  describe: 'Summarise a savepoint, list its entries, or export them to Parquet, Arrow or JSON Lines',
  builder: (y) =>
    sourceOptions(y)
      .positional('savepoint', { type: 'string', demandOption: true, describe: 'Directory or its metadata.json: local path, file:// or s3://bucket/prefix' })
      .option('operator', { type: 'string', describe: "Only this operator (the metadata's id, or the id stored in entries)" })
      .option('state', { type: 'string', describe: 'Only this state name' })
      .option('key', { type: 'string', describe: 'Only this exact key, in hex' })
      .option('key-utf8', { type: 'string', describe: 'Only this exact key, as UTF-8 text' })
      .option('key-prefix', { type: 'string', describe: 'Only keys starting with these bytes, in hex' })
      .option('key-prefix-utf8', { type: 'string', describe: 'Only keys starting with this UTF-8 text' })
      .option('limit', { type: 'number', describe: 'At most this many entries' })
      .option('entries', { type: 'boolean', describe: 'List entries instead of the summary (implied by --key*, --limit, --out)' })
      .option('out', { type: 'string', describe: 'Export entries to a file: .parquet, .arrow (IPC file), .arrows (IPC stream), .jsonl; local or s3://' })
      .option('key-codec', { type: 'string', describe: `Decode keys: one codec for every state, or per state as STATE=CODEC,…,*=CODEC. Codecs: ${CODECS}, window (columns window_kind, group_key, window_start, window_end, watermark; window:SIZE_MS gives tumbling/sliding windows their end)` })
      .option('value-codec', { type: 'string', describe: `Decode values: one codec, or per state as STATE=CODEC,…,*=CODEC. Codecs: ${CODECS}, aggstate (the engine's window accumulator, as JSON)` })
      .option('compression', { type: 'string', choices: ['zstd', 'snappy', 'gzip', 'lz4', 'none'], default: 'zstd', describe: 'Parquet compression' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'Replace an existing --out file' })
      .option('all-tasks', { type: 'boolean', default: false, describe: 'With --key: read every task instead of only those owning the key\'s key group' })
      .option('trust-source', { type: 'boolean', describe: 'Look inside a savepoint whose manifest.sha256 is missing, malformed or disagrees with its metadata (each problem becomes a warning); refused by default. The summary also checks every state file it reads against the manifest; --entries reads without re-hashing (ksp verify checks every file)' })
      .option('threads', { type: 'number', describe: 'Files read at once for the summary (default: one per core)' })
      .option('distributed', { type: 'boolean', describe: 'With --out FOLDER: plan a sharded export (one part file per unit of tasks) instead of running it; ksp work FOLDER --shard i/N, then ksp commit FOLDER (README "Scale-out")' })
      .option('shards', { type: 'number', describe: 'With --distributed: the number of part files (units) and of shards in the printed commands (default: one per 256 MiB read, at most 64)' })
      .conflicts('key', 'key-utf8')
      .conflicts('key-prefix', 'key-prefix-utf8')
      .example('ksp inspect ./sp', 'summary: operators, tasks, states, entry counts, key-group spread')
      .example('ksp inspect ./sp --operator fraud --key-utf8 customer-42 --value-codec msgpack', 'one key, value decoded')
      .example('ksp inspect ./sp --out entries.parquet --value-codec i64le', 'export every entry to Parquet (DuckDB: SELECT * FROM \'entries.parquet\')')
      .example('ksp inspect ./sp --out e.parquet --value-codec totals=msgpack,score=f64le,*=raw', 'a codec per state; states not named are not decoded')
      .example('ksp inspect ./sp --out w.parquet --state tumbling --key-codec window:60000 --value-codec aggstate', 'window state as columns (group_key, window_start, window_end, watermark) and accumulators as JSON')
      .example('ksp inspect s3://bucket/job/savepoints/00000000000000000042 --state tumbling --limit 10 --json', 'ten entries as JSON Lines')
      .example('ksp inspect s3://bucket/sp --out s3://bucket/exports/sp42/ --distributed --shards 16', 'plan a sharded export: 16 Parquet parts, read as one table with read_parquet(\'…/sp42/*.parquet\')'),
  handler: async (args) => (await import('./run.js')).run(args),
};
