import { KspError } from '../errors.js';

/**
 * Internal keys (FORMAT.md §3): user key ‖ fixed64 LE of (sequence << 8 | type).
 *
 * The 64-bit trailer is kept as two unsigned 32-bit halves, `hi` and `lo`, so
 * ordering and sequence numbers up to 2^56 − 1 stay exact without BigInt on
 * the per-entry path. `lo & 0xff` is the value type.
 */

export const enum ValueType {
  Deletion = 0x00,
  Value = 0x01,
  Merge = 0x02,
  SingleDeletion = 0x07,
  RangeDeletion = 0x0f,
  BlobIndex = 0x11,
  DeletionWithTimestamp = 0x14,
  WideColumnEntity = 0x16,
  ValuePreferredSeqno = 0x18,
}

export const VALUE_TYPE_NAMES: Record<number, string> = {
  0x00: 'deletion', 0x01: 'value', 0x02: 'merge operand', 0x07: 'single deletion', 0x0f: 'range deletion',
  0x11: 'blob index (BlobDB)', 0x14: 'deletion with timestamp', 0x16: 'wide-column entity', 0x18: 'value with preferred seqno',
};

/** One version of one user key, as read from an SST or replayed from a WAL. */
export interface InternalEntry {
  userKey: Buffer;
  /** Trailer bits 32–63 (sequence bits 24–55). */
  hi: number;
  /** Trailer bits 0–31 (sequence bits 0–23 above the type byte). */
  lo: number;
  value: Buffer;
}




/** Trailer halves for a sequence number and type. */
export function pack(seq: bigint, type: number): { hi: number; lo: number } {
  const t = (seq << 8n) | BigInt(type);
  return { hi: Number(t >> 32n), lo: Number(t & 0xffff_ffffn) };
}

/** Splits an internal key; `where` names it in errors. */
export function splitInternalKey(ikey: Buffer, where: () => { file: string; offset: number; what: string }): InternalEntry {
  if (ikey.length < 8) {
    const w = where();
    throw new KspError('ROCKSDB_CORRUPT', `${w.file}: ${w.what}: internal key of ${ikey.length} bytes is shorter than its 8-byte trailer`, { file: w.file, offset: w.offset });
  }
  const n = ikey.length - 8;
  return { userKey: ikey.subarray(0, n), lo: ikey.readUInt32LE(n), hi: ikey.readUInt32LE(n + 4), value: EMPTY };
}

/** Internal-key order: user key ascending (bytewise), then trailer descending (newest first). */
export function compareInternal(a: InternalEntry, b: InternalEntry): number {
  const c = Buffer.compare(a.userKey, b.userKey);
  if (c !== 0) return c;
  if (a.hi !== b.hi) return b.hi - a.hi;
  return b.lo - a.lo;
}

/** Sequence of a (newer than b)? Compares the 56-bit sequences only. */
export function seqGreater(a: { hi: number; lo: number }, b: { hi: number; lo: number }): boolean {
  if (a.hi !== b.hi) return a.hi > b.hi;
  return a.lo >>> 8 > b.lo >>> 8;
}

const EMPTY = Buffer.alloc(0);
