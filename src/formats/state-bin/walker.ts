/**
 * A counting pass over a canonical `state.bin` (v1 or v2, FORMAT.md beside
 * this file) for checks that need no entry objects: `verify` and `inspect`
 * want per-state counts and byte totals, and sometimes each key, but never
 * the entries themselves.
 *
 * Why a second reader beside `decoder.ts`: the decoder hands out an object
 * and two views per entry, which is most of what a verify costs (about six
 * times the SHA-256 of the same bytes). The walker is fed the chunks as they
 * are read, parses lengths in place, and allocates only when an entry
 * straddles two chunks (it copies that entry's head, never its value) or
 * when a new operator or state name appears.
 *
 * It reports *that* a file is not a clean canonical body, not *what* is
 * wrong: on any doubt (a length past the end, bytes that are not UTF-8, a
 * short or long file, a field over `MAX_FIELD`) it throws `WalkBail`, and the
 * caller decodes the file again with `StateBinDecoder`, whose errors name
 * the field, offset and entry. So both readers accept exactly the same files,
 * and the precise error exists in one place only.
 */

import { HEADER_SIZE, MAX_FIELD, MIN_ENTRY_SIZE } from './decoder.js';

export class WalkBail extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** Totals of one (operator id, state name) pair, in first-seen order. */
export interface WalkedState {
  operator: string;
  state: string;
  entries: number;
  keyBytes: number;
  valueBytes: number;
}

/**
 * Called per entry when keys are wanted: `buf[start, start + len)` is the
 * key, valid only during the call; `pair` indexes `states`.
 */
export type KeyVisitor = (buf: Buffer, start: number, len: number, pair: number) => void;

interface Pair {
  op: Buffer;
  state: Buffer;
  index: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function sameBytes(a: Buffer, b: Buffer, at: number, n: number): boolean {
  if (a.length !== n) return false;
  // Names are short: a loop beats the native compare's call cost.
  if (n > 64) return b.compare(a, 0, n, at, at + n) === 0;
  for (let i = 0; i < n; i++) if (a[i] !== b[at + i]) return false;
  return true;
}

export class StateBinWalker {
  readonly states: WalkedState[] = [];
  private readonly byName = new Map<string, number>();
  private readonly pairs: Pair[] = [];
  private last: Pair | null = null;
  /** File offset of the next unconsumed byte. */
  private offset = 0;
  private declared = -1;
  private left = 0;
  /** Value bytes still to pass over (a value that ran past its chunk). */
  private skip = 0;
  /** The head of an entry (or the header) that straddles chunks. */
  private carry: Buffer = Buffer.allocUnsafe(256);
  private carryLen = 0;

  constructor(private readonly size: number, private readonly version: 1 | 2, private readonly onKey?: KeyVisitor) {
    if (size < HEADER_SIZE) throw new WalkBail('shorter than the header');
  }

  get entryCount(): number {
    return this.declared < 0 ? 0 : this.declared - this.left;
  }

  push(chunk: Buffer): void {
    let p = 0;
    const n = chunk.length;
    if (this.offset + this.carryLen + n > this.size) throw new WalkBail('more bytes than the file size');
    while (p < n) {
      if (this.skip > 0) {
        const s = Math.min(this.skip, n - p);
        this.skip -= s;
        this.offset += s;
        p += s;
        continue;
      }
      if (this.carryLen > 0 || this.declared < 0) {
        p = this.fromCarry(chunk, p);
        continue;
      }
      if (this.left === 0) throw new WalkBail('bytes after the last entry');
      p = this.run(chunk, p);
      if (p < n && this.skip === 0 && this.left > 0) {
        // The next entry's head straddles this chunk's end: keep its bytes.
        this.append(chunk, p, n - p);
        p = n;
      }
    }
  }

  /** Checks the file ended where its entry count says. */
  end(): void {
    if (this.declared < 0 || this.left !== 0 || this.skip !== 0 || this.carryLen !== 0 || this.offset !== this.size) {
      throw new WalkBail('the file ends before its last entry');
    }
  }

