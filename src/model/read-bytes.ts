import { uriOf } from '../storage/uri.js';
import { attachNative } from './native-state.js';
import type { Savepoint, TaskRef } from './savepoint.js';
import type { ScanRequest } from './scan-file.js';

/**
 * The bytes a scan of a request reads, as its `onBytes` counts them: its own
 * file and, for a native task, the tables listed with a size in its
 * sst_manifest.json (model/native-read.ts openImage). For progress totals.
 */
export function taskReadBytes(r: ScanRequest): number {
  return (r.size ?? 0) + (r.work ?? 0);
}

/** Tasks sized per call, as verify and inspect scan them. */
const CHUNK = 2048;

/**
 * The bytes reading these tasks' entries takes (Savepoint.entries with
 * `onBytes`), told as it is added up, chunk by chunk: `onTotal(sum, exact)`,
 * exact at the last chunk. Run beside the read itself (it stats each task
 * and reads a native task's sst_manifest.json), it stops once `stop()` says
 * the read is over. Errors are left to the read, which reports them exactly.
 */
export async function sizeTasks(sp: Savepoint, tasks: readonly TaskRef[], onTotal: (n: number, exact: boolean) => void, stop: () => boolean = () => false): Promise<void> {
  let total = 0;
  for (let from = 0; from < tasks.length && !stop(); from += CHUNK) {
    const chunk = tasks.slice(from, from + CHUNK);
    const reqs: ScanRequest[] = chunk.map((t) => ({ uri: uriOf(t.location), hash: false, decode: false, keyGroups: false }));
    await attachNative(sp, reqs.map((req, i) => ({ req, task: chunk[i] })), false);
    for (const r of reqs) total += taskReadBytes(r);
    if (!stop()) onTotal(total, from + CHUNK >= tasks.length);
  }
  if (tasks.length === 0) onTotal(0, true);
}
