import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type * as Arrow from 'apache-arrow';
import { KspError } from '../errors.js';
import { encodeParquet, type ParquetCompression } from './parquet-encode.js';

export type { ParquetCompression } from './parquet-encode.js';

/**
 * Parquet through parquet-wasm's streaming writer (parquet-encode.ts): each
 * Arrow batch goes in as uncompressed IPC (parquet-wasm cannot read
 * compressed IPC) and becomes one row group; output bytes are pulled as they
 * are produced.
 *
 * With a second core, the encoding (about 40% of a Parquet export's CPU,
 * profiled on the bench's 500K entries) runs in its own thread while this
 * one decodes entries and builds the next batches; the same encoder with the
 * same input, so the same bytes. In one thread (one core, KSP_THREADS=1, or
 * under the TypeScript sources, which have no compiled worker) it runs here.
 */

/** Batches sent to the encoding thread and not yet taken by it: memory stays bounded. */
const IN_AHEAD = 2;

function workerUrl(): URL | null {
  const url = new URL('./parquet-worker.js', import.meta.url);
  return url.protocol === 'file:' && existsSync(fileURLToPath(url)) ? url : null;
}

/** The batch's IPC stream: a copy, so the batch's buffers can be reused (arrow-batches.ts). */
function ipcOf(A: typeof Arrow, batch: Arrow.RecordBatch): Uint8Array {
  return A.tableToIPC(new A.Table([batch]), 'stream');
}

/** parquet-wasm needs one batch to learn the schema: an empty one when there are none. */
function emptyBatch(A: typeof Arrow, schema: Arrow.Schema): Arrow.RecordBatch {
  return new A.RecordBatch(schema, A.makeData({ type: new A.Struct(schema.fields), length: 0, nullCount: 0, children: schema.fields.map((f) => A.makeData({ type: f.type, length: 0 } as never)) }));
}

async function* ipcStreams(A: typeof Arrow, schema: Arrow.Schema, batches: AsyncIterable<Arrow.RecordBatch>): AsyncGenerator<Uint8Array> {
  let any = false;
  for await (const b of batches) {
    any = true;
    yield ipcOf(A, b);
  }
  if (!any) yield ipcOf(A, emptyBatch(A, schema));
}

export async function* parquetChunks(A: typeof Arrow, schema: Arrow.Schema, batches: AsyncIterable<Arrow.RecordBatch>, compression: ParquetCompression = 'zstd'): AsyncGenerator<Uint8Array> {
  const threads = Number(process.env.KSP_THREADS || availableParallelism());
  const url = threads > 1 ? workerUrl() : null;
  if (!url) {
    yield* encodeParquet(ipcStreams(A, schema, batches), compression);
    return;
  }
  yield* inWorker(url, ipcStreams(A, schema, batches), compression);
}

/** A Uint8Array to transfer: itself when it owns its whole buffer, else a copy (never detach a buffer shared with others). */
function owned(b: Uint8Array): Uint8Array {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : b.slice();
}

async function* inWorker(url: URL, inputs: AsyncGenerator<Uint8Array>, compression: ParquetCompression): AsyncGenerator<Uint8Array> {
  // A small young generation: the thread makes little JS garbage, and a second isolate counts against the memory budget.
  const w = new Worker(url, { workerData: { compression }, resourceLimits: { maxYoungGenerationSizeMb: 4 } });
  const out: Uint8Array[] = [];
  let done = false;
  let failure: unknown;
  let inFlight = 0;
  // Two waiters: this generator (for output) and the feeder (for room).
  let wake: (() => void) | null = null;
  let room: (() => void) | null = null;
  const signal = (): void => {
    wake?.();
    wake = null;
    room?.();
    room = null;
  };
  w.on('message', (m: { chunk?: Uint8Array; done?: true; error?: string; taken?: true }) => {
    if (m.chunk) out.push(m.chunk);
    if (m.taken) inFlight--;
    if (m.done) done = true;
    if (m.error !== undefined) failure ??= new KspError('INTERNAL', `Parquet encoder: ${m.error}`);
    signal();
  });
  w.on('error', (e) => {
    failure ??= e;
    signal();
  });
  w.on('exit', (code) => {
    if (!done) failure ??= new KspError('INTERNAL', `Parquet encoding thread exited with code ${code}`);
    signal();
  });
  // Feeds the encoder while this generator hands out what it made. An input
  // error (a corrupt state file) is the error of the export.
  const feed = (async () => {
    try {
      for await (const ipc of inputs) {
        while (inFlight >= IN_AHEAD && failure === undefined) await new Promise<void>((r) => (room = r));
        if (failure !== undefined) return;
        inFlight++;
        const b = owned(ipc);
        w.postMessage({ ipc: b }, [b.buffer as ArrayBuffer]);
      }
      w.postMessage({ end: true });
    } catch (e) {
      failure ??= e;
      signal();
    }
  })();
  try {
    for (;;) {
      if (out.length) {
        const c = out.shift()!;
        w.postMessage({ ack: true });
        yield c;
        continue;
      }
      if (failure !== undefined) throw failure;
      if (done) break;
      await new Promise<void>((r) => (wake = r));
    }
    await feed;
    if (failure !== undefined) throw failure;
  } finally {
    // Stopped early (or failed): the feeder stops, the input is released, the thread ends.
    failure ??= new KspError('INTERNAL', 'Parquet export stopped');
    signal();
    await feed;
    await inputs.return(undefined);
    await w.terminate();
  }
}
