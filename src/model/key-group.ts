import { PrefixedSha256Block } from '../bytes/sha256-block.js';

/**
 * The engine's key groups (FORMAT.md §7): 32,768 groups; a key's
 * group is the first 8 bytes of SHA-256("krishiv.partition-key.v1\0" ‖
 * "keygroup\0" ‖ key) read as a little-endian u64, mod 32,768; task i of p
 * owns a contiguous range.
 */

export const KEY_GROUPS = 32768;
const PREFIX = Buffer.from('krishiv.partition-key.v1\0keygroup\0', 'latin1');
const sha = new PrefixedSha256Block(PREFIX);

export function keyGroup(key: Uint8Array): number {
  return keyGroupAt(key, 0, key.length);
}

/** The key group of the key held in buf[off, off + len), read in place (no view per key in hot loops). */
export function keyGroupAt(buf: Uint8Array, off: number, len: number): number {
  // u64 LE mod 2^15 needs only the low 15 bits: digest bytes 0 and 1, the
  // top two bytes of the first big-endian word.
  const w = sha.firstWordAt(buf, off, len);
  return ((w >>> 24) | (((w >>> 16) & 0xff) << 8)) & (KEY_GROUPS - 1);
}

/**
 * The owner of every key group at once: `table[kg]` is `owners[taskForKeyGroup(kg, owners.length)]`,
 * so routing an entry is one array read after its hash.
 */
export function ownerTable(owners: readonly number[]): Uint16Array {
  const t = new Uint16Array(KEY_GROUPS);
  for (let kg = 0; kg < KEY_GROUPS; kg++) t[kg] = owners[taskForKeyGroup(kg, owners.length)]!;
  return t;
}

/** Inclusive key-group range [first, last] of task `index` at parallelism `p`. */
export function keyGroupRange(index: number, p: number): [number, number] {
  const base = Math.floor(KEY_GROUPS / p);
  const rem = KEY_GROUPS % p;
  const first = index * base + Math.min(index, rem);
  return [first, first + base + (index < rem ? 1 : 0) - 1];
}

/** The task index (0..p-1) owning key group `kg` at parallelism `p`. */
export function taskForKeyGroup(kg: number, p: number): number {
  const base = Math.floor(KEY_GROUPS / p);
  const rem = KEY_GROUPS % p;
  const bigPart = rem * (base + 1);
  return kg < bigPart ? Math.floor(kg / (base + 1)) : rem + Math.floor((kg - bigPart) / base);
}
