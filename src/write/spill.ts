import * as fs from 'node:fs';
import { join } from 'node:path';
import { KspError, preview } from '../errors.js';
import { STATE_BIN_VERSION, StateBinDecoder, type StateEntry } from '../formats/state-bin/decoder.js';
import { encodeStateBin } from '../formats/state-bin/encoder.js';
import { tempFailure } from './temp-dir.js';

/**
 * A temporary file of `state.bin` entry records (no header) for an output
 * task whose entry count is not known until all its entries are seen: a
 * rescaled task, or one whose keys a migration rewrites (collisions may
 * drop entries). Memory is one buffer per spill, never the entries.
 *
 * With `trackKeys`, a 28-byte index record per entry (two 32-bit hashes of
 * operator+state+key, offset, ordinal, source) goes to a side file; `collisions`
 * sorts it in bounded slices to find entries that share a key.
 */

export interface SpillSource {
  /** Source task number in the plan (for messages). */
  task: number;
  /** Entry index inside that task's file. */
  index: number;
}

export type CollisionPolicy = 'fail' | 'keep-first' | 'keep-last';

export interface CollisionReport {
  /** Entries dropped because another kept entry has their key. */
  dropped: number;
  /** Distinct keys that had more than one entry. */
  keys: number;
  /** A few examples, for messages. */
  examples: Array<{ operator: string; state: string; key: string; sources: SpillSource[] }>;
}

const INDEX_RECORD_U32 = 7;
/** Index records sorted in memory at once (28 bytes each: 28 MiB at most). */
const SLICE_RECORDS = 1_000_000;

class Appender {
  private fd: number;
  private buf: Buffer;
  private n = 0;
  written = 0;

  constructor(readonly path: string, bufSize: number) {
    try {
      this.fd = fs.openSync(path, 'w');
    } catch (e) {
      throw tempFailure(path, 'cannot make a spill file', e);
    }
    this.buf = Buffer.allocUnsafe(bufSize);
  }

  /** A full or failing temp disk is the user's setting, not a bug: STORAGE_IO naming the file. */
  private writeOut(b: Uint8Array, off: number, end: number): void {
    try {
      while (off < end) off += fs.writeSync(this.fd, b, off, end - off);
    } catch (e) {
      throw tempFailure(this.path, 'cannot write a spill file', e);
    }
  }

  private flush(): void {
    this.writeOut(this.buf, 0, this.n);
    this.n = 0;
  }

  u64(v: number): void {
    if (this.buf.length - this.n < 8) this.flush();
    this.buf.writeUInt32LE(v >>> 0, this.n);
    this.buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), this.n + 4);
    this.n += 8;
    this.written += 8;
  }

  u32(v: number): void {
    if (this.buf.length - this.n < 4) this.flush();
    this.buf.writeUInt32LE(v >>> 0, this.n);
    this.n += 4;
    this.written += 4;
  }

  bytes(b: Uint8Array): void {
    if (b.length > this.buf.length - this.n) {
      this.flush();
      if (b.length > this.buf.length) {
        this.writeOut(b, 0, b.length);
        this.written += b.length;
        return;
      }
    }
    this.buf.set(b, this.n);
    this.n += b.length;
    this.written += b.length;
  }

  close(): void {
    if (this.fd < 0) return;
    try {
      this.flush();
    } finally {
      this.discard();
    }
  }

  /** Closes without writing what is buffered; never throws (used on the way out of a failure). */
  discard(): void {
    if (this.fd < 0) return;
    try {
      fs.closeSync(this.fd);
    } catch {
      // Already gone: nothing to release.
    }
    this.fd = -1;
    this.n = 0;
  }
}

const enc = new TextEncoder();

/** FNV-1a, 32-bit, over the entry's operator, state and key (with separators that cannot be confused). */
function hash(seed: number, op: Uint8Array, state: Uint8Array, key: Uint8Array): number {
  let h = seed >>> 0;
  for (const part of [op, state, key]) {
    for (let i = 0; i < part.length; i++) h = Math.imul(h ^ part[i]!, 0x01000193);
    h = Math.imul(h ^ (part.length & 0xff), 0x01000193);
    h = Math.imul(h ^ 0xff, 0x01000193);
  }
  return h >>> 0;
}

export class Spill {
  private readonly data: Appender;
  private readonly index: Appender | null;
  count = 0;
  private texts = new Map<string, Uint8Array>();

  constructor(dir: string, name: string, bufSize: number, readonly trackKeys: boolean) {
    this.data = new Appender(join(dir, `${name}.entries`), bufSize);
    this.index = trackKeys ? new Appender(join(dir, `${name}.index`), Math.min(bufSize, 256 * 1024)) : null;
  }

