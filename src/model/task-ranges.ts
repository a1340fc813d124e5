import { keyGroup, taskForKeyGroup } from './key-group.js';
import { isWatermarkKey, routingKey, windowGroupKey, type Routing } from './routing.js';

/**
 * Which task of an operator owns which key-group range (src/model/FORMAT.md,
 * "Task order"). The engine is not consistent here, and ksp follows each
 * path where it matters:
 *
 * - Its rescale (engine: `crates/krishiv-scheduler/src/coordinator/checkpoint_ops.rs`,
 *   `activate_job_restore_from_checkpoint_with_fencing` and
 *   `write_rescaled_epoch`) sorts the task ids **as strings** and gives
 *   range i to the i-th id in that order, so at p = 12 range 2 goes to
 *   `task-10`. ksp's rescale does the same, so its output equals the
 *   engine's.
 * - Its runtime (engine: `crates/krishiv-executor/src/fragment/run_loop.rs`,
 *   `route_batch_by_key_group`) gives range i to subtask i by number.
 *
 * The two agree while the ids sort the same both ways (`task-0`…`task-9`).
 * `verify` accepts an entry on its owner under either order, and says once
 * per operator when they differ.
 */

/** Rust's `str::cmp`: byte order of the UTF-8 encodings (not JS's UTF-16 order). */
export function compareIds(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * For `ids` (an operator's task ids, in any order): `owner[r]` is the
 * position in `ids` of the task that owns key-group range r under the
 * engine's rescale order.
 */
export function rangeOwnersByName(ids: readonly string[]): number[] {
  return ids.map((id, i) => ({ id, i })).sort((x, y) => compareIds(x.id, y.id)).map((x) => x.i);
}

/**
 * The same under the runtime's numbering: `owner[r]` is the position of the
 * task whose id ends in the number r, or null when the ids are not
 * `{prefix}0 … {prefix}{p-1}` with one prefix and every number once.
 */
export function rangeOwnersByNumber(ids: readonly string[]): number[] | null {
  const owner = new Array<number>(ids.length).fill(-1);
  let prefix: string | null = null;
  for (let i = 0; i < ids.length; i++) {
    const m = /^(.*?)(0|[1-9]\d*)$/.exec(ids[i]!);
    if (!m) return null;
    if (prefix === null) prefix = m[1]!;
    const n = Number(m[2]);
    if (m[1] !== prefix || n >= ids.length || owner[n] !== -1) return null;
    owner[n] = i;
  }
  return owner;
}

/** Where an entry belongs: a key-group range, or broadcast to every task. */
export type Placement = { kind: 'routed'; range: number } | { kind: 'broadcast' };

export function placementOf(key: Uint8Array, routing: Routing, parallelism: number): Placement {
  const rk = routingKey(key, routing);
  return rk === null ? { kind: 'broadcast' } : { kind: 'routed', range: taskForKeyGroup(keyGroup(rk), parallelism) };
}

/**
 * The key a moved entry is routed by at an unchanged parallelism (a key
 * migration): the group key of a window-layout key, else the whole state
 * key, which is right for generic keyed state whose state key is its group
 * key (engine: `crates/krishiv-state/src/checkpoint/rescaling.rs`,
 * `EntryRouting::ByStateKey`). The watermark stays where it is: every task
 * keeps its own.
 */
export function movedEntryKey(key: Uint8Array): Uint8Array | null {
  if (isWatermarkKey(key)) return null;
  return windowGroupKey(key) ?? key;
}
