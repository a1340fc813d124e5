import { parentPort } from 'node:worker_threads';
import { runUnit, unitError } from './unit-run.js';
import type { Unit } from './units.js';

// Worker side of unit-pool.ts: one unit at a time; typed arrays in results are transferred, not copied.
parentPort!.on('message', async (msg: { id: number; unit: Unit }) => {
  try {
    const result = await runUnit(msg.unit);
    const transfer = 'routes' in result && result.routes.byteLength ? [result.routes.buffer as ArrayBuffer] : [];
    parentPort!.postMessage({ id: msg.id, result }, transfer);
  } catch (e) {
    const err = unitError(e);
    parentPort!.postMessage({ id: msg.id, error: { message: err.message, code: err.code, data: err.data } });
  }
});
