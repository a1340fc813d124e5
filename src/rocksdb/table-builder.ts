import { builtinChecksum, ChecksumType } from './checksum.js';
import { putVarint } from './coding.js';
import { MAGIC } from './footer.js';

/**
 * The smallest correct block-based table (FORMAT.md §2.8), for fixtures:
 * sorted internal keys at sequence 0 in uncompressed data blocks with
 * restart points, a binary-search index of full internal keys with plain
 * handles, a properties block, a metaindex and a format_version 2–5 footer,
 * every block with a CRC32C (or XXH3) trailer. Built in memory: it is meant
 * for small tables; the streaming writer is `ksp convert --to native`'s job.
 */

export interface BuiltTable {
  bytes: Buffer;
  smallest: Buffer;
  largest: Buffer;
  entries: number;
}

export interface TableBuildOptions {
  formatVersion?: 2 | 3 | 4 | 5;
  checksum?: ChecksumType.CRC32c | ChecksumType.XXH3;
  blockSize?: number;
  restartInterval?: number;
}

class BlockBuilder {
  private out: number[] = [];
  private restarts: number[] = [];
  private last: Buffer = Buffer.alloc(0);
  private n = 0;

  constructor(private readonly interval: number) {}

  get size(): number {
    return this.out.length + 4 * (this.restarts.length + 1);
  }

  get empty(): boolean {
    return this.n === 0;
  }

  add(key: Buffer, value: Buffer): void {
    let shared = 0;
    if (this.n % this.interval === 0) this.restarts.push(this.out.length);
    else while (shared < key.length && shared < this.last.length && key[shared] === this.last[shared]) shared++;
    putVarint(this.out, shared);
    putVarint(this.out, key.length - shared);
    putVarint(this.out, value.length);
    for (let i = shared; i < key.length; i++) this.out.push(key[i]!);
    for (const b of value) this.out.push(b);
    this.last = key;
    this.n++;
  }

  finish(): Buffer {
    if (this.restarts.length === 0) this.restarts.push(0);
    const b = Buffer.alloc(this.out.length + 4 * this.restarts.length + 4);
    Buffer.from(this.out).copy(b);
    this.restarts.forEach((r, i) => b.writeUInt32LE(r, this.out.length + 4 * i));
    b.writeUInt32LE(this.restarts.length, b.length - 4);
    return b;
  }
}

const handle = (offset: number, size: number): Buffer => {
  const o: number[] = [];
  putVarint(o, offset);
  putVarint(o, size);
  return Buffer.from(o);
};

const varint = (v: number): Buffer => {
  const o: number[] = [];
  putVarint(o, v);
  return Buffer.from(o);
};

/** Internal key at sequence 0, type value. */
export function valueKey(userKey: Uint8Array): Buffer {
  const k = Buffer.alloc(userKey.length + 8);
  k.set(userKey);
  k[userKey.length] = 1;
  return k;
}

export function buildTable(pairs: Array<[Uint8Array, Uint8Array]>, options: TableBuildOptions = {}): BuiltTable {
  const fv = options.formatVersion ?? 5;
  const checksum = options.checksum ?? ChecksumType.CRC32c;
  const blockSize = options.blockSize ?? 4096;
  const parts: Buffer[] = [];
  let offset = 0;
  const emit = (block: Buffer): Buffer => {
    const trailer = Buffer.alloc(5);
    trailer[0] = 0; // uncompressed
    trailer.writeUInt32LE(builtinChecksum(checksum, block, 0), 1);
    const h = handle(offset, block.length);
    parts.push(block, trailer);
    offset += block.length + 5;
    return h;
  };
  const index = new BlockBuilder(1);
  let data = new BlockBuilder(options.restartInterval ?? 16);
  let lastKey: Buffer | null = null;
  let rawKeys = 0;
  let rawValues = 0;
  let blocks = 0;
  const flush = (): void => {
    if (data.empty) return;
    index.add(lastKey!, emit(data.finish()));
    blocks++;
    data = new BlockBuilder(options.restartInterval ?? 16);
  };
  for (const [k, v] of pairs) {
    const ik = valueKey(k);
    data.add(ik, Buffer.from(v));
    rawKeys += ik.length;
    rawValues += v.length;
    lastKey = ik;
    if (data.size >= blockSize) flush();
  }
  flush();
  const dataSize = offset;
  const indexBlock = index.finish();
  const indexHandle = emit(indexBlock);
  const props = new BlockBuilder(0x7fffffff);
  const fixed32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  const properties: Array<[string, Buffer]> = [
    ['rocksdb.block.based.table.index.type', fixed32(0)],
    ['rocksdb.column.family.id', varint(0)],
    ['rocksdb.column.family.name', Buffer.from('default')],
    ['rocksdb.comparator', Buffer.from('leveldb.BytewiseComparator')],
    ['rocksdb.compression', Buffer.from('NoCompression')],
    ['rocksdb.data.size', varint(dataSize)],
    ['rocksdb.deleted.keys', varint(0)],
    ['rocksdb.format.version', varint(0)],
    ['rocksdb.index.key.is.user.key', varint(0)],
    ['rocksdb.index.size', varint(indexBlock.length + 5)],
    ['rocksdb.index.value.is.delta.encoded', varint(0)],
    ['rocksdb.merge.operands', varint(0)],
    ['rocksdb.num.data.blocks', varint(blocks)],
    ['rocksdb.num.entries', varint(pairs.length)],
    ['rocksdb.num.range-deletions', varint(0)],
    ['rocksdb.raw.key.size', varint(rawKeys)],
    ['rocksdb.raw.value.size', varint(rawValues)],
  ];
  properties.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
  for (const [k, v] of properties) props.add(Buffer.from(k), v);
  const propsHandle = emit(props.finish());
  const meta = new BlockBuilder(1);
  meta.add(Buffer.from('rocksdb.properties'), propsHandle);
  const metaHandle = emit(meta.finish());
  const footer = Buffer.alloc(53);
  footer[0] = checksum;
  const handles = Buffer.concat([metaHandle, indexHandle]);
  handles.copy(footer, 1);
  footer.writeUInt32LE(fv, 41);
  footer.writeBigUInt64LE(MAGIC, 45);
  parts.push(footer);
  const first = pairs[0] ? valueKey(pairs[0][0]) : Buffer.alloc(0);
  return { bytes: Buffer.concat(parts), smallest: first, largest: lastKey ?? first, entries: pairs.length };
}
