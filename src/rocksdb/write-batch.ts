import { KspError } from '../errors.js';
import { Cursor } from './coding.js';
import { ValueType, pack, type InternalEntry } from './internal-key.js';
import type { RangeTombstone } from './table.js';

/**
 * WriteBatch records replayed from a WAL (FORMAT.md §5): a 12-byte header
 * (first sequence number, record count), then tagged records. Each data
 * record, in any column family, uses one sequence number; only the default
 * column family's are kept, and only from WALs at or above its log number.
 */

export interface ReplayTarget {
  /** Collected entries of the default column family. */
  entries: InternalEntry[];
  tombstones: RangeTombstone[];
  /** Bytes of keys and values held, to enforce a cap. */
  bytes: number;
  records: number;
}

export interface BatchContext {
  file: string;
  offset: number;
  /** False when the WAL is below the default column family's log number (already flushed). */
  keep: boolean;
}

/** Entry kinds ksp cannot turn into plain values. */
const UNSUPPORTED: Record<number, string> = { 0x02: 'merge operand', 0x11: 'blob index (BlobDB)', 0x16: 'wide-column entity' };
const TWO_PHASE = new Set([0x09, 0x0a, 0x0b, 0x0c, 0x12, 0x13, 0x15]);
/** Column-family variants of the record tags: tag → value type. */
const CF_TAGS: Record<number, number> = { 0x05: 0x01, 0x04: 0x00, 0x08: 0x07, 0x0e: 0x0f, 0x06: 0x02, 0x10: 0x11, 0x17: 0x16 };
const WITH_VALUE = new Set([0x01, 0x0f, 0x02, 0x11, 0x16]);

export function replayBatch(payload: Buffer, ctx: BatchContext, into: ReplayTarget): void {
  const origin = { file: ctx.file, base: ctx.offset, what: `WriteBatch at offset ${ctx.offset}` };
  const c = new Cursor(payload, origin);
  if (payload.length < 12) throw c.fail(`WriteBatch of ${payload.length} bytes is shorter than its 12-byte header`);
  let seq = c.fixed64();
  const count = c.fixed32();
  let found = 0;
  while (!c.done) {
    const at = c.pos;
    const tag = c.u8();
    if (TWO_PHASE.has(tag)) {
      throw new KspError('ROCKSDB_UNSUPPORTED', `${ctx.file}: WriteBatch at offset ${ctx.offset}: a two-phase-commit marker (tag 0x${tag.toString(16)}); transactions in the WAL are not supported`, { file: ctx.file, offset: ctx.offset + at, found: tag });
    }
    if (tag === 0x03) { c.varstring(); continue; } // LogData: no sequence number
    if (tag === 0x0d) continue; // Noop
    let cf = 0;
    let type: number;
    if (tag in CF_TAGS) {
      cf = c.varint32();
      type = CF_TAGS[tag]!;
    } else if (tag <= 0x01 || tag === 0x07 || tag === 0x0f || tag in UNSUPPORTED) {
      type = tag;
    } else {
      c.pos = at;
      throw c.fail(`unknown WriteBatch tag 0x${tag.toString(16)}`, { found: tag });
    }
    const key = c.varstring();
    const value = WITH_VALUE.has(type) ? c.varstring() : EMPTY;
    if (cf === 0 && ctx.keep && UNSUPPORTED[type]) {
      throw new KspError('ROCKSDB_UNSUPPORTED', `${ctx.file}: WriteBatch at offset ${ctx.offset}: a ${UNSUPPORTED[type]}; ksp reads only puts and deletes`, { file: ctx.file, offset: ctx.offset + at, found: tag });
    }
    found++;
    if (cf === 0 && ctx.keep) {
      const t = pack(seq, type);
      if (type === ValueType.RangeDeletion) into.tombstones.push({ start: key, end: value, hi: t.hi, lo: t.lo });
      else into.entries.push({ userKey: key, hi: t.hi, lo: t.lo, value });
      into.bytes += key.length + value.length + 64;
    }
    seq++;
  }
  if (found !== count) {
    throw new KspError('ROCKSDB_CORRUPT', `${ctx.file}: WriteBatch at offset ${ctx.offset}: header counts ${count} records, the batch holds ${found}`, { file: ctx.file, offset: ctx.offset, expected: count, found });
  }
  into.records++;
}

const EMPTY = Buffer.alloc(0);
