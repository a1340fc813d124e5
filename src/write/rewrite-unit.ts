import { KspError } from '../errors.js';
import { encodeStateBin } from '../formats/state-bin/encoder.js';
import { loadMigrations } from '../migrate/load.js';
import type { MigrationRegistry, Step } from '../migrate/registry.js';
import { locate, uriOf } from '../storage/uri.js';
import { writeHashed } from './copy.js';
import { REWRITE_BATCH, compose, mapBatches, migrationMap, renameMap, type EntryMap, type StepCount } from './entry-maps.js';
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

const registries = new Map<string, Promise<MigrationRegistry>>();

function registryOf(module: string): Promise<MigrationRegistry> {
  let r = registries.get(module);
  if (!r) registries.set(module, (r = loadMigrations(module)));
  return r;
}

export async function runRewrite(u: RewriteUnit): Promise<RewriteResult> {
  const counts = new Map<Step, StepCount>();
  const order: Step[] = [];
  const maps: EntryMap[] = [];
  for (const m of u.migrations) {
    const chain = (await registryOf(m.module)).chain(m.operator, m.from, m.to);
    for (const s of chain.flat()) {
      counts.set(s, { operator: m.operator, step: s.describe, transformed: 0, passed: 0 });
      order.push(s);
    }
    maps.push(migrationMap(chain, counts));
  }
  const migMap = maps.length ? compose(maps) : null;
  const rename = u.renames.length ? renameMap(new Map(u.renames)) : null;
  const map = compose([migMap, rename].filter((m): m is EntryMap => m !== null));
  const task = { operatorId: u.source.operatorId, taskId: u.source.taskId, location: locate(u.source.path), ...(u.source.sha256 ? { sha256: u.source.sha256 } : {}) } as SourceTask;
  let read = 0;
  const src = await openTask(task, (n) => (read += n), 'rewrite', REWRITE_BATCH);
  const out = locate(u.out);
  const steps = (): RewriteResult['steps'] => order.map((s) => ({ transformed: counts.get(s)!.transformed, passed: counts.get(s)!.passed }));
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
