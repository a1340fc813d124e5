/**
 * Kill harness (issue 12): every writing command, run as the real CLI, is
 * killed at seeded random moments with SIGKILL, SIGTERM and SIGINT; what it
 * leaves, the source, and a re-run are checked (see harness.ts).
 *
 *   npm test                 20 kill points per command
 *   npm run test:crash       200 kill points per command (KSP_CRASH_POINTS=200)
 *   KSP_CRASH_SEED=N         replays the kill moments of a printed seed
 *   KSP_CRASH_FORCE_UNLOCK=1 re-runs with --force-unlock
 *
 * Each command gets its own work folder, with its own --temp-dir so spill
 * folders can be counted. The commands are split over two test files
 * (crash-*.test.ts), so the two test workers of `npm test` share them.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/env.js';
import { crashPoints, crashSeed, describeTarget, formatFailures, generateSavepoint, runKsp, runScenario, tail, type Scenario, type ScenarioResult } from './harness.js';

export const SCENARIO_NAMES = ['relocate (relative)', 'relocate (engine)', 'rescale 4→7', 'migrate (value step)', 'convert --to native', 'convert --to canonical', 'edit --rename'] as const;

/** The scenarios named in `only` (see SCENARIO_NAMES), and the launcher kill when asked. */
export function crashSuite(only: readonly string[], withLauncherKill: boolean): void {
  const SEED = crashSeed();
  const POINTS = crashPoints();
  /** Entries of the rescale source (enough that a kill lands mid-write), and of the others'. */
  const RESCALE_ENTRIES = Number(process.env.KSP_CRASH_RESCALE_ENTRIES ?? 100_000);
  const ENTRIES = Number(process.env.KSP_CRASH_ENTRIES ?? 30_000);
  /**
   * Generous: a point is a killed run, a re-run and a verify or two, and the
   * machine may be shared. A scenario stops starting points a minute before
   * its test times out (and says so), so it never runs on beside the next.
   */
  const TIMEOUT = Number(process.env.KSP_CRASH_TIMEOUT_MS ?? 300_000 + POINTS * 45_000);

  const EPOCH_DIR = '00000000000000000001';

  let work: { path: string; cleanup: () => void };
  let big: string;
  let small: string;
  let native: string;
  let migrations: string;
  const results: ScenarioResult[] = [];

  beforeAll(async () => {
    work = tempDir('ksp-crash-');
    console.log(`crash harness: seed ${SEED} (set KSP_CRASH_SEED=${SEED} to replay), ${POINTS} kill point(s) per command`);
    big = await generateSavepoint(join(work.path, 'src-big'), RESCALE_ENTRIES);
    small = await generateSavepoint(join(work.path, 'src-small'), ENTRIES);
    // A native source for convert --to canonical, made by ksp itself.
    native = join(work.path, 'src-native');
    const r = await runKsp(['convert', small, native, '--to', 'native', '--mode', 'relative', '--temp-dir', work.path]);
    if (r.status !== 0) throw new Error(`making the native source failed: ${tail(r.stderr, 10)}`);
    // A value migration step, as the README's migrate section shows.
    migrations = join(work.path, 'migrations.mjs');
    writeFileSync(migrations, `export default (m, codecs) => {
    m.value('op-crash', 1, 2, codecs.msgpack, codecs.msgpack, (o) => ({ ...o, sum: o.sum * 2 }), { state: 'counts' });
  };
  `);
  }, 120_000);

  afterAll(() => {
    const total = results.reduce((n, r) => n + r.failures.length, 0);
    console.log(`crash harness: seed ${SEED}, ${POINTS} point(s) per command, ${total} failed check(s)\n` +
      results.map((r) => `  ${r.name}: reference ${r.referenceMs.toFixed(0)} ms; targets ${Object.entries(r.outcomes).map(([k, v]) => `${v} ${k}`).join(', ')}; ${r.completedBeforeKill} finished before the signal; ${r.failures.length} failed check(s)${r.notFired.length ? `; targeted moments never seen: ${r.notFired.join('; ')}` : ''}`).join('\n'));
    work?.cleanup();
  });

  const engineSeal = (d: string): string => join(d, 'crash', 'savepoints', EPOCH_DIR);
  const itself = (d: string): string => d;

  /** One per writing command; `make` runs after beforeAll has made the sources. */
  const scenarios: Array<{ name: (typeof SCENARIO_NAMES)[number]; make: () => Omit<Scenario, 'name'> }> = [
    { name: 'relocate (relative)', make: () => ({ src: small, args: (d, t) => ['relocate', small, d, '--mode', 'relative', '--temp-dir', t], sealDir: itself }) },
    { name: 'relocate (engine)', make: () => ({ src: small, args: (d, t) => ['relocate', small, d, '--mode', 'engine', '--temp-dir', t], sealDir: engineSeal }) },
    { name: 'rescale 4→7', make: () => ({ src: big, args: (d, t) => ['rescale', big, d, '-p', '7', '--mode', 'relative', '--temp-dir', t], sealDir: itself }) },
    { name: 'migrate (value step)', make: () => ({ src: small, args: (d, t) => ['migrate', small, d, '--migrations', migrations, '--mode', 'relative', '--temp-dir', t], sealDir: itself }) },
    { name: 'convert --to native', make: () => ({ src: small, args: (d, t) => ['convert', small, d, '--to', 'native', '--mode', 'relative', '--temp-dir', t], sealDir: itself }) },
    { name: 'convert --to canonical', make: () => ({ src: native, args: (d, t) => ['convert', native, d, '--to', 'canonical', '--mode', 'relative', '--temp-dir', t], sealDir: itself }) },
    { name: 'edit --rename', make: () => ({ src: small, args: (d, t) => ['edit', small, d, '--rename', 'op-crash=op-renamed', '--mode', 'relative', '--temp-dir', t], sealDir: itself }) },
  ];

  if (withLauncherKill) describe('kill -9 of the launcher alone', () => {
    // bin/ksp.js runs writing commands in a child process. `kill -9 PID` of
    // the pid a user sees reaches only the launcher; the worker must not go
    // on writing unseen (and race the user's next run).
    it('leaves no ksp process running', async () => {
      const dir = join(work.path, 'launcher-kill');
      mkdirSync(join(dir, 'tmp'), { recursive: true });
      const args = ['rescale', big, join(dir, 'target'), '-p', '7', '--mode', 'relative', '--temp-dir', join(dir, 'tmp')];
      const ref = await runKsp(args);
      expect(ref.status, tail(ref.stderr)).toBe(0);
      rmSync(join(dir, 'target'), { recursive: true, force: true });
      const delayMs = Math.floor(ref.ms / 4);
      // The worker notices the launcher's death (its IPC channel closes), rolls
      // its write back and exits: give that rollback a few seconds, not more.
      const r = await runKsp(args, { signal: 'SIGKILL', delayMs, launcherOnly: true }, 60_000, 10_000);
      expect(existsSync(join(dir, 'target', 'manifest.sha256')), 'the abandoned write was sealed').toBe(false);
      expect(r.strayProcesses, `ksp ${args.join(' ')}: SIGKILL to the launcher after ${delayMs} ms; still running: ${r.strayProcesses}; ${describeTarget(join(dir, 'target'), join(dir, 'target'))}`).toBeUndefined();
    }, 120_000);
  });

  describe(`kill harness (${POINTS} points per command)`, () => {
    for (const { name, make } of scenarios.filter((x) => only.includes(x.name))) {
      it(`${name}: killed at random moments, the target is absent, unsealed or correct; the source is unchanged; a re-run succeeds and leaves nothing`, async () => {
        const sc: Scenario = { name, ...make() };
        const dir = join(work.path, name.replace(/[^a-z0-9]+/gi, '-'));
        mkdirSync(dir, { recursive: true });
        const r = await runScenario(sc, dir, SEED, POINTS, (s) => console.log(s), Date.now() + TIMEOUT - 60_000);
        results.push(r);
        if (r.failures.length > 0) console.error(formatFailures(r));
        expect(r.failures.length, formatFailures(r)).toBe(0);
      }, TIMEOUT);
    }
  });
}
