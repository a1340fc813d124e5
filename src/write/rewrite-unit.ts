import { KspError } from '../errors.js';
import { encodeStateBin } from '../formats/state-bin/encoder.js';
import { locate, uriOf } from '../storage/uri.js';
import { writeHashed } from './copy.js';
import { REWRITE_BATCH, mapBatches } from './entry-maps.js';
import { loadEntryMap } from './distributed/entry-map.js';
import { openTask } from './repartition.js';
import type { SourceTask } from './jobs.js';
import type { RewriteResult, RewriteUnit } from './units.js';

/**
 * A rewrite unit where it runs (a write thread): the steps are loaded again
 * from their module (once per thread), composed as the planner composes them
 * (write/writer.ts: the migrations in order, then the renames), and the task
 * streams through them exactly as write/execute.ts `rewriteTask` streams it,
 * so the bytes are the same wherever it runs.
 */

export async function runRewrite(u: RewriteUnit): Promise<RewriteResult> {
  // The same rebuild a distributed shard makes (one loaded registry per module and thread).
  const { map, steps } = await loadEntryMap({ migrations: u.migrations, renames: u.renames });
  const task = { operatorId: u.source.operatorId, taskId: u.source.taskId, location: locate(u.source.path), ...(u.source.sha256 ? { sha256: u.source.sha256 } : {}) } as SourceTask;
  let read = 0;
  const src = await openTask(task, (n) => (read += n), 'rewrite', REWRITE_BATCH);
  const out = locate(u.out);
  if (!src) {
    // An empty task is the 12-byte empty snapshot, never a 0-byte file (model/FORMAT.md §4, "Empty tasks").
    const r = await writeHashed(out, encodeStateBin(0, []));
    return { kind: 'rewrite', ...r, read, entries: 0, steps: steps() };
  }
  if (src.count === null) throw new KspError('INTERNAL', `${uriOf(task.location)}: a rewrite unit needs a source whose entry count is known`);
  const ctx = { operator: u.source.operatorId, task: u.source.taskId, index: 0 };
  const r = await writeHashed(out, encodeStateBin(src.count, mapBatches(src.batches(), map, ctx), uriOf(out)));
  return { kind: 'rewrite', ...r, read, entries: src.count, steps: steps() };
}
