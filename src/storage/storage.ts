import { KspError } from '../errors.js';

/**
 * The one interface over bytes that everything above `storage/` uses. Keys are
 * '/'-separated, without a leading '/', relative to the storage's root (the
 * file-system root for local disk, the bucket for S3).
 */
export interface ObjectInfo {
  key: string;
  size: number;
  mtimeMs?: number;
}

export interface ReadOptions {
  /** First byte to read (default 0). */
  offset?: number;
  /** Bytes to read from `offset` (default: to the end). */
  length?: number;
  /**
   * The object's size, when the caller knows it (from a stat): lets S3 read
   * a large object as ranged GETs in parallel, without a HEAD first.
   */
  size?: number;
}

export interface ListEntry {
  /** A file (`key`, `size`) or, with `delimiter`, a sub-folder (`prefix`, no size). */
  key: string;
  size?: number;
  mtimeMs?: number;
  isPrefix?: boolean;
}

export type ByteSource = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

export interface Storage {
  /** `file://` or `s3://bucket`; `uriOf(key)` gives a full URI. */
  readonly root: string;
  readonly kind: 'local' | 's3';
  uriOf(key: string): string;
  stat(key: string): Promise<ObjectInfo | null>;
  /** Streams bytes in chunks; a range reads only that part. Missing file: NOT_FOUND. */
  read(key: string, options?: ReadOptions): AsyncIterable<Uint8Array>;
  /** Whole small file, refused (FILE_TOO_LARGE) above `maxBytes`. */
  readSmall(key: string, maxBytes?: number): Promise<Uint8Array>;
  /** Streams `data` to `key`; the file appears under its name only when complete. */
  write(key: string, data: ByteSource): Promise<void>;
  /**
   * Objects whose key starts with `prefix` + '/' (all of them, recursively,
   * paginated underneath), or with `delimiter` the direct children, folders
   * included, as `isPrefix` entries.
   */
  list(prefix: string, options?: { delimiter?: boolean }): AsyncIterable<ListEntry>;
  delete(key: string): Promise<void>;
  /** Copies within this storage (server-side on S3). */
  copy(fromKey: string, toKey: string): Promise<void>;
}

/** Default cap for metadata-like files read whole (64 MiB). */
export const SMALL_FILE_LIMIT = 64 * 1024 * 1024;

export async function* toAsyncChunks(data: ByteSource): AsyncIterable<Uint8Array> {
  if (data instanceof Uint8Array) {
    yield data;
    return;
  }
  for await (const c of data as AsyncIterable<Uint8Array>) yield c;
}

/** Collects a stream known to be small. */
/** FILE_TOO_LARGE: a file read whole is over its cap. */
export function tooLarge(what: string, maxBytes: number): KspError {
  return new KspError('FILE_TOO_LARGE', `${what}: larger than ${maxBytes} bytes; refusing to read it whole`, {
    file: what,
    expected: `<= ${maxBytes} bytes`,
  });
}

export async function collect(chunks: AsyncIterable<Uint8Array>, maxBytes: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of chunks) {
    n += c.length;
    if (n > maxBytes) throw tooLarge(what, maxBytes);
    parts.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
  }
  return Buffer.concat(parts, n);
}
