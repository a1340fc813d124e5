import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { commitDistributed, distributedStatus, runShardsInProcess, writeDistributedPlan } from '../../src/write/distributed/index.js';
import { useTempDirs } from '../write/support.js';
import { buildSource, comparableTree } from './support.js';

const tmp = useTempDirs('ksp-dist-');

describe('distributed rescale, in-process shards, local target', () => {
  it('rescale 3→7: N = 1, 2, 5 shards then commit give the one-process bytes', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src);
    const one = join(tmp(), 'one');
    const r = await SavepointWriter.from(await Savepoint.open(src)).rescale(7, { operators: ['windows'] }).write(one, { mode: 'relative' });
    expect(r.verify.ok).toBe(true);
    const want = comparableTree(one);
    for (const n of [1, 2, 5]) {
      const out = join(tmp(), `n${n}`);
      const prepared = await SavepointWriter.from(await Savepoint.open(src)).rescale(7, { operators: ['windows'] }).prepare(out, { mode: 'relative' });
      const plan = await writeDistributedPlan(prepared, { command: 'rescale' });
      expect(plan.units.filter((u) => u.kind === 'route')).toHaveLength(3);
      expect(plan.units.filter((u) => u.kind === 'merge')).toHaveLength(7);
      // Nothing verifies before commit.
      expect((await verifySavepoint(out).catch(() => ({ ok: false }))).ok).toBe(false);
      const reports = await runShardsInProcess(out, n, { pollMs: 20 });
      expect(reports.reduce((s, x) => s + x.ran.length + x.helped.length, 0)).toBeGreaterThanOrEqual(plan.units.length);
      const st = await distributedStatus(out);
      expect(st.units.done).toBe(plan.units.length);
      const c = await commitDistributed(out);
      expect(c.verify.ok).toBe(true);
      expect(existsSync(join(out, '_ksp'))).toBe(false);
      expect(comparableTree(out)).toEqual(want);
      expect((await verifySavepoint(out)).ok).toBe(true);
    }
  });
});
