import { SEED_A, SEED_B, murmur32At } from '../bytes/key-multiset.js';

/**
 * Keys repeated within one task: the same (operator, state, key) twice in a
 * task's body. The engine's load keeps the last of them (load_snapshot in
 * krishiv-state/src/backend.rs inserts every decoded entry into a map), so
 * the earlier ones are dead weight that `convert --to native` drops.
 *
 * Memory is bounded: each entry is remembered as a 64-bit fingerprint (two
 * MurmurHash3 x86_32 of the key under seeds mixed with the state pair's
 * index, bytes/key-multiset.ts) in an open-addressing table that grows by
 * doubling up to MAX_CHECKED entries (2^20 slots of 8 bytes: 8 MiB). Entries
 * beyond that are not checked, and the result says how many. Two different
 * keys share a fingerprint with a chance of about n²/2^64 (~10^-8 at the
 * cap): a repeat reported is a repeat, in practice.
 */

/** Entries per task checked for repeats; the rest are counted as unchecked. */
export const MAX_CHECKED = 1 << 19;

export interface RepeatedKeys {
  /** Entries whose (operator, state, key) came earlier in the task. */
  repeats: number;
  /** The first repeat: its state pair's index and key (hex). */
  example?: { pair: number; key: string };
  /** Entries past MAX_CHECKED, not checked. */
  unchecked: number;
}

export class RepeatDetector {
  private table = new Uint32Array(2 * 1024);
  private used = 0;
  readonly result: RepeatedKeys = { repeats: 0, unchecked: 0 };

  /** `onRepeat`, when given, sees every repeating key where it lies (the report lists them). */
  constructor(private readonly cap = MAX_CHECKED, private readonly onRepeat?: (buf: Uint8Array, start: number, len: number, pair: number) => void) {}

  /** The key at buf[start, start + len) of state pair `pair` (an index naming one (operator, state)). */
  addAt(buf: Uint8Array, start: number, len: number, pair: number): void {
    if (this.used >= this.cap) {
      this.result.unchecked++;
      return;
    }
    const mix = Math.imul(pair + 1, 0x9e3779b1);
    const a = murmur32At(buf, start, len, SEED_A ^ mix) >>> 0;
    // Never 0: an all-zero slot is empty.
    const b = (murmur32At(buf, start, len, SEED_B ^ mix) | 1) >>> 0;
    let t = this.table;
    let mask = (t.length >>> 1) - 1;
    for (let i = a & mask; ; i = (i + 1) & mask) {
      const sb = t[2 * i + 1]!;
      if (sb === 0) {
        t[2 * i] = a;
        t[2 * i + 1] = b;
        break;
      }
      if (sb === b && t[2 * i] === a) {
        if (this.result.repeats++ === 0) this.result.example = { pair, key: Buffer.from(buf.subarray(start, start + len)).toString('hex') };
        this.onRepeat?.(buf, start, len, pair);
        return;
      }
    }
    // Kept at most half full so probes stay short.
    if (++this.used * 2 > (t.length >>> 1) && (t.length >>> 1) < 2 * this.cap) {
      const old = t;
      t = this.table = new Uint32Array(old.length * 2);
      mask = (t.length >>> 1) - 1;
      for (let j = 0; j < old.length; j += 2) {
        const ob = old[j + 1]!;
        if (ob === 0) continue;
        const oa = old[j]!;
        let i = oa & mask;
        while (t[2 * i + 1] !== 0) i = (i + 1) & mask;
        t[2 * i] = oa;
        t[2 * i + 1] = ob;
      }
    }
  }

  add(key: Uint8Array, pair: number): void {
    this.addAt(key, 0, key.length, pair);
  }
}
