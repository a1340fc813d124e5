import { parentPort, workerData } from 'node:worker_threads';
import { encodeParquet, type ParquetCompression } from './parquet-encode.js';

/**
 * The Parquet encoding thread (parquet.ts): IPC streams come in as messages
 * (`{ ipc }`, then `{ end }`), Parquet bytes go back (`{ chunk }`, then
 * `{ done }` or `{ error }`). At most OUT_AHEAD chunks are unacknowledged:
 * a slow consumer (an S3 upload) holds the encoder back, not memory.
 */

const OUT_AHEAD = 4;
const port = parentPort!;
const inputs: Uint8Array[] = [];
let ended = false;
let wake: (() => void) | null = null;
let unacked = 0;
let ackWake: (() => void) | null = null;

port.on('message', (m: { ipc?: Uint8Array; end?: true; ack?: true }) => {
  if (m.ipc) inputs.push(m.ipc);
  if (m.end) ended = true;
  if (m.ack) {
    unacked--;
    ackWake?.();
    ackWake = null;
  }
  wake?.();
  wake = null;
});

async function* received(): AsyncGenerator<Uint8Array> {
  for (;;) {
    if (inputs.length) {
      // Taken: the sender may send the next one.
      port.postMessage({ taken: true });
      yield inputs.shift()!;
      continue;
    }
    if (ended) return;
    await new Promise<void>((r) => (wake = r));
  }
}

try {
  for await (const chunk of encodeParquet(received(), (workerData as { compression: ParquetCompression }).compression)) {
    while (unacked >= OUT_AHEAD) await new Promise<void>((r) => (ackWake = r));
    unacked++;
    // A chunk that owns its whole buffer moves; a view of a larger one is copied.
    const own = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength ? chunk : chunk.slice();
    // (parquet-wasm hands out fresh copies of its wasm memory: they move.)
    port.postMessage({ chunk: own }, [own.buffer as ArrayBuffer]);
  }
  port.postMessage({ done: true });
} catch (e) {
  port.postMessage({ error: e instanceof Error ? e.message : String(e) });
}
