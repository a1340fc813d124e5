import { toAsyncChunks } from '../storage/storage.js';
import { ChecksumType, loadChecksums } from './checksum.js';
import { sstName } from './db.js';
import { encodeLog } from './log-writer.js';
import { TableWriter, type TableInfo, type TableOptions } from './table-writer.js';
import { encodeVersionEdit, type FileMeta } from './version-edit.js';

/**
 * A whole RocksDB database directory from sorted entries (FORMAT.md §6):
 * SST files of about `targetFileSize` each, written one after the other as
 * streams, then a MANIFEST naming them all at the bottom level and CURRENT.
 *
 * The result is what RocksDB itself leaves after a full compaction into the
 * last level: one sorted run of non-overlapping files, every key at sequence
 * 0. No WAL (log number 0), no OPTIONS file (RocksDB does not need one, and
 * one written for the wrong version breaks older readers), no IDENTITY
 * (RocksDB creates it on first open).
 *
 * Numbering: tables are 000002.sst upward, the MANIFEST takes the next number
 * and `next_file_number` is one above it — RocksDB deletes, on a read-write
 * open, any table numbered at or above `next_file_number`.
 */

export interface KeyValue {
  key: Uint8Array;
  value: Uint8Array;
}

export interface DbWriteOptions extends Omit<TableOptions, 'fileNumber'> {
  /** Start a new table once one reaches this many bytes. */
  targetFileSize: number;
  /**
   * Number of the first table (default 2). Writers into a folder shared with
   * other databases (the engine's `incr/{op}/{task}/sst/`) start above every
   * table already there, so no existing file is ever replaced.
   */
  firstFileNumber?: number;
}

export interface WrittenDbFile {
  name: string;
  kind: 'sst' | 'meta';
  size: number;
  sha256: string;
}

/** Stores one file of the database; resolves once it is durable. */
export type DbFileSink = (name: string, kind: 'sst' | 'meta', data: AsyncIterable<Uint8Array>) => Promise<{ size: number; sha256: string }>;

export interface WrittenDb {
  files: WrittenDbFile[];
  entries: number;
  tables: number;
}

const FIRST_TABLE = 2;
/** RocksDB's default number of levels is 7: the bottom level is 6. */
const BOTTOM_LEVEL = 6;

export async function writeDb(entries: AsyncIterable<KeyValue[]>, options: DbWriteOptions, sink: DbFileSink): Promise<WrittenDb> {
  await loadChecksums([ChecksumType.CRC32c, options.checksum]);
  const it = entries[Symbol.asyncIterator]();
  let batch: KeyValue[] = [];
  let pos = 0;
  let exhausted = false;
  const refill = async (): Promise<boolean> => {
    while (pos >= batch.length) {
      if (exhausted) return false;
      const r = await it.next();
      if (r.done) {
        exhausted = true;
        return false;
      }
      batch = r.value;
      pos = 0;
    }
    return true;
  };

  const files: WrittenDbFile[] = [];
  const metas: FileMeta[] = [];
  let number = Math.max(FIRST_TABLE, options.firstFileNumber ?? FIRST_TABLE);
  let total = 0;
  let previousLast: Buffer | null = null;
  while (await refill()) {
    const table = await TableWriter.create({ ...options, fileNumber: number });
    let info: TableInfo | null = null;
    async function* bytes(): AsyncGenerator<Uint8Array> {
      fill: for (;;) {
        while (pos < batch.length) {
          const e = batch[pos++]!;
          table.add(e.key, e.value);
          if (table.busy) await table.settle();
          const ready = table.take();
          if (ready.length) yield Buffer.concat(ready);
          if (table.size >= options.targetFileSize) break fill;
        }
        if (!(await refill())) break;
      }
      info = await table.finish();
      yield Buffer.concat(table.take(true));
    }
    const name = sstName(number);
    const r = await sink(name, 'sst', bytes());
    const t = info as TableInfo | null;
    if (!t) throw new Error(`${name}: the table was not finished`);
    if (r.size !== t.size) throw new Error(`${name}: stored ${r.size} bytes, the table has ${t.size}`);
    // Tables must not overlap: the first key of each follows the last of the one before.
    if (previousLast && Buffer.compare(t.smallest, previousLast) <= 0) throw new Error(`${name}: overlaps the table before it`);
    previousLast = t.largest;
    files.push({ name, kind: 'sst', size: r.size, sha256: r.sha256 });
    metas.push({ level: BOTTOM_LEVEL, number, size: t.size, smallest: t.smallest, largest: t.largest, smallestSeqno: 0n, largestSeqno: 0n });
    total += t.entries;
    number++;
  }

  const manifestName = `MANIFEST-${String(number).padStart(6, '0')}`;
  const manifest = encodeManifest(metas, number + 1);
  const m = await sink(manifestName, 'meta', toAsyncChunks(manifest));
  files.push({ name: manifestName, kind: 'meta', size: m.size, sha256: m.sha256 });
  const current = Buffer.from(`${manifestName}\n`);
  const c = await sink('CURRENT', 'meta', toAsyncChunks(current));
  files.push({ name: 'CURRENT', kind: 'meta', size: c.size, sha256: c.sha256 });
  return { files, entries: total, tables: metas.length };
}

/**
 * A MANIFEST of one VersionEdit: bytewise comparator, no WAL to replay, the
 * next file number, last sequence 0 (every key is at 0) and the tables.
 * Checksums must be loaded.
 */
export function encodeManifest(tables: FileMeta[], nextFileNumber: number): Buffer {
  const highest = Math.max(0, ...tables.map((t) => t.number));
  if (nextFileNumber <= highest) throw new Error(`next file number ${nextFileNumber} must exceed every table number (${highest})`);
  return encodeLog([encodeVersionEdit({ comparator: 'leveldb.BytewiseComparator', logNumber: 0, nextFileNumber, lastSequence: 0n, added: tables })]);
}

/** A whole table in memory, for small fixtures. */
export async function tableBytes(pairs: Array<[Uint8Array, Uint8Array]>, options: TableOptions): Promise<{ bytes: Buffer; info: TableInfo }> {
  const t = await TableWriter.create(options);
  for (const [k, v] of pairs) t.add(k, v);
  const info = await t.finish();
  return { bytes: Buffer.concat(t.take(true)), info };
}
