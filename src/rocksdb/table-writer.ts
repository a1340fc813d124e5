import { randomInt } from 'node:crypto';
import { BlockBuilder, encodeHandle, encodeVarint } from './block-builder.js';
import { builtinChecksum, ChecksumType, contextModifier, loadChecksums } from './checksum.js';
import { compressor, WRITABLE_COMPRESSIONS, type Compressor, type WritableCompression } from './compression.js';
import { FilterBuilder, FILTER_POLICY_NAME, FULL_FILTER_META_KEY } from './filter-builder.js';
import { FOOTER_SIZE, MAGIC } from './footer.js';

/**
 * A block-based table (SST) written as a stream (FORMAT.md §6, the writer):
 *
 *   data blocks → [full Bloom filter] → index → properties → metaindex → footer
 *
 * - Keys are user keys, strictly ascending; each is stored as the internal key
 *   (key, sequence 0, kTypeValue), as RocksDB's own bottommost files and
 *   SstFileWriter store them.
 * - Data blocks restart every 16 entries and are cut at `blockSize`; data and
 *   index blocks are compressed when that saves at least 1/8, as RocksDB
 *   decides (`GoodCompressionRatio`), and stored raw otherwise.
 * - The index is a binary-search index of full internal keys (the last key of
 *   each block) with plain handles, which every format_version 2–6 reads.
 * - format_version 6 adds the footer checksum, a random non-zero base context
 *   checksum folded into every block checksum, and the index handle as the
 *   metaindex entry `rocksdb.index` (the metaindex then sits right before the
 *   footer, which stores only its size).
 *
 * Memory: the current data block, the index entries and the filter hashes of
 * this one table; output leaves through `take()` in chunks.
 */

export type WritableFormatVersion = 2 | 3 | 4 | 5 | 6;

export interface TableOptions {
  formatVersion: WritableFormatVersion;
  compression: WritableCompression;
  checksum: ChecksumType.CRC32c | ChecksumType.XXH3;
  blockSize: number;
  /** Bloom bits per key; 0 writes no filter. */
  bloomBitsPerKey: number;
  /** RocksDB file number (recorded as `rocksdb.original.file.number`). */
  fileNumber: number;
}

export interface TableInfo {
  size: number;
  entries: number;
  dataBlocks: number;
  /** First and last internal keys (for the MANIFEST). */
  smallest: Buffer;
  largest: Buffer;
}

const RESTART_INTERVAL = 16;
/** Compressions kept in flight (ZSTD is asynchronous and runs on libuv's pool). */
const IN_FLIGHT = 8;
const TRAILER = 5;
/** Internal-key trailer of a value at sequence 0: (0 << 8) | kTypeValue, little-endian. */
const VALUE_TRAILER = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);

interface PendingBlock {
  raw: Buffer;
  stored: Buffer | Promise<Buffer>;
  lastKey: Buffer;
}

export class TableWriter {
  private readonly data = new BlockBuilder(RESTART_INTERVAL, 1 << 15);
  private readonly index = new BlockBuilder(1, 1 << 16);
  private readonly filter: FilterBuilder | null;
  private readonly compress: Compressor | null;
  private readonly base: number;
  private pending: PendingBlock[] = [];
  private out: Buffer[] = [];
  private outBytes = 0;
  private offset = 0;
  private n = 0;
  private blocks = 0;
  private rawKeys = 0;
  private rawValues = 0;
  private ikey = Buffer.allocUnsafe(256);
  private first: Buffer | null = null;
  private last = Buffer.alloc(0);
  private lastLen = 0;
  private finished = false;

  private constructor(private readonly o: TableOptions) {
    this.filter = o.bloomBitsPerKey > 0 ? new FilterBuilder(o.bloomBitsPerKey, o.formatVersion) : null;
    this.compress = compressor(o.compression);
    // format_version 6: every checksum is made position-dependent through a
    // random non-zero base, as RocksDB draws it, so a block copied to another
    // offset (or file) fails its checksum.
    this.base = o.formatVersion >= 6 ? randomInt(1, 0x1_0000_0000 - 1) >>> 0 : 0;
  }

  static async create(options: TableOptions): Promise<TableWriter> {
    await loadChecksums([options.checksum]);
    return new TableWriter(options);
  }

  /** Bytes the file has so far, counting the open data block (for the target file size). */
  get size(): number {
    return this.offset + this.pending.reduce((s, p) => s + p.raw.length + TRAILER, 0) + this.data.size;
  }

  get entries(): number {
    return this.n;
  }

