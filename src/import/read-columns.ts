import { createReadStream, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { KspError } from '../errors.js';
import type { ExportFormat } from '../export/export.js';
import { formatFromPath } from '../export/export.js';
import { parquetIpcStreams } from './parquet-ipc.js';
import { estimateTotal } from '../model/read-bytes.js';

/**
 * The rows of an import file, a batch at a time, as columns by name: the
 * columns `inspect --out` writes, read from Parquet (parquet-wasm, a row
 * group's batches at a time, the file read through a Blob so only what a
 * batch needs is in memory), Arrow IPC file or stream (apache-arrow's
 * streaming reader) or JSON Lines (a line at a time). Nothing is held beyond
 * one batch.
 */

export interface ColumnBatch {
  /** Rows in this batch. */
  length: number;
  /** The 1-based row number (JSON Lines: line number) of row i of the batch. */
  row(i: number): number;
  /** A column's reader, or undefined when the batch has no such column. */
  column(name: string): ((i: number) => unknown) | undefined;
}

/** Rows read per batch. */
const BATCH_ROWS = 16384;

/**
 * The file's row count, for progress: Parquet's footer gives it exactly; a
 * JSON Lines file and an Arrow IPC file are estimated from the part read so
 * far (bytes of the file, record batches of the footer), exact at the end;
 * an Arrow stream has none.
 */
export type RowsTotal = (rows: number, exact: boolean) => void;

export async function* readColumns(path: string, format: ExportFormat = formatFromPath(path), onTotal?: RowsTotal): AsyncGenerator<ColumnBatch> {
  if (format === 'jsonl') yield* jsonlBatches(path, onTotal);
  else if (format === 'parquet') yield* parquetBatches(path, onTotal);
  else yield* arrowBatches(path, onTotal);
}

function notFound(path: string, e: unknown): KspError {
  return new KspError('NOT_FOUND', `${path}: cannot read the import file (${(e as Error).message})`, { file: path });
}

async function* jsonlBatches(path: string, onTotal?: RowsTotal): AsyncGenerator<ColumnBatch> {
  let stream;
  let size = 0;
  try {
    const fh = await open(path, 'r');
    size = (await fh.stat()).size;
    await fh.close();
    stream = createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 });
  } catch (e) {
    throw notFound(path, e);
  }
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  let rows: Array<Record<string | symbol, unknown>> = [];
  let line = 0;
  const batch = (objs: Array<Record<string | symbol, unknown>>): ColumnBatch => ({
    length: objs.length,
    row: (i) => objs[i]![ROW] as number,
    // Every line is its own object: a column is present on a row when its member is.
    column: (name) => (objs.some((o) => name in o) ? (i: number) => (name in objs[i]! ? objs[i]![name] : MISSING) : undefined),
  });
  let read = 0;
  let count = 0;
  for await (const text of lines) {
    line++;
    if (onTotal) read += Buffer.byteLength(text) + 1;
    if (text.trim() === '') continue;
    let o: unknown;
    try {
      o = JSON.parse(text);
    } catch (e) {
      throw new KspError('IMPORT_ROW', `${path}: row ${line}: not a JSON object (${(e as Error).message})`, { file: path, row: line });
    }
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new KspError('IMPORT_ROW', `${path}: row ${line}: expected a JSON object, found ${Array.isArray(o) ? 'an array' : typeof o}`, { file: path, row: line });
    // Blank lines are skipped, but rows keep their line numbers.
    (o as Record<string | symbol, unknown>)[ROW] = line;
    rows.push(o as Record<string | symbol, unknown>);
    if (rows.length >= BATCH_ROWS) {
      count += rows.length;
      onTotal?.(estimateTotal(count, read, size), false);
      yield batch(rows);
      rows = [];
    }
  }
  onTotal?.(count + rows.length, true);
  if (rows.length) yield batch(rows);
}

/** A JSON Lines row's line number (blank lines are skipped, so rows and lines can differ). */
export const ROW = Symbol('row');
/** A member a JSON Lines row does not have (the column exists on other rows). */
export const MISSING = Symbol('missing');

/** Any Arrow record batch (apache-arrow's, or one read from parquet-wasm's IPC). */
interface ArrowLike {
  numRows: number;
  schema: { fields: Array<{ name: string }> };
  getChildAt(i: number): ArrowVector | null;
}

interface ArrowVector {
  get(i: number): unknown;
  data: Array<{ typeId: number; valueOffsets?: Int32Array | BigInt64Array; values?: Uint8Array; nullCount: number }>;
}

/** apache-arrow's Type ids of the variable-width columns read in place. */
const BINARY = 4;
const UTF8 = 5;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A column's reader. Binary and UTF-8 columns in one chunk without nulls
 * are read from their offsets in place (a view per row, no copy), and a
 * string equal to the row before's is that string again: ids repeat row
 * after row, and Vector.get per cell was most of an import's read time.
 */
