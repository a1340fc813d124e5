import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { KspError } from '../errors.js';

/**
 * Private folders for spill and sort files under `tempDir`.
 *
 * Each folder's name carries the pid of the run that made it
 * (`ksp-rescale-{pid}-XXXXXX`), so a later run can tell the folders of
 * dead runs (killed with SIGKILL, out of memory, power loss) from those of
 * live ones and remove them: see `sweepStaleTempDirs`. Folders made by this
 * process are also remembered, so a signal handler can remove them before
 * the process exits.
 *
 * A folder that cannot be made (missing, read-only, full) is the user's
 * setting, not a bug: it is a STORAGE_IO error that names the folder and the
 * way to change it.
 */

/** The prefixes of every kind of temporary folder ksp makes. */
export const TEMP_PREFIXES = ['ksp-rescale-', 'ksp-rewrite-', 'ksp-sort-', 'ksp-import-'] as const;
export type TempPrefix = (typeof TEMP_PREFIXES)[number];

const live = new Set<string>();

export function makeTempDir(tempDir: string, prefix: TempPrefix): string {
  let dir: string;
  try {
    dir = fs.mkdtempSync(join(tempDir, `${prefix}${process.pid}-`));
  } catch (e) {
    throw tempFailure(tempDir, 'cannot make a folder for temporary files', e);
  }
  live.add(dir);
  return dir;
}

/** Removes a temporary folder; never throws (a cleanup error must not hide the error that led to it). */
export function removeTempDir(dir: string): void {
  try {
    fs.rmSync(dir, { recursive: true, force: true });
  } catch {
    // Left for the next run's sweep.
  }
  live.delete(dir);
}

/** Every temporary folder this process made and has not removed yet (for the signal handler). */
export function removeLiveTempDirs(): number {
  const n = live.size;
  for (const d of [...live]) removeTempDir(d);
  return n;
}

/** A failed read or write of a temporary file (ENOSPC, EIO, …) as a STORAGE_IO error naming it. */
export function tempFailure(file: string, what: string, e: unknown): KspError {
  if (e instanceof KspError) return e;
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  return new KspError('STORAGE_IO', `${file}: ${what} (${(e as Error).message}); choose another place with --temp-dir or KSP_TMPDIR`, { file, found: code });
}

export interface SweepResult {
  /** Where the sweep looked. */
  dir: string;
  folders: number;
  bytes: number;
}

/** Folders from before names carried a pid are removed once they are this old. */
const LEGACY_AGE_MS = 24 * 3600 * 1000;

/**
 * Removes the spill and sort folders of dead runs from `tempDir`: those whose
 * pid no longer runs on this host. A pid that was reused by another process
 * keeps its folder (the safe side); the temp dir is assumed to be this
 * host's own, as the OS temp dir is. Folders without a pid in their name
 * (made by older ksp versions) go once they are a day old.
 */
export function sweepStaleTempDirs(tempDir: string): SweepResult {
  const result: SweepResult = { dir: tempDir, folders: 0, bytes: 0 };
  let names: string[];
  try {
    names = fs.readdirSync(tempDir);
  } catch {
    return result;
  }
  for (const name of names) {
    const prefix = TEMP_PREFIXES.find((p) => name.startsWith(p));
    if (!prefix) continue;
    const path = join(tempDir, name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(path);
    } catch {
      continue;
    }
    // Only real folders owned by this user: never follow a symlink out of the temp dir.
    if (!st.isDirectory() || (typeof process.getuid === 'function' && st.uid !== process.getuid())) continue;
    const m = /^(\d+)-.{6}$/.exec(name.slice(prefix.length));
    const stale = m ? !pidAlive(Number(m[1])) : Date.now() - st.mtimeMs > LEGACY_AGE_MS;
    if (!stale) continue;
    const bytes = sizeOf(path);
    try {
      fs.rmSync(path, { recursive: true, force: true });
      result.folders++;
      result.bytes += bytes;
    } catch {
      // Not ours to remove after all (permissions): leave it.
    }
  }
  return result;
}

/** True when a process with this pid runs on this host (EPERM: it runs, as another user). */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed process stays a zombie until its parent reaps it: it answers
  // kill(0) but will never run again (Linux: state Z in /proc/{pid}/stat).
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

export const HOST = hostname();

function sizeOf(path: string): number {
  let n = 0;
  const walk = (p: string): void => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      let names: string[] = [];
      try {
        names = fs.readdirSync(p);
      } catch {
        return;
      }
      for (const e of names) walk(join(p, e));
    } else {
      n += st.size;
    }
  };
  walk(path);
  return n;
}
