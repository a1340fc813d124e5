import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { KspError } from '../../errors.js';
import { LocalStorage } from '../../storage/local.js';
import { child, parent, nameOf, uriOf, type Location } from '../../storage/uri.js';
import { hashOf, writeHashed } from '../copy.js';

/**
 * A file written outside the target, into engine mode's folders shared with
 * other savepoints and checkpoints of the job (`{base}/{job}/incr/…`): never
 * over a file that is already there (issue: a write never replaces a file
 * outside the target). The names are chosen fresh at plan time
 * (write/native-names.ts), so a file already there under one of them was
 * written by this unit before (a re-run after a crash, or a duplicate shard
 * beside it): kept when its bytes are the ones this run makes, refused with
 * TARGET_FILE_EXISTS otherwise (another writer took the name meanwhile), as
 * the one-process copy of native tables refuses (write/execute.ts
 * `copyNative`).
 *
 * On local disk the file is written whole under a temporary name and then
 * hard-linked to its name, which fails when the name exists, so nothing is
 * ever replaced even by a writer racing this one. On S3 the name is checked
 * just before the upload, as the one-process write checks it.
 */
export async function writeShared(to: Location, data: AsyncIterable<Uint8Array>): Promise<{ sha256: string; size: number }> {
  if (await to.storage.stat(to.key)) return sameAsThere(to, await hashStream(data));
  if (!(to.storage instanceof LocalStorage)) return writeHashed(to, data);
  const tmp = child(parent(to), `${nameOf(to)}.ksp-tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const w = await writeHashed(tmp, data);
    try {
      await fsp.link(to.storage.pathOf(tmp.key), to.storage.pathOf(to.key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new KspError('STORAGE_IO', `${uriOf(to)}: cannot create it (${(e as Error).message})`, { file: uriOf(to) });
      return sameAsThere(to, w);
    }
    return w;
  } finally {
    await tmp.storage.delete(tmp.key).catch(() => undefined);
  }
}

async function hashStream(data: AsyncIterable<Uint8Array>): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of data) {
    h.update(c);
    size += c.length;
  }
  return { sha256: h.digest('hex'), size };
}

async function sameAsThere(to: Location, mine: { sha256: string; size: number }): Promise<{ sha256: string; size: number }> {
  const there = await hashOf(to);
  if (there !== mine.sha256) {
    throw new KspError('TARGET_FILE_EXISTS', `${uriOf(to)}: a file outside the target already has this name with other bytes (SHA-256 ${there}, this run's ${mine.sha256}); ksp never replaces a file outside the target directory (plan again, or write --mode relative)`, { file: uriOf(to), expected: mine.sha256, found: there });
  }
  return mine;
}
