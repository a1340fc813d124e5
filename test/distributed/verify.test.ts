import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ksp } from '../support/cli.js';
import { useTempDirs } from '../write/support.js';
import { start } from './processes.js';
import { buildSource } from './support.js';

/**
 * A distributed `ksp verify` of an existing savepoint: planned into a work
 * folder, its shares run as separate `ksp work` processes, the reports
 * merged by `ksp commit`: the same verdict, totals and error findings as one
 * `ksp verify`, for a good savepoint and a damaged one.
 */

const tmp = useTempDirs('ksp-dist-verify-');

async function sharded(sp: string, n: number): Promise<{ code: number; report: any }> {
  const work = join(tmp(), 'work');
  const p = await ksp(['verify', sp, '--distributed', work, '--shards', String(n)]);
  expect(p.code, p.stderr).toBe(0);
  expect(p.stdout).toContain(`--shard 0/${n}`);
  const shards = Array.from({ length: n }, (_, i) => start(['work', work, '--shard', `${i}/${n}`]));
  for (const s of shards) expect((await s.done).code).toBe(0);
  const c = await ksp(['commit', work, '--json']);
  return { code: c.code, report: JSON.parse(c.stdout) };
}

describe('distributed ksp verify', () => {
  it('good and damaged savepoints: the same verdict, totals and errors as one process', { timeout: 180_000 }, async () => {
    // A savepoint whose entries sit where the engine routes them (a rescale's output).
    const src = join(tmp(), 'src');
    await buildSource(src, 500);
    const sp = join(tmp(), 'sp');
    expect((await ksp(['rescale', src, sp, '-p', '3', '--mode', 'relative', '-q'])).code).toBe(0);
    const one = await ksp(['verify', sp, '--json']);
    expect(one.code).toBe(0);
    const want = JSON.parse(one.stdout);
    const got = await sharded(sp, 3);
    expect(got.code).toBe(0);
    expect(got.report.ok).toBe(true);
    expect(got.report.totals).toEqual(want.totals);

    // One byte flipped in a state file (its manifest line unchanged), another file's manifest line wrong.
    const f = join(sp, 'windows', 'task-1', 'state.bin');
    const b = readFileSync(f);
    b[b.length - 1] ^= 1;
    writeFileSync(f, b);
    const bad = await ksp(['verify', sp, '--json']);
    expect(bad.code).toBe(1);
    const badWant = JSON.parse(bad.stdout);
    const badGot = await sharded(sp, 2);
    expect(badGot.code).toBe(1);
    expect(badGot.report.ok).toBe(false);
    const errors = (r: any): string[] => r.findings.filter((x: any) => x.severity === 'error').map((x: any) => `${x.code} ${x.file}`).sort();
    expect(errors(badGot.report)).toEqual(errors(badWant));
    expect(errors(badGot.report).join()).toContain('HASH_MISMATCH');
  });
});
