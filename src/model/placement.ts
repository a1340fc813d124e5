import { JsonObject } from '../formats/json/json-text.js';
import type { Routing } from './routing.js';
import type { Savepoint, TaskRef } from './savepoint.js';
import { rangeOwnersByName, rangeOwnersByNumber } from './task-ranges.js';

/**
 * Key-group placement as `verify` checks it (src/model/FORMAT.md,
 * "Placement"): an entry the engine would route sits on a task that owns
 * its key group. Under window routing (what the engine's rescale always
 * uses) only tw:/sw:/ses: keys are routed; the rest are broadcast and may
 * sit anywhere. An operator that ksp rescaled by state key (recorded in
 * meta.json's `ksp.operations`) is checked by state key.
 */

/** What the scan of one task checks; plain data, it crosses to worker threads. */
export interface PlacementRule {
  parallelism: number;
  /** Key-group ranges (indexes 0..p-1) this task may hold. */
  ranges: number[];
  routing: Routing;
}

export interface PlacementPlan {
  /** The rule for the task at this metadata index, made when asked for; undefined when its placement is not checked. */
  ruleFor(index: number): PlacementRule | undefined;
  /** Said once per operator: where ownership cannot be known, or the engine's two orders differ. */
  notes: Array<{ operator: string; message: string }>;
}

/**
 * One operator's ownership, packed: the ranges of task position `pos` are
 * `list[start[pos] .. start[pos + 1])`. A rule object and a range array per
 * task cost ~50 MB at 200,000 tasks; this costs 8 bytes a task.
 */
interface OperatorOwnership {
  parallelism: number;
  routing: Routing;
  start: Int32Array;
  list: Int32Array;
}

export function placementPlan(sp: Savepoint): PlacementPlan {
  const byOp = new Map<string, TaskRef[]>();
  for (const t of sp.tasks) {
    const l = byOp.get(t.operatorId) ?? [];
    l.push(t);
    byOp.set(t.operatorId, l);
  }
  const routings = recordedRoutings(sp);
  const notes: PlacementPlan['notes'] = [];
  const ownerOf: Array<OperatorOwnership | undefined> = new Array(sp.tasks.length);
  const posOf = new Int32Array(sp.tasks.length);
  for (const [op, tasks] of byOp) {
    const ids = tasks.map((t) => t.taskId);
    if (new Set(ids).size !== ids.length) continue; // DUPLICATE_TASK is reported on its own
    const p = tasks.length;
    if (p === 1) continue; // one task owns every key group
    const gap = highestNumber(ids);
    if (gap !== null && gap >= p) {
      notes.push({ operator: op, message: `operator ${op}: task ids go up to ${gap} but ${p} tasks are listed (the engine lists no snapshot for an empty task), so the parallelism and key-group ownership cannot be known; placement not checked` });
      continue;
    }
    const byName = rangeOwnersByName(ids);
    const byNumber = rangeOwnersByNumber(ids);
    const ranges = tasks.map(() => [] as number[]);
    byName.forEach((pos, r) => ranges[pos]!.push(r));
    if (byNumber && byNumber.some((pos, r) => pos !== byName[r])) {
      byNumber.forEach((pos, r) => {
        if (!ranges[pos]!.includes(r)) ranges[pos]!.push(r);
      });
      notes.push({ operator: op, message: `operator ${op}: at ${p} tasks the engine's rescale (task ids in string order) and its runtime (subtask number) give some key-group ranges to different tasks; an entry on its owner under either is accepted` });
    }
    const start = new Int32Array(p + 1);
    ranges.forEach((r, i) => (start[i + 1] = start[i]! + r.length));
    const list = new Int32Array(start[p]!);
    ranges.forEach((r, i) => list.set(r, start[i]!));
    const own: OperatorOwnership = { parallelism: p, routing: routings.get(op) ?? 'window', start, list };
    tasks.forEach((t, i) => {
      ownerOf[t.index] = own;
      posOf[t.index] = i;
    });
  }
  return {
    notes,
    ruleFor(index) {
      const own = ownerOf[index];
      if (!own) return undefined;
      const pos = posOf[index]!;
      return { parallelism: own.parallelism, routing: own.routing, ranges: Array.from(own.list.subarray(own.start[pos]!, own.start[pos + 1]!)) };
    },
  };
}

/** Highest `{n}` of `{prefix}{n}` ids with one prefix, else null. */
function highestNumber(ids: string[]): number | null {
  let prefix: string | null = null;
  let max = -1;
  for (const id of ids) {
    const m = /^(.*?)(\d+)$/.exec(id);
    if (!m || (prefix !== null && m[1] !== prefix)) return null;
    prefix = m[1]!;
    max = Math.max(max, Number(m[2]));
  }
  return max < 0 ? null : max;
}

/** Operators ksp last rescaled with an explicit routing, from meta.json's `ksp.operations`. */
function recordedRoutings(sp: Savepoint): Map<string, Routing> {
  const out = new Map<string, Routing>();
  const ksp = sp.meta?.doc.get('ksp');
  const ops = ksp instanceof JsonObject ? ksp.get('operations') : undefined;
  if (!Array.isArray(ops)) return out;
  for (const o of ops) {
    if (!(o instanceof JsonObject) || o.get('op') !== 'rescale') continue;
    const routing = o.get('routing');
    const names = o.get('operators');
    if ((routing !== 'window' && routing !== 'state-key') || !Array.isArray(names)) continue;
    for (const n of names) if (typeof n === 'string') out.set(n, routing);
  }
  return out;
}
