import { KspError, type ErrorData } from '../errors.js';

/**
 * RocksDB's primitive encodings (FORMAT.md §0): little-endian fixed ints,
 * LEB128 varints and length-prefixed slices, read from a bounded window of a
 * buffer. 64-bit values come back as `bigint` when they may exceed 2^53
 * (sequence numbers), or as a checked `number` (offsets, sizes, file numbers),
 * never through 32-bit bit operations, which silently truncate.
 */

/** Where a cursor is reading, for errors: file, and the file offset of buf[0]. */
export interface Origin {
  file: string;
  /** File offset of the cursor's buf[0]. */
  base: number;
  /** e.g. "index block at 1915" */
  what: string;
}

export function corrupt(origin: Origin, at: number, message: string, data: ErrorData = {}): KspError {
  const offset = origin.base + at;
  return new KspError('ROCKSDB_CORRUPT', `${origin.file}: ${origin.what}: ${message} (offset ${offset})`, { file: origin.file, offset, ...data });
}

export class Cursor {
  constructor(
    readonly buf: Buffer,
    readonly origin: Origin,
    public pos = 0,
    readonly end = buf.length,
  ) {}

  get remaining(): number {
    return this.end - this.pos;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  fail(message: string, data: ErrorData = {}): KspError {
    return corrupt(this.origin, this.pos, message, data);
  }

  u8(): number {
    if (this.pos >= this.end) throw this.fail('truncated: expected 1 more byte');
    return this.buf[this.pos++]!;
  }

  fixed32(): number {
    if (this.end - this.pos < 4) throw this.fail(`truncated: expected 4 bytes, ${this.remaining} remain`);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  fixed64(): bigint {
    if (this.end - this.pos < 8) throw this.fail(`truncated: expected 8 bytes, ${this.remaining} remain`);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    return v;
  }

  varint32(): number {
    let result = 0;
    let shift = 0;
    const start = this.pos;
    while (this.pos < this.end && shift <= 28) {
      const b = this.buf[this.pos++]!;
      // Multiplication, not <<: a 5th byte would overflow a signed 32-bit shift.
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        if (result > 0xffff_ffff) break;
        return result;
      }
      shift += 7;
    }
    this.pos = start;
    throw this.fail(this.pos >= this.end ? 'truncated varint32' : 'malformed varint32');
  }

  /** A varint64 that must fit a JS number exactly (offsets, sizes, counts, file numbers). */
  varint64(): number {
    const start = this.pos;
    const v = this.varint64Big();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      this.pos = start;
      throw this.fail(`value ${v} is larger than this reader handles (2^53)`);
    }
    return Number(v);
  }

  varint64Big(): bigint {
    // Fast path: up to 7 bytes (49 bits) stays exact in a double.
    let result = 0;
    let shift = 0;
    const start = this.pos;
    while (this.pos < this.end && shift < 49) {
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return BigInt(result);
      shift += 7;
    }
    let big = BigInt(result);
    let bshift = BigInt(shift);
    while (this.pos < this.end && bshift <= 63n) {
      const b = this.buf[this.pos++]!;
      big |= BigInt(b & 0x7f) << bshift;
      if (b < 0x80) {
        if (big > 0xffff_ffff_ffff_ffffn) break;
        return big;
      }
      bshift += 7n;
    }
    this.pos = start;
    throw this.fail(this.pos >= this.end ? 'truncated varint64' : 'malformed varint64');
  }

  /** zigzag varint64 (index value deltas). */
  varsigned64(): number {
    const u = this.varint64Big();
    const v = (u >> 1n) ^ -(u & 1n);
    return Number(v);
  }

  bytes(n: number): Buffer {
    if (n > this.end - this.pos) throw this.fail(`truncated: a length of ${n} bytes runs past the end (${this.remaining} remain)`);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  varstring(): Buffer {
    return this.bytes(this.varint32());
  }
}

/** Encoders, for the writer and for tests. */
export function putVarint(out: number[], v: number | bigint): void {
  let x = BigInt(v);
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}
