import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { commitDistributed, runShardsInProcess, writeDistributedPlan } from '../../src/write/distributed/index.js';
import type { NativeUnitSpec } from '../../src/write/distributed/plan-file.js';
import { treeHashes, useTempDirs } from '../write/support.js';
import { buildSource } from './support.js';

const tmp = useTempDirs('ksp-dist-engine-');

type Build = (w: SavepointWriter) => SavepointWriter;

/** Every file under an engine-mode base with its SHA-256; meta.json records without their creation time and source path. */
function baseTree(base: string): Record<string, string> {
  const t = treeHashes(base);
  for (const k of Object.keys(t)) {
    if (!k.endsWith('/meta.json')) continue;
    const doc = JSON.parse(readFileSync(join(base, k), 'utf8')) as Record<string, unknown>;
    delete doc.created_at_secs;
    // The source's path (each run here converts its own copy of epoch 8).
    delete (doc.ksp as Record<string, unknown> | undefined)?.source;
    t[k] = JSON.stringify(doc);
  }
  return t;
}

const SP = (base: string, epoch: bigint): string => join(base, 'j', 'savepoints', String(epoch).padStart(20, '0'));

/**
 * The one-process engine-mode write of `build` into a copy of `before` (a
 * function that fills a base), against the distributed one with N shards
 * into another: the whole bases (target, meta.json record and the shared
 * incr/ folder) the same bytes.
 */
async function engineSame(src: string, build: Build, epoch: bigint, ns: number[], before?: (base: string) => Promise<void>): Promise<void> {
  const one = join(tmp(), 'one');
  await before?.(one);
  const r = await build(SavepointWriter.from(await Savepoint.open(src))).write(undefined, { mode: 'engine', base: one, jobId: 'j', epoch });
  expect(r.verify.ok).toBe(true);
  const want = baseTree(one);
  const alone = await verifySavepoint(SP(one, epoch));
  for (const n of ns) {
    const base = join(tmp(), `n${n}`);
    await before?.(base);
    const plan = await writeDistributedPlan(await build(SavepointWriter.from(await Savepoint.open(src))).prepare(undefined, { mode: 'engine', base, jobId: 'j', epoch }), { command: 'convert' });
    expect(plan.target.mode).toBe('engine');
    await runShardsInProcess(SP(base, epoch), n, { pollMs: 20 });
    expect((await commitDistributed(SP(base, epoch))).verify.ok).toBe(true);
    expect(baseTree(base)).toEqual(want);
    expect((await verifySavepoint(SP(base, epoch))).ok).toBe(alone.ok);
  }
}

