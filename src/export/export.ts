import { KspError } from '../errors.js';
import type { EntryRow } from '../model/savepoint.js';
import { uriOf, type Location } from '../storage/uri.js';
import { arrowIpcChunks } from './arrow-ipc.js';
import { arrowModule, exportSchema, toRecordBatches } from './arrow-batches.js';
import type { DecodeStats, ExportCodecs, RowSource } from './columns.js';
import { jsonlChunks } from './jsonl.js';
import { parquetChunks, type ParquetCompression } from './parquet.js';

/** `inspect --out`: entries to Parquet, Arrow IPC (file or stream) or JSON Lines, streamed to storage. */

export type ExportFormat = 'parquet' | 'arrow' | 'arrows' | 'jsonl';

export function formatFromPath(path: string): ExportFormat {
  const p = path.toLowerCase();
  if (p.endsWith('.parquet')) return 'parquet';
  if (p.endsWith('.arrow') || p.endsWith('.feather') || p.endsWith('.ipc')) return 'arrow';
  if (p.endsWith('.arrows')) return 'arrows';
  if (p.endsWith('.jsonl') || p.endsWith('.ndjson')) return 'jsonl';
  throw new KspError('EXPORT_FORMAT', `${path}: cannot tell the export format from the name; use .parquet, .arrow (IPC file), .arrows (IPC stream) or .jsonl`, { found: path });
}

export interface ExportOptions {
  format?: ExportFormat;
  codecs?: ExportCodecs;
  compression?: ParquetCompression;
  onRows?: (n: number) => void;
  /** Each chunk of the output as it is written (a sharded export hashes its part with it). */
  onChunk?: (chunk: Uint8Array) => void;
}

export interface ExportResult {
  file: string;
  format: ExportFormat;
  rows: number;
  bytes: number;
  decode: DecodeStats;
}

export async function exportEntries(rows: RowSource, out: Location, options: ExportOptions = {}): Promise<ExportResult> {
  // The URI, not the key: a local key lacks the path's leading '/', and the error names the path.
  const format = options.format ?? formatFromPath(uriOf(out));
  const codecs = options.codecs ?? {};
  const decode: DecodeStats = { keyFailures: 0, valueFailures: 0 };
  let count = 0;
  const counted = (async function* (): AsyncGenerator<EntryRow[]> {
    for await (const b of rows) {
      count += b.length;
      options.onRows?.(b.length);
      yield b;
    }
  })();
  let chunks: AsyncIterable<Uint8Array>;
  if (format === 'jsonl') chunks = jsonlChunks(counted, codecs, decode);
  else {
    const A = await arrowModule();
    const schema = exportSchema(A, codecs);
    const batches = toRecordBatches(A, schema, counted, codecs, decode);
    chunks = format === 'parquet' ? parquetChunks(A, schema, batches, options.compression) : arrowIpcChunks(A, schema, batches, format === 'arrow' ? 'file' : 'stream');
  }
  let bytes = 0;
  const sized = (async function* (): AsyncGenerator<Uint8Array> {
    for await (const c of chunks) {
      bytes += c.length;
      options.onChunk?.(c);
      yield c;
    }
  })();
  await out.storage.write(out.key, sized);
  return { file: uriOf(out), format, rows: count, bytes, decode };
}
