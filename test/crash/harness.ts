/**
 * The kill harness (issue 12, "Tests the project keeps"): runs a writing
 * command as a user would (`node bin/ksp.js …`, a child process), kills it at
 * a seeded random moment with SIGKILL, SIGTERM or SIGINT, and checks what it
 * left behind, then re-runs it and checks that nothing of the killed run is
 * left. suite.ts drives it (through crash-a and crash-b.test.ts), one scenario per writing command.
 *
 * What a kill may leave (checked after every kill):
 * - the target absent (or an empty folder), or
 * - present but unsealed: no manifest.sha256, and `ksp verify` fails on it, or
 * - sealed and correct: `ksp verify` passes and every file equals a reference
 *   run's output (meta.json up to its creation time);
 * and always: the source byte-identical.
 * After SIGTERM/SIGINT also: exit 143/130 with a `ksp:` line on stderr (the
 * rollback ran), no `*.ksp-tmp-*` file at the target, no spill folder in the
 * temp dir. After the re-run (`--overwrite`): exit 0, the output equals the
 * reference file for file (so no `*.ksp-tmp-*`, lock or stray file is left),
 * its manifest matches its files, and the temp dir is empty.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { constants } from 'node:os';
import * as fs from 'node:fs';
import { join, relative } from 'node:path';
import { BIN } from '../support/cli.js';
import { prng, writeSyntheticSavepoint } from '../../src/tools/synthetic.js';

// ---------------------------------------------------------------- settings

/** KSP_CRASH_SEED (decimal or 0x…) reproduces a run; without it a fresh seed is drawn and printed. */
export function crashSeed(): number {
  const s = process.env.KSP_CRASH_SEED;
  if (s !== undefined && s !== '') {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new Error(`KSP_CRASH_SEED must be an integer 0..2^32-1, got ${s}`);
    return n;
  }
  return Math.floor(Math.random() * 0x1_0000_0000);
}

/** Kill points per command: KSP_CRASH_POINTS (npm run test:crash sets 200), 20 by default. */
export function crashPoints(): number {
  const n = Number(process.env.KSP_CRASH_POINTS ?? 20);
  if (!Number.isInteger(n) || n < 1) throw new Error(`KSP_CRASH_POINTS must be a positive integer, got ${process.env.KSP_CRASH_POINTS}`);
  return n;
}

/** mulberry32 (src/tools/synthetic.ts): the same sequence for the same seed everywhere. */
export const rng = prng;

/** A per-command seed derived from the run's seed, so one command's points do not shift when another is added. */
export function subSeed(seed: number, name: string): number {
  return createHash('sha256').update(`${seed}:${name}`).digest().readUInt32LE(0);
}

export type KillSignal = 'SIGKILL' | 'SIGTERM' | 'SIGINT';

/**
 * Signal of point i: three in five SIGKILL, one SIGTERM, one SIGINT, so
 * every count of points has all three, in a fixed order.
 */
export function signalOf(i: number): KillSignal {
  return (['SIGKILL', 'SIGTERM', 'SIGKILL', 'SIGINT', 'SIGKILL'] as const)[i % 5]!;
}

// ---------------------------------------------------------------- source savepoint

/**
 * A canonical savepoint in the engine's layout (`{dir}/crash/savepoints/{epoch:020}`),
 * written with ksp's own encoders as the bench does: `entries` entries over
 * `tasks` tasks of operator `op-crash`, 16-byte keys, ~100-byte msgpack values
 * (`{ n, sum, tag }`), states `counts` (one entry in four) and `sessions`.
 * The bytes come from a fixed PRNG: the same data on every run.
 */
export async function generateSavepoint(dir: string, entries: number, tasks = 4): Promise<string> {
  const next = rng(0x5eed);
  const fill = (pool: Buffer): void => {
    for (let o = 0; o < pool.length; o += 4) pool.writeUInt32LE((next() * 0x1_0000_0000) >>> 0, o);
  };
  return (await writeSyntheticSavepoint(dir, { job: 'crash', operator: 'op-crash', entries, tasks, fill })).sp;
}

// ---------------------------------------------------------------- trees

/**
 * Every entry under `dir` (files hashed, symlinks by their target text,
 * folders only when empty), relative paths: a byte-exact snapshot of a tree.
 * Missing `dir` is an empty map.
 */
