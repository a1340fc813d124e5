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

/** The bytes an entry is routed by, or null when it is broadcast to every task. */
export function routingKey(key: Uint8Array, routing: Routing): Uint8Array | null {
  if (routing === 'state-key') return key;
  if (isWatermarkKey(key)) return null;
  return windowGroupKey(key);
}
