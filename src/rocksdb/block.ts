import { Cursor, corrupt, type Origin } from './coding.js';

/**
 * The generic block format shared by data, index, metaindex, properties and
 * range-deletion blocks (FORMAT.md §2.1): prefix-compressed entries, then the
 * restart array, then a 32-bit footer whose top bit flags a data-block hash
 * index (only for blocks ≤ 64 KiB).
 *
 * Blocks are decoded whole into arrays: a block is at most a few tens of KiB,
 * and arrays keep the per-entry path free of generators and awaits.
 */

export interface BlockHandle {
  offset: number;
  size: number;
}

export interface Block {
  keys: Buffer[];
  values: Buffer[];
}

export interface IndexEntry {
  key: Buffer;
  handle: BlockHandle;
}

const MAX_HASH_INDEXED_BLOCK = 65536;
/** Key arena slab of BlockViews. */
const SLAB = 1 << 20;

/** Where the entries end (the restart array starts), after checking the footer. */
export function entriesEnd(buf: Buffer, origin: Origin): number {
  if (buf.length < 4) throw corrupt(origin, 0, `block of ${buf.length} bytes is shorter than its 4-byte footer`);
  const footer = buf.readUInt32LE(buf.length - 4);
  let restarts = footer;
  let end = buf.length - 4;
  if (buf.length <= MAX_HASH_INDEXED_BLOCK && footer >>> 31 === 1) {
    // Hash-indexed data block: restart array ‖ buckets ‖ NUM_BUCK (u16) ‖ footer.
    restarts = footer & 0x7fff_ffff;
    if (end < 2) throw corrupt(origin, 0, 'hash-indexed block too short for its bucket count');
    const buckets = buf.readUInt16LE(end - 2);
    end -= 2 + buckets;
  }
  const start = end - 4 * restarts;
  if (restarts < 1 || start < 0) {
    throw corrupt(origin, buf.length - 4, `block footer declares ${restarts} restart points, which do not fit in ${buf.length} bytes`, { found: restarts });
  }
  return start;
}

export function readHandle(c: Cursor): BlockHandle {
  return { offset: c.varint64(), size: c.varint64() };
}

/** Decodes every entry of a block with value_len fields (all blocks but delta-encoded indexes). */
export function decodeBlock(buf: Buffer, origin: Origin): Block {
  const end = entriesEnd(buf, origin);
  const keys: Buffer[] = [];
  const values: Buffer[] = [];
  const c = new Cursor(buf, origin, 0, end);
  let prev: Buffer = EMPTY;
  while (c.pos < end) {
    const at = c.pos;
    // Inline varint32 fast path: the three lengths are almost always < 128.
    let shared = buf[c.pos]!;
    let nonShared = buf[c.pos + 1]!;
    let valueLen = buf[c.pos + 2]!;
    if ((shared | nonShared | valueLen) < 0x80 && c.pos + 3 <= end) c.pos += 3;
    else {
      shared = c.varint32();
      nonShared = c.varint32();
      valueLen = c.varint32();
    }
    if (shared > prev.length) throw corrupt(origin, at, `entry shares ${shared} key bytes but the previous key has ${prev.length}`);
    if (nonShared + valueLen > end - c.pos) throw corrupt(origin, at, `entry of ${nonShared}+${valueLen} bytes runs past the entries (${end - c.pos} remain)`);
    const key = Buffer.allocUnsafe(shared + nonShared);
    if (shared > 0) prev.copy(key, 0, 0, shared);
    buf.copy(key, shared, c.pos, c.pos + nonShared);
    c.pos += nonShared;
    keys.push(key);
    values.push(buf.subarray(c.pos, c.pos + valueLen));
    c.pos += valueLen;
    prev = key;
  }
  return { keys, values };
}

export interface IndexFormat {
  /** `rocksdb.index.value.is.delta.encoded`: no value_len; sizes as deltas when the key shares a prefix. */
  deltaValues: boolean;
  /** kBinarySearchWithFirstKey: a varstring first key follows each handle. */
  firstKey: boolean;
}

/** Decodes an index block (or a partition, or the top level of a partitioned index). */
export function decodeIndexBlock(buf: Buffer, origin: Origin, fmt: IndexFormat): IndexEntry[] {
  if (!fmt.deltaValues) {
    const b = decodeBlock(buf, origin);
    return b.keys.map((key, i) => {
      const c = new Cursor(b.values[i]!, { ...origin, what: `${origin.what}, entry ${i}` });
      return { key, handle: readHandle(c) };
    });
  }
  const end = entriesEnd(buf, origin);
  const out: IndexEntry[] = [];
  const c = new Cursor(buf, origin, 0, end);
  let prev: Buffer = EMPTY;
  let prevHandle: BlockHandle | null = null;
  while (c.pos < end) {
    const at = c.pos;
    const shared = c.varint32();
    const nonShared = c.varint32();
    if (shared > prev.length) throw corrupt(origin, at, `entry shares ${shared} key bytes but the previous key has ${prev.length}`);
    const delta = c.bytes(nonShared);
    const key = Buffer.concat([prev.subarray(0, shared), delta]);
    let handle: BlockHandle;
    // The writer chooses a full handle exactly when the key shares nothing.
    if (shared === 0 || !prevHandle) handle = readHandle(c);
    else {
      const size = prevHandle.size + c.varsigned64();
      handle = { offset: prevHandle.offset + prevHandle.size + 5, size };
      if (size < 0) throw corrupt(origin, at, `index entry's size delta gives a negative block size ${size}`);
    }
    if (fmt.firstKey) c.varstring();
    out.push({ key, handle });
    prev = key;
    prevHandle = handle;
  }
  return out;
}

