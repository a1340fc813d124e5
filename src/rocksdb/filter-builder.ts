import { hash64, legacyBloomHash } from './hash.js';

/**
 * A full (whole-table) Bloom filter block, as RocksDB's built-in
 * `BloomFilterPolicy` writes it (FORMAT.md §2.7): FastLocalBloom for
 * format_version ≥ 5, the legacy cache-local Bloom below that — the same
 * choice RocksDB makes, so every reader of that version knows the layout.
 * Whole user keys are added (no prefix extractor), as the engine configures.
 *
 * Memory is one or two 32-bit hashes per key of the table being written,
 * bounded by the table's target size.
 */

export const FILTER_POLICY_NAME = 'bloomfilter';
export const FULL_FILTER_META_KEY = 'fullfilter.rocksdb.BuiltinBloomFilter';

/** `FastLocalBloomImpl::ChooseNumProbes`, from the actual bits per key. */
function fastProbes(millibitsPerKey: number): number {
  const steps: Array<[number, number]> = [[2080, 1], [3580, 2], [5100, 3], [6640, 4], [8300, 5], [10070, 6], [11720, 7], [14001, 8], [16050, 9], [18300, 10], [22001, 11], [25501, 12]];
  for (const [limit, probes] of steps) if (millibitsPerKey <= limit) return probes;
  if (millibitsPerKey > 50000) return 24;
  return Math.floor((millibitsPerKey - 1) / 2000) - 1;
}

/** `FastRange32(h, n)` = ⌊h·n / 2^32⌋, exact (h·n may exceed 2^53). */
function fastRange32(h: number, n: number): number {
  const hi = (h >>> 16) * n;
  const lo = (h & 0xffff) * n;
  return Math.floor((hi + Math.floor(lo / 65536)) / 65536);
}

class GrowingU32 {
  data = new Uint32Array(1024);
  length = 0;

  push(v: number): void {
    if (this.length === this.data.length) {
      const next = new Uint32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
}

export class FilterBuilder {
  private readonly millibits: number;
  private readonly legacy: boolean;
  private readonly hi = new GrowingU32();
  private readonly lo = new GrowingU32();

  constructor(bitsPerKey: number, formatVersion: number) {
    this.millibits = Math.floor(bitsPerKey * 1000 + 0.500001);
    this.legacy = formatVersion < 5;
  }

  /** Hashes added (RocksDB's `rocksdb.num.filter_entries`). */
  get entries(): number {
    return this.lo.length;
  }

  add(userKey: Uint8Array): void {
    if (this.legacy) {
      const h = legacyBloomHash(userKey);
      if (this.lo.length && this.lo.data[this.lo.length - 1] === h) return;
      this.lo.push(h);
      return;
    }
    const [h, l] = hash64(userKey);
    const n = this.lo.length;
    if (n && this.lo.data[n - 1] === l && this.hi.data[n - 1] === h) return;
    this.hi.push(h);
    this.lo.push(l);
  }

  /** The filter block contents, or null when no key was added (RocksDB then writes none). */
  finish(): Buffer | null {
    const n = this.lo.length;
    if (n === 0) return null;
    return this.legacy ? this.finishLegacy(n) : this.finishFast(n);
  }

  private finishFast(n: number): Buffer {
    // CalculateSpace: bits for the target rate, rounded up to whole 64-byte cache lines.
    const raw = Math.min(Math.ceil((n * this.millibits) / 8000), 0xffffffc0);
    const len = Math.ceil(raw / 64) * 64;
    const probes = fastProbes(Math.floor((len * 8000) / n));
    const out = Buffer.alloc(len + 5);
    const lines = len / 64;
    const his = this.hi.data;
    const los = this.lo.data;
    for (let i = 0; i < n; i++) {
      const base = fastRange32(los[i]!, lines) * 64;
      let h = his[i]!;
      for (let p = 0; p < probes; p++) {
        const bit = h >>> 23; // 9-bit position inside the 512-bit line
        out[base + (bit >>> 3)]! |= 1 << (bit & 7);
        h = Math.imul(h, 0x9e3779b9) >>> 0;
      }
    }
    // Metadata: -1 (newer Bloom), 0 (FastLocalBloom, 64-byte lines), probes, two reserved zero bytes.
    out[len] = 0xff;
    out[len + 1] = 0;
    out[len + 2] = probes;
    return out;
  }

  private finishLegacy(n: number): Buffer {
    const bitsPerKey = Math.floor((this.millibits + 500) / 1000);
    const probes = Math.min(30, Math.max(1, Math.floor(bitsPerKey * 0.69)));
    const bits = Math.min(n * bitsPerKey, 0xffff0000);
    let lines = Math.ceil(bits / 512);
    if (lines % 2 === 0) lines++; // odd, so more hash bits choose the line
    const len = lines * 64;
    const out = Buffer.alloc(len + 5);
    const hs = this.lo.data;
    for (let i = 0; i < n; i++) {
      let h = hs[i]!;
      const base = (h % lines) * 64;
      const delta = ((h >>> 17) | (h << 15)) >>> 0;
      for (let p = 0; p < probes; p++) {
        const bit = h & 511;
        out[base + (bit >>> 3)]! |= 1 << (bit & 7);
        h = (h + delta) >>> 0;
      }
    }
    out[len] = probes;
    out.writeUInt32LE(lines, len + 1);
    return out;
  }
}
