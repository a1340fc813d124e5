import { keyGroup, taskForKeyGroup } from './key-group.js';
import { isWatermarkKey, windowGroupKey } from './routing.js';
import type { Savepoint, TaskRef } from './savepoint.js';

/**
 * Which tasks can hold an exact key. The engine assigns key-group ranges to
 * tasks by index, so when an operator's tasks are named `<prefix>0 …
 * <prefix>N-1` (every index once) only the owners of the key's routing
 * key(s) need reading: the whole key (state-key routing) and, for a key in
 * window layout, its group key (window routing). The watermark key `wm:` is
 * broadcast, each task holding its own value, so every task is read for it.
 * Limit: under window routing, other keys that do not parse are broadcast
 * too; their copies outside the owner task are only found with every task
 * read (`inspect --all-tasks`). Other task naming: every task is read.
 */

export interface KeyLookupPlan {
  tasks: TaskRef[];
  /** Operators whose task naming did not allow pruning. */
  unpruned: string[];
}

function taskIndexes(tasks: TaskRef[]): number[] | null {
  const m = /^(.*?)(\d+)$/.exec(tasks[0]?.taskId ?? '');
  if (!m) return null;
  const prefix = m[1]!;
  const idx: number[] = [];
  const seen = new Set<number>();
  for (const t of tasks) {
    const mm = /^(.*?)(\d+)$/.exec(t.taskId);
    if (!mm || mm[1] !== prefix || (mm[2]!.length > 1 && mm[2]!.startsWith('0'))) return null;
    const n = Number(mm[2]);
    if (n >= tasks.length || seen.has(n)) return null;
    seen.add(n);
    idx.push(n);
  }
  return idx;
}

export function tasksForKey(sp: Savepoint, key: Uint8Array, candidates: TaskRef[]): KeyLookupPlan {
  if (isWatermarkKey(key)) return { tasks: candidates, unpruned: [] };
  const groups = new Set([keyGroup(key)]);
  const wk = windowGroupKey(key);
  if (wk) groups.add(keyGroup(wk));
  const byOp = new Map<string, TaskRef[]>();
  for (const t of candidates) {
    const l = byOp.get(t.operatorId) ?? [];
    l.push(t);
    byOp.set(t.operatorId, l);
  }
  const out: TaskRef[] = [];
  const unpruned: string[] = [];
  for (const [op, tasks] of byOp) {
    // Prune only when the operator's full task set is among the candidates.
    const all = sp.tasks.filter((t) => t.operatorId === op);
    const idx = all.length === tasks.length ? taskIndexes(tasks) : null;
    if (!idx) {
      unpruned.push(op);
      out.push(...tasks);
      continue;
    }
    const owners = new Set([...groups].map((g) => taskForKeyGroup(g, tasks.length)));
    tasks.forEach((t, i) => {
      if (owners.has(idx[i]!)) out.push(t);
    });
  }
  return { tasks: out, unpruned };
}
