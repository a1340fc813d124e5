import { Cursor, type Origin } from './coding.js';
import type { Block } from './block.js';

/**
 * The properties block (FORMAT.md §2.5): sorted name → value pairs. Numeric
 * properties are varint64, a few are fixed-width, the rest strings. Only the
 * ones that change how the table is read are decoded; the raw map is kept
 * for `inspect`.
 */

export interface TableProperties {
  comparator: string | null;
  compression: string | null;
  numEntries: number;
  numDataBlocks: number;
  dataSize: number;
  rawKeySize: number;
  rawValueSize: number;
  mergeOperands: number;
  /** `rocksdb.deleted.keys`: deletion entries (point and single deletes). */
  deletedKeys: number;
  rangeDeletions: number;
  columnFamilyName: string | null;
  /** `rocksdb.block.based.table.index.type`: 0 binary search, 1 hash, 2 two-level, 3 with first key. */
  indexType: number;
  indexKeyIsUserKey: boolean;
  indexValueIsDeltaEncoded: boolean;
  /** `rocksdb.external_sst_file.version`, 0 when absent. */
  externalVersion: number;
  /** `rocksdb.external_sst_file.global_seqno`, null when absent. */
  globalSeqno: bigint | null;
  filterPolicy: string | null;
  raw: Map<string, Buffer>;
}

export function parseProperties(block: Block, origin: Origin): TableProperties {
  const raw = new Map<string, Buffer>();
  block.keys.forEach((k, i) => raw.set(k.toString('latin1'), block.values[i]!));
  const num = (name: string): number => {
    const v = raw.get(name);
    return v ? new Cursor(v, { ...origin, what: `${origin.what}, property ${name}` }).varint64() : 0;
  };
  const str = (name: string): string | null => raw.get(name)?.toString('utf8') ?? null;
  const fixed32 = (name: string): number => {
    const v = raw.get(name);
    return v ? new Cursor(v, { ...origin, what: `${origin.what}, property ${name}` }).fixed32() : 0;
  };
  const gs = raw.get('rocksdb.external_sst_file.global_seqno');
  return {
    comparator: str('rocksdb.comparator'),
    compression: str('rocksdb.compression'),
    numEntries: num('rocksdb.num.entries'),
    numDataBlocks: num('rocksdb.num.data.blocks'),
    dataSize: num('rocksdb.data.size'),
    rawKeySize: num('rocksdb.raw.key.size'),
    rawValueSize: num('rocksdb.raw.value.size'),
    mergeOperands: num('rocksdb.merge.operands'),
    deletedKeys: num('rocksdb.deleted.keys'),
    rangeDeletions: num('rocksdb.num.range-deletions'),
    columnFamilyName: str('rocksdb.column.family.name'),
    indexType: fixed32('rocksdb.block.based.table.index.type'),
    indexKeyIsUserKey: num('rocksdb.index.key.is.user.key') === 1,
    indexValueIsDeltaEncoded: num('rocksdb.index.value.is.delta.encoded') === 1,
    externalVersion: fixed32('rocksdb.external_sst_file.version'),
    globalSeqno: gs ? new Cursor(gs, { ...origin, what: `${origin.what}, property rocksdb.external_sst_file.global_seqno` }).fixed64() : null,
    filterPolicy: str('rocksdb.filter.policy'),
    raw,
  };
}
