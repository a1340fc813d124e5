import { constants as fsConstants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { KspError } from '../errors.js';
import { LocalStorage } from '../storage/local.js';
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
  /**
   * Reads exactly `length` bytes at `offset` into `into` (local files): lets
   * a forward scan reuse one read-ahead buffer instead of leaving a fresh
   * one per read for the GC, which lifts RSS by the size of the file.
   */
  readInto?(offset: number, length: number, into: Buffer): Promise<void>;
}

export function fileAt(location: Location, size: number): RandomAccessFile {
  const name = uriOf(location);
  const bounds = (offset: number, length: number): void => {
    if (offset < 0 || length < 0 || offset + length > size) {
      throw new KspError('ROCKSDB_CORRUPT', `${name}: a read of ${length} bytes at ${offset} runs past the end of the ${size}-byte file`, { file: name, offset, expected: `<= ${size}`, found: offset + length });
    }
  };
  const storage = location.storage;
  const readInto = storage instanceof LocalStorage
    ? async (offset: number, length: number, into: Buffer): Promise<void> => {
      bounds(offset, length);
      const path = storage.pathOf(location.key);
      let fh: fsp.FileHandle | undefined;
      let n = 0;
      try {
        // O_NONBLOCK and the regular-file check as LocalStorage.read: a FIFO swapped in must not block.
        fh = await fsp.open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
        if (!(await fh.stat()).isFile()) throw new Error('not a regular file');
        while (n < length) {
          const { bytesRead } = await fh.read(into, n, length - n, offset + n);
          if (bytesRead === 0) break;
          n += bytesRead;
        }
      } catch (e) {
        throw new KspError('STORAGE_IO', `${name}: read of ${length} bytes at ${offset} failed: ${(e as Error).message}`, { file: name, offset }, { cause: e });
      } finally {
        await fh?.close();
      }
      if (n !== length) throw new KspError('STORAGE_IO', `${name}: read ${n} bytes at ${offset}, expected ${length} (the file changed while being read?)`, { file: name, offset, expected: length, found: n });
    }
    : undefined;
  return {
    name,
    size,
    ...(readInto ? { readInto } : {}),
    async read(offset: number, length: number): Promise<Buffer> {
      bounds(offset, length);
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

  /** The reused read-ahead buffer (files with `readInto`). */
  private spare: Buffer | null = null;

  /**
   * True when the window's bytes are overwritten by the next read: a caller
   * must copy what it keeps (readBlock copies an uncompressed block).
   */
  get reuses(): boolean {
    return this.file.readInto !== undefined;
  }

  async get(offset: number, length: number): Promise<Buffer> {
    if (offset >= this.start && offset + length <= this.start + this.bytes.length) {
      return this.bytes.subarray(offset - this.start, offset - this.start + length);
    }
    const want = Math.max(length, Math.min(this.windowSize, Math.max(this.limit, offset + length) - offset));
    const n = Math.min(want, this.file.size - offset);
    if (this.file.readInto && n >= 0) {
      if (!this.spare || this.spare.length < n) this.spare = Buffer.allocUnsafe(Math.max(n, this.windowSize));
      this.bytes = this.spare.subarray(0, 0);
      await this.file.readInto(offset, n, this.spare);
      this.bytes = this.spare.subarray(0, n);
    } else {
      this.bytes = await this.file.read(offset, n);
    }
    this.start = offset;
    if (this.bytes.length < length) return this.file.read(offset, length); // reports the overrun
    return this.bytes.subarray(0, length);
  }
}
