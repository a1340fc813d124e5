import { KspError } from '../errors.js';
import { builtinChecksum, CHECKSUM_NAMES, contextModifier, loadChecksums } from './checksum.js';
import { Cursor, type Origin } from './coding.js';
import { readHandle, type BlockHandle } from './block.js';
import type { RandomAccessFile } from './file.js';

/**
 * The SST footer (FORMAT.md §1.3): the legacy 48-byte LevelDB footer, the
 * 53-byte footer of format_version 1–5, and the format_version ≥ 6 footer with
 * its own checksum and the base of the context-dependent block checksums.
 */

export const MAGIC = 0x88e241b785f4cff7n;
export const LEGACY_MAGIC = 0xdb4775248b80fb57n;
const OTHER_TABLES: Record<string, string> = {
  '8242229663bf9564': 'PlainTable', '4f3418eb7a8f13b8': 'PlainTable (legacy)', '926789d0c5f17873': 'CuckooTable',
};
export const FOOTER_SIZE = 53;
export const LEGACY_FOOTER_SIZE = 48;
const EXTENDED_MAGIC = Buffer.from([0x3e, 0x00, 0x7a, 0x00]);

export interface Footer {
  formatVersion: number;
  checksumType: number;
  metaindex: BlockHandle;
  /** Absent for format_version ≥ 6 (it is the metaindex entry `rocksdb.index`). */
  index: BlockHandle | null;
  /** format_version ≥ 6; 0 otherwise. */
  baseContextChecksum: number;
  legacy: boolean;
}

export async function readFooter(file: RandomAccessFile): Promise<Footer> {
  if (file.size < LEGACY_FOOTER_SIZE) {
    throw new KspError('ROCKSDB_CORRUPT', `${file.name}: ${file.size} bytes is too short for an SST (its footer alone is 48 or 53 bytes)`, { file: file.name, offset: 0, expected: '>= 48 bytes', found: file.size });
  }
  const n = Math.min(FOOTER_SIZE, file.size);
  const base = file.size - n;
  const tail = await file.read(base, n);
  const magic = tail.readBigUInt64LE(n - 8);
  const origin = (at: number, what = 'footer'): Origin => ({ file: file.name, base: base + at, what });

  if (magic === LEGACY_MAGIC) {
    const c = new Cursor(tail, origin(n - LEGACY_FOOTER_SIZE), n - LEGACY_FOOTER_SIZE, n - 8);
    return { formatVersion: 0, checksumType: 1, metaindex: readHandle(c), index: readHandle(c), baseContextChecksum: 0, legacy: true };
  }
  if (magic !== MAGIC) {
    const other = OTHER_TABLES[magic.toString(16).padStart(16, '0')];
    if (other) throw new KspError('ROCKSDB_UNSUPPORTED', `${file.name}: a RocksDB ${other} file; only block-based tables are supported`, { file: file.name });
    throw new KspError('ROCKSDB_CORRUPT', `${file.name}: not an SST: the last 8 bytes are not a block-based table magic number`, {
      file: file.name, offset: file.size - 8, expected: MAGIC.toString(16), found: magic.toString(16).padStart(16, '0'),
    });
  }
  if (n < FOOTER_SIZE) throw new KspError('ROCKSDB_CORRUPT', `${file.name}: too short for a 53-byte footer`, { file: file.name, offset: 0 });
  const checksumType = tail[0]!;
  const formatVersion = tail.readUInt32LE(41);
  if (checksumType > 4) {
    throw new KspError('ROCKSDB_CORRUPT', `${file.name}: footer: checksum type ${checksumType} is not one RocksDB defines (0–4)`, { file: file.name, offset: base, expected: '0..4', found: checksumType });
  }
  if (formatVersion < 1 || formatVersion > 7) {
    throw new KspError('ROCKSDB_UNSUPPORTED', `${file.name}: footer: format_version ${formatVersion} (supported: 1–7)`, { file: file.name, offset: base + 41, expected: '1..7', found: formatVersion });
  }
  if (formatVersion < 6) {
    const c = new Cursor(tail, origin(0), 1, 41);
    return { formatVersion, checksumType, metaindex: readHandle(c), index: readHandle(c), baseContextChecksum: 0, legacy: false };
  }
  if (!tail.subarray(1, 5).equals(EXTENDED_MAGIC)) {
    throw new KspError('ROCKSDB_CORRUPT', `${file.name}: footer: format_version ${formatVersion} footer lacks its extended magic`, { file: file.name, offset: base + 1, expected: EXTENDED_MAGIC.toString('hex'), found: tail.subarray(1, 5).toString('hex') });
  }
  const stored = tail.readUInt32LE(5);
  const baseContextChecksum = tail.readUInt32LE(9);
  const metaindexSize = tail.readUInt32LE(13);
  if (tail.readBigUInt64LE(33) !== 0n) {
    throw new KspError('ROCKSDB_UNSUPPORTED', `${file.name}: footer: uses a future RocksDB feature (reserved bytes are set)`, { file: file.name, offset: base + 33 });
  }
  const copy = Buffer.from(tail);
  copy.writeUInt32LE(0, 5);
  await loadChecksums([checksumType]);
  const computed = (builtinChecksum(checksumType, copy.subarray(0, FOOTER_SIZE - 1), copy[FOOTER_SIZE - 1]!) + contextModifier(baseContextChecksum, base)) >>> 0;
  if (checksumType !== 0 && computed !== stored) {
    throw new KspError('ROCKSDB_CHECKSUM', `${file.name}: footer checksum mismatch (${CHECKSUM_NAMES[checksumType]})`, {
      file: file.name, offset: base, expected: stored.toString(16).padStart(8, '0'), found: computed.toString(16).padStart(8, '0'),
    });
  }
  const metaOffset = base - 5 - metaindexSize;
  if (metaOffset < 0) throw new KspError('ROCKSDB_CORRUPT', `${file.name}: footer: metaindex of ${metaindexSize} bytes does not fit before the footer`, { file: file.name, offset: base + 13, found: metaindexSize });
  return { formatVersion, checksumType, metaindex: { offset: metaOffset, size: metaindexSize }, index: null, baseContextChecksum, legacy: false };
}
