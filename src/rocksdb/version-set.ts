import { KspError } from '../errors.js';
import type { RandomAccessFile } from './file.js';
import { readLog } from './log-reader.js';
import { decodeVersionEdit, type FileMeta, type VersionEdit } from './version-edit.js';

/**
 * Replays a MANIFEST into the live state of the database (FORMAT.md §4.5):
 * per column family its live files by level and its log number, plus the
 * database-wide next file number, last sequence and minimum log to keep.
 */

export interface ColumnFamily {
  id: number;
  name: string;
  comparator: string | null;
  logNumber: number;
  /** Live files, keyed by file number. */
  files: Map<number, FileMeta>;
  blobFiles: number;
}

export interface VersionState {
  manifest: string;
  columnFamilies: Map<number, ColumnFamily>;
  nextFileNumber: number;
  lastSequence: bigint;
  minLogNumberToKeep: number;
  prevLogNumber: number;
  dbId: string | null;
  edits: number;
}

export async function replayManifest(file: RandomAccessFile): Promise<VersionState> {
  const cfs = new Map<number, ColumnFamily>([[0, { id: 0, name: 'default', comparator: null, logNumber: 0, files: new Map(), blobFiles: 0 }]]);
  const st: VersionState = { manifest: file.name, columnFamilies: cfs, nextFileNumber: 0, lastSequence: 0n, minLogNumberToKeep: 0, prevLogNumber: 0, dbId: null, edits: 0 };
  let seenLog = false;
  let seenNext = false;
  let seenLast = false;
  let group: Array<{ edit: VersionEdit; offset: number }> = [];
  let remaining = -1;

  const fail = (offset: number, message: string): KspError =>
    new KspError('ROCKSDB_CORRUPT', `${file.name}: VersionEdit at offset ${offset}: ${message}`, { file: file.name, offset });

  const apply = (edit: VersionEdit, offset: number): void => {
    st.edits++;
    if (edit.addColumnFamily !== undefined) {
      if (cfs.has(edit.columnFamily)) throw fail(offset, `adds column family ${edit.columnFamily} (${edit.addColumnFamily}), which exists`);
      cfs.set(edit.columnFamily, { id: edit.columnFamily, name: edit.addColumnFamily, comparator: null, logNumber: 0, files: new Map(), blobFiles: 0 });
    }
    const cf = cfs.get(edit.columnFamily);
    if (edit.dropColumnFamily) {
      cfs.delete(edit.columnFamily);
      return;
    }
    if (!cf) {
      if (edit.added.length || edit.deleted.length) throw fail(offset, `changes files of column family ${edit.columnFamily}, which does not exist`);
      return;
    }
    if (edit.comparator !== undefined) cf.comparator = edit.comparator;
    if (edit.logNumber !== undefined) {
      seenLog = true;
      if (edit.logNumber > cf.logNumber) cf.logNumber = edit.logNumber;
    }
    for (const d of edit.deleted) {
      const f = cf.files.get(d.number);
      if (!f || f.level !== d.level) throw fail(offset, `deletes table file #${d.number} from level ${d.level}, where it is not`);
      cf.files.delete(d.number);
    }
    for (const a of edit.added) {
      if (cf.files.has(a.number)) throw fail(offset, `adds table file #${a.number} to level ${a.level}, but it is already live`);
      cf.files.set(a.number, a);
    }
    cf.blobFiles += edit.blobFiles;
    if (edit.nextFileNumber !== undefined) { seenNext = true; st.nextFileNumber = edit.nextFileNumber; }
    if (edit.lastSequence !== undefined) { seenLast = true; st.lastSequence = edit.lastSequence; }
    if (edit.prevLogNumber !== undefined) st.prevLogNumber = edit.prevLogNumber;
    if (edit.minLogNumberToKeep !== undefined) st.minLogNumberToKeep = Math.max(st.minLogNumberToKeep, edit.minLogNumberToKeep);
    if (edit.dbId !== undefined) st.dbId = edit.dbId;
  };

  for await (const rec of readLog(file, { maxRecord: 64 * 1024 * 1024 })) {
    const edit = decodeVersionEdit(rec.payload, { file: file.name, base: rec.offset, what: `VersionEdit at offset ${rec.offset}` });
    if (edit.atomicGroupRemaining !== undefined) {
      if (remaining < 0) remaining = edit.atomicGroupRemaining;
      else if (edit.atomicGroupRemaining !== remaining - 1) throw fail(rec.offset, 'atomic group count out of order');
      else remaining = edit.atomicGroupRemaining;
      group.push({ edit, offset: rec.offset });
      if (remaining === 0) {
        for (const g of group) apply(g.edit, g.offset);
        group = [];
        remaining = -1;
      }
      continue;
    }
    if (remaining >= 0) throw fail(rec.offset, 'an edit outside an atomic group interrupts one');
    apply(edit, rec.offset);
  }
  // An unfinished atomic group at the end is dropped, as RocksDB does.
  if (!seenLog || !seenNext || !seenLast) {
    throw new KspError('ROCKSDB_CORRUPT', `${file.name}: no ${[!seenLog && 'log_number', !seenNext && 'next_file_number', !seenLast && 'last_sequence'].filter(Boolean).join(', ')} entry in the MANIFEST`, { file: file.name });
  }
  return st;
}
