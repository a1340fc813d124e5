import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as nodePath from 'node:path';
import { KspError } from '../errors.js';
import { optionName } from '../option-names.js';
import { LocalStorage } from '../storage/local.js';
import { S3Storage } from '../storage/s3.js';
import { child, uriOf, type Location } from '../storage/uri.js';
import { HOST, pidAlive } from './temp-dir.js';
import { removeOnSignal } from './interrupt.js';

/**
 * One writer per target. A write holds `.ksp-lock` in the target directory
 * from before it clears or checks the target until it has sealed or rolled
 * back:
 *
 * - on local disk the lock is made complete under a temporary name and then
 *   hard-linked to `.ksp-lock`, which fails if the name exists: atomic, and
 *   never a half-written lock;
 * - on S3 it is a PutObject with `If-None-Match: *`, which the server
 *   refuses (412) when the key exists.
 *
 * The lock records the owner (pid, host, start time, a random token, the
 * command). Its modification time is the heartbeat, refreshed every
 * HEARTBEAT_MS (a touch locally, a re-put on S3). A lock is stale when its
 * heartbeat is older than STALE_MS, or, on this host, when its pid is dead;
 * a stale lock is taken over. `--force-unlock` also takes over a lock whose
 * owner cannot be checked (another host), never one whose owner runs here.
 */

export const LOCK_NAME = '.ksp-lock';

const HEARTBEAT_MS = Number(process.env.KSP_LOCK_HEARTBEAT_MS) || 5_000;
const STALE_MS = Number(process.env.KSP_LOCK_STALE_MS) || 30_000;

export interface LockInfo {
  pid: number;
  host: string;
  started: string;
  token: string;
  command?: string;
}

export interface LockState {
  info: LockInfo;
  ageMs: number;
  /** Held by a run that is (or may be) alive. */
  live: boolean;
  /** May be removed with --force-unlock (its owner is not known to be alive). */
  forcible: boolean;
}

export function describeLock(i: { pid: number; host: string; started: string; command?: string }): string {
  return `pid ${i.pid} on ${i.host}, since ${i.started}${i.command ? `, ${i.command}` : ''}`;
}

export function lockedError(dir: Location, info: LockInfo): KspError {
  return new KspError('TARGET_LOCKED', `${uriOf(dir)}: another ksp run is writing here (${describeLock(info)}); wait for it, or if that run is dead, pass ${optionName('forceUnlock')}`, { file: uriOf(dir), owner: info });
}

