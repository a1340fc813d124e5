import { KspError, preview } from '../../errors.js';
import type { StateEntry } from '../state-bin/decoder.js';

/**
 * State TTL in native state (FORMAT.md, "TTL"). An operator with a state TTL
 * runs on `TtlStateBackend` (krishiv-state/src/ttl.rs), which stores every
 * value as `[i64 LE expires_at_ms][value]` (`TtlStateBackend::encode`, `put`)
 * in the RocksDB it wraps (`open_state_backend`, krishiv-dataflow/src/operator_runtime.rs).
 * The incremental checkpoint copies that RocksDB's files as they are
 * (`as_rocksdb` hands over the inner database: `with_rocksdb_state`,
 * krishiv-dataflow/src/continuous.rs), so native state keeps the prefix.
 * The portable snapshot of the same backend strips it
 * (`TtlStateBackend::snapshot`), but the engine's own native → portable step
 * at restore (`materialize_portable_snapshots`, krishiv-executor/src/runner/task_runner.rs)
 * reads the database with a plain `RocksDbStateBackend` and keeps it.
 * Nothing in native state marks which operators had a TTL, so ksp guesses
 * (likelyTtlPrefixed) to warn, and strips only when asked.
 */

export type TtlPrefixMode = 'strip' | 'keep';

/** Expiry timestamps ksp believes: 2000-01-01 .. 2200-01-01 in ms, or i64::MAX (the engine saturates `now + ttl` there). */
const MIN_MS = 946_684_800_000n;
const MAX_MS = 7_258_118_400_000n;

const MIN = Number(MIN_MS);
const MAX = Number(MAX_MS);

export function plausibleExpiry(value: Uint8Array): boolean {
  if (value.length < 8) return false;
  // Two 32-bit halves, no BigInt or Buffer per value (it runs on every entry
  // a scan reads): the range sits far below 2^53, where doubles are exact.
  const lo = (value[0]! | (value[1]! << 8) | (value[2]! << 16) | (value[3]! << 24)) >>> 0;
  const hi = value[4]! | (value[5]! << 8) | (value[6]! << 16) | (value[7]! << 24);
  if (hi === 0x7fff_ffff && lo === 0xffff_ffff) return true; // i64::MAX
  const t = hi * 0x1_0000_0000 + lo;
  return t >= MIN && t <= MAX;
}

/**
 * Per (operator, state): do all its values start with a plausible expiry?
 * A state of 8-byte values alone (a bare watermark) is not counted as
 * prefixed: an i64 event time looks the same; at least one value must carry
 * bytes after the 8.
 */
export class TtlSniffer {
  private readonly states = new Map<string, { operator: string; state: string; entries: number; plausible: number; longer: number }>();
  private last: { operator: string; state: string; entries: number; plausible: number; longer: number } | undefined;

  add(e: StateEntry): void {
    // Consecutive entries nearly always share their state: no key string per entry.
    let s = this.last;
    if (!s || s.operator !== e.operatorId || s.state !== e.stateName) {
      const id = `${e.operatorId}\u0000${e.stateName}`;
      s = this.states.get(id);
      if (!s) this.states.set(id, (s = { operator: e.operatorId, state: e.stateName, entries: 0, plausible: 0, longer: 0 }));
      this.last = s;
    }
    s.entries++;
    if (plausibleExpiry(e.value)) {
      s.plausible++;
      if (e.value.length > 8) s.longer++;
    }
  }

  /** States whose every value looks TTL-prefixed. */
  likely(): Array<{ operator: string; state: string; entries: number }> {
    return [...this.states.values()].filter((s) => s.entries > 0 && s.plausible === s.entries && s.longer > 0).map(({ operator, state, entries }) => ({ operator, state, entries }));
  }
}

/** One pass over entries: the states that look TTL-prefixed. */
export function likelyTtlPrefixed(entries: Iterable<StateEntry>): Array<{ operator: string; state: string; entries: number }> {
  const s = new TtlSniffer();
  for (const e of entries) s.add(e);
  return s.likely();
}

/**
 * The value without its 8-byte expiry. Expired entries are kept (the engine's
 * `TtlStateBackend::snapshot` drops them against its clock or watermark; ksp
 * has neither and removes no state). A value shorter than 8 bytes cannot
 * carry the prefix: an error, as in `decode_if_live`.
 */
export function stripTtlPrefix(e: StateEntry, where: string): StateEntry {
  if (e.value.length < 8) {
    throw new KspError('TTL_PREFIX_SHORT', `${where}: --ttl-prefix strip: value of ${e.operatorId}/${e.stateName} key ${preview(e.key)} is ${e.value.length} bytes, shorter than the 8-byte expiry prefix; this task's state has no TTL prefix`, {
      file: where, operator: e.operatorId, state: e.stateName, key: preview(e.key), found: e.value.length, expected: '>= 8',
    });
  }
  return { operatorId: e.operatorId, stateName: e.stateName, key: e.key, value: e.value.subarray(8) };
}
