import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { parseManifest, buildManifest } from '../../src/formats/manifest/manifest.js';

/**
 * One case's world on disk:
 *
 *   root/
 *     base/ or sp/   the savepoint (engine layout: base/shop/savepoints/{epoch}, with incr/ beside)
 *     outside/       files outside the savepoint that hostile paths and symlinks reach for
 *     tmp/           --temp-dir of every run; must be empty afterwards
 *     out-<cmd>/     each writing command's target (removed after each run)
 *
 * Everything but the targets is hashed before and after each run: the source
 * must stay byte-identical, and nothing may appear outside the target.
 */
export interface Sandbox {
  root: string;
  /** The savepoint directory given to ksp. */
  sp: string;
  /** The storage base (engine layout), or the savepoint itself (relative layout). */
  base: string;
  outside: string;
  tmp: string;
}

export function sandboxPaths(root: string, layout: 'relative' | 'engine'): Sandbox {
  const base = layout === 'relative' ? join(root, 'sp') : join(root, 'base');
  const sp = layout === 'relative' ? base : join(base, 'shop', 'savepoints', '00000000000000000007');
  return { root, sp, base, outside: join(root, 'outside'), tmp: join(root, 'tmp') };
}

/** Copies a template root (made once) into a fresh case root. */
export function materialize(template: string, root: string): void {
  cpSync(template, root, { recursive: true, verbatimSymlinks: true });
}

const BIG = 64 * 1024 * 1024;

/**
 * Every entry under `dir` (not following symlinks): files by SHA-256 (size
 * and first MiB for huge or sparse files), symlinks by target, FIFOs and
 * folders by kind. `skip` names top-level entries left out (the targets).
 */
export function snapshot(dir: string, skip: (rel: string) => boolean = () => false): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    let names: string[];
    try { names = readdirSync(d).sort(); } catch { return; }
    for (const n of names) {
      const p = join(d, n);
      const rel = relative(dir, p);
      if (skip(rel)) continue;
      let st;
      try { st = lstatSync(p); } catch { continue; }
      if (st.isSymbolicLink()) out.set(rel, `link:${readlinkSync(p)}`);
      else if (st.isDirectory()) { out.set(rel, 'dir'); walk(p); }
      else if (st.isFIFO()) out.set(rel, 'fifo');
      else if (!st.isFile()) out.set(rel, 'special');
      else if (st.size > BIG) out.set(rel, `big:${st.size}:${headHash(p)}`);
      else out.set(rel, createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  walk(dir);
  return out;
}

function headHash(p: string): string {
  const fd = openSync(p, 'r');
  try {
    const b = Buffer.alloc(1 << 20);
    const n = readSync(fd, b, 0, b.length, 0);
    return createHash('sha256').update(b.subarray(0, n)).digest('hex');
  } finally {
    closeSync(fd);
  }
}

/** Differences between two snapshots, as readable lines. */
export function diff(before: Map<string, string>, after: Map<string, string>): { changed: string[]; added: string[]; removed: string[] } {
  const changed: string[] = [];
  const added: string[] = [];
  const removed: string[] = [];
  for (const [k, v] of before) {
    if (!after.has(k)) removed.push(k);
    else if (after.get(k) !== v) changed.push(k);
  }
  for (const k of after.keys()) if (!before.has(k)) added.push(k);
  return { changed, added, removed };
}

export function sha(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Rewrites the savepoint's manifest.sha256 with the current hashes of the files it lists: a consistent lie. */
export function refreshManifest(sp: string): void {
  const p = join(sp, 'manifest.sha256');
  const m = parseManifest(readFileSync(p));
  const entries = m.entries.map((e) => {
    const f = join(sp, e.path);
    let hash = e.sha256;
    try {
      const st = lstatSync(f);
      if (st.isFile() && st.size <= BIG) hash = sha(readFileSync(f));
    } catch { /* missing: keep */ }
    return { path: e.path, sha256: hash };
  });
  writeFileSync(p, buildManifest(entries));
}

/** Adds (or updates) one manifest line. */
export function manifestSet(sp: string, path: string, hash: string): void {
  const p = join(sp, 'manifest.sha256');
  const m = parseManifest(readFileSync(p));
  const entries = m.entries.filter((e) => e.path !== path);
  entries.push({ path, sha256: hash });
  entries.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  writeFileSync(p, buildManifest(entries));
}

export function edit(file: string, fn: (b: Buffer) => Buffer | string): void {
  const out = fn(readFileSync(file));
  writeFileSync(file, out);
}

export function put(file: string, data: Uint8Array | string): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, data);
}

export function replaceWithSymlink(file: string, target: string): void {
  rmSync(file, { recursive: true, force: true });
  mkdirSync(dirname(file), { recursive: true });
  execFileSync('ln', ['-s', target, file]);
}

export function replaceWithFifo(file: string): void {
  rmSync(file, { recursive: true, force: true });
  mkdirSync(dirname(file), { recursive: true });
  execFileSync('mkfifo', [file]);
}

/** A sparse file of `size` bytes: no data is written (truncate). */
export function sparse(file: string, size: string): void {
  mkdirSync(dirname(file), { recursive: true });
  execFileSync('truncate', ['-s', size, file]);
}

export function removeTarget(p: string): void {
  try {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return; // a case's own symlinked target: leave it
    rmSync(p, { recursive: true, force: true });
  } catch { /* absent */ }
}

export { existsSync };
