/**
 * An order-free fingerprint of a multiset of byte strings (the routing keys
 * one output task received): two sums mod 2^32 of MurmurHash3 (x86, 32-bit)
 * of each string under two seeds. Two multisets that differ give equal
 * sums with a chance of about 2^-64 when the strings are not chosen to
 * collide; it is a check of ksp's own copying, not a defence against a
 * crafted input (see write/repartition.ts `PlacementProof`). A string is
 * read in place from a large buffer; ~20 ns for a 16-byte key, against
 * ~300 ns for its key-group SHA-256.
 */

export const SEED_A = 0x9747b28c;
export const SEED_B = 0x5bd1e995;

/** MurmurHash3 x86_32 of buf[off, off + len) under `seed`, as a signed 32-bit integer. */
export function murmur32At(buf: Uint8Array, off: number, len: number, seed: number): number {
  let h = seed | 0;
  const end4 = off + (len & ~3);
  let i = off;
  for (; i < end4; i += 4) {
    let k = buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const rest = len & 3;
  if (rest) {
    let k = 0;
    if (rest === 3) k ^= buf[i + 2]! << 16;
    if (rest >= 2) k ^= buf[i + 1]! << 8;
    k ^= buf[i]!;
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
  }
  h ^= len;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
