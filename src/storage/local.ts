import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as nodePath from 'node:path';
import { randomBytes } from 'node:crypto';
import { KspError } from '../errors.js';
import { notRegular } from './file-kind.js';
import {
  SMALL_FILE_LIMIT, collect, tooLarge, toAsyncChunks,
  type ByteSource, type ListEntry, type ObjectInfo, type ReadOptions, type Storage,
} from './storage.js';

const READ_CHUNK = 1024 * 1024;

function ioError(e: unknown, op: string, file: string): KspError {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOENT') return new KspError('NOT_FOUND', `${file}: no such file`, { file }, { cause: e });
  if (e instanceof KspError) return e;
  return new KspError('STORAGE_IO', `${file}: ${op} failed: ${err?.message ?? String(e)}`, { file, errno: err?.code }, { cause: e });
}

/** Local disk. Keys are absolute paths without the leading '/'. */
export class LocalStorage implements Storage {
  readonly root = 'file://';
  readonly kind = 'local' as const;

  pathOf(key: string): string {
    return '/' + key;
  }

  uriOf(key: string): string {
    return this.pathOf(key);
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    try {
      const st = await fsp.stat(this.pathOf(key));
      if (!st.isFile()) return null;
      return { key, size: st.size, mtimeMs: st.mtimeMs };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
      throw ioError(e, 'stat', this.pathOf(key));
    }
  }

  async *read(key: string, options: ReadOptions = {}): AsyncIterable<Uint8Array> {
    const file = this.pathOf(key);
    const start = options.offset ?? 0;
    if (options.length === 0) return;
    const end = options.length !== undefined ? start + options.length - 1 : undefined;
    let fh: fsp.FileHandle;
    try {
      // Opened first so a missing file is NOT_FOUND before the first chunk.
      // O_NONBLOCK: a FIFO opened for reading would wait for a writer; it
      // changes nothing for a regular file, and anything else is refused below.
      fh = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch (e) {
      throw ioError(e, 'open', file);
    }
    const st = await fh.stat().catch(async (e: unknown) => {
      await fh.close();
      throw ioError(e, 'stat', file);
    });
    if (!st.isFile()) {
      await fh.close();
      throw notRegular(file, undefined, st);
    }
    // The stream owns the handle (autoClose) and closes it at the end, on
    // error, or when the consumer stops early (destroy).
    // Chunks no larger than the file: a stream allocates a whole chunk per
    // read, and 200,000 small files must not cost a MiB each.
    const want = Math.max(1, Math.min(READ_CHUNK, (end !== undefined ? end + 1 : st.size) - start));
    const stream = fh.createReadStream({ start, end, highWaterMark: want, autoClose: true });
    try {
      for await (const chunk of stream) yield chunk as Buffer;
    } catch (e) {
      throw ioError(e, 'read', file);
    } finally {
      stream.destroy();
    }
  }

  /**
   * Read into one buffer of the file's size, not gathered from a stream's
   * chunks: a 32 MB metadata.json then costs 32 MB, not twice that while it
   * is joined (and a stream's chunks were seen to outlive the read).
   */
  async readSmall(key: string, maxBytes = SMALL_FILE_LIMIT): Promise<Uint8Array> {
    const file = this.pathOf(key);
    let fh: fsp.FileHandle;
    try {
      // O_NONBLOCK, as in read(): a FIFO must not wait for a writer.
      fh = await fsp.open(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    } catch (e) {
      throw ioError(e, 'open', file);
    }
    try {
      const st = await fh.stat().catch((e: unknown) => {
        throw ioError(e, 'stat', file);
      });
      if (!st.isFile()) throw notRegular(file, undefined, st);
      if (st.size > maxBytes) throw tooLarge(file, maxBytes);
      const out = Buffer.allocUnsafe(st.size);
      let n = 0;
      for (;;) {
        // One byte more than the stat said, to see a file that grew since.
        const room = n < out.length ? out.length - n : 0;
        const into = room > 0 ? out : Buffer.allocUnsafe(1);
        const { bytesRead } = await fh.read(into, room > 0 ? n : 0, room > 0 ? room : 1, null).catch((e: unknown) => {
          throw ioError(e, 'read', file);
        });
        if (bytesRead === 0) break;
        // It grew since the stat: read it the general way, capped as ever.
        if (room === 0) return await collect(this.read(key), maxBytes, file);
        n += bytesRead;
      }
      return n === out.length ? out : out.subarray(0, n);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async write(key: string, data: ByteSource): Promise<void> {
    const file = this.pathOf(key);
    // Written under a temporary name in the same folder, then renamed: a crash
    // never leaves a half-written file under its final name.
    const tmp = `${file}.ksp-tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await fsp.mkdir(nodePath.dirname(file), { recursive: true });
      const fh = await fsp.open(tmp, 'w');
      try {
        // One write in flight while the producer makes the next chunk: disk
        // and CPU overlap, and memory stays at two chunks.
        let inFlight: Promise<void> = Promise.resolve();
        const writeAll = async (chunk: Uint8Array): Promise<void> => {
          for (let off = 0; off < chunk.length; ) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
        };
        for await (const chunk of toAsyncChunks(data)) {
          await inFlight;
          inFlight = writeAll(chunk);
          inFlight.catch(() => undefined); // awaited above or below; never unhandled
        }
        await inFlight;
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, file);
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw ioError(e, 'write', file);
    }
  }

  async *list(prefix: string, options: { delimiter?: boolean } = {}): AsyncIterable<ListEntry> {
    const dir = this.pathOf(prefix);
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw ioError(e, 'list', dir);
    }
    // Sorted like S3 lists keys, so both back-ends give the same order.
    entries.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
    for (const ent of entries) {
      const key = prefix === '' ? ent.name : `${prefix}/${ent.name}`;
      if (ent.name.includes('.ksp-tmp-')) continue;
      if (ent.isDirectory()) {
        if (options.delimiter) yield { key, isPrefix: true };
        else yield* this.list(key, options);
      } else if (ent.isFile()) {
        const st = await fsp.stat(this.pathOf(key));
        yield { key, size: st.size, mtimeMs: st.mtimeMs };
      }
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await fsp.rm(this.pathOf(key), { force: true });
    } catch (e) {
      throw ioError(e, 'delete', this.pathOf(key));
    }
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    const from = this.pathOf(fromKey);
    const to = this.pathOf(toKey);
    const tmp = `${to}.ksp-tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await fsp.mkdir(nodePath.dirname(to), { recursive: true });
      await fsp.copyFile(from, tmp);
      await fsp.rename(tmp, to);
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw ioError(e, 'copy', from);
    }
  }
}
