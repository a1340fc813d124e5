import { KspError } from '../../errors.js';
import { MANIFEST_NAME } from '../../formats/manifest/manifest.js';
import type { Savepoint, TaskRef } from '../../model/savepoint.js';
import { child, uriOf, type Location } from '../../storage/uri.js';
import { VERSION } from '../../version.js';
import { SourceGuard } from '../target-files.js';
import { within } from '../target.js';
import {
  PLAN_FORMAT, PLAN_VERSION, planLocation, sourceManifestHash,
  type DistributedPlan, type ExportSpec, type ExportUnitSpec,
} from './plan-file.js';
import { emptyWritePlan, publishPlan } from './make-plan.js';

/**
 * A sharded `inspect --out`: the source's tasks (those the one-process
 * export would read, in metadata order) cut into `parts` contiguous runs of
 * about equal bytes, one export unit each, writing
 * `part-{k:05}-of-{parts:05}.{ext}` in the output folder (Hive/Spark style:
 * a folder of parts with one schema that DuckDB, pyarrow and Spark read as
 * one table). The plan lives under `_ksp/` and the commit marker is
 * `_SUCCESS`: readers skip names starting with `_`.
 *
 * Row order: part k holds tasks before part k+1's, each task's entries in
 * file order, so the parts read in name order, each in file order, give the
 * one-process file's rows in its order.
 */

/** The commit marker of a sharded export (Spark's name; a small JSON report, as Hadoop's S3A committers write). */
export const SUCCESS_NAME = '_SUCCESS';

export const PART_EXT: Record<ExportSpec['format'], string> = { parquet: 'parquet', arrow: 'arrow', arrows: 'arrows', jsonl: 'jsonl' };

export function partName(k: number, parts: number, format: ExportSpec['format']): string {
  const pad = (n: number): string => String(n).padStart(5, '0');
  return `part-${pad(k)}-of-${pad(parts)}.${PART_EXT[format]}`;
}

/**
 * Cuts `weights` (in order) into at most `n` contiguous non-empty groups of
 * about equal weight: each item goes to the group its weight's midpoint
 * falls in, kept so no group is skipped and enough items are left for the
 * groups after it. Deterministic; returns the group of each item.
 */
export function contiguousGroups(weights: readonly number[], n: number): number[] {
  const count = Math.max(1, Math.min(n, weights.length));
  const w = weights.map((x) => Math.max(1, x));
  const total = w.reduce((a, b) => a + b, 0);
  const out: number[] = [];
  let before = 0;
  let prev = -1;
  for (let i = 0; i < w.length; i++) {
    const want = Math.min(count - 1, Math.floor(((before + w[i]! / 2) * count) / total));
    const lo = Math.max(0, prev, count - (w.length - i));
    const g = Math.min(prev + 1, Math.max(lo, want));
    out.push(g);
    prev = g;
    before += w[i]!;
  }
  return out;
}

/** True once a target is sealed: a write's manifest.sha256, or a sharded export's _SUCCESS. */
export async function isSealed(dir: Location): Promise<boolean> {
  for (const name of [MANIFEST_NAME, SUCCESS_NAME]) {
    const l = child(dir, name);
    if (await l.storage.stat(l.key)) return true;
  }
  return false;
}

export interface ExportPlanOptions {
  /** Part files (units); fewer when fewer tasks are read. */
  parts: number;
  spec: Omit<ExportSpec, 'savepoint' | 'roots' | 'metadataSha256'>;
  /** The tasks to export, as the one-process export would read them (`Savepoint.candidateTasks`). */
  tasks: TaskRef[];
  options?: Record<string, unknown>;
  forceUnlock?: boolean;
}

export async function writeExportPlan(sp: Savepoint, out: Location, o: ExportPlanOptions): Promise<DistributedPlan> {
  if (within(out, sp.dir) || within(sp.dir, out)) {
    throw new KspError('TARGET_OVERLAPS_SOURCE', `${uriOf(out)}: the export folder overlaps the savepoint ${sp.uri}; choose a folder outside it`, { file: uriOf(out) });
  }
  const guard = new SourceGuard(sp.dir, []);
  guard.assertTargetApart(out);
  const sizes = await Promise.all(o.tasks.map(async (t) => (await t.location.storage.stat(t.location.key))?.size ?? 0));
  const groups = contiguousGroups(sizes, o.parts);
  const parts = o.tasks.length ? groups[groups.length - 1]! + 1 : 1;
  const roots = sp.roots.roots.map(uriOf);
  const spec: ExportSpec = { savepoint: sp.uri, roots, metadataSha256: sp.metadataSha256, ...o.spec };
  const units: ExportUnitSpec[] = Array.from({ length: parts }, (_, part) => {
    const name = partName(part, parts, spec.format);
    return { id: `e-${String(part).padStart(4, '0')}`, phase: 0, kind: 'export', part, parts, to: uriOf(child(out, name)), rel: name, tasks: [], spec };
  });
  o.tasks.forEach((t, i) => units[groups[i]!]!.tasks.push({ index: t.index, operatorId: t.operatorId, taskId: t.taskId, uri: uriOf(t.location), size: sizes[i]! }));
  const plan: DistributedPlan = {
    format: PLAN_FORMAT, version: PLAN_VERSION, ksp: VERSION, created: new Date().toISOString(), command: 'inspect', options: o.options ?? {},
    source: { uri: sp.uri, manifestSha256: await sourceManifestHash(sp.dir), roots },
    target: { uri: uriOf(out), mode: 'relative' },
    metadata: '', meta: { uri: uriOf(child(out, 'meta.json')), rel: null, text: '' }, routedTasks: [],
    units,
    plan: emptyWritePlan(sp.uri, uriOf(out)),
  };
  guard.assertNotSource(planLocation(out), 'write');
  await publishPlan(out, plan, { command: 'inspect --out --distributed', forceUnlock: o.forceUnlock });
  return plan;
}
