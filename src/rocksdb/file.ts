import { KspError } from '../errors.js';
import { uriOf, type Location } from '../storage/uri.js';

/**
 * Ranged reads of one file of a RocksDB directory image, wherever it is
 * stored (local disk or S3). Readers ask for exact byte ranges; `Window`
 * turns the sequential stream of data-block reads into a few large reads.
 */

export interface RandomAccessFile {
  /** Printable name (URI) for errors. */
  readonly name: string;
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

export function fileAt(location: Location, size: number): RandomAccessFile {
  const name = uriOf(location);
  return {
    name,
    size,
    async read(offset: number, length: number): Promise<Buffer> {
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new KspError('ROCKSDB_CORRUPT', `${name}: a read of ${length} bytes at ${offset} runs past the end of the ${size}-byte file`, { file: name, offset, expected: `<= ${size}`, found: offset + length });
      }
      if (length === 0) return Buffer.alloc(0);
      const parts: Buffer[] = [];
      let n = 0;
      for await (const c of location.storage.read(location.key, { offset, length })) {
        parts.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
        n += c.byteLength;
      }
      if (n !== length) throw new KspError('STORAGE_IO', `${name}: read ${n} bytes at ${offset}, expected ${length} (the file changed while being read?)`, { file: name, offset, expected: length, found: n });
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts, n);
    },
  };
}

/**
 * Read-ahead for forward scans: one window of `windowSize` bytes is kept, and
 * a request outside it fetches the next window starting at the request.
 * Memory per open file is one window.
 */
export class Window {
  private start = 0;
  private bytes: Buffer = Buffer.alloc(0);

  constructor(
    private readonly file: RandomAccessFile,
    private readonly windowSize: number,
    /** Reads must stay below this offset (the end of the data blocks). */
    private readonly limit = file.size,
  ) {}

  async get(offset: number, length: number): Promise<Buffer> {
    if (offset >= this.start && offset + length <= this.start + this.bytes.length) {
      return this.bytes.subarray(offset - this.start, offset - this.start + length);
    }
    const want = Math.max(length, Math.min(this.windowSize, Math.max(this.limit, offset + length) - offset));
    this.bytes = await this.file.read(offset, Math.min(want, this.file.size - offset));
    this.start = offset;
    if (this.bytes.length < length) return this.file.read(offset, length); // reports the overrun
    return this.bytes.subarray(0, length);
  }
}
