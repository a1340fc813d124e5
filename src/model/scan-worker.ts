import { parentPort } from 'node:worker_threads';
import { scanError, scanFile, type ScanRequest } from './scan-file.js';

// Worker side of scan-pool.ts: one file at a time, progress every 64 MiB.
const PROGRESS_STEP = 64 * 1024 * 1024;

parentPort!.on('message', async (msg: { id: number; req: ScanRequest }) => {
  let pending = 0;
  try {
    const result = await scanFile(msg.req, (n) => {
      pending += n;
      if (pending >= PROGRESS_STEP) {
        parentPort!.postMessage({ id: msg.id, bytes: pending });
        pending = 0;
      }
    });
    if (pending) parentPort!.postMessage({ id: msg.id, bytes: pending });
    parentPort!.postMessage({ id: msg.id, result }, result.keyGroups ? [result.keyGroups.buffer as ArrayBuffer] : []);
  } catch (e) {
    parentPort!.postMessage({ id: msg.id, result: { uri: msg.req.uri, size: 0, kind: 'file', entryCount: 0, states: [], windowKeys: 0, watermarkKeys: 0, error: scanError(e) } });
  }
});