export function treeHashes(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!fs.existsSync(dir)) return out;
  const walk = (d: string): void => {
    const names = fs.readdirSync(d).sort();
    if (names.length === 0 && d !== dir) out.set(relative(dir, d) + '/', 'dir');
    for (const name of names) {
      const p = join(d, name);
      const st = fs.lstatSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isSymbolicLink()) out.set(relative(dir, p), `link:${fs.readlinkSync(p)}`);
      else if (st.isFile()) out.set(relative(dir, p), createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
      else out.set(relative(dir, p), `special:${st.mode}`);
    }
  };
  walk(dir);
  return out;
}

/**
 * A tree as it compares across runs: the same as treeHashes, except that a
 * `meta.json` is hashed without its `created_at_secs` (the only thing that
 * differs between two runs of one command) and a `manifest.sha256` without
 * its `meta.json` line (that line covers the creation time). That the
 * manifest matches the files is checked separately (manifestMismatches).
 */
export function comparableTree(dir: string): Map<string, string> {
  const out = treeHashes(dir);
  for (const [rel, h] of out) {
    const base = rel.split('/').pop()!;
    if (h.startsWith('link:') || h.startsWith('special:') || h === 'dir') continue;
    if (base === 'meta.json') {
      try {
        const doc = JSON.parse(fs.readFileSync(join(dir, rel), 'utf8')) as Record<string, unknown>;
        delete doc.created_at_secs;
        out.set(rel, 'meta:' + createHash('sha256').update(JSON.stringify(doc)).digest('hex'));
      } catch {
        // not JSON: compared by bytes, as read above
      }
    } else if (base === 'manifest.sha256') {
      const text = fs.readFileSync(join(dir, rel), 'utf8').split('\n').filter((l) => !/\s\*?meta\.json$/.test(l)).join('\n');
      out.set(rel, 'manifest:' + createHash('sha256').update(text).digest('hex'));
    }
  }
  return out;
}

/** What differs between two trees, as short lines (missing, extra, differs), at most `max` of them. */
export function treeDiff(found: Map<string, string>, expected: Map<string, string>, max = 8): string[] {
  const lines: string[] = [];
  for (const [rel, h] of expected) {
    if (!found.has(rel)) lines.push(`missing ${rel}`);
    else if (found.get(rel) !== h) lines.push(`differs ${rel}`);
  }
  for (const rel of found.keys()) if (!expected.has(rel)) lines.push(`extra ${rel}`);
  return lines.length > max ? [...lines.slice(0, max), `… ${lines.length - max} more`] : lines;
}

/**
 * Lines of `{sealDir}/manifest.sha256` whose file is missing or has another
 * SHA-256 (the same test `ksp verify` makes of the manifest; with the files
 * equal to a verified reference run, this makes the output verify).
 */
export function manifestMismatches(sealDir: string): string[] {
  const bad: string[] = [];
  const text = fs.readFileSync(join(sealDir, 'manifest.sha256'), 'utf8');
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const m = /^(?:sha256:)?([0-9a-f]{64})\s+\*?(.+)$/.exec(line);
    if (!m) {
      bad.push(`unparsed line ${JSON.stringify(line)}`);
      continue;
    }
    const p = join(sealDir, m[2]!);
    if (!fs.existsSync(p)) bad.push(`listed but missing: ${m[2]}`);
    else if (createHash('sha256').update(fs.readFileSync(p)).digest('hex') !== m[1]) bad.push(`hash differs: ${m[2]}`);
  }
  return bad;
}

/** `*.ksp-tmp-*` files (local storage's write-then-rename names) under `dir`. */
export function tempFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((p) => p.split('/').pop()!.includes('.ksp-tmp-')).sort();
}

/** Entries of the dedicated temp dir (spill and sort folders: ksp-rescale-*, ksp-sort-*, ksp-rewrite-*). */
export function tempDirEntries(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

export function emptyDir(dir: string): void {
  for (const e of tempDirEntries(dir)) fs.rmSync(join(dir, e), { recursive: true, force: true });
}

// ---------------------------------------------------------------- processes

export interface Exit {
  /** As a shell reports it: the exit code, or 128 + signal number. */
  status: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** Set when a process of the run's group was still alive after the launcher exited. */
  strayProcesses?: string;
  /** When the kill was sent (ms after the spawn); undefined if it never was. */
  firedAtMs?: number;
}

function statusOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? constants.signals[signal] : 0);
}

