import * as fsp from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { KspError } from '../errors.js';
import { optionName } from '../option-names.js';
import { locate, uriOf, type Location } from '../storage/uri.js';
import { notRegular } from '../storage/file-kind.js';
import type { EngineLayout } from './layout.js';

/**
 * Where a savepoint may read from: the one rule every command uses, so
 * `verify` reports exactly what the writers refuse.
 *
 * A savepoint from someone else must not make ksp read host files (and then
 * copy them into an output the user uploads). Its files may live only under
 * its roots:
 * - local: the storage base of the engine layout (`{base}` of
 *   `{base}/{job}/savepoints/{epoch}`), else the savepoint directory itself,
 *   and the directory as given (also when it is itself reached by a symlink);
 * - S3: the savepoint's bucket;
 * - plus every `--allow-root DIR` the user gives.
 *
 * Stored paths are checked by text when they are resolved (Savepoint.resolve);
 * local files are checked again by their real path before anything opens
 * them, so a symlink (of the file, an operator folder or any parent) that
 * leaves the roots is refused, and so is anything that is not a regular file
 * (FIFO, device, socket, folder): those are found by stat, never by open,
 * which would block on a FIFO.
 */
export class ReadRoots {
  private constructor(
    readonly roots: readonly Location[],
    /** Real paths of the local roots (the lexical path when it does not exist). */
    private readonly realRoots: readonly string[],
  ) {}

  static async of(dir: Location, layout: EngineLayout | null, allow: readonly string[] = []): Promise<ReadRoots> {
    const own: Location = dir.storage.kind === 's3' ? { storage: dir.storage, key: '' } : layout ? layout.base : dir;
    const roots = [own, ...(own === dir ? [] : [dir]), ...allow.map((a) => locate(a))];
    const realRoots: string[] = [];
    for (const r of roots) {
      if (r.storage.kind !== 'local') continue;
      const p = '/' + r.key;
      realRoots.push(p === '/' ? '/' : p);
      const real = await fsp.realpath(p).catch(() => null);
      if (real && real !== p) realRoots.push(real);
    }
    return new ReadRoots(roots, realRoots);
  }

  /** The roots, for messages. */
  describe(): string {
    return this.roots.map(uriOf).join(', ');
  }

  /** True when `loc` lies under a root, by its path text. */
  contains(loc: Location): boolean {
    return this.roots.some((r) => r.storage === loc.storage && (r.key === '' || loc.key === r.key || loc.key.startsWith(r.key + '/')));
  }

  /**
   * Refuses a local file whose real path leaves the roots, or that is not a
   * regular file. A missing file passes (the caller reports it as missing);
   * S3 objects are checked by `contains` alone (S3 has no links).
   */
  async checkFile(loc: Location, field: string): Promise<void> {
    if (loc.storage.kind !== 'local') return;
    const path = uriOf(loc);
    let real: string;
    try {
      real = await fsp.realpath(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      if (code === 'ELOOP') throw new KspError('PATH_UNSAFE', `${path}: ${field}: a symlink loop`, { file: path, field });
      throw new KspError('STORAGE_IO', `${path}: ${field}: cannot resolve its real path: ${(e as Error).message}`, { file: path, field, errno: code });
    }
    if (!this.realRoots.some((r) => r === '/' || real === r || real.startsWith(r + '/'))) {
      throw new KspError('PATH_UNSAFE', `${path}: ${field}: is a symlink (or lies under one) to ${real}, outside the savepoint's roots (${this.describe()}); refused, pass ${optionName('allowRoot')} to read there`, {
        file: path, field, found: real, expected: this.describe(),
      });
    }
    let st: Stats;
    try {
      st = await fsp.stat(real);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new KspError('STORAGE_IO', `${path}: ${field}: stat failed: ${(e as Error).message}`, { file: path, field });
    }
    if (!st.isFile()) throw notRegular(path, field, st);
  }
}

/** Runs `fn` over `items`, `width` at a time. */
export async function eachLimited<T>(items: readonly T[], width: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}
