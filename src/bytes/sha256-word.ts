/**
 * The first 32-bit word of SHA-256 over a fixed prefix followed by a short
 * message, computed in JavaScript over a reused buffer. Key groups need only
 * the first two digest bytes, millions of times, for keys of a few dozen
 * bytes: node:crypto's per-call cost (~1 µs) dominates there, and this
 * avoids it. Messages longer than MAX_LEN fall back to node:crypto.
 * Checked against node:crypto in test/bytes/sha256-word.test.ts.
 */
import { hash } from 'node:crypto';

/** SHA-256 round constants (FIPS 180-4 §4.2.2), shared with sha256-block.ts. */
export const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const IV = new Int32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
/** Longest prefix + message hashed here: four 64-byte blocks less padding. */
const MAX_LEN = 4 * 64 - 9;

export class PrefixedSha256 {
  private readonly buf = new Uint8Array(4 * 64);
  private readonly w = new Int32Array(16);
  private readonly prefixLen: number;

  constructor(private readonly prefix: Uint8Array) {
    this.prefixLen = prefix.length;
    this.buf.set(prefix);
  }

  /** The digest's first four bytes, big-endian, as an unsigned 32-bit integer. */
  firstWord(msg: Uint8Array): number {
    const n = this.prefixLen + msg.length;
    if (n > MAX_LEN) {
      const d = hash('sha256', Buffer.concat([this.prefix, msg]), 'buffer') as unknown as Buffer;
      return d.readUInt32BE(0);
    }
    const b = this.buf;
    b.set(msg, this.prefixLen);
    const end = (n + 9 + 63) & ~63;
    b[n] = 0x80;
    b.fill(0, n + 1, end - 4);
    const bits = n * 8;
    b[end - 4] = bits >>> 24;
    b[end - 3] = (bits >>> 16) & 0xff;
    b[end - 2] = (bits >>> 8) & 0xff;
    b[end - 1] = bits & 0xff;

    const w = this.w;
    let h0 = IV[0]!, h1 = IV[1]!, h2 = IV[2]!, h3 = IV[3]!, h4 = IV[4]!, h5 = IV[5]!, h6 = IV[6]!, h7 = IV[7]!;
    for (let off = 0; off < end; off += 64) {
      let a = h0, bb = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
      // Message schedule computed inside the rounds, 16 words at a time.
      for (let i = 0; i < 64; i++) {
        let wi: number;
        if (i < 16) {
          const j = off + (i << 2);
          wi = (b[j]! << 24) | (b[j + 1]! << 16) | (b[j + 2]! << 8) | b[j + 3]!;
        } else {
          const x = w[(i - 15) & 15]!;
          const y = w[(i - 2) & 15]!;
          wi = (w[i & 15]! + (((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3)) + w[(i - 7) & 15]! +
            (((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10))) | 0;
        }
        w[i & 15] = wi;
        const t1 = (h + (((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))) + ((e & f) ^ (~e & g)) + K[i]! + wi) | 0;
        const t2 = ((((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))) + ((a & bb) ^ (a & c) ^ (bb & c))) | 0;
        h = g;
        g = f;
        f = e;
        e = (d + t1) | 0;
        d = c;
        c = bb;
        bb = a;
        a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + bb) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
    }
    return h0 >>> 0;
  }
}
