/**
 * Window state keys as columns (FORMAT.md §"Window state"), parsed as the
 * engine parses them:
 *   "tw:" | "sw:"  u32 LE len ‖ group key ‖ i64 LE window start
 *     (persist_window_accumulators / parse_window_state_key,
 *     krishiv-dataflow/src/window/state_persistence.rs)
 *   "ses:"         u32 LE len ‖ group key ‖ i64 LE session start ‖ i64 LE last event
 *     (SessionWindowOperator persist_to_state, window/session.rs)
 *   "wm:"          exactly: the operator's watermark; its value is an i64 LE
 *     in ms (persist_operator_watermark_ms / restore_operator_watermark_ms,
 *     which reads the first 8 bytes and refuses fewer).
 * The group key is a Rust String: a key whose group key is not UTF-8 is not
 * restored by the engine (parse_window_state_key returns None), and does not
 * parse here either. Lengths must match exactly, as routing.ts requires.
 *
 * The key holds a window's start, not its size: `window_end` of a tumbling
 * or sliding key is start + size when the size is given (`window:SIZE_MS`),
 * else null. For a session it is the last event time the key holds.
 */

export type WindowKind = 'tw' | 'sw' | 'ses' | 'wm';

export interface WindowKey {
  kind: WindowKind;
  groupKey: string | null;
  start: bigint | null;
  end: bigint | null;
  /** `wm:` entries: the watermark (ms), from the value. */
  watermark: bigint | null;
}

const I64_MAX = (1n << 63n) - 1n;
const utf8 = new TextDecoder('utf-8', { fatal: true });

function prefix(k: Uint8Array): { kind: WindowKind; len: number; tail: number } | null {
  if (k.length >= 3 && k[1] === 0x77 && k[2] === 0x3a && (k[0] === 0x74 || k[0] === 0x73)) return { kind: k[0] === 0x74 ? 'tw' : 'sw', len: 3, tail: 8 };
  if (k.length >= 4 && k[0] === 0x73 && k[1] === 0x65 && k[2] === 0x73 && k[3] === 0x3a) return { kind: 'ses', len: 4, tail: 16 };
  return null;
}

export function isWatermark(k: Uint8Array): boolean {
  return k.length === 3 && k[0] === 0x77 && k[1] === 0x6d && k[2] === 0x3a;
}

/**
 * The key's window columns, or null when the key is not in a window layout
 * (or is "wm:" with a value shorter than 8 bytes). `sizeMs` gives tumbling
 * and sliding keys their end.
 */
export function parseWindowKey(key: Uint8Array, value: Uint8Array | undefined, sizeMs: bigint | null): WindowKey | null {
  if (isWatermark(key)) {
    if (!value || value.length < 8) return null;
    const wm = new DataView(value.buffer, value.byteOffset, 8).getBigInt64(0, true);
    return { kind: 'wm', groupKey: null, start: null, end: null, watermark: wm };
  }
  const p = prefix(key);
  if (!p || key.length < p.len + 4 + p.tail) return null;
  const v = new DataView(key.buffer, key.byteOffset, key.byteLength);
  const n = v.getUint32(p.len, true);
  if (key.length !== p.len + 4 + n + p.tail) return null;
  let groupKey: string;
  try {
    groupKey = utf8.decode(key.subarray(p.len + 4, p.len + 4 + n));
  } catch {
    return null;
  }
  const at = p.len + 4 + n;
  const start = v.getBigInt64(at, true);
  let end = p.kind === 'ses' ? v.getBigInt64(at + 8, true) : sizeMs === null ? null : start + sizeMs;
  // A start near i64::MAX has no end an i64 column can hold.
  if (end !== null && end > I64_MAX) end = null;
  return { kind: p.kind, groupKey, start, end, watermark: null };
}
