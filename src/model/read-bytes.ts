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

/**
 * A progress total from the part sized so far: `known` bytes over `sized` of
 * `all` items, the rest taken to be alike (exact once all are sized). Files
 * are sized a chunk at a time, so a savepoint of 200,000 tasks would
 * otherwise show a total that is a fraction of the truth until the end.
 */
export function estimateTotal(known: number, sized: number, all: number): number {
  return sized >= all || sized === 0 ? known : Math.round((known / sized) * all);
}

/** Tasks sized per call, as verify and inspect scan them. */
const CHUNK = 2048;

/**
 * The bytes reading these tasks' entries takes (Savepoint.entries with
 * `onBytes`), told as it is added up, chunk by chunk: `onTotal(total, exact)`,
 * an estimate (estimateTotal) until the last chunk. Run beside the read itself (it stats each task
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
    const sized = from + chunk.length;
    if (!stop()) onTotal(estimateTotal(total, sized, tasks.length), sized >= tasks.length);
  }
  if (tasks.length === 0) onTotal(0, true);
}
