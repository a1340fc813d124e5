import { KspError, preview } from '../errors.js';
import { decodeBlock, decodeIndexBlock, readHandle, type BlockHandle, type IndexFormat } from './block.js';
import { builtinChecksum, CHECKSUM_NAMES, contextModifier, loadChecksums } from './checksum.js';
import { Cursor, type Origin } from './coding.js';
import { COMPRESSION_NAMES, decompressBlock } from './compression.js';
import { Window, type RandomAccessFile } from './file.js';
import { readFooter, type Footer } from './footer.js';
import { VALUE_TYPE_NAMES, ValueType, compareInternal, pack, splitInternalKey, type InternalEntry } from './internal-key.js';
import { parseProperties, type TableProperties } from './properties.js';

/**
 * A block-based table (SST) opened for a forward scan (FORMAT.md §1–2):
 * footer → metaindex → properties → index (one block, or partitions) → data
 * blocks in order. Every block read is checksum-verified before it is
 * decompressed or parsed. Only the current data block, the current index
 * partition and one read-ahead window are in memory.
 */

export interface RangeTombstone {
  start: Buffer;
  end: Buffer;
  hi: number;
  lo: number;
}

export interface TableInfo {
  file: string;
  size: number;
  formatVersion: number;
  checksum: string;
  compression: string;
  indexType: string;
  entries: number;
  dataBlocks: number;
  rangeDeletions: number;
}

const INDEX_TYPES = ['binary-search', 'hash-search', 'two-level', 'binary-search-with-first-key'];
const TWO_LEVEL = 2;
/** Names of comparators whose order is plain memcmp. */
const BYTEWISE = new Set(['leveldb.BytewiseComparator', 'RocksDB_SE_v3.10']);

export interface TableOptions {
  /** Read-ahead for data blocks (default 1 MiB). */
  windowSize?: number;
  /** MANIFEST largest_seqno: the sequence of every key of an ingested file whose global_seqno property is 0. */
  largestSeqno?: bigint;
}

export class Table {
  private constructor(
    readonly file: RandomAccessFile,
    readonly footer: Footer,
    readonly metaindex: Map<string, BlockHandle>,
    readonly props: TableProperties,
    private readonly indexHandle: BlockHandle,
    private readonly indexFormat: IndexFormat,
    /** Trailer override for ingested (external) files, else null. */
    private readonly global: { hi: number; lo: number } | null,
    private readonly windowSize: number,
  ) {}

  static async open(file: RandomAccessFile, options: TableOptions = {}): Promise<Table> {
    const footer = await readFooter(file);
    await loadChecksums([footer.checksumType]);
    const metaBlock = await readBlock(file, footer, footer.metaindex, 'metaindex block');
    const mb = decodeBlock(metaBlock, origin(file, footer.metaindex, 'metaindex block'));
    const metaindex = new Map<string, BlockHandle>();
    mb.keys.forEach((k, i) => metaindex.set(k.toString('latin1'), readHandle(new Cursor(mb.values[i]!, origin(file, footer.metaindex, `metaindex entry ${k.toString('latin1')}`)))));

    const propsHandle = metaindex.get('rocksdb.properties') ?? metaindex.get('rocksdb.stats');
    let props: TableProperties;
    if (propsHandle) {
      const pb = await readBlock(file, footer, propsHandle, 'properties block');
      props = parseProperties(decodeBlock(pb, origin(file, propsHandle, 'properties block')), origin(file, propsHandle, 'properties block'));
    } else {
      props = parseProperties({ keys: [], values: [] }, origin(file, footer.metaindex, 'properties block'));
    }
    if (props.comparator !== null && !BYTEWISE.has(props.comparator)) {
      throw new KspError('ROCKSDB_UNSUPPORTED', `${file.name}: written with comparator ${JSON.stringify(props.comparator)}; only leveldb.BytewiseComparator is supported`, { file: file.name, found: props.comparator });
    }
    const indexHandle = footer.index ?? metaindex.get('rocksdb.index');
    if (!indexHandle) throw new KspError('ROCKSDB_CORRUPT', `${file.name}: format_version ${footer.formatVersion} table has no rocksdb.index metaindex entry`, { file: file.name, offset: footer.metaindex.offset });
    if (props.indexType > 3) {
      throw new KspError('ROCKSDB_UNSUPPORTED', `${file.name}: index type ${props.indexType} is not supported`, { file: file.name, found: props.indexType });
    }
    let global: { hi: number; lo: number } | null = null;
    if (props.externalVersion >= 2) {
      const seq = props.globalSeqno && props.globalSeqno !== 0n ? props.globalSeqno : options.largestSeqno ?? 0n;
      global = pack(seq, 0);
    }
    const indexFormat = { deltaValues: props.indexValueIsDeltaEncoded, firstKey: props.indexType === 3 };
    return new Table(file, footer, metaindex, props, indexHandle, indexFormat, global, options.windowSize ?? 1 << 20);
  }

