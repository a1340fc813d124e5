import { keyGroup, taskForKeyGroup } from './key-group.js';
import { isWatermarkKey, windowGroupKey } from './routing.js';
import type { Savepoint, TaskRef } from './savepoint.js';
import { rangeOwnersByName, rangeOwnersByNumber } from './task-ranges.js';

/**
 * Which tasks can hold an exact key: the owners of the key's routing
 * key(s), the whole key (state-key routing) and, for a key in window layout,
 * its group key (window routing), each under both of the engine's task
 * orders (task-ranges.ts). The watermark key `wm:` is broadcast, each task
 * holding its own value, so every task is read for it. Limit: under window
 * routing, other keys that do not parse are broadcast too; their copies
 * outside the owner task are only found with every task read
 * (`inspect --all-tasks`), which the CLI suggests when a pruned read finds
 * nothing.
 */

export interface KeyLookupPlan {
  tasks: TaskRef[];
  /** Operators whose tasks could not be pruned (a subset of their tasks was asked for). */
  unpruned: string[];
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
    if (all.length !== tasks.length) {
      unpruned.push(op);
      out.push(...tasks);
      continue;
    }
    const ids = tasks.map((t) => t.taskId);
    const owners = new Set<number>();
    const byName = rangeOwnersByName(ids);
    const byNumber = rangeOwnersByNumber(ids);
    for (const g of groups) {
      const r = taskForKeyGroup(g, tasks.length);
      owners.add(byName[r]!);
      if (byNumber) owners.add(byNumber[r]!);
    }
    tasks.forEach((t, i) => {
      if (owners.has(i)) out.push(t);
    });
  }
  return { tasks: out, unpruned };
}
