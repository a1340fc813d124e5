import * as fs from 'node:fs';
import { join } from 'node:path';
import type { KeyValue } from '../rocksdb/db-writer.js';
import { makeTempDir, removeTempDir, tempFailure } from './temp-dir.js';

/**
 * An external sort of key/value records by key bytes, for writing RocksDB
 * tables (which need strictly ascending keys) from entries in any order.
 *
 * Records gather in one arena of `runBytes`; a full arena is sorted and
 * written to a run file in the temp folder. At the end a single in-memory
 * run is read straight from the arena; otherwise the runs are merged with a
 * heap. Memory is the arena plus one read buffer per run, never the entries.
 *
 * Equal keys: the record added last wins, as when the engine restores a
 * state file into RocksDB (a later put replaces an earlier one). Each record
 * dropped that way is counted in `duplicates`.
 */

const HEADER = 8;
/**
 * One run's arena: 96 MiB, so a task of up to ~600,000 engine entries of
 * ~100 bytes sorts in memory and its tables are written once, with no run
 * files (issue 13: "write each output once"). Larger tasks spill runs of
 * this size; the arena is dropped before they merge, so memory is the
 * larger of the two, never their sum, and the same at any task size.
 */
const RUN_BYTES = 96 * 1024 * 1024;

/** KSP_SORT_RUN_BYTES overrides it (at least 1 MiB), to bound memory further or to test the spill. */
export function runBytesDefault(): number {
  const v = Number(process.env.KSP_SORT_RUN_BYTES);
  return Number.isSafeInteger(v) && v >= 1 << 20 ? Math.min(v, 1 << 30) : RUN_BYTES;
}
const BATCH = 1024;
/** What a merge's run readers share: 64 MiB, so a merge of 16 runs or of 1,000 holds the same. */
export const MERGE_BYTES = 64 << 20;
/** Merge output buffer: a batch's keys and values copied out of the run readers. */
const OUT_BYTES = 256 * 1024;

/**
 * One arena kept between sorters (tasks are written one after another):
 * allocating and freeing tens of MiB per task makes glibc's malloc raise its
 * mmap threshold and keep the freed memory, so RSS would climb task by task.
 */
let spare: Buffer | null = null;

/** Drops the kept arena (when no more sorting is coming, e.g. before a final verify). */
export function releaseSortMemory(): void {
  spare = null;
}

export class KeySorter {
  private arena: Buffer;
  private used = 0;
  private offsets = new Uint32Array(64 * 1024);
  private count = 0;
  /** Records so far arrive in strictly ascending key order (then no sort is needed). */
  private ascending = true;
  private lastStart = -1;
  private runs: string[] = [];
  private dir: string | null = null;
  duplicates = 0;
  added = 0;
  /** Called with each superseded record's key (ksp diff reports which states repeat keys); views valid during the call only. */
  onDuplicate: ((key: Uint8Array) => void) | null = null;

  /**
   * `mergeBytes`: what the merge's read buffers share (MERGE_BYTES). Two
   * sorters that merge at once (ksp diff's two sides) take half each, so
   * memory stays that of one whatever the number of runs.
   */
  constructor(private readonly tempDir: string, private readonly runBytes = runBytesDefault(), private readonly mergeBytes = MERGE_BYTES) {
    if (spare && spare.length === runBytes) {
      this.arena = spare;
      spare = null;
    } else {
      // Untouched pages cost no memory: the arena fills as records arrive.
      this.arena = Buffer.allocUnsafe(runBytes);
    }
  }

  add(key: Uint8Array, value: Uint8Array): void {
    const size = HEADER + key.length + value.length;
    if (this.used + size > this.arena.length) {
      if (this.used + size <= this.runBytes || this.used === 0) {
        // Grow toward runBytes (or, for one record larger than that, just enough for it).
        const next = Buffer.allocUnsafe(Math.max(this.used + size, Math.min(this.runBytes, this.arena.length * 2)));
        this.arena.copy(next, 0, 0, this.used);
        this.arena = next;
      } else {
        this.spill();
        if (size > this.arena.length) this.arena = Buffer.allocUnsafe(size);
      }
    }
    const at = this.used;
    this.arena.writeUInt32LE(key.length, at);
    this.arena.writeUInt32LE(value.length, at + 4);
    this.arena.set(key, at + HEADER);
    this.arena.set(value, at + HEADER + key.length);
    this.used += size;
    if (this.ascending && this.lastStart >= 0 && compareAt(this.arena, this.lastStart, at) >= 0) this.ascending = false;
    this.lastStart = at;
    if (this.count === this.offsets.length) {
      const grown = new Uint32Array(this.offsets.length * 2);
      grown.set(this.offsets);
      this.offsets = grown;
    }
    this.offsets[this.count++] = at;
    this.added++;
  }

