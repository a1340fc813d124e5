import { openAsBlob } from 'node:fs';
import { KspError } from '../errors.js';

/**
 * A Parquet file's rows as Arrow IPC streams, a batch of `batchRows` at a
 * time, a row group after another: parquet-wasm reads the file through a
 * Blob, so only the pages a batch needs are read, and its wasm memory holds
 * one batch (it never shrinks, so the batches are kept small). Shared by the
 * reading thread (parquet-read-worker.ts) and the in-thread fallback.
 */
export async function* parquetIpcStreams(path: string, batchRows: number, onTotal?: (rows: number) => void): AsyncGenerator<Uint8Array> {
  let blob: Blob;
  try {
    blob = await openAsBlob(path);
  } catch (e) {
    throw new KspError('NOT_FOUND', `${path}: cannot read the import file (${(e as Error).message})`, { file: path });
  }
  const pq = await import('parquet-wasm/node');
  let file;
  try {
    file = await pq.ParquetFile.fromFile(blob);
  } catch (e) {
    throw new KspError('IMPORT_ROW', `${path}: not a Parquet file (${String((e as Error).message ?? e)})`, { file: path, row: 0 });
  }
  try {
    const meta = file.metadata();
    // The footer's row count: the total of the import's rows phase (progress).
    onTotal?.(meta.fileMetadata().numRows());
    const groups = meta.numRowGroups();
    for (let g = 0; g < groups; g++) {
      // One request at a time: the default reads ahead row groups that all sit in wasm memory.
      const reader = (await file.stream({ rowGroups: [g], batchSize: batchRows, concurrency: 1 })).getReader();
      for (;;) {
        const r = await reader.read();
        if (r.done) break;
        yield (r.value as { intoIPCStream(): Uint8Array }).intoIPCStream();
      }
    }
  } finally {
    file.free();
  }
}