describe('distributed native output in engine mode (tables in the job\'s shared incr/ folder)', () => {
  it('convert --to native, and a rescale to native, into an empty base: N = 1, 2, 3 give the one-process bytes', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 200);
    await engineSame(src, (w) => w.convert('native'), 8n, [1, 2, 3]);
    await engineSame(src, (w) => w.rescale(2, { operators: ['windows'] }).convert('native'), 8n, [1, 3]);
  });

  it('a second epoch into the same job: tables numbered above the first epoch\'s, which still verifies; a re-run unit writes the same names; a foreign file under a planned name is never replaced', async () => {
    // Placed by key group (rescaled once), so that every output verifies on its own.
    const generated = join(tmp(), 'generated');
    await buildSource(generated, 200);
    const src = join(tmp(), 'src');
    expect((await SavepointWriter.from(await Savepoint.open(generated)).rescale(3).write(src, { mode: 'relative' })).verify.ok).toBe(true);
    const epoch8 = async (base: string): Promise<void> => {
      expect((await SavepointWriter.from(await Savepoint.open(src)).convert('native').write(undefined, { mode: 'engine', base, jobId: 'j', epoch: 8n })).verify.ok).toBe(true);
    };
    // Epoch 9 from epoch 8, zstd: every table in the shared folders is epoch 8's, kept.
    const build: Build = (w) => w.convert('native', { compression: 'zstd' });
    const one = join(tmp(), 'pre');
    await epoch8(one);
    const from8 = SP(one, 8n);
    const one9 = join(tmp(), 'one9');
    await epoch8(one9);
    const r = await build(SavepointWriter.from(await Savepoint.open(SP(one9, 8n)))).write(undefined, { mode: 'engine', base: one9, jobId: 'j', epoch: 9n });
    expect(r.verify.ok).toBe(true);
    const want = baseTree(one9);
    for (const n of [1, 2]) {
      const base = join(tmp(), `n${n}`);
      await epoch8(base);
      const before8 = baseTree(base);
      const plan = await writeDistributedPlan(await build(SavepointWriter.from(await Savepoint.open(SP(base, 8n)))).prepare(undefined, { mode: 'engine', base, jobId: 'j', epoch: 9n }), { command: 'convert' });
      const nu = plan.units.filter((u): u is NativeUnitSpec => u.kind === 'native');
      expect(nu.length).toBeGreaterThan(0);
      expect(nu.every((u) => (u.firstTable ?? 0) > 2)).toBe(true);
      await runShardsInProcess(SP(base, 9n), n, { pollMs: 20 });
      // A unit run again (its record removed, as after a crash before it was written): the same names and bytes, nothing added.
      const u0 = nu[0]!;
      const treeDone = baseTree(base);
      rmSync(join(SP(base, 9n), '_ksp', 'units', `${u0.id}.done.json`));
      for (const u of plan.units.filter((x) => x.kind === 'verify')) rmSync(join(SP(base, 9n), '_ksp', 'units', `${u.id}.done.json`), { force: true });
      await runShardsInProcess(SP(base, 9n), 1, { pollMs: 20 });
      const noRecords = (t: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(t).filter(([k]) => !k.includes('/_ksp/')));
      expect(noRecords(baseTree(base))).toEqual(noRecords(treeDone));
      expect((await commitDistributed(SP(base, 9n))).verify.ok).toBe(true);
      expect(baseTree(base)).toEqual(want);
      // Epoch 8's files are all still there, unchanged, and it still verifies.
      const after = baseTree(base);
      for (const [k, v] of Object.entries(before8)) expect(after[k], k).toBe(v);
      expect((await verifySavepoint(SP(base, 8n))).ok).toBe(true);
    }
    expect((await verifySavepoint(from8)).ok).toBe(true);

    // A file put under a planned table name by someone else after the plan: the unit refuses, the file stays.
    const base = join(tmp(), 'foreign');
    await epoch8(base);
    const plan = await writeDistributedPlan(await build(SavepointWriter.from(await Savepoint.open(SP(base, 8n)))).prepare(undefined, { mode: 'engine', base, jobId: 'j', epoch: 9n }), { command: 'convert' });
    const u = plan.units.find((x): x is NativeUnitSpec => x.kind === 'native' && x.outOperator === 'windows')!;
    const sstDir = join(base, 'j', 'incr', u.outOperator, u.outTask, 'sst');
    const name = `${String(u.firstTable).padStart(6, '0')}.sst`;
    expect(readdirSync(sstDir)).not.toContain(name);
    writeFileSync(join(sstDir, name), 'not a table of this run');
    const e = await runShardsInProcess(SP(base, 9n), 1, { pollMs: 20 }).catch((x) => x);
    expect(e.code).toBe('TARGET_FILE_EXISTS');
    expect(readFileSync(join(sstDir, name), 'utf8')).toBe('not a table of this run');
    await expect(commitDistributed(SP(base, 9n))).rejects.toMatchObject({ code: 'DISTRIBUTED_INCOMPLETE' });
  });

  it('a plan edited to put tables in a shared folder for a relative-mode target is refused', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 50);
    const out = join(tmp(), 'rel');
    await writeDistributedPlan(await SavepointWriter.from(await Savepoint.open(src)).convert('native').prepare(out, { mode: 'relative' }), { command: 'convert' });
    const file = join(out, '_ksp', 'plan.json');
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    doc.units.find((x: { kind: string }) => x.kind === 'native').firstTable = 2;
    writeFileSync(file, JSON.stringify(doc));
    await expect(runShardsInProcess(out, 1)).rejects.toMatchObject({ code: 'DISTRIBUTED_PLAN_INVALID' });
  });
});

describe('distributed native copies in engine mode (relocate of a native savepoint)', () => {
  it('relocate a native savepoint into an engine-mode base, then into the same base again as another epoch: N = 1, 2 give the one-process bytes', async () => {
    const generated = join(tmp(), 'generated');
    await buildSource(generated, 150);
    const placed = join(tmp(), 'placed');
    expect((await SavepointWriter.from(await Savepoint.open(generated)).rescale(3).write(placed, { mode: 'relative' })).verify.ok).toBe(true);
    const src = join(tmp(), 'src');
    expect((await SavepointWriter.from(await Savepoint.open(placed)).convert('native').write(src, { mode: 'relative' })).verify.ok).toBe(true);
    // Into an empty base: every table copied under its own name into the job's shared folder.
    await engineSame(src, (w) => w.relocate(), 5n, [1, 2]);
    // Epoch 5 relocated within its base as epoch 6: the tables are the very files epoch 5 uses (same names in the same folder), not copied again.
    const epoch5 = async (base: string): Promise<void> => {
      expect((await SavepointWriter.from(await Savepoint.open(src)).relocate().write(undefined, { mode: 'engine', base, jobId: 'j', epoch: 5n })).verify.ok).toBe(true);
    };
    const one = join(tmp(), 'one6');
    await epoch5(one);
    expect((await SavepointWriter.from(await Savepoint.open(SP(one, 5n))).relocate().write(undefined, { mode: 'engine', base: one, jobId: 'j', epoch: 6n })).verify.ok).toBe(true);
    const want = baseTree(one);
    for (const n of [1, 2]) {
      const base = join(tmp(), `r${n}`);
      await epoch5(base);
      const plan = await writeDistributedPlan(await SavepointWriter.from(await Savepoint.open(SP(base, 5n))).relocate().prepare(undefined, { mode: 'engine', base, jobId: 'j', epoch: 6n }), { command: 'relocate' });
      expect(plan.units.some((u) => u.kind === 'native-copy' && u.files.some((f) => f.rel === null && f.from === f.to))).toBe(true);
      await runShardsInProcess(SP(base, 6n), n, { pollMs: 20 });
      expect((await commitDistributed(SP(base, 6n))).verify.ok).toBe(true);
      expect(baseTree(base)).toEqual(want);
      expect((await verifySavepoint(SP(base, 6n))).ok).toBe(true);
      expect((await verifySavepoint(SP(base, 5n))).ok).toBe(true);
    }
  });
});
