import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as nodePath from 'node:path';
import { KspError } from '../errors.js';
import { optionName } from '../option-names.js';
import { MANIFEST_NAME } from '../formats/manifest/manifest.js';
import { LocalStorage } from '../storage/local.js';
import { S3Storage } from '../storage/s3.js';
import { child, uriOf, type Location } from '../storage/uri.js';
import { LOCK_NAME, lockState, lockedError } from './lock.js';
import { within } from './target.js';

/**
 * What is at a write's target, seen without trusting it: every entry under
 * the target directory, temporary files included and symlinks not followed;
 * which of them a ksp write or the savepoint layout put there; and checks on
 * local disk by resolved real path, so that no symlink (to the source, or a
 * symlinked parent folder) can make a write or an `--overwrite` reach the
 * source.
 */

/** The mark in the names of files still being written (storage/local.ts). */
export const TEMP_MARK = '.ksp-tmp-';

export interface TargetEntry {
  key: string;
  /** Path relative to the target directory. */
  rel: string;
  /** `other`: a FIFO, socket or device; `symlink`: a symbolic link, to a file or a folder. */
  kind: 'file' | 'symlink' | 'other';
}

/** Every entry under `dir`, recursively; on local disk symlinks are reported, never followed. */
export async function* targetEntries(dir: Location): AsyncGenerator<TargetEntry> {
  if (!(dir.storage instanceof LocalStorage)) {
    for await (const e of dir.storage.list(dir.key)) if (!e.isPrefix) yield { key: e.key, rel: e.key.slice(dir.key.length + 1), kind: 'file' };
    return;
  }
  const storage = dir.storage;
  async function* walk(key: string, rel: string): AsyncGenerator<TargetEntry> {
    let ents: fs.Dirent[];
    try {
      ents = await fsp.readdir(storage.pathOf(key), { withFileTypes: true });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw new KspError('STORAGE_IO', `${storage.pathOf(key)}: cannot list the target (${(e as Error).message})`, { file: storage.pathOf(key) });
    }
    ents.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
    for (const d of ents) {
      const k = `${key}/${d.name}`;
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (d.isDirectory()) yield* walk(k, r);
      else yield { key: k, rel: r, kind: d.isFile() ? 'file' : d.isSymbolicLink() ? 'symlink' : 'other' };
    }
  }
  // The target directory itself may be a symlink the user named: that one is followed.
  yield* walk(dir.key, '');
}

/**
 * True for a path (relative to a savepoint directory) that a ksp write or
 * the savepoint layout puts there: the files `--overwrite` may delete.
 */
export function kspOwned(rel: string): boolean {
  const name = rel.slice(rel.lastIndexOf('/') + 1);
  if (name.includes(TEMP_MARK)) return true;
  if (['metadata.json', 'meta.json', MANIFEST_NAME, LOCK_NAME].includes(rel)) return true;
  if (/^[^/]+\/[^/]+\/state\.bin$/.test(rel)) return true;
  // _ksp/: the plan, records and run files of a distributed run (write/distributed/FORMAT.md).
  return rel.startsWith('incr/') || rel.startsWith('extra/') || rel.startsWith('_ksp/');
}

/**
 * Refuses a target holding anything but (a stale) lock, temporary files
 * included. A lock held by a live run is TARGET_LOCKED, naming its owner.
 */
export async function checkTargetEmpty(dir: Location, metaLocation: Location, opts: { ownToken?: string; forceUnlock?: boolean } = {}): Promise<void> {
  for await (const e of targetEntries(dir)) {
    if (e.rel === LOCK_NAME) {
      const s = await lockState(dir);
      if (s && s.live && s.info.token !== opts.ownToken && !(opts.forceUnlock && s.forcible)) throw lockedError(dir, s.info);
      continue;
    }
    throw new KspError('TARGET_NOT_EMPTY', `${uriOf(dir)}: exists and is not empty (found ${e.rel}); pass ${optionName('overwrite')} to replace it`, { file: uriOf(dir), found: e.rel });
  }
  if (!within(metaLocation, dir) && (await metaLocation.storage.stat(metaLocation.key))) {
    throw new KspError('TARGET_NOT_EMPTY', `${uriOf(metaLocation)}: a savepoint record already exists there; pass ${optionName('overwrite')} to replace it`, { file: uriOf(metaLocation) });
  }
}

