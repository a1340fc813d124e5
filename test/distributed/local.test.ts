import { existsSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { loadMigrations } from '../../src/migrate/load.js';
import { defineMigrations } from '../../src/migrate/registry.js';
import { codecs } from '../../src/migrate/codecs.js';
import { commitDistributed, distributedStatus, runShardsInProcess, writeDistributedPlan } from '../../src/write/distributed/index.js';
import { treeHashes, useTempDirs } from '../write/support.js';
import { buildSource, comparableTree } from './support.js';
import { FIXTURES, ROOT } from '../support/env.js';

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

  it('migrate (a value step from a module): N = 1, 2, 5 shards then commit give the one-process bytes', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 300);
    const mod = join(tmp(), 'm.mjs');
    writeFileSync(mod, "export default (m, codecs) => { m.value('agg', 1, 2, codecs.utf8, codecs.utf8, (v) => v + '!', { state: 'count' }); };\n");
    const one = join(tmp(), 'one');
    const r = await SavepointWriter.from(await Savepoint.open(src)).migrate(await loadMigrations(mod)).write(one, { mode: 'relative' });
    expect(r.verify.ok).toBe(true);
    const want = comparableTree(one);
    for (const n of [1, 2, 5]) {
      const out = join(tmp(), `n${n}`);
      const prepared = await SavepointWriter.from(await Savepoint.open(src)).migrate(await loadMigrations(mod)).prepare(out, { mode: 'relative' });
      const plan = await writeDistributedPlan(prepared, { command: 'migrate' });
      expect(plan.units.filter((u) => u.kind === 'rewrite')).toHaveLength(3);
      expect(Object.keys(plan.modules ?? {})).toEqual([mod]);
      await runShardsInProcess(out, n, { pollMs: 20 });
      expect((await commitDistributed(out)).verify.ok).toBe(true);
      expect(comparableTree(out)).toEqual(want);
    }
  });

  it("migrate (a module whose default export is defineMigrations(...), as in the README's TypeScript example): N = 1, 2 shards give the one-process bytes", async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 300);
    const mod = join(tmp(), 'registry.mjs');
    // The module imports ksp's built entry point, as a user's module imports 'ksp'.
    writeFileSync(mod, `import { defineMigrations, codecs } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'index.js')).href)};\n`
      + "export default defineMigrations((m) => { m.value('agg', 1, 2, codecs.utf8, codecs.utf8, (v) => v + '?', { state: 'count' }); });\n");
    const one = join(tmp(), 'one');
    expect((await SavepointWriter.from(await Savepoint.open(src)).migrate(await loadMigrations(mod)).write(one, { mode: 'relative' })).verify.ok).toBe(true);
    const want = comparableTree(one);
    for (const n of [1, 2]) {
      const out = join(tmp(), `n${n}`);
      const plan = await writeDistributedPlan(await SavepointWriter.from(await Savepoint.open(src)).migrate(await loadMigrations(mod)).prepare(out, { mode: 'relative' }), { command: 'migrate' });
      expect(Object.keys(plan.modules ?? {})).toEqual([mod]);
      await runShardsInProcess(out, n, { pollMs: 20 });
      expect((await commitDistributed(out)).verify.ok).toBe(true);
      expect(comparableTree(out)).toEqual(want);
    }
  });

  it('refuses what units cannot run yet, a changed source, and a plan edited to write elsewhere', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 50);
    const out = join(tmp(), 'out');
    // Steps defined in the program (no module file) cannot be loaded again by another machine.
    const inCode = defineMigrations((m) => m.value('agg', 1, 2, codecs.utf8, codecs.utf8, (v: string) => v + '!', { state: 'count' }));
    await expect(SavepointWriter.from(await Savepoint.open(src)).migrate(inCode).prepare(join(tmp(), 'x'), { mode: 'relative' }).then((p) => writeDistributedPlan(p, { command: 'migrate' })))
      .rejects.toMatchObject({ code: 'DISTRIBUTED_UNSUPPORTED' });
    const plan = await writeDistributedPlan(await SavepointWriter.from(await Savepoint.open(src)).rescale(2, { operators: ['windows'] }).prepare(out, { mode: 'relative' }), { command: 'rescale' });
    // A second plan into the same target is refused.
    await expect(SavepointWriter.from(await Savepoint.open(src)).rescale(2).prepare(out, { mode: 'relative' }).then((p) => writeDistributedPlan(p, { command: 'rescale' }))).rejects.toMatchObject({ code: 'TARGET_NOT_EMPTY' });
    // The source changes after the plan: shards and commit refuse.
    const m = join(src, 'manifest.sha256');
    const before = readFileSync(m);
    writeFileSync(m, Buffer.concat([before, Buffer.from('\n')]));
    await expect(runShardsInProcess(out, 1)).rejects.toMatchObject({ code: 'DISTRIBUTED_SOURCE_CHANGED' });
    await expect(commitDistributed(out)).rejects.toMatchObject({ code: 'DISTRIBUTED_SOURCE_CHANGED' });
    writeFileSync(m, before);
    // A plan edited to write outside the target.
    const planFile = join(out, '_ksp', 'plan.json');
    const doc = JSON.parse(readFileSync(planFile, 'utf8'));
    const copy = doc.units.find((u: { kind: string }) => u.kind === 'copy');
    // A copy unit carries the source manifest's hash, checked as it copies.
    expect(copy.sha256).toMatch(/^[0-9a-f]{64}$/);
    copy.to = join(src, 'agg', 'task-0', 'state.bin');
    writeFileSync(planFile, JSON.stringify(doc));
    await expect(runShardsInProcess(out, 1)).rejects.toMatchObject({ code: 'DISTRIBUTED_PLAN_INVALID' });
    // A plan edited to read (and copy into the target) a file outside the source.
    const secret = join(tmp(), 'secret');
    writeFileSync(secret, 'not yours');
    copy.to = plan.units.find((u) => u.kind === 'copy')!.to;
    copy.from = secret;
    writeFileSync(planFile, JSON.stringify(doc));
    await expect(runShardsInProcess(out, 1)).rejects.toMatchObject({ code: 'DISTRIBUTED_PLAN_INVALID' });
    // A source file replaced by a link to elsewhere after the plan: the shard refuses to read through it.
    writeFileSync(planFile, JSON.stringify(plan));
    const victim = join(src, 'agg', 'task-1', 'state.bin');
    rmSync(victim);
    symlinkSync(secret, victim);
    await expect(runShardsInProcess(out, 1)).rejects.toMatchObject({ code: 'PATH_UNSAFE' });
    expect(existsSync(secret)).toBe(true);
  });

  it('convert --to native: N = 1, 2, 5 shards then commit give the one-process bytes', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 400);
    const one = join(tmp(), 'one');
    const r = await SavepointWriter.from(await Savepoint.open(src)).convert('native').write(one, { mode: 'relative' });
    expect(r.verify.ok).toBe(true);
    const want = comparableTree(one);
    expect(Object.keys(want).some((k) => k.startsWith('incr/windows/task-0/sst/'))).toBe(true);
    for (const n of [1, 2, 5]) {
      const out = join(tmp(), `n${n}`);
      const plan = await writeDistributedPlan(await SavepointWriter.from(await Savepoint.open(src)).convert('native').prepare(out, { mode: 'relative' }), { command: 'convert' });
      expect(plan.units.filter((u) => u.kind === 'native')).toHaveLength(6);
      await runShardsInProcess(out, n, { pollMs: 20 });
      expect((await commitDistributed(out)).verify.ok).toBe(true);
      expect(comparableTree(out)).toEqual(want);
    }
  });

  it('a reserved folder that is a link (into the source) is refused, and the source stays as it was', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 50);
    const before = treeHashes(src);
    const out = join(tmp(), 'out');
    await writeDistributedPlan(await SavepointWriter.from(await Savepoint.open(src)).rescale(2, { operators: ['windows'] }).prepare(out, { mode: 'relative' }), { command: 'rescale' });
    symlinkSync(join(src, 'windows'), join(out, '_ksp', 'units'));
    const e = await runShardsInProcess(out, 1).catch((x) => x);
    expect(['TARGET_OVERLAPS_SOURCE', 'TARGET_FOREIGN_FILE']).toContain(e.code);
    await expect(commitDistributed(out)).rejects.toMatchObject({ code: e.code });
    expect(treeHashes(src)).toEqual(before);
  });

  it('relocate and edit (rename and remove operators): N = 1, 3 shards then commit give the one-process bytes', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 200);
    const cases: Array<[string, (w: SavepointWriter) => SavepointWriter]> = [
      ['relocate', (w) => w.relocate()],
      ['edit', (w) => w.renameOperator('agg', 'counts')],
      ['edit', (w) => w.removeOperator('agg').renameOperator('windows', 'win')],
    ];
    for (const [command, build] of cases) {
      const one = join(tmp(), 'one');
      expect((await build(SavepointWriter.from(await Savepoint.open(src))).write(one, { mode: 'relative' })).verify.ok).toBe(true);
      const want = comparableTree(one);
      for (const n of [1, 3]) {
        const out = join(tmp(), `n${n}`);
        await writeDistributedPlan(await build(SavepointWriter.from(await Savepoint.open(src))).prepare(out, { mode: 'relative' }), { command });
        await runShardsInProcess(out, n, { pollMs: 20 });
        expect((await commitDistributed(out)).verify.ok).toBe(true);
        expect(comparableTree(out)).toEqual(want);
      }
    }
  });

  it('native sources: convert --to canonical and rescale of a native savepoint, N = 1, 2 shards then commit give the one-process bytes', async () => {
    const src = join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007');
    const cases: Array<[string, (w: SavepointWriter) => SavepointWriter]> = [
      ['convert', (w) => w.convert('canonical')],
      ['rescale', (w) => w.rescale(3, { operators: ['orders-agg'], routing: 'state-key' }).convert('canonical')],
    ];
    for (const [command, build] of cases) {
      const one = join(tmp(), 'one');
      expect((await build(SavepointWriter.from(await Savepoint.open(src))).write(one, { mode: 'relative' })).verify.ok).toBe(true);
      const want = comparableTree(one);
      for (const n of [1, 2]) {
        const out = join(tmp(), `n${n}`);
        const plan = await writeDistributedPlan(await build(SavepointWriter.from(await Savepoint.open(src))).prepare(out, { mode: 'relative' }), { command });
        expect(plan.units.some((u) => u.kind !== 'copy' && u.kind !== 'merge' && u.source.native !== undefined)).toBe(true);
        await runShardsInProcess(out, n, { pollMs: 20 });
        expect((await commitDistributed(out)).verify.ok).toBe(true);
        expect(comparableTree(out)).toEqual(want);
      }
    }
  });

  it('the shards verify the output in shares before commit; a file damaged after it was written fails its share, and commit refuses', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 300);
    const one = join(tmp(), 'one');
    await SavepointWriter.from(await Savepoint.open(src)).rescale(5, { operators: ['windows'] }).write(one, { mode: 'relative' });
    const out = join(tmp(), 'out');
    const plan = await writeDistributedPlan(await SavepointWriter.from(await Savepoint.open(src)).rescale(5, { operators: ['windows'] }).prepare(out, { mode: 'relative' }), { command: 'rescale', verifyUnits: 3 });
    expect(plan.units.filter((u) => u.kind === 'verify')).toHaveLength(3);
    await runShardsInProcess(out, 2, { pollMs: 20 });
    // metadata.json is there (the shares verified against it), the manifest is not: nothing verifies yet.
    expect(existsSync(join(out, 'metadata.json'))).toBe(true);
    expect((await verifySavepoint(out)).ok).toBe(false);
    // A byte flipped in an output after its unit finished; its share runs again.
    const f = join(out, 'windows', 'task-3', 'state.bin');
    const b = readFileSync(f);
    b[b.length - 1] ^= 1;
    writeFileSync(f, b);
    for (const u of plan.units.filter((x) => x.kind === 'verify')) rmSync(join(out, '_ksp', 'units', `${u.id}.done.json`));
    await expect(runShardsInProcess(out, 1, { pollMs: 20 })).rejects.toMatchObject({ code: 'OUTPUT_VERIFY_FAILED' });
    const e = await commitDistributed(out).catch((x) => x);
    expect(e.code).toBe('DISTRIBUTED_INCOMPLETE');
    expect(e.message).toContain('OUTPUT_VERIFY_FAILED');
    expect(existsSync(join(out, 'manifest.sha256'))).toBe(false);
    // Repaired (the unit's output written again), the shares pass and the commit seals.
    b[b.length - 1] ^= 1;
    writeFileSync(f, b);
    await runShardsInProcess(out, 1, { pollMs: 20 });
    const c = await commitDistributed(out);
    expect(c.verify.sharded).toBe(true);
    expect(c.verify.entries).toBeGreaterThan(0);
    expect(comparableTree(out)).toEqual(comparableTree(one));
    expect((await verifySavepoint(out)).ok).toBe(true);
  });
});