  /** Output ready to be written, once enough has gathered (or everything, with `all`). */
  take(all = false): Buffer[] {
    // 128 KiB: below glibc's initial mmap threshold, so these chunks are recycled
    // from the heap rather than raising the threshold and fragmenting it.
    if (!all && this.outBytes < 128 * 1024) return [];
    const chunks = this.out;
    this.out = [];
    this.outBytes = 0;
    return chunks;
  }

  /** True when compressions are waiting and `settle()` should be awaited. */
  get busy(): boolean {
    return this.pending.length >= IN_FLIGHT;
  }

  /**
   * Adds one entry; keys must be strictly ascending (checked: an unsorted key
   * would make the table unreadable, so it is a programming error here).
   */
  add(userKey: Uint8Array, value: Uint8Array): void {
    if (this.finished) throw new Error('table already finished');
    const klen = userKey.length + 8;
    if (this.n > 0 && Buffer.compare(userKey, this.last.subarray(0, this.lastLen)) <= 0) {
      throw new Error(`table writer: key ${Buffer.from(userKey).toString('hex')} does not follow ${this.last.subarray(0, this.lastLen).toString('hex')}`);
    }
    if (this.ikey.length < klen) this.ikey = Buffer.allocUnsafe(Math.max(klen, 2 * this.ikey.length));
    this.ikey.set(userKey, 0);
    VALUE_TRAILER.copy(this.ikey, userKey.length);
    const ik = this.ikey.subarray(0, klen);
    this.data.add(ik, value);
    this.filter?.add(userKey);
    if (this.n === 0) this.first = Buffer.from(ik);
    if (this.last.length < userKey.length) this.last = Buffer.allocUnsafe(Math.max(userKey.length, 2 * this.last.length));
    this.last.set(userKey, 0);
    this.lastLen = userKey.length;
    this.n++;
    this.rawKeys += klen;
    this.rawValues += value.length;
    if (this.data.size >= this.o.blockSize) this.cutDataBlock();
  }

  private lastInternalKey(): Buffer {
    const k = Buffer.allocUnsafe(this.lastLen + 8);
    this.last.copy(k, 0, 0, this.lastLen);
    VALUE_TRAILER.copy(k, this.lastLen);
    return k;
  }

  private cutDataBlock(): void {
    if (this.data.entries === 0) return;
    const raw = this.data.finish();
    this.data.reset();
    this.pending.push({ raw, stored: this.compress ? this.compress.compress(raw) : raw, lastKey: this.lastInternalKey() });
    if (!this.compress || !this.busy) this.emitSettled();
  }

  /** Emits, in order, every pending block whose compression has finished synchronously. */
  private emitSettled(): void {
    while (this.pending.length && !(this.pending[0]!.stored instanceof Promise)) {
      const p = this.pending.shift()!;
      this.emitDataBlock(p.raw, p.stored as Buffer, p.lastKey);
    }
  }

  /** Waits for in-flight compressions and emits their blocks. */
  async settle(): Promise<void> {
    while (this.pending.length) {
      const p = this.pending.shift()!;
      this.emitDataBlock(p.raw, await p.stored, p.lastKey);
    }
  }

  private emitDataBlock(raw: Buffer, compressed: Buffer, lastKey: Buffer): void {
    const handle = this.emit(raw, compressed !== raw ? compressed : null);
    this.index.add(lastKey, handle);
    this.blocks++;
  }

  /**
   * Writes one block with its trailer; returns its handle. `compressed` is
   * kept only when it saves an eighth of the raw size.
   */
  private emit(raw: Buffer, compressed: Buffer | null): Buffer {
    let type = 0;
    let stored = raw;
    if (compressed && this.compress && compressed.length < raw.length - Math.floor(raw.length / 8)) {
      type = this.compress.type;
      stored = compressed;
    }
    const trailer = Buffer.allocUnsafe(TRAILER);
    trailer[0] = type;
    const sum = (builtinChecksum(this.o.checksum, stored, type) + contextModifier(this.base, this.offset)) >>> 0;
    trailer.writeUInt32LE(sum, 1);
    const handle = encodeHandle(this.offset, stored.length);
    this.out.push(stored, trailer);
    this.outBytes += stored.length + TRAILER;
    this.offset += stored.length + TRAILER;
    return handle;
  }