/**
 * `--overwrite`: what will be deleted, checked before anything is. Every
 * entry must be one ksp or the savepoint layout put there, a plain file (not
 * a symlink, FIFO or device), and on local disk must not resolve into the
 * source. Anything else is TARGET_FOREIGN_FILE naming it, and nothing is
 * deleted.
 */
export async function filesToClear(dir: Location, guard: SourceGuard): Promise<Location[]> {
  const out: Location[] = [];
  const named = await namedByOldMetadata(dir);
  for await (const e of targetEntries(dir)) {
    if (e.rel === LOCK_NAME) continue; // ours by now; released at the end
    const where = `${uriOf(dir)}/${e.rel}`;
    if (e.kind !== 'file') {
      throw new KspError('TARGET_FOREIGN_FILE', `${where}: is a ${e.kind === 'symlink' ? 'symbolic link' : 'FIFO, socket or device'}; ${optionName('overwrite')} deletes only plain files a ksp write or the savepoint layout put there, never through a link. Remove it yourself or choose another target`, { file: where });
    }
    if (!kspOwned(e.rel) && !named.has(e.rel)) {
      throw new KspError('TARGET_FOREIGN_FILE', `${where}: was not put there by a ksp write or the savepoint layout, so ${optionName('overwrite')} will not delete it (nothing was deleted). Remove it yourself or choose another target`, { file: where });
    }
    const loc = { storage: dir.storage, key: e.key };
    guard.assertNotSource(loc, 'delete');
    out.push(loc);
  }
  return out;
}

/**
 * The state files the old savepoint's own metadata.json names inside its
 * directory (the engine's form `{job}/checkpoints/{epoch:020}/{rel}` or a
 * relative path): part of the savepoint layout even when not named
 * `{op}/{task}/state.bin`. Unreadable metadata names nothing.
 */
async function namedByOldMetadata(dir: Location): Promise<Set<string>> {
  const names = new Set<string>();
  try {
    const loc = child(dir, 'metadata.json');
    if (!(await loc.storage.stat(loc.key))) return names;
    const md = JSON.parse(Buffer.from(await loc.storage.readSmall(loc.key)).toString('utf8')) as { operator_snapshots?: Array<{ snapshot_path?: unknown }> };
    for (const s of md.operator_snapshots ?? []) {
      if (typeof s?.snapshot_path !== 'string') continue;
      const m = /^[^/]+\/checkpoints\/\d{20}\/(.+)$/.exec(s.snapshot_path);
      const rel = m ? m[1]! : s.snapshot_path;
      if (!rel.startsWith('/') && !rel.includes('://') && !rel.split('/').some((c) => c === '..' || c === '.' || c === '')) names.add(rel);
    }
  } catch {
    // Not a savepoint we can read: only the fixed layout applies.
  }
  return names;
}

/** Deletes the files of `filesToClear`, the old manifest first, so a half-cleared target never verifies. */
export async function clearFiles(dir: Location, files: Location[], metaLocation: Location, guard: SourceGuard): Promise<void> {
  const manifest = child(dir, MANIFEST_NAME);
  if (files.some((f) => f.key === manifest.key)) await dir.storage.delete(manifest.key);
  const rest = files.filter((f) => f.key !== manifest.key);
  for (let i = 0; i < rest.length; i += 16) await Promise.all(rest.slice(i, i + 16).map((f) => f.storage.delete(f.key)));
  if (!within(metaLocation, dir)) {
    if (metaLocation.storage instanceof LocalStorage) {
      const p = metaLocation.storage.pathOf(metaLocation.key);
      const st = await fsp.lstat(p).catch(() => null);
      if (st && !st.isFile()) throw new KspError('TARGET_FOREIGN_FILE', `${p}: the savepoint record is not a plain file (a link or device); ${optionName('overwrite')} will not delete it`, { file: p });
    }
    guard.assertNotSource(metaLocation, 'delete');
    await metaLocation.storage.delete(metaLocation.key);
  }
  if (dir.storage instanceof S3Storage) await dir.storage.abortUploads(dir.key);
}

