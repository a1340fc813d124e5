import type { Savepoint } from '../model/savepoint.js';

/**
 * The metadata of two savepoints compared field by field. What the engine
 * restores beside the entries is `logical` (operators, their versions, the
 * source offsets, the job): a change there is a difference. What a rescale,
 * relocation or conversion changes on purpose (task counts, paths, epoch,
 * label, metadata version) is listed as a note and does not make two
 * savepoints differ.
 */

export interface MetadataChange {
  /** e.g. `operator`, `operator_versions.fraud`, `source_offsets.orders-0`, `tasks.fraud`, `epoch`. */
  field: string;
  /** A's value; null when absent from A. */
  a: string | null;
  b: string | null;
  logical: boolean;
}

function offsets(sp: Savepoint): Map<string, string> {
  const m = new Map<string, string>();
  for (const o of sp.metadata.value.source_offsets) {
    m.set(o.partition_id, `${o.offset}${o.encoded_offset?.length ? ` (encoded ${Buffer.from(o.encoded_offset).toString('hex')})` : ''}`);
  }
  return m;
}

function taskCounts(sp: Savepoint): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of sp.tasks) m.set(t.operatorId, (m.get(t.operatorId) ?? 0) + 1);
  return m;
}

/**
 * Operator versions from the savepoint record; an operator it does not name
 * (or a savepoint without a record, as the engine writes some) is at
 * version 1, as `ksp migrate` assumes, so a copy that writes the 1 down does
 * not differ.
 */
function versions(sp: Savepoint, operators: Iterable<string>): Map<string, string> {
  const m = new Map([...(sp.meta?.operatorVersions() ?? new Map<string, bigint>())].map(([k, v]) => [k, v.toString()]));
  for (const id of operators) if (!m.has(id)) m.set(id, '1');
  return m;
}

/** Keys of both maps, A's order first, then B's new ones. */
function keysOf<V>(a: Map<string, V>, b: Map<string, V>): string[] {
  return [...new Set([...a.keys(), ...b.keys()])];
}

export function metadataChanges(a: Savepoint, b: Savepoint, operator?: string): MetadataChange[] {
  const out: MetadataChange[] = [];
  const add = (field: string, x: string | number | bigint | null | undefined, y: string | number | bigint | null | undefined, logical: boolean): void => {
    const sx = x === null || x === undefined ? null : String(x);
    const sy = y === null || y === undefined ? null : String(y);
    if (sx !== sy) out.push({ field, a: sx, b: sy, logical });
  };
  const only = (id: string): boolean => operator === undefined || id === operator;
  const ma = a.metadata.value;
  const mb = b.metadata.value;
  if (operator === undefined) {
    add('job_id', ma.job_id, mb.job_id, false);
    const oa = offsets(a);
    const ob = offsets(b);
    for (const p of keysOf(oa, ob)) add(`source_offsets.${p}`, oa.get(p), ob.get(p), true);
  }
  const ta = taskCounts(a);
  const tb = taskCounts(b);
  for (const id of keysOf(ta, tb)) if (only(id)) add(`operator.${id}`, ta.has(id) ? 'present' : null, tb.has(id) ? 'present' : null, true);
  const va = versions(a, ta.keys());
  const vb = versions(b, tb.keys());
  // An operator added or removed is said once, above, not again by its version.
  for (const id of keysOf(va, vb)) if (only(id) && ta.has(id) === tb.has(id)) add(`operator_versions.${id}`, va.get(id), vb.get(id), true);
  for (const id of keysOf(ta, tb)) if (only(id) && ta.has(id) && tb.has(id)) add(`tasks.${id}`, ta.get(id), tb.get(id), false);
  if (operator === undefined) {
    add('kind', a.kind, b.kind, false);
    add('epoch', ma.epoch, mb.epoch, false);
    add('label', a.label, b.label, false);
    add('metadata_version', ma.version, mb.version, false);
    add('paths', a.pathMode, b.pathMode, false);
  }
  return out;
}
