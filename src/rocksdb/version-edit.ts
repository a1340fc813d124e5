import { Cursor, putVarint, type Origin } from './coding.js';
import { KspError } from '../errors.js';

/**
 * One MANIFEST record: a VersionEdit (FORMAT.md §4.3–4.4), a list of tagged
 * fields in any order. Tags with bit 13 set are length-prefixed and safe to
 * skip; any other unknown tag is corruption, as in RocksDB.
 */

export interface FileMeta {
  level: number;
  number: number;
  size: number;
  smallest: Buffer;
  largest: Buffer;
  smallestSeqno: bigint;
  largestSeqno: bigint;
}

export interface VersionEdit {
  columnFamily: number;
  comparator?: string;
  logNumber?: number;
  prevLogNumber?: number;
  nextFileNumber?: number;
  lastSequence?: bigint;
  minLogNumberToKeep?: number;
  maxColumnFamily?: number;
  addColumnFamily?: string;
  dropColumnFamily?: boolean;
  deleted: Array<{ level: number; number: number }>;
  added: FileMeta[];
  blobFiles: number;
  /** kInAtomicGroup: edits remaining in this group after this one. */
  atomicGroupRemaining?: number;
  dbId?: string;
}

const SAFE_IGNORE = 1 << 13;
const CUSTOM_NON_SAFE = 1 << 6;

export function decodeVersionEdit(payload: Buffer, origin: Origin): VersionEdit {
  const c = new Cursor(payload, origin);
  const e: VersionEdit = { columnFamily: 0, deleted: [], added: [], blobFiles: 0 };
  while (!c.done) {
    const tagAt = c.pos;
    const tag = c.varint32();
    switch (tag) {
      case 1: e.comparator = c.varstring().toString('utf8'); break;
      case 2: e.logNumber = c.varint64(); break;
      case 3: e.nextFileNumber = c.varint64(); break;
      case 4: e.lastSequence = c.varint64Big(); break;
      case 5: c.varint32(); c.varstring(); break; // compaction cursor
      case 6: e.deleted.push({ level: c.varint32(), number: c.varint64() }); break;
      case 7: e.added.push(newFile(c, tag)); break;
      case 9: e.prevLogNumber = c.varint64(); break;
      case 10: e.minLogNumberToKeep = c.varint64(); break;
      case 100: case 102: case 103: {
        const f = newFile(c, tag);
        e.added.push(f);
        if (tag === 103) customFields(c, e);
        break;
      }
      case 200: e.columnFamily = c.varint32(); break;
      case 201: e.addColumnFamily = c.varstring().toString('utf8'); break;
      case 202: e.dropColumnFamily = true; break;
      case 203: e.maxColumnFamily = c.varint32(); break;
      case 300: e.atomicGroupRemaining = c.varint32(); break;
      case 400: case 8194: blobAddition(c); e.blobFiles++; break;
      case 401: case 8195: blobGarbage(c); break;
      case 8193: e.dbId = c.varstring().toString('utf8'); break;
      case 8196: walAddition(c); break;
      case 8197: c.varint64(); break; // WalDeletion: log number
      default:
        if (tag & SAFE_IGNORE) {
          c.varstring();
          break;
        }
        c.pos = tagAt;
        throw new KspError('ROCKSDB_CORRUPT', `${origin.file}: ${origin.what}: unknown VersionEdit tag ${tag}`, { file: origin.file, offset: origin.base + tagAt, found: tag });
    }
  }
  return e;
}

function newFile(c: Cursor, tag: number): FileMeta {
  const level = c.varint32();
  const number = c.varint64();
  if (tag === 102) c.varint32(); // path id
  const size = c.varint64();
  const smallest = Buffer.from(c.varstring());
  const largest = Buffer.from(c.varstring());
  let smallestSeqno = 0n;
  let largestSeqno = 0n;
  if (tag !== 7) {
    smallestSeqno = c.varint64Big();
    largestSeqno = c.varint64Big();
  }
  return { level, number, size, smallest, largest, smallestSeqno, largestSeqno };
}

function customFields(c: Cursor, e: VersionEdit): void {
  for (;;) {
    const at = c.pos;
    const tag = c.varint32();
    if (tag === 1) return;
    const field = c.varstring();
    if (tag === 3 && field.length === 8) {
      const v = Number(field.readBigUInt64LE(0));
      e.minLogNumberToKeep = Math.max(e.minLogNumberToKeep ?? 0, v);
    } else if (tag === 65) {
      if (field[0] !== 0) throw c.fail(`file on db_paths[${field[0]}]; only the main path is supported`);
    } else if (tag & CUSTOM_NON_SAFE) {
      c.pos = at;
      throw c.fail(`unknown non-ignorable NewFile4 field ${tag}`, { found: tag });
    }
  }
}

function customToEnd(c: Cursor): void {
  for (;;) {
    const tag = c.varint32();
    if (tag === 1) return;
    c.varstring();
  }
}

function blobAddition(c: Cursor): void {
  c.varint64(); c.varint64(); c.varint64(); c.varstring(); c.varstring();
  customToEnd(c);
}

function blobGarbage(c: Cursor): void {
  c.varint64(); c.varint64(); c.varint64();
  customToEnd(c);
}

function walAddition(c: Cursor): void {
  c.varint64();
  for (;;) {
    const tag = c.varint32();
    if (tag === 1) return;
    if (tag === 2) c.varint64();
    else throw c.fail(`unknown WalAddition field ${tag}`);
  }
}

/**
 * Encodes the fields a new database needs (FORMAT.md §4.7): comparator, log
 * number, next file number, last sequence, and each added file as kNewFile4
 * with no custom fields, all in the default column family.
 */
export function encodeVersionEdit(e: Pick<VersionEdit, 'comparator' | 'logNumber' | 'nextFileNumber' | 'lastSequence' | 'added'>): Buffer {
  const p: number[] = [];
  const str = (b: Uint8Array): void => {
    putVarint(p, b.length);
    for (const x of b) p.push(x);
  };
  if (e.comparator !== undefined) {
    putVarint(p, 1);
    str(Buffer.from(e.comparator));
  }
  if (e.logNumber !== undefined) { putVarint(p, 2); putVarint(p, e.logNumber); }
  if (e.nextFileNumber !== undefined) { putVarint(p, 3); putVarint(p, e.nextFileNumber); }
  if (e.lastSequence !== undefined) { putVarint(p, 4); putVarint(p, e.lastSequence); }
  for (const f of e.added) {
    putVarint(p, 103);
    putVarint(p, f.level);
    putVarint(p, f.number);
    putVarint(p, f.size);
    str(f.smallest);
    str(f.largest);
    putVarint(p, f.smallestSeqno);
    putVarint(p, f.largestSeqno);
    putVarint(p, 1); // kTerminate: no custom fields (no unique id: RocksDB then skips that check)
  }
  return Buffer.from(p);
}
