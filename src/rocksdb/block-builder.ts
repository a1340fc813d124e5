/**
 * The generic block (FORMAT.md §2.1), write side: entries with shared-prefix
 * keys, a restart point every `interval` entries (where `shared` is 0), the
 * restart array and the footer word (bit 31 clear: no hash index).
 *
 * Bytes go into one growing buffer that is reused after `reset()`, so a data
 * block costs no allocation per entry.
 */

export class BlockBuilder {
  private buf: Buffer;
  private len = 0;
  private restarts: number[] = [];
  private last: Buffer = Buffer.alloc(0);
  private lastLen = 0;
  private n = 0;

  constructor(private readonly interval: number, initial = 4096) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  /** Size of the block if finished now. */
  get size(): number {
    return this.len + 4 * (Math.max(1, this.restarts.length) + 1);
  }

  get entries(): number {
    return this.n;
  }

  private room(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + extra));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }

  private varint(v: number): void {
    while (v >= 0x80) {
      this.buf[this.len++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.len++] = v;
  }

  add(key: Uint8Array, value: Uint8Array): void {
    let shared = 0;
    if (this.n % this.interval === 0) {
      this.restarts.push(this.len);
    } else {
      const max = Math.min(key.length, this.lastLen);
      const last = this.last;
      while (shared < max && key[shared] === last[shared]) shared++;
    }
    const rest = key.length - shared;
    this.room(15 + rest + value.length);
    this.varint(shared);
    this.varint(rest);
    this.varint(value.length);
    this.buf.set(key.subarray(shared), this.len);
    this.len += rest;
    this.buf.set(value, this.len);
    this.len += value.length;
    // Keep the key for the next entry's prefix (copied: callers reuse their buffers).
    if (this.last.length < key.length) this.last = Buffer.allocUnsafe(Math.max(key.length, 2 * this.last.length));
    this.last.set(key);
    this.lastLen = key.length;
    this.n++;
  }

  /** The finished block (a copy; the builder can be reset and reused). */
  finish(): Buffer {
    const restarts = this.restarts.length ? this.restarts : [0];
    const out = Buffer.allocUnsafe(this.len + 4 * restarts.length + 4);
    this.buf.copy(out, 0, 0, this.len);
    let o = this.len;
    for (const r of restarts) {
      out.writeUInt32LE(r, o);
      o += 4;
    }
    out.writeUInt32LE(restarts.length, o);
    return out;
  }

  reset(): void {
    this.len = 0;
    this.restarts = [];
    this.lastLen = 0;
    this.n = 0;
  }
}

/** A varint64 as bytes (lengths, counts and property values). */
export function encodeVarint(v: number): Buffer {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** A BlockHandle (FORMAT.md §1.2): varint64 offset, varint64 size. */
export function encodeHandle(offset: number, size: number): Buffer {
  return Buffer.concat([encodeVarint(offset), encodeVarint(size)]);
}