function reader(v: ArrowVector): (i: number) => unknown {
  const d = v.data.length === 1 ? v.data[0]! : null;
  if (!d || d.nullCount > 0 || !(d.valueOffsets instanceof Int32Array) || !d.values || (d.typeId !== BINARY && d.typeId !== UTF8)) return (i) => v.get(i);
  const off = d.valueOffsets;
  const bytes = d.values;
  if (d.typeId === BINARY) return (i) => bytes.subarray(off[i]!, off[i + 1]!);
  let lastStart = -1;
  let lastEnd = -1;
  let last = '';
  return (i) => {
    const s = off[i]!;
    const e = off[i + 1]!;
    if (lastStart >= 0 && e - s === lastEnd - lastStart) {
      let same = true;
      for (let k = 0; k < e - s; k++) if (bytes[s + k] !== bytes[lastStart + k]) { same = false; break; }
      if (same) return last;
    }
    lastStart = s;
    lastEnd = e;
    return (last = utf8.decode(bytes.subarray(s, e)));
  };
}

function arrowBatch(b: ArrowLike, first: number): ColumnBatch {
  const names = b.schema.fields.map((f) => f.name);
  return {
    length: b.numRows,
    row: (i) => first + i,
    column: (name) => {
      const i = names.indexOf(name);
      const v = i < 0 ? null : b.getChildAt(i);
      return v ? reader(v) : undefined;
    },
  };
}

async function* parquetBatches(path: string, onTotal?: RowsTotal): AsyncGenerator<ColumnBatch> {
  const A = await import('apache-arrow');
  const url = new URL('./parquet-read-worker.js', import.meta.url);
  // Under the TypeScript sources there is no compiled worker: read here.
  const inWorker = url.protocol === 'file:' && existsSync(fileURLToPath(url));
  let first = 1;
  const total = onTotal ? (n: number) => onTotal(n, true) : undefined;
  for await (const ipc of inWorker ? fromWorker(url, path, total) : parquetIpcStreams(path, BATCH_ROWS, total)) {
    for (const b of A.tableFromIPC(ipc).batches) {
      yield arrowBatch(b as unknown as ArrowLike, first);
      first += b.numRows;
    }
  }
}

/** The reading thread's IPC streams, taken one at a time (each taken one lets it send another). */
async function* fromWorker(url: URL, path: string, onTotal?: (rows: number) => void): AsyncGenerator<Uint8Array> {
  // A small young generation: the thread makes little JS garbage, and its isolate counts against the memory budget.
  const w = new Worker(url, { workerData: { path, batchRows: BATCH_ROWS }, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
  const queue: Uint8Array[] = [];
  let done = false;
  let failure: unknown;
  let wake: (() => void) | null = null;
  const signal = (): void => {
    wake?.();
    wake = null;
  };
  w.on('message', (m: { total?: number; ipc?: Uint8Array; done?: true; error?: string; code?: string; data?: Record<string, unknown> }) => {
    if (m.total !== undefined) onTotal?.(m.total);
    if (m.ipc) queue.push(m.ipc);
    if (m.done) done = true;
    if (m.error !== undefined) failure ??= m.code ? new KspError(m.code as never, m.error, m.data as never) : new KspError('INTERNAL', `Parquet reader: ${m.error}`);
    signal();
  });
  w.on('error', (e) => {
    failure ??= e;
    signal();
  });
  w.on('exit', (code) => {
    if (!done) failure ??= new KspError('INTERNAL', `Parquet reading thread exited with code ${code}`);
    signal();
  });
  try {
    for (;;) {
      if (queue.length) {
        const ipc = queue.shift()!;
        w.postMessage({ taken: true });
        yield ipc;
        continue;
      }
      if (failure !== undefined) throw failure;
      if (done) return;
      await new Promise<void>((r) => (wake = r));
    }
  } finally {
    await w.terminate();
  }
}

async function* arrowBatches(path: string, onTotal?: RowsTotal): AsyncGenerator<ColumnBatch> {
  const A = await import('apache-arrow');
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw notFound(path, e);
  }
  try {
    // A FileHandle: the IPC file format is read by its footer, the stream format in order, a batch at a time.
    const reader = (await A.RecordBatchReader.from(fh as never)) as unknown as AsyncIterable<ArrowLike> & { isFile(): boolean; numRecordBatches: number; open(): Promise<unknown> };
    let first = 1;
    let batches = 0;
    // The IPC file format's footer lists its record batches (not their rows); a stream lists nothing.
    // (opened first: until then a file reader has not read its footer and lists none).
    if (onTotal && reader.isFile()) await reader.open();
    const listed = reader.isFile() && reader.numRecordBatches > 0 ? reader.numRecordBatches : undefined;
    for await (const b of reader) {
      first += b.numRows;
      if (listed !== undefined) onTotal?.(estimateTotal(first - 1, ++batches, listed), batches >= listed);
      yield arrowBatch(b, first - b.numRows);
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}
