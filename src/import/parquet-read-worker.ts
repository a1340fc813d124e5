import { parentPort, workerData } from 'node:worker_threads';
import { isKspError } from '../errors.js';
import { parquetIpcStreams } from './parquet-ipc.js';

/**
 * The Parquet reading thread (read-columns.ts): IPC streams go out as
 * messages (`{ total }` rows first, then `{ ipc }`, then `{ done }` or `{ error }`), at most AHEAD not
 * yet taken. Its own thread so that parquet-wasm's memory, which never
 * shrinks, goes when the file has been read, before the write and its
 * re-verify.
 */

const AHEAD = 2;
const port = parentPort!;
let unacked = 0;
let wake: (() => void) | null = null;
port.on('message', () => {
  unacked--;
  wake?.();
  wake = null;
});

const { path, batchRows } = workerData as { path: string; batchRows: number };
try {
  for await (const ipc of parquetIpcStreams(path, batchRows, (total) => port.postMessage({ total }))) {
    while (unacked >= AHEAD) await new Promise<void>((r) => (wake = r));
    unacked++;
    const own = ipc.byteOffset === 0 && ipc.byteLength === ipc.buffer.byteLength ? ipc : ipc.slice();
    port.postMessage({ ipc: own }, [own.buffer as ArrayBuffer]);
  }
  port.postMessage({ done: true });
} catch (e) {
  port.postMessage({ error: e instanceof Error ? e.message : String(e), ...(isKspError(e) ? { code: e.code, data: e.data } : {}) });
}