  /** Ends the table: filter, index, properties, metaindex and footer. */
  async finish(): Promise<TableInfo> {
    this.cutDataBlock();
    await this.settle();
    this.finished = true;
    const dataSize = this.offset;
    const meta: Array<[string, Buffer]> = [];
    const filter = this.filter?.finish() ?? null;
    if (filter) meta.push([FULL_FILTER_META_KEY, this.emit(filter, null)]);
    const indexRaw = this.index.finish();
    const indexCompressed = this.compress ? await this.compress.compress(indexRaw) : null;
    const indexStart = this.offset;
    const indexHandle = this.emit(indexRaw, indexCompressed);
    const indexSize = this.offset - indexStart;
    meta.push(['rocksdb.properties', this.emit(this.properties(dataSize, indexSize, filter), null)]);
    if (this.o.formatVersion >= 6) meta.push(['rocksdb.index', indexHandle]);
    meta.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
    const metaindex = new BlockBuilder(1, 256);
    for (const [k, v] of meta) metaindex.add(Buffer.from(k), v);
    const metaBlock = metaindex.finish();
    const metaHandle = this.emit(metaBlock, null);
    const footer = this.footer(metaHandle, indexHandle, metaBlock.length);
    this.out.push(footer);
    this.outBytes += footer.length;
    this.offset += footer.length;
    const largest = this.n ? this.lastInternalKey() : Buffer.alloc(0);
    return { size: this.offset, entries: this.n, dataBlocks: this.blocks, smallest: this.first ?? Buffer.alloc(0), largest };
  }

  private properties(dataSize: number, indexSize: number, filter: Buffer | null): Buffer {
    const v = encodeVarint;
    const fixed32 = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(n);
      return b;
    };
    const s = (x: string): Buffer => Buffer.from(x);
    const props: Array<[string, Buffer]> = [
      ['rocksdb.block.based.table.index.type', fixed32(0)],
      ['rocksdb.block.based.table.prefix.filtering', s('0')],
      ['rocksdb.block.based.table.whole.key.filtering', s('1')],
      ['rocksdb.column.family.id', v(0)],
      ['rocksdb.column.family.name', s('default')],
      ['rocksdb.comparator', s('leveldb.BytewiseComparator')],
      ['rocksdb.compression', s(WRITABLE_COMPRESSIONS[this.o.compression].property)],
      ['rocksdb.creation.time', v(0)],
      ['rocksdb.data.size', v(dataSize)],
      ['rocksdb.deleted.keys', v(0)],
      ['rocksdb.file.creation.time', v(0)],
      ['rocksdb.fixed.key.length', v(0)],
      // 7.8.3 records 0 here for every version; newer releases the real one.
      ['rocksdb.format.version', v(this.o.formatVersion >= 6 ? this.o.formatVersion : 0)],
      ['rocksdb.index.key.is.user.key', v(0)],
      ['rocksdb.index.size', v(indexSize)],
      ['rocksdb.index.value.is.delta.encoded', v(0)],
      ['rocksdb.merge.operands', v(0)],
      ['rocksdb.merge.operator', s('nullptr')],
      ['rocksdb.num.data.blocks', v(this.blocks)],
      ['rocksdb.num.entries', v(this.n)],
      ['rocksdb.num.range-deletions', v(0)],
      ['rocksdb.oldest.key.time', v(0)],
      ['rocksdb.original.file.number', v(this.o.fileNumber)],
      ['rocksdb.prefix.extractor.name', s('nullptr')],
      ['rocksdb.property.collectors', s('[]')],
      ['rocksdb.raw.key.size', v(this.rawKeys)],
      ['rocksdb.raw.value.size', v(this.rawValues)],
    ];
    if (filter) {
      props.push(['rocksdb.filter.policy', s(FILTER_POLICY_NAME)], ['rocksdb.filter.size', v(filter.length)], ['rocksdb.num.filter_entries', v(this.filter!.entries)]);
    }
    // RocksDB refuses a properties block whose keys are not strictly ascending.
    props.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
    const block = new BlockBuilder(0x7fffffff, 2048);
    for (const [k, val] of props) block.add(Buffer.from(k), val);
    return block.finish();
  }

  private footer(metaHandle: Buffer, indexHandle: Buffer, metaSize: number): Buffer {
    const f = Buffer.alloc(FOOTER_SIZE);
    f[0] = this.o.checksum;
    f.writeUInt32LE(this.o.formatVersion, 41);
    f.writeBigUInt64LE(MAGIC, 45);
    if (this.o.formatVersion < 6) {
      metaHandle.copy(f, 1);
      indexHandle.copy(f, 1 + metaHandle.length);
      return f;
    }
    Buffer.from([0x3e, 0x00, 0x7a, 0x00]).copy(f, 1);
    f.writeUInt32LE(this.base, 9);
    f.writeUInt32LE(metaSize, 13);
    // The footer's own checksum: over the footer with this field zeroed, the
    // final magic byte as "last byte", plus the modifier for its offset.
    const sum = (builtinChecksum(this.o.checksum, f.subarray(0, FOOTER_SIZE - 1), f[FOOTER_SIZE - 1]!) + contextModifier(this.base, this.offset)) >>> 0;
    f.writeUInt32LE(sum, 5);
    return f;
  }
}