const EMPTY = Buffer.alloc(0);

/**
 * The entries of one block as offsets, for scans that touch millions of
 * entries: every full key is materialised once into `keys` (one arena per
 * block, so views into it stay valid after the next block), and values stay
 * where they are in the block. Entry i's key is keys[keyStart[i],
 * keyStart[i+1]), its value buf[valStart[i], valEnd[i]), and it shares
 * shared[i] leading bytes with entry i-1 (0 at restart points), which lets
 * a caller skip re-checking a prefix it already knows. The offset arrays are
 * reused between blocks: read them before decoding the next one.
 */
export class BlockViews {
  n = 0;
  buf: Buffer = EMPTY;
  keys: Buffer = EMPTY;
  keyStart = new Int32Array(1025);
  shared = new Int32Array(1024);
  valStart = new Int32Array(1024);
  valEnd = new Int32Array(1024);
  private slab: Buffer = EMPTY;
  private slabUsed = 0;

  private grow(): void {
    const m = this.shared.length * 2;
    const g = (a: Int32Array, len: number): Int32Array<ArrayBuffer> => {
      const b = new Int32Array(len);
      b.set(a);
      return b;
    };
    this.keyStart = g(this.keyStart, m + 1);
    this.shared = g(this.shared, m);
    this.valStart = g(this.valStart, m);
    this.valEnd = g(this.valEnd, m);
  }

  /** Decodes `buf` (a block with value_len fields) into these views; the same checks as `decodeBlock`. */
  decode(buf: Buffer, origin: Origin): void {
    const end = entriesEnd(buf, origin);
    // Keys are carved from a shared slab (like Buffer's own pool): one
    // allocation per block would leave a block-sized external buffer per
    // block for the GC to find, which lifts RSS. Keys rarely take more than
    // twice the block; the arena grows (out of the slab) if they do.
    if (this.slab.length - this.slabUsed < end * 2 + 256) {
      this.slab = Buffer.allocUnsafe(Math.max(SLAB, end * 2 + 256));
      this.slabUsed = 0;
    }
    const base = this.slabUsed;
    let keys = this.slab.subarray(base);
    let kn = 0;
    let prevStart = 0;
    let prevLen = 0;
    let n = 0;
    let pos = 0;
    const c = new Cursor(buf, origin, 0, end);
    while (pos < end) {
      const at = pos;
      let shared = buf[pos]!;
      let nonShared = buf[pos + 1]!;
      let valueLen = buf[pos + 2]!;
      if ((shared | nonShared | valueLen) < 0x80 && pos + 3 <= end) pos += 3;
      else {
        c.pos = pos;
        shared = c.varint32();
        nonShared = c.varint32();
        valueLen = c.varint32();
        pos = c.pos;
      }
      if (shared > prevLen) throw corrupt(origin, at, `entry shares ${shared} key bytes but the previous key has ${prevLen}`);
      if (nonShared + valueLen > end - pos) throw corrupt(origin, at, `entry of ${nonShared}+${valueLen} bytes runs past the entries (${end - pos} remain)`);
      const klen = shared + nonShared;
      if (kn + klen > keys.length) {
        const grown = Buffer.allocUnsafe(Math.max(keys.length * 2, kn + klen));
        keys.copy(grown, 0, 0, kn);
        keys = grown;
      }
      // Short copies by hand: Buffer.copy's call costs more than a few dozen bytes.
      if (shared > 64) keys.copyWithin(kn, prevStart, prevStart + shared);
      else for (let j = 0; j < shared; j++) keys[kn + j] = keys[prevStart + j]!;
      if (nonShared > 64) buf.copy(keys, kn + shared, pos, pos + nonShared);
      else for (let j = 0, d = kn + shared; j < nonShared; j++) keys[d + j] = buf[pos + j]!;
      pos += nonShared;
      if (n === this.shared.length) this.grow();
      this.keyStart[n] = kn;
      this.shared[n] = shared;
      this.valStart[n] = pos;
      this.valEnd[n] = pos + valueLen;
      pos += valueLen;
      prevStart = kn;
      prevLen = klen;
      kn += klen;
      n++;
    }
    this.keyStart[n] = kn;
    this.n = n;
    this.buf = buf;
    this.keys = keys;
    if (keys.buffer === this.slab.buffer) this.slabUsed = base + kn;
  }
}
