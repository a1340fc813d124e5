import { rmSync } from 'node:fs';
import { constants } from 'node:os';
import { KspError } from '../errors.js';
import { removeLiveTempDirs } from './temp-dir.js';

/**
 * SIGINT, SIGTERM and SIGHUP during a write roll it back like any failure.
 *
 * The CLI installs one handler per signal (`installSignalHandlers`); a write
 * in progress registers its rollback (`onInterrupt`). On a signal the
 * rollback runs (manifest first, then the written files, spill folders, S3
 * multipart uploads, the lock), a `ksp:` line goes to stderr, and the
 * process exits 128 + the signal's number (130, 143, 129), as shells expect.
 * Meanwhile the write itself sees `interrupted()` and stops at its next
 * chunk. Repeated signals (a terminal's Ctrl-C reaches both the launcher,
 * which forwards it, and this process) do not cut the rollback short.
 */

export type Rollback = (signal: NodeJS.Signals) => Promise<string | undefined>;

let current: Rollback | null = null;
/** Local files that exist only for a moment (the lock's temporary names): removed before a signal's exit. */
const momentary = new Set<string>();

/** Registers a short-lived local file to remove if a signal ends the process; returns the function that unregisters it. */
export function removeOnSignal(path: string): () => void {
  momentary.add(path);
  return () => void momentary.delete(path);
}
let caught: NodeJS.Signals | null = null;
let installed = false;

/** Registers the rollback of the write in progress; returns the function that unregisters it. */
export function onInterrupt(fn: Rollback): () => void {
  current = fn;
  return () => {
    if (current === fn) current = null;
  };
}

/**
 * The write has sealed a verified output: a signal from now on keeps it
 * (removing a complete, verified savepoint helps no one) and says so.
 */
export function sealedAt(target: string, release: () => Promise<void>): void {
  // The launcher (bin/ksp.js) learns it too: a signal that ends this process
  // while it exits, past its handlers, must still be reported as kept.
  if (process.env[LAUNCHER_ENV] === '1') process.send?.({ ksp: 'sealed', target });
  current = async () => {
    await release();
    return `the output at ${target} was already sealed and verified, so it was kept`;
  };
}

/** The signal that interrupted this process, if any. */
export function interrupted(): NodeJS.Signals | null {
  return caught;
}

/** Throws once a signal arrived: the write stops at its next step. */
export function checkInterrupted(): void {
  if (caught) throw new KspError('INTERRUPTED', `interrupted by ${caught}`, { signal: caught });
}

/** Upper bound on the rollback after a signal, so a hung storage cannot keep the process alive. */
const ROLLBACK_LIMIT_MS = 60_000;

/** Set by bin/ksp.js in the environment of the child it runs a write in. */
export const LAUNCHER_ENV = 'KSP_LAUNCHED_WITH_IPC';

export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 15);
}

export function installSignalHandlers(opts: { json: boolean }): void {
  if (installed) return;
  installed = true;
  const trigger = (sig: NodeJS.Signals): void => {
    if (caught) return;
    caught = sig;
    void handle(sig, opts.json);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => trigger(sig));
  // Started by bin/ksp.js with an IPC channel: when the launcher dies
  // (kill -9 included), the channel closes, and the write rolls back as on a
  // hang-up instead of running on unseen. Only the launcher's channel: a
  // process that runs ksp as a library (a test runner's forked worker) has a
  // channel of its own that ksp must neither unref nor answer.
  if (process.channel && process.env[LAUNCHER_ENV] === '1') {
    process.channel.unref();
    process.on('disconnect', () => trigger('SIGHUP'));
  }
}

async function handle(sig: NodeJS.Signals, json: boolean): Promise<void> {
  let what: string | undefined;
  let failure: string | undefined;
  const fn = current;
  if (fn) {
    const limit = new Promise<string>((resolve) => setTimeout(() => resolve('the rollback did not finish in time'), ROLLBACK_LIMIT_MS).unref());
    try {
      what = await Promise.race([fn(sig), limit]);
    } catch (e) {
      failure = (e as Error).message;
    }
  }
  removeLiveTempDirs();
  for (const p of momentary) rmSync(p, { force: true });
  const detail = failure ? `; the rollback failed: ${failure}` : what ? `; ${what}` : '';
  if (json) process.stdout.write(JSON.stringify({ error: { code: 'INTERRUPTED', message: `interrupted by ${sig}${detail}`, signal: sig } }, null, 2) + '\n');
  // On a terminal, over any progress line still drawn (cli/progress.ts).
  process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[K' : ''}ksp: interrupted by ${sig}${detail}\n`);
  process.exit(signalExitCode(sig));
}