/**
 * Live (not zombie) processes whose process group is `pgid`, from /proc. A
 * killed worker is reparented, and pid 1 of a container may never reap it,
 * so `kill(-pgid, 0)` would count zombies as alive.
 */
export function groupMembers(pgid: number, zombies = false): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest: state, ppid, pgrp, …
    if (Number(rest[2]) === pgid && (zombies || (rest[0] !== 'Z' && rest[0] !== 'X'))) out.push(`${name}(${rest[0]})`);
  }
  return out;
}

async function waitGroupGone(pgid: number, ms: number, zombies = false): Promise<string[]> {
  const until = Date.now() + ms;
  for (;;) {
    const left = groupMembers(pgid, zombies);
    if (left.length === 0 || Date.now() > until) return left;
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface KillPlan {
  signal: KillSignal;
  /** Milliseconds after the spawn; or, with `when`, the earliest moment to start watching. */
  delayMs: number;
  /**
   * Instead of a fixed moment: polled every millisecond or so from `delayMs`
   * on, the signal goes as soon as it returns true (e.g. a `*.ksp-tmp-*`
   * file exists at the target). `firedAtMs` on the result says when, or
   * that it never did.
   */
  when?: () => boolean;
  /** Send it to the launcher's pid alone, whatever the signal (what `kill -9 PID` does). */
  launcherOnly?: boolean;
}

/**
 * Runs `node bin/ksp.js args` in its own process group. With `kill`, sends
 * the signal `delayMs` after the spawn: SIGKILL to the whole group (a crash
 * takes the launcher and the worker it starts alike), SIGINT to the whole
 * group (what Ctrl-C in a terminal does), SIGTERM to the launcher only (what
 * `kill PID` does; the launcher passes it on). After the launcher exits,
 * waits for every process of the group to be gone; one still alive is noted
 * (and then killed, so the next run is not raced).
 */
export async function runKsp(args: string[], kill?: KillPlan, hangMs = 60_000, graceMs = 1_000): Promise<Exit> {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: 'true' };
  delete env.KSP_TMPDIR;
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const pgid = child.pid!;
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  // 'exit' is the launcher's end; 'close' comes when every holder of its
  // stdout/stderr is gone, which includes a worker that outlived it.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const send = (sig: NodeJS.Signals, group: boolean): void => {
    try {
      process.kill(group ? -pgid : pgid, sig);
    } catch {
      // already gone
    }
  };
  let timer: NodeJS.Timeout | undefined;
  let firedAtMs: number | undefined;
  const fire = (): void => {
    firedAtMs = performance.now() - t0;
    send(kill!.signal, kill!.signal !== 'SIGTERM' && !kill!.launcherOnly);
  };
  if (kill && !kill.when) timer = setTimeout(fire, kill.delayMs);
  else if (kill?.when) {
    const when = kill.when;
    const poll = (): void => {
      let hit = false;
      try {
        hit = when();
      } catch {
        // the tree changed under the walk: look again
      }
      if (hit) fire();
      else timer = setTimeout(poll, 1);
    };
    timer = setTimeout(poll, kill.delayMs);
  }
  // A run that hangs (e.g. ignores SIGTERM) is killed, and says so in stderr.
  const hang = setTimeout(() => {
    stderr += `\n[harness] no exit after ${hangMs} ms: SIGKILL sent to the group\n`;
    send('SIGKILL', true);
  }, hangMs);
  const { code, signal } = await exited;
  const ms = performance.now() - t0;
  clearTimeout(timer);
  // The launcher waits for its worker, so both should be gone together;
  // one alive `graceMs` later outlived it.
  const left = await waitGroupGone(pgid, graceMs);
  if (left.length > 0) {
    send('SIGKILL', true);
    await waitGroupGone(pgid, 5_000);
  }
  await closed;
  clearTimeout(hang);
  // A killed worker is a zombie until pid 1 reaps it, and a pid check
  // (`kill(pid, 0)`, as a lock's liveness test may do) still finds it. A
  // user's next command comes seconds later; give the reaper that long.
  await waitGroupGone(pgid, 3_000, true);
  const exit: Exit = { status: statusOf(code, signal), code, signal, stdout, stderr, ms, firedAtMs };
  if (left.length > 0) exit.strayProcesses = left.join(', ');
  return exit;
}