async function readLock(dir: Location): Promise<{ text: string; mtimeMs: number } | null> {
  const loc = child(dir, LOCK_NAME);
  if (dir.storage instanceof LocalStorage) {
    const p = dir.storage.pathOf(loc.key);
    try {
      const st = await fsp.lstat(p);
      if (!st.isFile()) throw new KspError('TARGET_FOREIGN_FILE', `${p}: the lock is not a plain file; remove it yourself`, { file: p });
      return { text: await fsp.readFile(p, 'utf8'), mtimeMs: st.mtimeMs };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }
  const st = await loc.storage.stat(loc.key);
  if (!st) return null;
  try {
    const text = Buffer.from(await loc.storage.readSmall(loc.key, 64 * 1024)).toString('utf8');
    return { text, mtimeMs: st.mtimeMs ?? Date.now() };
  } catch (e) {
    if ((e as KspError).code === 'NOT_FOUND') return null;
    throw e;
  }
}

/** The lock at `dir` and whether its owner is alive, or null when there is none. */
export async function lockState(dir: Location): Promise<LockState | null> {
  const r = await readLock(dir);
  if (!r) return null;
  let info: LockInfo;
  try {
    const v = JSON.parse(r.text) as Partial<LockInfo>;
    info = { pid: Number(v.pid), host: String(v.host), started: String(v.started), token: String(v.token), ...(v.command ? { command: String(v.command) } : {}) };
  } catch {
    // Unreadable: judged by its age alone.
    info = { pid: 0, host: 'unknown host', started: new Date(r.mtimeMs).toISOString(), token: '' };
  }
  const ageMs = Math.max(0, Date.now() - r.mtimeMs);
  const fresh = ageMs < STALE_MS;
  const here = info.host === HOST;
  const live = here ? fresh && pidAlive(info.pid) : fresh;
  return { info, ageMs, live, forcible: !here || !live };
}

async function create(dir: Location, body: string): Promise<boolean> {
  const loc = child(dir, LOCK_NAME);
  if (dir.storage instanceof LocalStorage) {
    const p = dir.storage.pathOf(loc.key);
    await fsp.mkdir(nodePath.dirname(p), { recursive: true });
    const tmp = `${p}.ksp-tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    const forget = removeOnSignal(tmp);
    try {
      await fsp.writeFile(tmp, body, { flag: 'wx' });
      await fsp.link(tmp, p);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw new KspError('STORAGE_IO', `${p}: cannot take the lock (${(e as Error).message})`, { file: p });
    } finally {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      forget();
    }
  }
  if (dir.storage instanceof S3Storage) {
    if (!(await dir.storage.putIfAbsent(loc.key, Buffer.from(body)))) return false;
    // A server that ignores If-None-Match lets a second put replace the first: read it back, and own it only if it is ours.
    const back = await readLock(dir);
    return back !== null && back.text === body;
  }
  throw new KspError('INTERNAL', `no lock for storage ${dir.storage.root}`);
}

/** Removes the lock if it still carries `token` (a lock taken over meanwhile is left alone). */
async function removeIf(dir: Location, token: string): Promise<void> {
  const loc = child(dir, LOCK_NAME);
  if (dir.storage instanceof LocalStorage) {
    const p = dir.storage.pathOf(loc.key);
    // Moved aside first (atomic), then checked: only the lock we judged is removed.
    const aside = `${p}.ksp-tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    const forget = removeOnSignal(aside);
    try {
      await fsp.rename(p, aside);
    } catch (e) {
      forget();
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const text = await fsp.readFile(aside, 'utf8').catch(() => '');
    let t = '';
    try {
      t = String((JSON.parse(text) as LockInfo).token);
    } catch {
      t = '';
    }
    if (t !== token && token !== '') await fsp.link(aside, p).catch(() => undefined); // not the one we meant: put it back
    await fsp.rm(aside, { force: true }).catch(() => undefined);
    forget();
    return;
  }
  const r = await readLock(dir);
  if (!r) return;
  let t = '';
  try {
    t = String((JSON.parse(r.text) as LockInfo).token);
  } catch {
    t = '';
  }
  if (t === token) await loc.storage.delete(loc.key);
}

export class TargetLock {
  private timer: NodeJS.Timeout | null = null;
  private lost = false;
  private released = false;
  private releasing: Promise<void> | null = null;

  private constructor(readonly dir: Location, readonly info: LockInfo, private readonly body: string) {}

  /** Takes the lock, taking over a stale one (or with `forceUnlock`, one whose owner cannot be checked). */
  static async acquire(dir: Location, opts: { forceUnlock?: boolean; command?: string } = {}): Promise<TargetLock> {
    const info: LockInfo = { pid: process.pid, host: HOST, started: new Date().toISOString(), token: randomBytes(12).toString('hex'), ...(opts.command ? { command: opts.command } : {}) };
    const body = JSON.stringify(info, null, 2) + '\n';
    for (let attempt = 0; attempt < 4; attempt++) {
      if (await create(dir, body)) {
        const lock = new TargetLock(dir, info, body);
        lock.timer = setInterval(() => void lock.beat(), HEARTBEAT_MS);
        lock.timer.unref();
        return lock;
      }
      const s = await lockState(dir);
      if (!s) continue; // released meanwhile
      if (s.live && !(opts.forceUnlock && s.forcible)) throw lockedError(dir, s.info);
      await removeIf(dir, s.info.token);
    }
    throw new KspError('TARGET_LOCKED', `${uriOf(dir)}: could not take the lock: other runs keep taking it`, { file: uriOf(dir) });
  }

  private async beat(): Promise<void> {
    if (this.released) return;
    try {
      const s = await lockState(this.dir);
      if (!s || s.info.token !== this.info.token) {
        this.lost = true;
        return;
      }
      const loc = child(this.dir, LOCK_NAME);
      if (loc.storage instanceof LocalStorage) {
        const now = new Date();
        await fsp.utimes(loc.storage.pathOf(loc.key), now, now);
      } else {
        await loc.storage.write(loc.key, Buffer.from(this.body));
      }
    } catch {
      // A missed heartbeat; the next one retries. Staleness needs several.
    }
  }

  /** Before sealing: the lock must still be ours (not taken over as stale while this run stalled). */
  async assertHeld(): Promise<void> {
    const s = this.lost ? null : await lockState(this.dir);
    if (!s || s.info.token !== this.info.token) {
      this.lost = true;
      throw new KspError('TARGET_LOCKED', `${uriOf(this.dir)}: this run's lock was taken over by another run (it was judged stale), so nothing was sealed`, { file: uriOf(this.dir) });
    }
  }

  /** Releases the lock; never throws (runs on every exit path, failures included). */
  release(): Promise<void> {
    // A second caller (a signal's handler during the first release) waits for
    // the same removal, so the process never exits between its rename and rm.
    this.releasing ??= (async () => {
      this.released = true;
      if (this.timer) clearInterval(this.timer);
      await removeIf(this.dir, this.info.token).catch(() => undefined);
    })();
    return this.releasing;
  }
}