/** `path` with every symlink resolved, as far as it exists; the part that does not exist yet is appended as is. */
export function realPathOf(path: string): string {
  let head = nodePath.resolve(path);
  const tail: string[] = [];
  for (;;) {
    try {
      const real = fs.realpathSync.native(head);
      return tail.length ? nodePath.join(real, ...tail.reverse()) : real;
    } catch {
      const up = nodePath.dirname(head);
      if (up === head) return nodePath.resolve(path);
      tail.push(nodePath.basename(head));
      head = up;
    }
  }
}

function insideOrSame(inner: string, outer: string): boolean {
  return inner === outer || outer === '/' || inner.startsWith(outer + '/');
}

/**
 * The source as real paths on local disk: its directory and every file the
 * run reads. `assertNotSource` refuses any write or delete that resolves
 * into either (text comparison is not enough: `link -> SRC`, or a target
 * below a symlinked parent folder, name the source under another path).
 */
export class SourceGuard {
  private readonly files = new Set<string>();
  private readonly dirReal: string | null;

  constructor(private readonly sourceDir: Location, sourceFiles: Iterable<Location>) {
    this.dirReal = sourceDir.storage instanceof LocalStorage ? realPathOf(sourceDir.storage.pathOf(sourceDir.key)) : null;
    // A file whose real path lies inside the source folder is refused by
    // that folder's check already: only the others are kept (200,000 real
    // paths of a large job's own files cost ~25 MB for nothing).
    for (const f of sourceFiles) {
      if (!(f.storage instanceof LocalStorage)) continue;
      const real = realPathOf(f.storage.pathOf(f.key));
      if (this.dirReal === null || !insideOrSame(real, this.dirReal)) this.files.add(real);
    }
  }

  /** The target directory neither inside the source nor containing it, by real path. */
  assertTargetApart(dir: Location): void {
    if (!(dir.storage instanceof LocalStorage) || this.dirReal === null) return;
    const t = realPathOf(dir.storage.pathOf(dir.key));
    if (insideOrSame(t, this.dirReal) || insideOrSame(this.dirReal, t)) {
      throw new KspError('TARGET_OVERLAPS_SOURCE', `${uriOf(dir)}: the target resolves to ${t}, which overlaps the source ${uriOf(this.sourceDir)} (${this.dirReal}); the source is never written, so choose a target outside it`, { file: uriOf(dir), found: t });
    }
  }

  /** A file the run would write or delete must not be, or be inside, the source. */
  assertNotSource(loc: Location, what: 'write' | 'delete'): void {
    if (!(loc.storage instanceof LocalStorage)) return;
    const r = realPathOf(loc.storage.pathOf(loc.key));
    if (this.files.has(r) || (this.dirReal !== null && insideOrSame(r, this.dirReal))) {
      throw new KspError('TARGET_OVERLAPS_SOURCE', `${uriOf(loc)}: the run would ${what} it, but it resolves to ${r}, a file of the source ${uriOf(this.sourceDir)}; the source is never written`, { file: uriOf(loc), found: r });
    }
  }
}

/** Temporary files left inside a savepoint directory (local disk; S3 has none, its uploads are atomic). */
export async function strayTempFiles(dir: Location): Promise<string[]> {
  if (!(dir.storage instanceof LocalStorage)) return [];
  const out: string[] = [];
  for await (const e of targetEntries(dir)) if (e.rel.slice(e.rel.lastIndexOf('/') + 1).includes(TEMP_MARK)) out.push(e.rel);
  return out;
}

/** This process's own temporary files under `dir` (swept after an interrupted write). */
export async function ownTempFiles(dir: Location): Promise<Location[]> {
  if (!(dir.storage instanceof LocalStorage)) return [];
  const mark = `${TEMP_MARK}${process.pid}-`;
  const out: Location[] = [];
  for await (const e of targetEntries(dir)) if (e.rel.includes(mark)) out.push({ storage: dir.storage, key: e.key });
  return out;
}