/** The last lines of a process's stderr, for messages. */
export function tail(text: string, lines = 4): string {
  return text.trim().split('\n').slice(-lines).join(' | ');
}

// ---------------------------------------------------------------- one command under kills

export interface Scenario {
  /** Short name, used in messages and to derive the command's seed. */
  name: string;
  /** The source savepoint directory (hashed before and after every kill). */
  src: string;
  /** The command's arguments for a target `dst` and a temp dir, without --overwrite. */
  args(dst: string, tempDir: string): string[];
  /** The folder holding manifest.sha256 for a target `dst` (engine mode: {dst}/{job}/savepoints/{epoch:020}). */
  sealDir(dst: string): string;
}

export interface Failure {
  property: string;
  point: number;
  signal: KillSignal | 'reference';
  delayMs: number;
  overwrite: boolean;
  detail: string;
}

export interface ScenarioResult {
  name: string;
  seed: number;
  points: number;
  referenceMs: number;
  failures: Failure[];
  /** How the targets of the kills were found: absent, unsealed, sealed (and checked), untouched (the previous output, bytes unchanged). */
  outcomes: Record<string, number>;
  /** Kills that landed after the run had already finished. */
  completedBeforeKill: number;
  /** Targeted points whose moment never came (e.g. no *.ksp-tmp-* file seen). */
  notFired: string[];
}

/** Describes what is at a target, for failure messages. */
export function describeTarget(dst: string, sealDir: string): string {
  if (!fs.existsSync(dst)) return 'target absent';
  const files = [...treeHashes(dst).keys()];
  const sealed = fs.existsSync(join(sealDir, 'manifest.sha256'));
  const tmp = files.filter((f) => f.includes('.ksp-tmp-'));
  const shown = files.slice(0, 6).join(', ') + (files.length > 6 ? `, … (${files.length} in all)` : '');
  return `target ${sealed ? 'SEALED' : 'unsealed'}, ${files.length} file(s)${tmp.length ? `, ${tmp.length} *.ksp-tmp-*` : ''}: ${shown}`;
}

const FORCE_UNLOCK = process.env.KSP_CRASH_FORCE_UNLOCK === '1';

/**
 * Runs one scenario: a reference run (its duration D sets the kill window;
 * D is then the median duration of the runs so far), then `points` kills,
 * each at a delay drawn uniformly from [0, D), each
 * followed by the checks and a re-run with --overwrite. Points alternate
 * between a fresh target (even) and an --overwrite run on top of the
 * previous complete output (odd), so kills also land while an old output is
 * being replaced. Then a few targeted points, each on a fresh target: the
 * signal goes the moment a `*.ksp-tmp-*` file exists at the target, a spill
 * folder exists in the temp dir, or manifest.sha256 exists (the moments
 * behind the issue's findings 11, 12 and 14). Failures are collected, not
 * thrown: one run shows every property that does not hold.
 */
