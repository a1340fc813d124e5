import { parentPort } from 'node:worker_threads';
import { KspError } from '../errors.js';
import { runUnit } from './unit-run.js';
import type { Unit } from './units.js';

// Worker side of unit-pool.ts: one unit at a time; typed arrays in results are transferred, not copied.
parentPort!.on('message', async (msg: { id: number; unit: Unit }) => {
  try {
    const result = await runUnit(msg.unit);
    const transfer = 'routes' in result && result.routes.byteLength ? [result.routes.buffer as ArrayBuffer] : [];
    parentPort!.postMessage({ id: msg.id, result }, transfer);
  } catch (e) {
    const err = e as Error & { code?: unknown; data?: unknown };
    parentPort!.postMessage({ id: msg.id, error: { message: err.message ?? String(e), code: err instanceof KspError ? err.code : undefined, data: err instanceof KspError ? err.data : undefined } });
  }
});
