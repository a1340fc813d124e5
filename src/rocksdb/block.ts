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
