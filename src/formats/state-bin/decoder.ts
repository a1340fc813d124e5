import { KspError, preview } from '../../errors.js';
import { POINTER_MAGIC } from '../pointer/pointer.js';

/**
 * Streaming decoder for `state.bin` v1 (FORMAT.md beside this file).
 *
 * Memory does not depend on the file size: bytes arrive in chunks, entries
 * leave in batches, and an entry is only assembled across chunks when it
 * straddles one. Every declared length is checked against the bytes that
 * remain in the file *before* anything is allocated for it, so a hostile
 * length can neither allocate nor hang.
 */

export const STATE_BIN_VERSION = 1;
export const HEADER_SIZE = 12;
/** The smallest possible entry: four empty length-prefixed fields. */
export const MIN_ENTRY_SIZE = 32;

export interface StateEntry {
  operatorId: string;
  stateName: string;
  /** A view into the decoder's buffer: copy it (`Buffer.from`) to keep it past the batch. */
  key: Uint8Array;
  value: Uint8Array;
}

export interface StateBinHeader {
  /** False for the 0-byte file of a stateless task. */
  stateful: boolean;
  version: number;
  entryCount: number;
}

export interface DecodeOptions {
  /** Exact file size in bytes (from stat): lengths are checked against it. */
  size: number;
  /** Names the file in errors. */
  file?: string;
  /** Entries per batch (default 4096). */
  batchSize?: number;
  /**
   * The header version this body must carry (default 1). Version 2 is the
   * disaggregated backend's snapshot, same entry layout
   * (src/formats/task-format/FORMAT.md); its reader asks for 2.
   */
  version?: 1 | 2;
}

const FIELDS = ['operator_id', 'state_name', 'key', 'value'] as const;
export const MAX_FIELD = 0x7fff_ffff; // one Buffer: larger single keys/values are refused, not truncated
const EMPTY = Buffer.alloc(0);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Short byte strings (operator ids, state names) compared in JS: a native compare costs more than the bytes. */
function sameBytes(a: Buffer, b: Buffer, p: number, n: number): boolean {
  if (n > 64) return b.compare(a, 0, n, p, p + n) === 0;
  for (let i = 0; i < n; i++) if (a[i] !== b[p + i]) return false;
  return true;
}

class NeedMore {
  constructor(readonly bytes: number) {}
}

export class StateBinDecoder {
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** Chunks read but not yet current (at most one, except around a large entry). */
  private readonly queue: Buffer[] = [];
  /** File offset of buf[0]. */
  private base = 0;
  private readonly it: AsyncIterator<Uint8Array>;
  private eof = false;
  private headerRead: StateBinHeader | undefined;
  private readonly file: string;
  private readonly size: number;
  private readonly batchSize: number;
  private readonly version: number;
  // Most files hold one operator and a few state names: decoding each id once
  // and comparing bytes afterwards saves most of the UTF-8 work.
  private opCache: [Buffer, string] = [EMPTY, ''];
  private stateCache: Array<[Buffer, string]> = [];

  constructor(chunks: AsyncIterable<Uint8Array>, options: DecodeOptions) {
    this.it = chunks[Symbol.asyncIterator]();
    this.file = options.file ?? 'state.bin';
    this.size = options.size;
    this.batchSize = options.batchSize ?? 4096;
    this.version = options.version ?? STATE_BIN_VERSION;
  }

  private err(code: 'STATE_BIN_TRUNCATED' | 'STATE_BIN_VERSION' | 'STATE_BIN_LENGTH' | 'STATE_BIN_TRAILING' | 'STATE_BIN_UTF8' | 'STATE_BIN_COUNT' | 'STATE_BIN_IS_POINTER', msg: string, data: Record<string, unknown>): KspError {
    const at = data.offset !== undefined ? ` at offset ${data.offset}` : '';
    const entry = data.entry !== undefined ? ` (entry ${data.entry})` : '';
    return new KspError(code, `${this.file}: ${msg}${at}${entry}`, { file: this.file, ...data });
  }