  private append(src: Buffer, at: number, n: number): void {
    if (this.carryLen + n > this.carry.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.carry.length * 2, this.carryLen + n));
      this.carry.copy(bigger, 0, 0, this.carryLen);
      this.carry = bigger;
    }
    src.copy(this.carry, this.carryLen, at, at + n);
    this.carryLen += n;
  }

  /**
   * Completes the header or a straddling entry head from `chunk` (taking only
   * the bytes it needs), then hands back the position after them.
   */
  private fromCarry(chunk: Buffer, p: number): number {
    const n = chunk.length;
    for (;;) {
      const need = this.declared < 0 ? HEADER_SIZE - this.carryLen : -this.parse(this.carry, 0, this.carryLen);
      if (need <= 0) break;
      const take = Math.min(need, n - p);
      this.append(chunk, p, take);
      p += take;
      if (take < need) return p; // the chunk ran out: wait for the next
    }
    if (this.declared < 0) {
      this.header(this.carry);
      this.offset += HEADER_SIZE;
      this.carryLen = 0;
      return p;
    }
    // A whole head in `carry` (parse() above set the fields): the value follows in the chunk.
    this.offset += this.carryLen;
    this.carryLen = 0;
    this.count(this.carry);
    this.skip = this.vlen;
    return p;
  }

  private header(b: Buffer): void {
    if (b.readUInt32LE(0) !== this.version) throw new WalkBail('version');
    const lo = b.readUInt32LE(4);
    const hi = b.readUInt32LE(8);
    const max = Math.floor((this.size - HEADER_SIZE) / MIN_ENTRY_SIZE);
    if (hi !== 0 || lo > max) throw new WalkBail('entry count');
    this.declared = this.left = lo;
  }

  // The entry parse() read last: field offsets in its buffer, and lengths.
  private op = 0;
  private opLen = 0;
  private st = 0;
  private stLen = 0;
  private key = 0;
  private keyLen = 0;
  private vlen = 0;

  /**
   * Reads the head of the entry at `buf[p]` (three fields and the value's
   * length) within `buf[0, n)`, where `buf[p]` lies at file offset
   * `this.offset`. Returns where the value starts, or minus the bytes still
   * missing. Each length is checked against what remains of the file, as
   * the decoder does before it allocates.
   */
  private parse(buf: Buffer, p: number, n: number): number {
    const base = this.offset - p;
    let q = p;
    if (q + 8 > n) return n - q - 8;
    this.opLen = this.length(buf, q, base);
    this.op = q += 8;
    q += this.opLen;
    if (q + 8 > n) return n - q - 8;
    this.stLen = this.length(buf, q, base);
    this.st = q += 8;
    q += this.stLen;
    if (q + 8 > n) return n - q - 8;
    this.keyLen = this.length(buf, q, base);
    this.key = q += 8;
    q += this.keyLen;
    if (q + 8 > n) return n - q - 8;
    this.vlen = this.length(buf, q, base);
    return q + 8;
  }

  /** The u64 length at buf[q] (file offset base + q): at most MAX_FIELD and what remains. */
  private length(buf: Buffer, q: number, base: number): number {
    const lo = (buf[q]! | (buf[q + 1]! << 8) | (buf[q + 2]! << 16)) + buf[q + 3]! * 0x100_0000;
    if ((buf[q + 4]! | buf[q + 5]! | buf[q + 6]! | buf[q + 7]!) !== 0 || lo > MAX_FIELD) throw new WalkBail('field length');
    if (lo > this.size - (base + q) - 8) throw new WalkBail('field past the end');
    return lo;
  }

  /**
   * The tight loop: whole entries inside `chunk` from `p`. Returns where it
   * stopped: at the chunk's end, at a head that straddles it, or inside a
   * value (with `skip` set).
   */
  private run(chunk: Buffer, p: number): number {
    const n = chunk.length;
    while (this.left > 0 && p < n) {
      const v = this.parse(chunk, p, n);
      if (v < 0) return p;
      this.count(chunk);
      const end = v + this.vlen;
      if (end <= n) {
        this.offset += end - p;
        p = end;
      } else {
        this.offset += n - p;
        this.skip = end - n;
        return n;
      }
    }
    return p;
  }

  /** Counts the entry parse() just read from `buf`. */
  private count(buf: Buffer): void {
    const { op, opLen, st, stLen } = this;
    let pair = this.last;
    if (!pair || !sameBytes(pair.op, buf, op, opLen) || !sameBytes(pair.state, buf, st, stLen)) pair = this.lookup(buf, op, opLen, st, stLen);
    const s = this.states[pair.index]!;
    s.entries++;
    s.keyBytes += this.keyLen;
    s.valueBytes += this.vlen;
    this.left--;
    this.onKey?.(buf, this.key, this.keyLen, pair.index);
  }

  private lookup(buf: Buffer, op: number, opLen: number, st: number, stLen: number): Pair {
    for (const c of this.pairs) {
      if (sameBytes(c.op, buf, op, opLen) && sameBytes(c.state, buf, st, stLen)) return (this.last = c);
    }
    let operator: string;
    let state: string;
    try {
      operator = utf8.decode(buf.subarray(op, op + opLen));
      state = utf8.decode(buf.subarray(st, st + stLen));
    } catch {
      throw new WalkBail('not UTF-8');
    }
    // Different bytes can name the same pair (a leading BOM is dropped by
    // the decoder): totals are per name, as the decoder's callers count them.
    const name = `${operator}\u0000${state}`;
    let index = this.byName.get(name);
    if (index === undefined) {
      index = this.states.length;
      this.byName.set(name, index);
      this.states.push({ operator, state, entries: 0, keyBytes: 0, valueBytes: 0 });
    }
    const pair = { op: Buffer.from(buf.subarray(op, op + opLen)), state: Buffer.from(buf.subarray(st, st + stLen)), index };
    // Bounded: a file of many distinct names keeps the last few byte forms.
    if (this.pairs.length < 64) this.pairs.push(pair);
    return (this.last = pair);
  }
}
