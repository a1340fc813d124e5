import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from '../support/cli.js';
import { tempDir } from '../support/env.js';
import { buildSavepoint } from '../write/build.js';
import { entry, files, treeHashes, useTempDirs } from '../write/support.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';

/**
 * Issue 12, items 11 and 12: SIGINT, SIGTERM and SIGHUP roll a write back
 * like any failure and exit 130 / 143 / 129 with a ksp: line; spill folders
 * of dead runs are removed at the next start, and ksp says how much it freed.
 */

const tmp = useTempDirs('ksp-safety-');
let big: string;

afterAll(() => rmSync(big, { recursive: true, force: true }));

beforeAll(async () => {
  // Big enough that a rescale takes a few seconds: 4 tasks, 240,000 entries, ~40 MB.
  big = tempDir('ksp-safety-big-').path;
  const tasks: StateEntry[][] = [];
  const value = 'v'.repeat(150);
  for (let t = 0; t < 4; t++) {
    const list: StateEntry[] = [];
    for (let i = 0; i < 60_000; i++) list.push(entry('agg', 'sum', `key-${t}-${i}`, value));
    tasks.push(list);
  }
  await buildSavepoint(big, [{ id: 'agg', tasks }]);
}, 120_000);

interface Killed {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Starts `ksp` (the launcher, which runs the write in a child) and sends `signal` once `when` holds. */
function runAndSignal(args: string[], env: NodeJS.ProcessEnv, when: () => boolean, signal: NodeJS.Signals): Promise<Killed & { sent: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, CI: 'true', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d) => (stderr += d));
    const poll = setInterval(() => {
      if (!sent && when()) {
        sent = true;
        child.kill(signal);
      }
    }, 5);
    child.on('error', reject);
    child.on('close', (code, sig) => {
      clearInterval(poll);
      resolve({ code, signal: sig, stderr, sent });
    });
  });
}

const spillFolders = (dir: string): string[] => readdirSync(dir).filter((n) => n.startsWith('ksp-'));
const tempFilesIn = (dir: string): string[] => (readdirSync(dir, { recursive: true }) as string[]).filter((n) => n.includes('.ksp-tmp-') && !n.includes('.ksp-lock'));

describe('signals roll a write back', () => {
  const cases: Array<{ signal: NodeJS.Signals; code: number; when: 'spill' | 'files' }> = [
    { signal: 'SIGTERM', code: 143, when: 'spill' },
    { signal: 'SIGINT', code: 130, when: 'files' },
    { signal: 'SIGHUP', code: 129, when: 'spill' },
  ];
  for (const c of cases) {
    it(`${c.signal} during a rescale (${c.when === 'spill' ? 'while routing' : 'while writing the target'}) exits ${c.code} with a ksp: line and leaves nothing behind`, async () => {
      const before = treeHashes(big);
      const work = tmp();
      const temp = join(work, 'temp');
      mkdirSync(temp);
      const out = join(work, 'out');
      // "spill": mid-routing, before any output is complete (a local rescale routes without spilling,
      // into temporary files at the target; the streaming path spills to --temp-dir).
      const when = c.when === 'spill'
        ? () => spillFolders(temp).length > 0 || (existsSync(out) && tempFilesIn(out).length > 0)
        : () => existsSync(out) && files(out).some((f) => f.endsWith('state.bin'));
      const r = await runAndSignal(['rescale', big, out, '-p', '3', '--mode', 'relative', '--temp-dir', temp], {}, when, c.signal);
      expect(r.sent, `the write ended before the signal: ${r.stderr}`).toBe(true);
      expect(r.code, r.stderr).toBe(c.code);
      expect(r.stderr).toMatch(new RegExp(`^ksp: interrupted by ${c.signal}; rolled back`, 'm'));
      // Nothing at the target (the folder this run made is gone too), no spill folder, no lock.
      expect(existsSync(out) ? files(out) : [], r.stderr).toEqual([]);
      expect(existsSync(out)).toBe(false);
      expect(spillFolders(temp)).toEqual([]);
      expect(treeHashes(big)).toEqual(before);
      // And the next run succeeds.
      const again = spawnSync(process.execPath, [BIN, 'rescale', big, out, '-p', '3', '--mode', 'relative', '--temp-dir', temp], { encoding: 'utf8' });
      expect(again.status, again.stderr).toBe(0);
    }, 180_000); // a rescale, a signal, a roll-back and a second rescale: minutes on a loaded 2-core machine
  }
});

describe('leftovers of dead runs', () => {
  it('stale spill folders are removed at the start, and ksp says how much it freed; live ones stay', async () => {
    const work = tmp();
    const temp = join(work, 'temp');
    const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
    const stale = join(temp, `ksp-rescale-${deadPid}-abc123`);
    mkdirSync(stale, { recursive: true });
    writeFileSync(join(stale, 'task-0.entries'), Buffer.alloc(5000));
    const live = join(temp, `ksp-sort-${process.pid}-xyz789`);
    mkdirSync(live);
    writeFileSync(join(live, 'run-0'), Buffer.alloc(10));
    const unrelated = join(temp, 'something-else');
    mkdirSync(unrelated);
    const r = spawnSync(process.execPath, [BIN, 'rescale', big, join(work, 'out'), '-p', '2', '--mode', 'relative', '--temp-dir', temp, '--json'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).tempCleanup).toEqual({ dir: temp, folders: 1, bytes: 5000 });
    expect(r.stderr).toContain('removed 1 temporary folder(s) left by dead runs');
    expect(r.stderr).toContain('freeing 5000 bytes');
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(unrelated)).toBe(true);
  });
});