export async function runScenario(sc: Scenario, work: string, seed: number, points: number, log: (s: string) => void, deadline = Infinity): Promise<ScenarioResult> {
  const next = rng(subSeed(seed, sc.name));
  const failures: Failure[] = [];
  const outcomes: Record<string, number> = { absent: 0, unsealed: 0, sealed: 0, untouched: 0 };
  /** The exact tree of the last re-run output that passed every check. */
  let lastGood: Map<string, string> | undefined;
  let completedBeforeKill = 0;
  const refDst = join(work, 'reference');
  const dst = join(work, 'target');
  const tmp = join(work, 'tmp');
  fs.mkdirSync(tmp, { recursive: true });

  // The reference run also tells whether the command uses the temp dir at
  // all (a watcher that never fires).
  let spills = false;
  const ref = await runKsp(sc.args(refDst, tmp), { signal: 'SIGKILL', delayMs: 0, when: () => (spills ||= tempDirEntries(tmp).length > 0, false) });
  if (ref.status !== 0) throw new Error(`${sc.name}: the reference run failed (exit ${ref.status}): ${tail(ref.stderr, 10)}\n  ksp ${sc.args(refDst, tmp).join(' ')}`);
  const refVerify = await runKsp(['verify', sc.sealDir(refDst)]);
  if (refVerify.status !== 0) throw new Error(`${sc.name}: the reference output does not verify: ${tail(refVerify.stdout + refVerify.stderr, 10)}`);
  const refTree = comparableTree(refDst);
  // D follows the machine: the median of the reference run and every
  // complete re-run so far. A single measurement on a shared machine can be
  // several times too long, and then most "random" kills land after the end.
  const durations = [ref.ms];
  const duration = (): number => {
    const d = [...durations].sort((a, b) => a - b);
    return d[Math.floor((d.length - 1) / 2)]!;
  };
  const D = ref.ms;
  const fail = (f: Failure): void => {
    failures.push(f);
  };
  if (tempDirEntries(tmp).length > 0) {
    fail({ property: 'spill folder left in temp dir after a successful run', point: -1, signal: 'reference', delayMs: 0, overwrite: false, detail: tempDirEntries(tmp).join(', ') });
    emptyDir(tmp);
  }
  const srcTree = treeHashes(sc.src);
  const notFired: string[] = [];
  const result = (): ScenarioResult => ({ name: sc.name, seed, points, referenceMs: D, failures, outcomes, completedBeforeKill, notFired });
  log(`${sc.name}: reference run ${D.toFixed(0)} ms, ${refTree.size} file(s); ${points} kill point(s), seed ${seed}`);

  /** One kill point: the killed run, the checks on what it left, the re-run and the checks after it. */
  const point = async (i: number, signal: KillSignal, kill: KillPlan, overwrite: boolean, label: string): Promise<void> => {
    const args = sc.args(dst, tmp);
    const seal = sc.sealDir(dst);
    if (!overwrite) fs.rmSync(dst, { recursive: true, force: true });
    const runArgs = overwrite ? [...args, '--overwrite'] : args;
    const killed = await runKsp(runArgs, kill);
    const delayMs = Math.round(killed.firedAtMs ?? killed.ms);
    if (kill.when && killed.firedAtMs === undefined) {
      notFired.push(label);
      log(`${sc.name}: point ${i} (${label}): the moment never came (exit ${killed.status} after ${killed.ms.toFixed(0)} ms); checked as a plain run`);
    }
    const at = describeTarget(dst, seal);
    const ctx = `ksp ${runArgs.join(' ')}\n      ${label}: ${signal} ${killed.firedAtMs === undefined ? 'never sent' : `after ${delayMs} ms`} (runs take ~${duration().toFixed(0)} ms), exit ${killed.status}${killed.signal ? ` (${killed.signal})` : ''}; ${at}; stderr: ${tail(killed.stderr) || '(empty)'}`;
    const f = (property: string, extra = ''): void => fail({ property, point: i, signal, delayMs, overwrite, detail: extra ? `${ctx}\n      ${extra}` : ctx });

    if (killed.strayProcesses) f(`a ksp process outlived the launcher after ${signal}`, killed.strayProcesses);
    if (killed.status === 0) completedBeforeKill++;

    // The source is byte-identical.
    const srcDiff = treeDiff(treeHashes(sc.src), srcTree);
    if (srcDiff.length > 0) f('source modified', srcDiff.join('; '));

    // The target: absent, unsealed (and does not verify), or sealed and correct.
    const present = fs.existsSync(dst) && treeHashes(dst).size > 0;
    const untouched = present && lastGood !== undefined && treeDiff(treeHashes(dst), lastGood).length === 0;
    if (!present) outcomes.absent!++;
    else if (!fs.existsSync(join(seal, 'manifest.sha256'))) {
      outcomes.unsealed!++;
      // Without a manifest `ksp verify` fails by definition (MANIFEST_MISSING
      // is an error); the real command runs on the first unsealed target and
      // every fifth after, to hold that definition to the code.
      if (outcomes.unsealed! % 5 === 1) {
        const v = await runKsp(['verify', seal]);
        if (v.status === 0) f('unsealed target verifies');
      }
    } else if (lastGood !== undefined && treeDiff(treeHashes(dst), lastGood).length === 0) {
      // Killed before it touched the previous output, which was checked
      // after its own run: the same bytes need no second verify.
      outcomes.untouched!++;
    } else {
      outcomes.sealed!++;
      const v = await runKsp(['verify', seal]);
      if (v.status !== 0) f('sealed target does not verify', tail(v.stdout + v.stderr, 6));
      // Files of the reference must all be there and equal; stray temp
      // names are judged after the re-run.
      const found = comparableTree(dst);
      const diff = treeDiff(found, refTree).filter((l) => !l.startsWith('extra '));
      if (diff.length > 0) f('sealed target differs from the reference', diff.join('; '));
    }

    if (signal !== 'SIGKILL') {
      const want = signal === 'SIGTERM' ? 143 : 130;
      if (killed.status !== want && killed.status !== 0) f(`${signal} exit status is not ${want}`, `exit ${killed.status}`);
      // Before Node has run any of the launcher's code (its bootstrap, measured
      // once) no handler can exist: the default action kills it, and nothing
      // was written. Only then is a death by the signal accepted.
      const beforeJs = killed.signal !== null && delayMs < nodeBootMs() && (!present || untouched);
      if (killed.status === want && !beforeJs) {
        if (!/^ksp: /m.test(killed.stderr)) f(`${signal} exits ${want} with no ksp: line`);
        if (killed.signal !== null) f(`${signal}: the process died by the signal (no handler ran)`);
      }
      const tmpLeft = tempFiles(dst);
      if (tmpLeft.length > 0) f(`*.ksp-tmp-* left in target after ${signal}`, tmpLeft.slice(0, 4).join(', '));
      const spill = tempDirEntries(tmp);
      if (spill.length > 0) f(`spill folder left in temp dir after ${signal}`, spill.join(', '));
      // A signal after the seal keeps the complete, verified output (checked
      // above like any sealed target), and must say so.
      if (killed.status === want && fs.existsSync(join(seal, 'manifest.sha256')) && !overwrite && !/already sealed and verified, so it was kept/.test(killed.stderr)) f(`${signal}: target sealed although the run was interrupted`);
    }
    const spillAfterKill = tempDirEntries(tmp);

    // The re-run succeeds (with --force-unlock only when KSP_CRASH_FORCE_UNLOCK=1).
    const reArgs = [...args, '--overwrite', ...(FORCE_UNLOCK ? ['--force-unlock'] : [])];
    let re = await runKsp(reArgs);
    if (re.status === 0) durations.push(re.ms);
    let reGood = false;
    if (re.status !== 0 && /lock/i.test(re.stderr) && !FORCE_UNLOCK) {
      f(`re-run after ${signal} refused by the lock of the killed run`, tail(re.stderr));
      re = await runKsp([...reArgs, '--force-unlock']);
    }
    if (re.status !== 0) {
      f(`re-run after ${signal} fails`, `exit ${re.status}: ${tail(re.stderr, 6)}; ${describeTarget(dst, seal)}`);
    } else {
      const found = comparableTree(dst);
      const diff = treeDiff(found, refTree);
      const tmpLeft = diff.filter((l) => l.startsWith('extra ') && l.includes('.ksp-tmp-'));
      const otherDiff = diff.filter((l) => !tmpLeft.includes(l));
      if (tmpLeft.length > 0) f('*.ksp-tmp-* left in target after re-run', tmpLeft.join('; '));
      if (otherDiff.length > 0) f('re-run output differs from the reference', otherDiff.join('; '));
      const bad = fs.existsSync(join(seal, 'manifest.sha256')) ? manifestMismatches(seal) : ['no manifest.sha256'];
      if (bad.length > 0) f('re-run output does not verify (manifest vs files)', bad.slice(0, 4).join('; '));
      reGood = diff.length === 0 && bad.length === 0;
      // The real `ksp verify` on every fifth re-run output (the check above covers the others).
      if (i % 5 === 0) {
        const v = await runKsp(['verify', seal]);
        if (v.status !== 0) f('re-run output does not verify', tail(v.stdout + v.stderr, 6));
      }
    }
    lastGood = reGood ? treeHashes(dst) : undefined;
    const spill = tempDirEntries(tmp);
    if (spill.length > 0) {
      const ofKilled = spill.filter((e) => spillAfterKill.includes(e));
      f(ofKilled.length > 0 ? 'spill folder of the killed run left in temp dir after re-run' : 'spill folder of the re-run left in temp dir', spill.join(', '));
      emptyDir(tmp); // so the next point is judged on its own
    }
    const srcDiff2 = treeDiff(treeHashes(sc.src), srcTree);
    if (srcDiff2.length > 0) f('source modified by the re-run', srcDiff2.join('; '));
  };

  // Past the deadline no new point starts (a test that timed out would
  // otherwise go on spawning runs beside the next one); that is a failure.
  const late = (i: number): boolean => {
    if (Date.now() < deadline) return false;
    fail({ property: 'ran out of time', point: i, signal: 'reference', delayMs: 0, overwrite: false, detail: `stopped before point ${i} of ${points}; the machine is slower than the test timeout assumes (raise it, or lower KSP_CRASH_POINTS)` });
    return true;
  };
  // Random points: a delay uniform in [0, D); the signal by signalOf.
  for (let i = 0; i < points; i++) {
    if (late(i)) return result();
    const signal = signalOf(i);
    const delayMs = Math.floor(next() * duration());
    await point(i, signal, { signal, delayMs }, i % 2 === 1, 'random moment');
  }
  // Targeted points, at the moments the issue's findings come from (the
  // random ones hit them only now and then with data this small).
  // A state or metadata file under its temporary name (not the lock's own
  // temporary name, which exists only while the lock is taken).
  const tmpIn = (dir: string) => (): boolean => tempFiles(dir).some((p) => !p.split('/').pop()!.startsWith('.ksp-lock'));
  const sealed = (): boolean => fs.existsSync(join(sc.sealDir(dst), 'manifest.sha256'));
  const spilling = (): boolean => tempDirEntries(tmp).length > 0;
  const anyTmp = (): boolean => tempFiles(dst).length > 0;
  const targeted: Array<[KillSignal, () => boolean, string]> = [
    ['SIGKILL', tmpIn(dst), 'while a *.ksp-tmp-* file is being written at the target'],
    ['SIGTERM', tmpIn(dst), 'while a *.ksp-tmp-* file is being written at the target'],
    ['SIGTERM', anyTmp, 'as soon as the first *.ksp-tmp-* file of the run exists (a lock being taken, if any)'],
    ['SIGKILL', spilling, 'once a spill folder exists in the temp dir'],
    ['SIGINT', spilling, 'once a spill folder exists in the temp dir'],
    ['SIGTERM', sealed, 'as soon as manifest.sha256 exists'],
  ];
  for (const [k, [signal, when, label]] of targeted.entries()) {
    // A command that never spills: nothing to aim at.
    if (when === spilling && !spills) continue;
    if (late(points + k)) return result();
    await point(points + k, signal, { signal, delayMs: 0, when }, false, label);
  }
  return result();
}

