/**
 * How an entry is routed to a task (FORMAT.md §8, the engine's
 * EntryRouting): by the whole state key, or by the group key embedded in the
 * window state layouts. Window layouts must match exactly:
 *   "tw:" | "sw:"  u32 len  group key  8 bytes (window start)
 *   "ses:"         u32 len  group key  16 bytes
 * The watermark key "wm:" and keys that do not parse are broadcast.
 */

export type Routing = 'state-key' | 'window';

const TW = [0x74, 0x77, 0x3a];
const SW = [0x73, 0x77, 0x3a];
const SES = [0x73, 0x65, 0x73, 0x3a];
const WM = [0x77, 0x6d, 0x3a];

function startsWith(b: Uint8Array, p: number[]): boolean {
  if (b.length < p.length) return false;
  for (let i = 0; i < p.length; i++) if (b[i] !== p[i]) return false;
  return true;
}

export function isWatermarkKey(key: Uint8Array): boolean {
  return key.length === 3 && startsWith(key, WM);
}

/** The group key embedded in a window-layout state key, or null when the key is not one. */
export function windowGroupKey(key: Uint8Array): Uint8Array | null {
  let tag: number;
  let tail: number;
  if (startsWith(key, TW) || startsWith(key, SW)) {
    tag = 3;
    tail = 8;
  } else if (startsWith(key, SES)) {
    tag = 4;
    tail = 16;
  } else return null;
  if (key.length < tag + 4 + tail) return null;
  const len = (key[tag]! | (key[tag + 1]! << 8) | (key[tag + 2]! << 16) | (key[tag + 3]! << 24)) >>> 0;
  if (key.length !== tag + 4 + len + tail) return null;
  return key.subarray(tag + 4, tag + 4 + len);
}

/**
 * `windowGroupKey` of the key at b[ko, ko + kl), read in place: true with the
 * group key's position in `out`, false when the key is not in a window layout.
 */
export function windowGroupKeyAt(b: Uint8Array, ko: number, kl: number, out: { off: number; len: number }): boolean {
  let tag: number;
  let tail: number;
  if (kl >= 3 && b[ko + 1] === 0x77 && b[ko + 2] === 0x3a && (b[ko] === 0x74 || b[ko] === 0x73)) {
    // "tw:" or "sw:"
    tag = 3;
    tail = 8;
  } else if (kl >= 4 && b[ko] === 0x73 && b[ko + 1] === 0x65 && b[ko + 2] === 0x73 && b[ko + 3] === 0x3a) {
    tag = 4;
    tail = 16;
  } else return false;
  if (kl < tag + 4 + tail) return false;
  const len = (b[ko + tag]! | (b[ko + tag + 1]! << 8) | (b[ko + tag + 2]! << 16) | (b[ko + tag + 3]! << 24)) >>> 0;
  if (kl !== tag + 4 + len + tail) return false;
  out.off = ko + tag + 4;
  out.len = len;
  return true;
}

/** The bytes an entry is routed by, or null when it is broadcast to every task. */
export function routingKey(key: Uint8Array, routing: Routing): Uint8Array | null {
  if (routing === 'state-key') return key;
  if (isWatermarkKey(key)) return null;
  return windowGroupKey(key);
}