  get info(): TableInfo {
    return {
      file: this.file.name,
      size: this.file.size,
      formatVersion: this.footer.formatVersion,
      checksum: CHECKSUM_NAMES[this.footer.checksumType] ?? String(this.footer.checksumType),
      compression: compressionName(this.props.compression),
      indexType: INDEX_TYPES[this.props.indexType] ?? String(this.props.indexType),
      entries: this.props.numEntries,
      dataBlocks: this.props.numDataBlocks,
      rangeDeletions: this.props.rangeDeletions,
    };
  }

  readBlock(handle: BlockHandle, what: string, window?: Window, raw = false): Promise<Buffer> {
    return readBlock(this.file, this.footer, handle, what, window, raw);
  }

  /** Data-block handles in key order, through one index block or its partitions. */
  async *dataBlockHandles(): AsyncGenerator<BlockHandle> {
    const top = await this.readBlock(this.indexHandle, 'index block');
    const entries = decodeIndexBlock(top, origin(this.file, this.indexHandle, 'index block'), this.indexFormat);
    if (this.props.indexType !== TWO_LEVEL) {
      for (const e of entries) yield e.handle;
      return;
    }
    for (const [p, e] of entries.entries()) {
      const what = `index partition ${p}`;
      const part = await this.readBlock(e.handle, what);
      for (const d of decodeIndexBlock(part, origin(this.file, e.handle, what), this.indexFormat)) yield d.handle;
    }
  }

  /**
   * Every data block in key order, checksum-verified and decompressed, with
   * the name errors give it: the raw material of `entries()`, for scans that
   * decode blocks without an object per entry (BlockViews).
   */
  async *dataBlocks(): AsyncGenerator<{ buf: Buffer; origin: Origin; offset: number; what: string }> {
    const window = new Window(this.file, this.windowSize);
    let n = 0;
    for await (const h of this.dataBlockHandles()) {
      const what = `data block ${n++}`;
      const buf = await this.readBlock(h, what, window);
      yield { buf, origin: origin(this.file, h, what), offset: h.offset, what };
    }
  }

  /** Trailer override for ingested (external) files (their keys' sequence is the global one), else null. */
  get globalSeqno(): { hi: number; lo: number } | null {
    return this.global;
  }