/**
 * Failures grouped by property, each group with its count, the delays it
 * happened at, and its first case in full (command, delay, exit status,
 * what was at the target).
 */
export function formatFailures(r: ScenarioResult): string {
  const groups = new Map<string, Failure[]>();
  for (const f of r.failures) groups.set(f.property, [...(groups.get(f.property) ?? []), f]);
  const out = [`${r.name}: ${r.failures.length} failed check(s) in ${r.points} kill point(s) (seed ${r.seed}; reproduce with KSP_CRASH_SEED=${r.seed} KSP_CRASH_POINTS=${r.points})`];
  for (const [property, fs] of groups) {
    const delays = fs.map((f) => f.delayMs).sort((a, b) => a - b);
    const first = fs[0]!;
    out.push(`  - ${property}: ${fs.length}× (delays ${delays[0]}..${delays[delays.length - 1]} ms; points ${fs.map((f) => f.point).slice(0, 12).join(',')}${fs.length > 12 ? ',…' : ''})`);
    out.push(`      first: point ${first.point}${first.overwrite ? ' (--overwrite over a previous output)' : ''}: ${first.detail}`);
  }
  return out.join('\n');
}

let bootMs: number | undefined;
/**
 * How long Node takes here to start running an ES module (twice the slowest
 * of three bare starts, as the machine's load varies between runs): a signal
 * before that meets no handler of the launcher's.
 */
export function nodeBootMs(): number {
  if (bootMs === undefined) {
    let max = 0;
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      spawnSync(process.execPath, ['--input-type=module', '-e', ''], { stdio: 'ignore' });
      max = Math.max(max, Date.now() - t0);
    }
    bootMs = 2 * max;
  }
  return bootMs;
}