  /**
   * Ensures `n` unread bytes are in `buf`; false at end of input. Chunks are
   * used in place: only an entry that straddles two chunks is copied (its
   * bytes alone, into a small "stitch" buffer), so reading allocates next to
   * nothing beyond the chunks themselves.
   */
  private async fill(n: number): Promise<boolean> {
    for (;;) {
      const have = this.buf.length - this.pos;
      if (have >= n) return true;
      let queued = this.queued();
      while (have + queued < n && !this.eof && this.base + this.pos + have + queued <= this.size) {
        const r = await this.it.next();
        if (r.done) {
          this.eof = true;
          break;
        }
        const c = r.value;
        if (c.length === 0) continue;
        this.queue.push(Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength));
        queued += c.length;
      }
      if (this.queue.length === 0) return false;
      this.base += this.pos;
      this.pos = 0;
      if (have === 0) {
        // Nothing left of the current chunk: the next one becomes current, uncopied.
        this.buf = this.queue.shift()!;
        continue;
      }
      // Stitch: the tail of the current chunk and just enough of the queued ones.
      const want = Math.min(n, have + queued);
      const parts = [this.buf.subarray(this.buf.length - have)];
      let got = have;
      while (got < want) {
        const head = this.queue[0]!;
        const take = Math.min(head.length, want - got);
        parts.push(head.subarray(0, take));
        got += take;
        if (take === head.length) this.queue.shift();
        else this.queue[0] = head.subarray(take);
      }
      this.buf = Buffer.concat(parts, got);
      return got >= n;
    }
  }

  private queued(): number {
    let q = 0;
    for (const c of this.queue) q += c.length;
    return q;
  }

  private offsetOf(p: number): number {
    return this.base + p;
  }

  async header(): Promise<StateBinHeader> {
    if (this.headerRead) return this.headerRead;
    if (this.size === 0) {
      if (await this.fill(1)) throw this.err('STATE_BIN_TRAILING', 'file is larger than its stated size 0', { offset: 0 });
      return (this.headerRead = { stateful: false, version: STATE_BIN_VERSION, entryCount: 0 });
    }
    const whole = await this.fill(HEADER_SIZE);
    const b = this.buf;
    if (b.length >= 4 && b.subarray(0, 4).equals(POINTER_MAGIC.subarray(0, 4))) {
      throw this.err('STATE_BIN_IS_POINTER', 'this is a native-state pointer blob (INCR-SST-V1), not a canonical state.bin', { offset: 0 });
    }
    if (!whole) {
      throw this.err('STATE_BIN_TRUNCATED', `file ends inside the ${HEADER_SIZE}-byte header: expected ${HEADER_SIZE} bytes, found ${b.length}`, {
        offset: b.length, expected: HEADER_SIZE, found: b.length,
      });
    }
    const version = b.readUInt32LE(0);
    if (version !== this.version) {
      throw this.err('STATE_BIN_VERSION', `unsupported state.bin version: expected ${this.version}, found ${version}`, {
        offset: 0, expected: this.version, found: version,
      });
    }
    const lo = b.readUInt32LE(4);
    const hi = b.readUInt32LE(8);
    const maxEntries = Math.floor((this.size - HEADER_SIZE) / MIN_ENTRY_SIZE);
    if (hi > 0x1fffff || hi * 0x1_0000_0000 + lo > maxEntries) {
      const declared = (BigInt(hi) << 32n) | BigInt(lo);
      throw this.err('STATE_BIN_LENGTH', `entry_count ${declared} cannot fit in the ${this.size - HEADER_SIZE} bytes after the header (at most ${maxEntries} entries)`, {
        offset: 4, field: 'entry_count', expected: `<= ${maxEntries}`, found: declared.toString(),
      });
    }
    this.pos = HEADER_SIZE;
    return (this.headerRead = { stateful: true, version, entryCount: hi * 0x1_0000_0000 + lo });
  }

  /** Reads a length prefix at buffer position p for field f of entry i. */
  private len(p: number, f: number, i: number): number {
    const b = this.buf;
    // Read by hand: Buffer's readers check their arguments on every call.
    const lo = (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
    const hi = (b[p + 4]! | (b[p + 5]! << 8) | (b[p + 6]! << 16) | (b[p + 7]! << 24)) >>> 0;
    const remaining = this.size - this.offsetOf(p) - 8;
    if (hi > 0x1fffff || hi * 0x1_0000_0000 + lo > remaining) {
      const declared = (BigInt(hi) << 32n) | BigInt(lo);
      throw this.err('STATE_BIN_LENGTH', `${FIELDS[f]} length ${declared} runs past the end of the file (${remaining} bytes remain)`, {
        offset: this.offsetOf(p), entry: i, field: FIELDS[f], expected: `<= ${remaining}`, found: declared.toString(),
      });
    }
    const n = hi * 0x1_0000_0000 + lo;
    if (n > MAX_FIELD) {
      throw this.err('STATE_BIN_LENGTH', `${FIELDS[f]} of ${n} bytes is larger than ksp handles in one piece (${MAX_FIELD})`, {
        offset: this.offsetOf(p), entry: i, field: FIELDS[f], found: n,
      });
    }
    return n;
  }

  private text(p: number, n: number, f: number, i: number): string {
    const b = this.buf;
    if (f === 0) {
      const [cb, cs] = this.opCache;
      if (cb.length === n && sameBytes(cb, b, p, n)) return cs;
    } else {
      for (const [cb, cs] of this.stateCache) if (cb.length === n && sameBytes(cb, b, p, n)) return cs;
    }
    const bytes = b.subarray(p, p + n);
    let s: string;
    try {
      s = utf8.decode(bytes);
    } catch {
      throw this.err('STATE_BIN_UTF8', `${FIELDS[f]} is not valid UTF-8: ${preview(bytes)}`, { offset: this.offsetOf(p), entry: i, field: FIELDS[f] });
    }
    const copy = Buffer.from(bytes);
    if (f === 0) this.opCache = [copy, s];
    else {
      if (this.stateCache.length >= 8) this.stateCache.shift();
      this.stateCache.push([copy, s]);
    }
    return s;
  }

  /** Field lengths and offsets of the entry being parsed (reused: no arrays per entry). */
  private readonly lens = new Float64Array(4);
  private readonly at = new Float64Array(4);

  /** Parses entry i from the buffer, or says how many unread bytes it needs. */
  private parse(i: number): StateEntry | NeedMore {
    const b = this.buf;
    const start = this.pos;
    const avail = b.length;
    let p = start;
    const lens = this.lens;
    const at = this.at;
    for (let f = 0; f < 4; f++) {
      if (avail - p < 8) return new NeedMore(p - start + 8);
      const n = this.len(p, f, i);
      lens[f] = n;
      at[f] = p + 8;
      p += 8 + n;
      if (p > avail) return new NeedMore(p - start + (f < 3 ? 8 : 0));
    }
    const operatorId = this.text(at[0]!, lens[0]!, 0, i);
    const stateName = this.text(at[1]!, lens[1]!, 1, i);
    this.pos = p;
    return { operatorId, stateName, key: b.subarray(at[2]!, at[2]! + lens[2]!), value: b.subarray(at[3]!, at[3]! + lens[3]!) };
  }

  /** All entries, in batches. Each batch's key/value views stay valid while it is referenced. */
  async *batches(): AsyncGenerator<StateEntry[]> {
    try {
      yield* this.decodeBatches();
    } finally {
      // A consumer that stops early (or an error) must release the source: a
      // file stream left open would hold its descriptor until GC.
      await this.it.return?.();
    }
  }

  private async *decodeBatches(): AsyncGenerator<StateEntry[]> {
    const h = await this.header();
    let batch: StateEntry[] = [];
    for (let i = 0; i < h.entryCount; ) {
      const r = this.parse(i);
      if (r instanceof NeedMore) {
        if (!(await this.fill(r.bytes))) {
          const have = this.buf.length - this.pos;
          throw this.err('STATE_BIN_TRUNCATED', `file ends inside entry ${i} of ${h.entryCount}: it needs at least ${r.bytes} more bytes, ${have} remain`, {
            offset: this.offsetOf(this.buf.length), entry: i, expected: r.bytes, found: have,
          });
        }
        continue;
      }
      batch.push(r);
      i++;
      if (batch.length >= this.batchSize) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
    if (await this.fill(1)) {
      const off = this.offsetOf(this.pos);
      throw this.err('STATE_BIN_TRAILING', `trailing bytes after the last of ${h.entryCount} entries`, {
        offset: off, expected: `end of file at ${off}`, found: `${Math.max(this.size, off + 1) - off} more byte(s)`,
      });
    }
    if (this.offsetOf(this.pos) !== this.size) {
      throw this.err('STATE_BIN_TRUNCATED', `file ended at ${this.offsetOf(this.pos)} bytes but its size is ${this.size}`, {
        offset: this.offsetOf(this.pos), expected: this.size, found: this.offsetOf(this.pos),
      });
    }
  }

  async *entries(): AsyncGenerator<StateEntry> {
    for await (const b of this.batches()) yield* b;
  }
}

export function decodeStateBin(chunks: AsyncIterable<Uint8Array>, options: DecodeOptions): StateBinDecoder {
  return new StateBinDecoder(chunks, options);
}
