import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { KspError } from '../errors.js';
import { LocalStorage } from '../storage/local.js';
import type { Location } from '../storage/uri.js';

/**
 * Byte-for-byte copies, never a decode and re-encode. Within one S3 endpoint
 * the copy is server-side, on one disk a file copy (or a hard link with
 * `link`); the SHA-256 the output manifest needs then comes from the source
 * manifest when it lists the file. Otherwise bytes stream through once and
 * are hashed on the way.
 */

export interface CopyResult {
  sha256: string;
  size: number;
  /** False when source and target are the same file (nothing written). */
  wrote: boolean;
}

export interface CopyOptions {
  knownSha256?: string;
  link?: boolean;
  onBytes?: (n: number) => void;
}

export async function copyFile(from: Location, to: Location, options: CopyOptions = {}): Promise<CopyResult> {
  if (from.storage === to.storage && from.key === to.key) {
    // The target layout names the very file the source uses (engine mode, shared incr/ files in the same base).
    const st = await from.storage.stat(from.key);
    return { sha256: options.knownSha256 ?? (await hashOf(from)), size: st?.size ?? 0, wrote: false };
  }
  if (from.storage === to.storage && options.knownSha256) {
    if (options.link && from.storage instanceof LocalStorage) {
      await linkLocal(from.storage, from.key, to.key);
    } else {
      await to.storage.copy(from.key, to.key);
    }
    const st = await to.storage.stat(to.key);
    options.onBytes?.(st?.size ?? 0);
    return { sha256: options.knownSha256, size: st?.size ?? 0, wrote: true };
  }
  const h = createHash('sha256');
  let size = 0;
  async function* tap(): AsyncGenerator<Uint8Array> {
    for await (const c of from.storage.read(from.key)) {
      h.update(c);
      size += c.length;
      options.onBytes?.(c.length);
      yield c;
    }
  }
  await to.storage.write(to.key, tap());
  return { sha256: h.digest('hex'), size, wrote: true };
}

async function linkLocal(s: LocalStorage, fromKey: string, toKey: string): Promise<void> {
  const to = s.pathOf(toKey);
  await fsp.mkdir(to.slice(0, to.lastIndexOf('/')), { recursive: true });
  await fsp.rm(to, { force: true });
  try {
    await fsp.link(s.pathOf(fromKey), to);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // Another file system, or one without hard links: copy instead.
    if (code === 'EXDEV' || code === 'EPERM' || code === 'ENOTSUP') await s.copy(fromKey, toKey);
    else throw new KspError('STORAGE_IO', `${s.pathOf(toKey)}: hard link failed: ${(e as Error).message}`, { file: s.pathOf(toKey) }, { cause: e });
  }
}

export async function hashOf(loc: Location, onBytes?: (n: number) => void): Promise<string> {
  const h = createHash('sha256');
  for await (const c of loc.storage.read(loc.key)) {
    h.update(c);
    onBytes?.(c.length);
  }
  return h.digest('hex');
}

/** Writes a stream, hashing it on the way. */
export async function writeHashed(to: Location, data: AsyncIterable<Uint8Array>): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  async function* tap(): AsyncGenerator<Uint8Array> {
    for await (const c of data) {
      h.update(c);
      size += c.length;
      yield c;
    }
  }
  await to.storage.write(to.key, tap());
  return { sha256: h.digest('hex'), size };
}