  /** Record offsets of the arena in key order, equal keys reduced to the last added. */
  private order(): Uint32Array {
    const idx = this.offsets.subarray(0, this.count);
    if (this.ascending) return idx;
    const arena = this.arena;
    // Offsets grow with insertion order, so the tie-break keeps equal keys in arrival order.
    const sorted = this.count * 12 <= this.runBytes / 4 ? byPrefix(arena, idx) : Uint32Array.from(idx).sort((a, b) => compareAt(arena, a, b) || a - b);
    let w = 0;
    for (let i = 0; i < sorted.length; i++) {
      if (i + 1 < sorted.length && compareAt(arena, sorted[i]!, sorted[i + 1]!) === 0) {
        this.duplicates++;
        if (this.onDuplicate) this.onDuplicate(arena.subarray(sorted[i]! + HEADER, sorted[i]! + HEADER + arena.readUInt32LE(sorted[i]!)));
        continue;
      }
      sorted[w++] = sorted[i]!;
    }
    return sorted.subarray(0, w);
  }

  private spill(): void {
    this.dir ??= makeTempDir(this.tempDir, 'ksp-sort-');
    const path = join(this.dir, `run-${this.runs.length}`);
    try {
      const fd = fs.openSync(path, 'w');
      try {
        const out = Buffer.allocUnsafe(1 << 20);
        let n = 0;
        const flush = (): void => {
          let o = 0;
          while (o < n) o += fs.writeSync(fd, out, o, n - o);
          n = 0;
        };
        for (const at of this.order()) {
          const size = HEADER + this.arena.readUInt32LE(at) + this.arena.readUInt32LE(at + 4);
          if (n + size > out.length) flush();
          if (size > out.length) {
            let o = 0;
            while (o < size) o += fs.writeSync(fd, this.arena, at + o, size - o);
            continue;
          }
          this.arena.copy(out, n, at, at + size);
          n += size;
        }
        flush();
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      throw tempFailure(path, 'cannot write a sort run', e);
    }
    this.runs.push(path);
    this.used = 0;
    this.count = 0;
    this.ascending = true;
    this.lastStart = -1;
  }

  /**
   * After the last `add`: when runs were spilled, the arena's records are
   * spilled too and the arena let go now rather than when `sorted()` starts,
   * so a caller filling a second sorter (ksp diff) never holds two arenas.
   */
  endInput(): void {
    if (this.runs.length === 0) return;
    if (this.count) this.spill();
    this.arena = Buffer.alloc(0);
  }

  /** Every record once, in ascending key order, in batches. Call once, after the last `add`. */
  async *sorted(): AsyncGenerator<KeyValue[]> {
    if (this.runs.length === 0) {
      const arena = this.arena;
      let batch: KeyValue[] = [];
      for (const at of this.order()) {
        const k = arena.readUInt32LE(at);
        const v = arena.readUInt32LE(at + 4);
        batch.push({ key: arena.subarray(at + HEADER, at + HEADER + k), value: arena.subarray(at + HEADER + k, at + HEADER + k + v) });
        if (batch.length === BATCH) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length) yield batch;
      return;
    }
    if (this.count) this.spill();
    // Every record is in a run file now: the arena is dropped (not kept as
    // the spare) so it does not sit beside the merge's read buffers; a
    // buffer this large is its own mapping, returned to the system when
    // collected.
    this.arena = Buffer.alloc(0);
    yield* this.merge();
  }

  private async *merge(): AsyncGenerator<KeyValue[]> {
    // Read buffers share mergeBytes, between 64 KiB and 4 MiB each.
    const bufSize = Math.max(64 * 1024, Math.min(4 << 20, Math.floor(this.mergeBytes / this.runs.length)));
    const readers = this.runs.map((p, i) => new RunReader(p, i, bufSize));
    const heap = new Heap();
    for (const r of readers) if (r.next()) heap.push(r);
    let batch: KeyValue[] = [];
    let out = Buffer.alloc(0);
    let outUsed = 0;
    try {
      while (heap.size) {
        const r = heap.pop()!;
        const key = r.key!;
        const value = r.value!;
        // Equal keys leave the heap in run order; only the last run's survives.
        const top = heap.peek();
        const superseded = top !== undefined && Buffer.compare(top.key!, key) === 0;
        if (superseded) {
          this.duplicates++;
          if (this.onDuplicate) this.onDuplicate(key);
        }
        else {
          // The reader's views die at its next record: copied into one buffer per batch, not two per record.
          const size = key.length + value.length;
          if (out.length - outUsed < size) {
            out = Buffer.allocUnsafe(Math.max(OUT_BYTES, size));
            outUsed = 0;
          }
          key.copy(out, outUsed);
          value.copy(out, outUsed + key.length);
          batch.push({ key: out.subarray(outUsed, outUsed + key.length), value: out.subarray(outUsed + key.length, outUsed + size) });
          outUsed += size;
        }
        if (r.next()) heap.push(r);
        if (batch.length === BATCH) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length) yield batch;
    } finally {
      for (const r of readers) r.close();
    }
  }

  /** Deletes the run files and hands the arena on. */
  remove(): void {
    if (this.dir) removeTempDir(this.dir);
    this.dir = null;
    this.runs = [];
    if (this.arena.length === this.runBytes) spare = this.arena;
    this.arena = Buffer.alloc(0);
  }
}

function compareAt(arena: Buffer, a: number, b: number): number {
  const ka = arena.readUInt32LE(a);
  const kb = arena.readUInt32LE(b);
  return arena.compare(arena, b + HEADER, b + HEADER + kb, a + HEADER, a + HEADER + ka);
}

/** Which 32-bit word of a u64 is its low half on this platform. */
const LOW = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 0 : 1;

/**
 * Record offsets in key order (equal keys in arrival order), sorted natively:
 * each record becomes one u64 of (its key's first 4 bytes, zero-padded, as a
 * big-endian number; its arrival index), and only records that share those
 * bytes are then ordered by a comparator. A comparator over every pair cost
 * most of a sort in calls from the engine's sort into JS (ksp diff's keys
 * start with a hash: profiled on 2M entries); this is a few times faster,
 * for 12 bytes a record (the caller keeps that within a quarter of the arena).
 * Zero padding keeps the order: a key shorter than 4 bytes ties only with
 * keys it is a prefix of, and the comparator settles those.
 */
function byPrefix(arena: Buffer, idx: Uint32Array): Uint32Array {
  const n = idx.length;
  const packed = new BigUint64Array(n);
  const words = new Uint32Array(packed.buffer);
  for (let i = 0; i < n; i++) {
    const at = idx[i]!;
    const k = arena.readUInt32LE(at);
    const p = at + HEADER;
    const prefix = k >= 4 ? arena.readUInt32BE(p) : ((k > 0 ? arena[p]! << 24 : 0) | (k > 1 ? arena[p + 1]! << 16 : 0) | (k > 2 ? arena[p + 2]! << 8 : 0)) >>> 0;
    words[2 * i + LOW] = i;
    words[2 * i + 1 - LOW] = prefix;
  }
  packed.sort();
  const sorted = new Uint32Array(n);
  for (let i = 0; i < n; i++) sorted[i] = idx[words[2 * i + LOW]!]!;
  for (let i = 0; i < n; ) {
    const prefix = words[2 * i + 1 - LOW];
    let j = i + 1;
    while (j < n && words[2 * j + 1 - LOW] === prefix) j++;
    if (j - i > 1) sorted.subarray(i, j).sort((a, b) => compareAt(arena, a, b) || a - b);
    i = j;
  }
  return sorted;
}

/** Sequential reader of one run file; `key`/`value` are views valid until the next `next()`. */
class RunReader {
  private fd: number;
  private buf: Buffer;
  private start = 0;
  private end = 0;
  private pos = 0;
  key: Buffer | null = null;
  value: Buffer | null = null;