  /** Every point entry, one array per data block, in internal-key order. */
  async *entries(): AsyncGenerator<InternalEntry[]> {
    const window = new Window(this.file, this.windowSize);
    let n = 0;
    let prev: InternalEntry | null = null;
    for await (const h of this.dataBlockHandles()) {
      const what = `data block ${n++}`;
      const buf = await this.readBlock(h, what, window);
      const o = origin(this.file, h, what);
      const block = decodeBlock(buf, o);
      const out: InternalEntry[] = new Array(block.keys.length);
      for (let i = 0; i < block.keys.length; i++) {
        const ikey = block.keys[i]!;
        const e = splitInternalKey(ikey, () => ({ file: this.file.name, offset: h.offset, what: `${what}, entry ${i}` }));
        e.value = block.values[i]!;
        const type = e.lo & 0xff;
        if (type !== ValueType.Value && type !== ValueType.Deletion && type !== ValueType.SingleDeletion) this.special(e, type, h, what, i);
        if (this.global) {
          e.hi = this.global.hi;
          e.lo = (this.global.lo | (e.lo & 0xff)) >>> 0;
        }
        // Merging relies on every run being sorted: check it, it is cheap.
        if (prev && compareInternal(prev, e) >= 0) {
          throw new KspError('ROCKSDB_CORRUPT', `${this.file.name}: ${what} at offset ${h.offset}, entry ${i}: key ${preview(e.userKey)} is out of order`, { file: this.file.name, offset: h.offset, entry: i });
        }
        prev = e;
        out[i] = e;
      }
      yield out;
    }
  }

  /** Entry types beyond put/delete: accepted, rewritten, or refused by name. */
  special(e: InternalEntry, type: number, h: BlockHandle, what: string, i: number): void {
    if (type === ValueType.DeletionWithTimestamp) return;
    if (type === ValueType.ValuePreferredSeqno) {
      // TimedPut: value ‖ fixed64 (write time or preferred seqno).
      e.value = e.value.subarray(0, Math.max(0, e.value.length - 8));
      e.lo = ((e.lo & ~0xff) | ValueType.Value) >>> 0;
      return;
    }
    const name = VALUE_TYPE_NAMES[type];
    const where = { file: this.file.name, offset: h.offset, entry: i, found: type };
    if (type === ValueType.Merge || type === ValueType.BlobIndex || type === ValueType.WideColumnEntity) {
      throw new KspError('ROCKSDB_UNSUPPORTED', `${this.file.name}: ${what} at offset ${h.offset}, entry ${i}: key ${preview(e.userKey)} is a ${name}; ksp reads only puts and deletes`, where);
    }
    throw new KspError('ROCKSDB_CORRUPT', `${this.file.name}: ${what} at offset ${h.offset}, entry ${i}: value type 0x${type.toString(16)}${name ? ` (${name})` : ''} cannot appear in a data block`, where);
  }

  async rangeTombstones(): Promise<RangeTombstone[]> {
    const h = this.metaindex.get('rocksdb.range_del');
    if (!h) return [];
    const what = 'range-deletion block';
    const b = decodeBlock(await this.readBlock(h, what), origin(this.file, h, what));
    return b.keys.map((k, i) => {
      const e = splitInternalKey(k, () => ({ file: this.file.name, offset: h.offset, what: `${what}, entry ${i}` }));
      if ((e.lo & 0xff) !== ValueType.RangeDeletion) {
        throw new KspError('ROCKSDB_CORRUPT', `${this.file.name}: ${what}, entry ${i}: type 0x${(e.lo & 0xff).toString(16)} is not a range deletion`, { file: this.file.name, offset: h.offset });
      }
      const t = this.global ? { hi: this.global.hi, lo: (this.global.lo | ValueType.RangeDeletion) >>> 0 } : e;
      return { start: Buffer.from(e.userKey), end: Buffer.from(b.values[i]!), hi: t.hi, lo: t.lo };
    });
  }

  /**
   * Reads and checksums every block the table holds: data and index blocks
   * (through `entries`, by the caller) are not repeated here; this covers the
   * metaindex's other blocks (filters, dictionaries, hash-index side blocks).
   */
  async verifyMetaBlocks(): Promise<number> {
    let n = 0;
    for (const [name, h] of this.metaindex) {
      if (name === 'rocksdb.properties' || name === 'rocksdb.stats' || name === 'rocksdb.range_del' || name === 'rocksdb.index') continue;
      if (name.startsWith('partitionedfilter.')) {
        // The top level of a partitioned filter is an index over its partitions.
        const top = await this.readBlock(h, `metaindex entry ${name}`);
        for (const [p, e] of decodeIndexBlock(top, origin(this.file, h, name), this.indexFormat).entries()) {
          await this.readBlock(e.handle, `${name} partition ${p}`, undefined, true);
          n++;
        }
      } else {
        await this.readBlock(h, `metaindex entry ${name}`, undefined, true);
      }
      n++;
    }
    return n;
  }
}

