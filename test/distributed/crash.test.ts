import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildSavepoint } from '../write/build.js';
import { entry, useTempDirs } from '../write/support.js';
import { ksp } from '../support/cli.js';
import { comparableTree } from './support.js';
import { start } from './processes.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';

/**
 * Crash safety of distributed units, as separate `ksp work` processes on a
 * local target: a shard killed with SIGKILL in the middle of a unit and
 * started again, with a duplicate of it running beside it, still gives the
 * one-process bytes; a commit with units missing is refused and nothing at
 * the target verifies.
 */

const tmp = useTempDirs('ksp-dist-crash-');
const FAST = { KSP_WORK_POLL_MS: '50' };

async function bigSource(dir: string): Promise<void> {
  const tasks: StateEntry[][] = [];
  for (let t = 0; t < 3; t++) {
    const list: StateEntry[] = [];
    for (let i = 0; i < 120_000; i++) list.push(entry('agg', 'sum', `key-${t}-${i}`, `value-${i}-${'x'.repeat(40)}`));
    tasks.push(list);
  }
  await buildSavepoint(dir, [{ id: 'agg', tasks }]);
}

const started = (out: string): string[] => {
  const d = join(out, '_ksp', 'units');
  if (!existsSync(d)) return [];
  const names = readdirSync(d);
  return names.filter((n) => n.endsWith('.started.json') && !names.includes(n.replace('.started.', '.done.'))).map((n) => n.split('.')[0]!);
};

async function until(cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('distributed units survive crashes (separate processes, local target)', () => {
  it('SIGKILL mid-unit, re-run with a duplicate beside it: the one-process bytes; commit with a unit missing is refused and nothing verifies', { timeout: 240_000 }, async () => {
    const src = join(tmp(), 'src');
    await bigSource(src);
    const one = join(tmp(), 'one');
    const r1 = await ksp(['rescale', src, one, '-p', '7', '--routing', 'state-key', '--mode', 'relative', '-q']);
    expect(r1.code, r1.stderr).toBe(0);

    const out = join(tmp(), 'out');
    const p = await ksp(['rescale', src, out, '-p', '7', '--routing', 'state-key', '--mode', 'relative', '--distributed', '--shards', '2', '--json']);
    expect(p.code, p.stderr).toBe(0);
    expect(JSON.parse(p.stdout).launch[0]).toContain('--shard 0/2');

    // Shard 0 killed while one of its units runs (its started record exists, its completion record does not).
    const a = start(['work', out, '--shard', '0/2'], FAST);
    await until(() => started(out).length > 0);
    await new Promise((r) => setTimeout(r, 100));
    a.kill();
    const killed = await a.done;
    expect(killed.signal).toBe('SIGKILL');
    const interrupted = started(out);
    expect(interrupted.length).toBeGreaterThan(0);

    // Commit now: refused, naming what is not done; nothing at the target verifies.
    const c0 = await ksp(['commit', out, '--json']);
    expect(c0.code, c0.stderr).toBe(1);
    const e = JSON.parse(c0.stdout).error;
    expect(e.code).toBe('DISTRIBUTED_INCOMPLETE');
    expect([...e.missing, ...e.running, ...e.stalled]).toEqual(expect.arrayContaining(interrupted));
    expect((await ksp(['verify', out])).code).not.toBe(0);
    expect(existsSync(join(out, 'manifest.sha256'))).toBe(false);
    expect(existsSync(join(out, 'metadata.json'))).toBe(false);
    const s0 = await ksp(['status', out, '--json']);
    expect(s0.code).toBe(1);
    expect(JSON.parse(s0.stdout).units.done).toBeLessThan(JSON.parse(s0.stdout).units.total);

    // Shard 0 again, a duplicate of it beside it, and shard 1.
    const runs = [start(['work', out, '--shard', '0/2'], FAST), start(['work', out, '--shard', '0/2'], FAST), start(['work', out, '--shard', '1/2'], FAST)];
    for (const r of runs) {
      const x = await r.done;
      expect(x.code, x.stderr).toBe(0);
    }
    const s1 = await ksp(['status', out, '--json']);
    expect(s1.code, s1.stdout).toBe(0);
    const c1 = await ksp(['commit', out]);
    expect(c1.code, c1.stderr).toBe(0);
    expect(existsSync(join(out, '_ksp'))).toBe(false);
    expect(comparableTree(out)).toEqual(comparableTree(one));
    expect((await ksp(['verify', out])).code).toBe(0);
    // A pod retried after the commit has nothing to do.
    const late = await ksp(['work', out, '--shard', '1/2']);
    expect(late.code, late.stderr).toBe(0);
    expect(late.stdout).toContain('already committed');
  });
});