  constructor(path: string, readonly run: number, bufSize: number) {
    this.fd = fs.openSync(path, 'r');
    this.buf = Buffer.allocUnsafe(bufSize);
  }

  private ensure(n: number): boolean {
    if (this.end - this.start >= n) return true;
    // Move the unread tail to the front (or grow for a record larger than the buffer), then read.
    if (n > this.buf.length) {
      const grown = Buffer.allocUnsafe(n);
      this.buf.copy(grown, 0, this.start, this.end);
      this.buf = grown;
    } else {
      this.buf.copy(this.buf, 0, this.start, this.end);
    }
    this.end -= this.start;
    this.start = 0;
    while (this.end < n) {
      const got = fs.readSync(this.fd, this.buf, this.end, this.buf.length - this.end, this.pos);
      if (got === 0) return false;
      this.end += got;
      this.pos += got;
    }
    return true;
  }

  next(): boolean {
    if (!this.ensure(HEADER)) return false;
    const k = this.buf.readUInt32LE(this.start);
    const v = this.buf.readUInt32LE(this.start + 4);
    if (!this.ensure(HEADER + k + v)) throw new Error(`sort run ${this.run}: truncated record`);
    const at = this.start + HEADER;
    this.key = this.buf.subarray(at, at + k);
    this.value = this.buf.subarray(at + k, at + k + v);
    this.start = at + k + v;
    return true;
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/** Min-heap of run readers by (current key, run number). */
class Heap {
  private a: RunReader[] = [];

  get size(): number {
    return this.a.length;
  }

  peek(): RunReader | undefined {
    return this.a[0];
  }

  private less(x: RunReader, y: RunReader): boolean {
    const c = Buffer.compare(x.key!, y.key!);
    return c < 0 || (c === 0 && x.run < y.run);
  }

  push(r: RunReader): void {
    const a = this.a;
    a.push(r);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  pop(): RunReader | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l]!, a[m]!)) m = l;
        if (r < a.length && this.less(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}
