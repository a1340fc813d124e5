import { KspError } from '../errors.js';
import { crc32c, maskCrc, unmaskCrc } from './checksum.js';
import type { RandomAccessFile } from './file.js';

/**
 * The log format shared by MANIFEST and WAL files (FORMAT.md §4.1): 32 KiB
 * blocks of physical records (masked CRC32C, length, type), which join into
 * logical records (FULL, or FIRST MIDDLE* LAST). Blocks are read 32 at a
 * time (1 MiB); a logical record is assembled only up to `maxRecord` bytes.
 *
 * A record cut short by the end of the file is a torn write and ends the log
 * quietly, as RocksDB does. A checksum mismatch or an impossible length
 * anywhere else is an error naming the file and offset: ksp never drops
 * records silently.
 */

export const LOG_BLOCK = 32768;
/** Bytes read at once: 32 blocks. */
const LOG_CHUNK = 32 * LOG_BLOCK;
/** Bytes of a physical record's header: masked CRC32C, length, type. */
export const LOG_HEADER = 7;
const HEADER = LOG_HEADER;
const RECYCLABLE_HEADER = 11;

export const enum RecordType {
  Zero = 0,
  Full = 1,
  First = 2,
  Middle = 3,
  Last = 4,
  RecyclableFull = 5,
  RecyclableLast = 8,
  SetCompression = 9,
}

export interface LogRecord {
  /** File offset of the record's first physical header. */
  offset: number;
  payload: Buffer;
}

export interface LogReadOptions {
  /** Largest logical record accepted (default 256 MiB). */
  maxRecord?: number;
  /** The file's log number, to tell recycled records from current ones. */
  logNumber?: number;
}

export async function* readLog(file: RandomAccessFile, options: LogReadOptions = {}): AsyncGenerator<LogRecord> {
  const maxRecord = options.maxRecord ?? 256 * 1024 * 1024;
  let parts: Buffer[] = [];
  let partsLen = 0;
  let start = -1;
  const fail = (offset: number, message: string, code: 'ROCKSDB_CORRUPT' | 'ROCKSDB_CHECKSUM' = 'ROCKSDB_CORRUPT', extra: Record<string, unknown> = {}): KspError =>
    new KspError(code, `${file.name}: log record at offset ${offset} (block ${Math.floor(offset / LOG_BLOCK)}): ${message}`, { file: file.name, offset, block: Math.floor(offset / LOG_BLOCK), ...extra });

  // Read 32 blocks at a time: a log can hold gigabytes of preallocated zeros
  // (each block skipped after its first header, as RocksDB's
  // log::Reader::ReadPhysicalRecord does), and one read per 32 KiB block made
  // a 2 GiB sparse WAL take minutes; 1 MiB reads keep memory bounded.
  let chunk: Buffer = Buffer.alloc(0);
  let chunkStart = 0;
  for (let blockStart = 0; blockStart < file.size; blockStart += LOG_BLOCK) {
    if (blockStart >= chunkStart + chunk.length) {
      chunkStart = blockStart;
      chunk = await file.read(blockStart, Math.min(LOG_CHUNK, file.size - blockStart));
    }
    const block = chunk.subarray(blockStart - chunkStart, Math.min(blockStart - chunkStart + LOG_BLOCK, chunk.length));
    const lastBlock = blockStart + block.length >= file.size;
    let pos = 0;
    while (block.length - pos >= HEADER) {
      const at = blockStart + pos;
      const stored = block.readUInt32LE(pos);
      const len = block.readUInt16LE(pos + 4);
      const type = block[pos + 6]!;
      if (type === RecordType.Zero && len === 0) break; // preallocated, zero-filled space
      const recyclable = type >= RecordType.RecyclableFull && type <= RecordType.RecyclableLast;
      const header = recyclable ? RECYCLABLE_HEADER : HEADER;
      if (pos + header + len > block.length) {
        if (lastBlock) return; // torn write at the end of the log
        throw fail(at, `length ${len} runs past its 32 KiB block`, 'ROCKSDB_CORRUPT', { expected: `<= ${block.length - pos - header}`, found: len });
      }
      const covered = block.subarray(pos + 6, pos + header + len);
      const computed = crc32c(covered);
      if (unmaskCrc(stored) !== computed) {
        throw fail(at, 'checksum mismatch', 'ROCKSDB_CHECKSUM', { expected: stored.toString(16).padStart(8, '0'), found: maskCrc(computed).toString(16).padStart(8, '0') });
      }
      if (recyclable && options.logNumber !== undefined && block.readUInt32LE(pos + 7) !== (options.logNumber >>> 0)) return; // a recycled file's old data
      const payload = block.subarray(pos + header, pos + header + len);
      pos += header + len;
      const base = recyclable ? type - 4 : type;
      if (type === RecordType.SetCompression) {
        throw new KspError('ROCKSDB_UNSUPPORTED', `${file.name}: the WAL is compressed (wal_compression); compressed WALs are not supported`, { file: file.name, offset: at });
      }
      if (type >= 0x80) continue; // safe to ignore by RocksDB's rule (bit 7)
      switch (base) {
        case RecordType.Full:
          if (start >= 0) throw fail(at, 'a FULL record inside an unfinished FIRST…LAST record');
          yield { offset: at, payload: Buffer.from(payload) };
          break;
        case RecordType.First:
          if (start >= 0) throw fail(at, 'a FIRST record inside an unfinished FIRST…LAST record');
          start = at;
          parts = [Buffer.from(payload)];
          partsLen = payload.length;
          break;
        case RecordType.Middle:
        case RecordType.Last:
          if (start < 0) throw fail(at, `${base === RecordType.Middle ? 'MIDDLE' : 'LAST'} record without a FIRST`);
          partsLen += payload.length;
          if (partsLen > maxRecord) throw fail(start, `logical record larger than ${maxRecord} bytes`, 'ROCKSDB_CORRUPT', { expected: `<= ${maxRecord}`, found: partsLen });
          parts.push(Buffer.from(payload));
          if (base === RecordType.Last) {
            yield { offset: start, payload: Buffer.concat(parts, partsLen) };
            parts = [];
            partsLen = 0;
            start = -1;
          }
          break;
        default:
          throw fail(at, `unknown record type ${type}`, 'ROCKSDB_CORRUPT', { found: type });
      }
    }
  }
  // An unfinished FIRST… at the end of the file is a torn write: dropped, as RocksDB does.
}
