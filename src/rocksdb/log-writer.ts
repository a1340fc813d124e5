import { crc32c, maskCrc } from './checksum.js';
import { LOG_BLOCK, LOG_HEADER as HEADER, RecordType } from './log-reader.js';

/**
 * The log format (FORMAT.md §4.1), write side: each logical record becomes
 * physical records inside 32 KiB blocks — FULL when it fits, else FIRST,
 * MIDDLE…, LAST — each with a 7-byte header (masked CRC32C of type byte and
 * payload, length, type). A block tail too short for a header is zero-filled,
 * as RocksDB's reader expects. Checksums must be loaded (`loadChecksums`).
 */

export function encodeLog(records: Uint8Array[]): Buffer {
  const parts: Buffer[] = [];
  let inBlock = 0;
  const type = Buffer.alloc(1);
  for (const record of records) {
    let pos = 0;
    let first = true;
    do {
      const left = LOG_BLOCK - inBlock;
      if (left < HEADER) {
        parts.push(Buffer.alloc(left));
        inBlock = 0;
      }
      const room = LOG_BLOCK - inBlock - HEADER;
      const n = Math.min(room, record.length - pos);
      const last = pos + n === record.length;
      type[0] = first && last ? RecordType.Full : first ? RecordType.First : last ? RecordType.Last : RecordType.Middle;
      const payload = record.subarray(pos, pos + n);
      const header = Buffer.alloc(HEADER);
      header.writeUInt32LE(maskCrc(crc32c(type, payload)), 0);
      header.writeUInt16LE(n, 4);
      header[6] = type[0];
      parts.push(header, Buffer.from(payload));
      inBlock += HEADER + n;
      pos += n;
      first = false;
    } while (pos < record.length);
  }
  return Buffer.concat(parts);
}