  get bytes(): number {
    return this.data.written;
  }

  private text(s: string): Uint8Array {
    let b = this.texts.get(s);
    if (!b) {
      if (this.texts.size > 1024) this.texts.clear();
      this.texts.set(s, (b = enc.encode(s)));
    }
    return b;
  }

  append(e: StateEntry, from: SpillSource): void {
    const op = this.text(e.operatorId);
    const st = this.text(e.stateName);
    if (this.index) {
      const off = this.data.written;
      this.index.u32(hash(0x811c9dc5, op, st, e.key));
      this.index.u32(hash(0x01234567, op, st, e.key));
      this.index.u32(off >>> 0);
      this.index.u32(Math.floor(off / 0x1_0000_0000));
      this.index.u32(this.count);
      this.index.u32(from.task);
      this.index.u32(from.index);
    }
    for (const f of [op, st, e.key, e.value]) {
      this.data.u64(f.length);
      this.data.bytes(f);
    }
    this.count++;
  }

  close(): void {
    this.data.close();
    this.index?.close();
  }

  /**
   * Entries sharing (operator, state, key), resolved by `policy`: the set of
   * ordinals to drop. 'fail' throws KEY_COLLISION naming the first few.
   */
  collisions(policy: CollisionPolicy, describe: (s: SpillSource) => string): { drop: Set<number>; report: CollisionReport } {
    const report: CollisionReport = { dropped: 0, keys: 0, examples: [] };
    const drop = new Set<number>();
    if (!this.index || this.count < 2) return { drop, report };
    const slices = Math.max(1, Math.ceil(this.count / SLICE_RECORDS));
    const fd = fs.openSync(this.data.path, 'r');
    try {
      for (let slice = 0; slice < slices; slice++) this.collisionSlice(slice, slices, fd, policy, drop, report);
    } finally {
      fs.closeSync(fd);
    }
    if (policy === 'fail' && report.keys > 0) {
      const ex = report.examples.map((x) => `${x.operator}/${x.state} key ${x.key} from ${x.sources.map(describe).join(' and ')}`).join('; ');
      throw new KspError('KEY_COLLISION', `the key migration maps ${report.dropped + report.keys} entries onto ${report.keys} key(s) (${report.dropped} collision(s)): ${ex}. Pass --on-collision keep-first or keep-last to choose which entry survives`, {
        collisions: report.dropped, keys: report.keys, examples: report.examples,
      });
    }
    return { drop, report };
  }