/**
 * Reads one block and its 5-byte trailer, verifies the checksum, and
 * decompresses it (`raw` skips decompression, for filter blocks).
 */
export async function readBlock(file: RandomAccessFile, footer: Footer, handle: BlockHandle, what: string, window?: Window, raw = false): Promise<Buffer> {
  const o = origin(file, handle, what);
  if (handle.offset + handle.size + 5 > file.size) {
    throw new KspError('ROCKSDB_CORRUPT', `${file.name}: ${what} at ${handle.offset} (${handle.size} bytes + trailer) runs past the end of the ${file.size}-byte file`, {
      file: file.name, offset: handle.offset, expected: `<= ${file.size}`, found: handle.offset + handle.size + 5,
    });
  }
  const bytes = window ? await window.get(handle.offset, handle.size + 5) : await file.read(handle.offset, handle.size + 5);
  const data = bytes.subarray(0, handle.size);
  const type = bytes[handle.size]!;
  if (footer.checksumType !== 0) {
    const stored = bytes.readUInt32LE(handle.size + 1);
    const computed = (builtinChecksum(footer.checksumType, data, type) + contextModifier(footer.baseContextChecksum, handle.offset)) >>> 0;
    if (stored !== computed && !(what === 'properties block' && globalSeqnoRewritten(data, type, stored, footer, handle, o))) {
      throw new KspError('ROCKSDB_CHECKSUM', `${file.name}: ${what} at offset ${handle.offset}: block checksum mismatch (${CHECKSUM_NAMES[footer.checksumType]})`, {
        file: file.name, offset: handle.offset, block: what, expected: stored.toString(16).padStart(8, '0'), found: computed.toString(16).padStart(8, '0'),
      });
    }
  }
  if (raw) return data;
  const out = decompressBlock(type, data, o);
  // A stored (uncompressed) block is a view into the window, whose buffer the next read reuses.
  return out === data && window?.reuses ? Buffer.from(data) : out;
}

/**
 * Ingestion with write_global_seqno rewrites the global_seqno property in
 * place without updating the block checksum; RocksDB accepts the properties
 * block if its checksum matches with those 8 bytes zeroed, and so does ksp.
 */
function globalSeqnoRewritten(data: Buffer, type: number, stored: number, footer: Footer, handle: BlockHandle, o: Origin): boolean {
  if (type !== 0) return false;
  let block;
  try {
    block = decodeBlock(data, o);
  } catch {
    return false;
  }
  const i = block.keys.findIndex((k) => k.toString('latin1') === 'rocksdb.external_sst_file.global_seqno');
  const v = i < 0 ? undefined : block.values[i]!;
  if (!v || v.length !== 8) return false;
  const copy = Buffer.from(data);
  copy.fill(0, v.byteOffset - data.byteOffset, v.byteOffset - data.byteOffset + 8);
  return ((builtinChecksum(footer.checksumType, copy, type) + contextModifier(footer.baseContextChecksum, handle.offset)) >>> 0) === stored;
}

function origin(file: RandomAccessFile, h: BlockHandle, what: string): Origin {
  return { file: file.name, base: h.offset, what: `${what} at ${h.offset}` };
}

function compressionName(prop: string | null): string {
  if (prop === null) return 'unknown';
  // format_version 7 writes "<manager>;<types hex>;"; earlier versions a name.
  const v7 = /^[^;]*;([0-9a-fA-F]*);$/.exec(prop);
  if (v7) {
    const t = v7[1]!;
    if (t === '') return 'none';
    const names = (t.match(/../g) ?? []).map((x) => COMPRESSION_NAMES[parseInt(x, 16)] ?? `0x${x}`);
    return [...new Set(names)].join(',');
  }
  return prop === 'NoCompression' ? 'none' : prop.toLowerCase();
}
