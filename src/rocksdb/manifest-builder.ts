import { crc32c, maskCrc } from './checksum.js';
import { putVarint } from './coding.js';
import { LOG_BLOCK } from './log-reader.js';

/**
 * A MANIFEST that RocksDB opens (FORMAT.md §4.7): one VersionEdit naming the
 * comparator, log number 0, a next file number above every file, the last
 * sequence, and each table at the bottom level. For fixtures and small
 * images; it must fit one log record.
 */

export interface ManifestFile {
  number: number;
  size: number;
  smallest: Buffer;
  largest: Buffer;
}

export function buildManifest(files: ManifestFile[], manifestNumber: number, level = 6): Buffer {
  const p: number[] = [];
  const str = (b: Buffer): void => {
    putVarint(p, b.length);
    for (const x of b) p.push(x);
  };
  putVarint(p, 1);
  str(Buffer.from('leveldb.BytewiseComparator'));
  putVarint(p, 2); putVarint(p, 0);
  putVarint(p, 3); putVarint(p, Math.max(manifestNumber, ...files.map((f) => f.number)) + 1);
  putVarint(p, 4); putVarint(p, 0);
  for (const f of [...files].sort((a, b) => Buffer.compare(a.smallest, b.smallest))) {
    putVarint(p, 103);
    putVarint(p, level);
    putVarint(p, f.number);
    putVarint(p, f.size);
    str(f.smallest);
    str(f.largest);
    putVarint(p, 0); // smallest seqno
    putVarint(p, 0); // largest seqno
    putVarint(p, 1); // end of custom fields
  }
  const payload = Buffer.from(p);
  if (payload.length > LOG_BLOCK - 7) throw new Error(`MANIFEST record of ${payload.length} bytes needs splitting; buildManifest is for small images`);
  const header = Buffer.alloc(7);
  header.writeUInt16LE(payload.length, 4);
  header[6] = 1; // FULL
  header.writeUInt32LE(maskCrc(crc32c(header.subarray(6, 7), payload)), 0);
  return Buffer.concat([header, payload]);
}