  private collisionSlice(slice: number, slices: number, fd: number, policy: CollisionPolicy, drop: Set<number>, report: CollisionReport): void {
    // Records whose first hash falls in this slice, read from the index file.
    const rec = new Uint32Array(INDEX_RECORD_U32);
    // Sized for the slice's share of the records and a margin (the first hash spreads them evenly):
    // grown by doubling, a slice of a million records held its old and new arrays at once (~48 MiB),
    // so a task of 5M entries peaked ~30 MB above one of 500K.
    let arr = new Uint32Array(INDEX_RECORD_U32 * Math.max(1024, Math.ceil((this.count / slices) * 1.05)));
    let used = 0;
    const ifd = fs.openSync(this.index!.path, 'r');
    const chunk = Buffer.allocUnsafe(INDEX_RECORD_U32 * 4 * 8192);
    try {
      let pos = 0;
      for (;;) {
        const n = fs.readSync(ifd, chunk, 0, chunk.length, pos);
        if (n <= 0) break;
        pos += n;
        for (let o = 0; o + INDEX_RECORD_U32 * 4 <= n; o += INDEX_RECORD_U32 * 4) {
          for (let k = 0; k < INDEX_RECORD_U32; k++) rec[k] = chunk.readUInt32LE(o + 4 * k);
          if (rec[0]! % slices !== slice) continue;
          if (used + INDEX_RECORD_U32 > arr.length) {
            const grown = new Uint32Array(arr.length + Math.max(arr.length >> 3, INDEX_RECORD_U32 * 1024));
            grown.set(arr);
            arr = grown;
          }
          arr.set(rec, used);
          used += INDEX_RECORD_U32;
        }
      }
    } finally {
      fs.closeSync(ifd);
    }
    const n = used / INDEX_RECORD_U32;
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => arr[a * 7]! - arr[b * 7]! || arr[a * 7 + 1]! - arr[b * 7 + 1]! || arr[a * 7 + 4]! - arr[b * 7 + 4]!);
    for (let i = 0; i < n; ) {
      let j = i + 1;
      while (j < n && arr[order[j]! * 7] === arr[order[i]! * 7] && arr[order[j]! * 7 + 1] === arr[order[i]! * 7 + 1]) j++;
      if (j - i > 1) {
        // Equal hashes: compare the real keys (a hash match alone proves nothing).
        const groups = new Map<string, number[]>();
        for (let k = i; k < j; k++) {
          const r = order[k]! * 7;
          const off = arr[r + 2]! + arr[r + 3]! * 0x1_0000_0000;
          const id = readIdentity(fd, off);
          let g = groups.get(id.text);
          if (!g) groups.set(id.text, (g = []));
          g.push(r);
          if (g.length === 2 && report.examples.length < 3) {
            const first = g[0]!;
            report.examples.push({ operator: id.operator, state: id.state, key: preview(id.key), sources: [{ task: arr[first + 5]!, index: arr[first + 6]! }, { task: arr[r + 5]!, index: arr[r + 6]! }] });
          }
        }
        for (const g of groups.values()) {
          if (g.length < 2) continue;
          report.keys++;
          report.dropped += g.length - 1;
          // `order` sorts equal hashes by ordinal: g[0] is the first seen.
          const keep = policy === 'keep-last' ? g[g.length - 1]! : g[0]!;
          for (const r of g) if (r !== keep) drop.add(arr[r + 4]!);
        }
      }
      i = j;
    }
  }

  /** The spilled entries as a complete `state.bin` (header first), without the dropped ones. */
  async *stateBin(drop: ReadonlySet<number> = new Set()): AsyncGenerator<Uint8Array> {
    const count = this.count - drop.size;
    const header = Buffer.alloc(12);
    header.writeUInt32LE(STATE_BIN_VERSION, 0);
    header.writeBigUInt64LE(BigInt(count), 4);
    if (drop.size === 0) {
      // No entries: the 12-byte empty snapshot (model/FORMAT.md §4, "Empty tasks").
      yield header;
      if (count === 0) return;
      yield* fs.createReadStream(this.data.path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>;
      return;
    }
    yield* encodeStateBin(count, this.entries(drop), this.data.path);
  }

  /** The spilled entries, decoded, without the dropped ones. */
  async *entries(drop: ReadonlySet<number> = new Set()): AsyncGenerator<StateEntry[]> {
    const self = this;
    const withHeader = (async function* () {
      const h = Buffer.alloc(12);
      h.writeUInt32LE(STATE_BIN_VERSION, 0);
      h.writeBigUInt64LE(BigInt(self.count), 4);
      yield h;
      if (self.count > 0) yield* fs.createReadStream(self.data.path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>;
    })();
    const dec = new StateBinDecoder(withHeader, { size: 12 + this.bytes, file: this.data.path });
    let ordinal = 0;
    for await (const batch of dec.batches()) {
      if (drop.size === 0) {
        yield batch;
        continue;
      }
      const out: StateEntry[] = [];
      for (const e of batch) if (!drop.has(ordinal++)) out.push(e);
      if (out.length) yield out;
    }
  }

  /**
   * Deletes the spill files. Never throws and never flushes: it runs on the
   * way out of failures (a full temp disk among them), where a second error
   * would hide the first.
   */
  remove(): void {
    for (const a of [this.data, this.index]) {
      if (!a) continue;
      a.discard();
      try {
        fs.rmSync(a.path, { force: true });
      } catch {
        // Left for the folder's removal or the next run's sweep.
      }
    }
  }
}

function readIdentity(fd: number, offset: number): { operator: string; state: string; key: Uint8Array; text: string } {
  const parts: Buffer[] = [];
  let pos = offset;
  const len = Buffer.alloc(8);
  for (let f = 0; f < 3; f++) {
    fs.readSync(fd, len, 0, 8, pos);
    const n = Number(len.readBigUInt64LE(0));
    const b = Buffer.alloc(n);
    if (n > 0) fs.readSync(fd, b, 0, n, pos + 8);
    parts.push(b);
    pos += 8 + n;
  }
  const [op, st, key] = parts as [Buffer, Buffer, Buffer];
  return { operator: op.toString('utf8'), state: st.toString('utf8'), key, text: `${op.toString('hex')}:${st.toString('hex')}:${key.toString('hex')}` };
}

/** Buffer size per spill when `n` spills are open at once: 64 MiB in all, 64 KiB to 1 MiB each. */
export function spillBufferSize(n: number): number {
  return Math.max(64 * 1024, Math.min(1024 * 1024, Math.floor((64 * 1024 * 1024) / Math.max(1, n))));
}
