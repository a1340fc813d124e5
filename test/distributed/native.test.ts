import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { commitDistributed, runShardsInProcess, writeDistributedPlan } from '../../src/write/distributed/index.js';
import type { NativeCopyUnitSpec } from '../../src/write/distributed/plan-file.js';
import { ksp } from '../support/cli.js';
import { treeHashes, useTempDirs } from '../write/support.js';
import { buildSource, comparableTree } from './support.js';

const tmp = useTempDirs('ksp-dist-native-');

/**
 * A native (RocksDB) savepoint in relative mode that verifies on its own:
 * the generated source (whose window keys are not placed by key group)
 * rescaled to 3 tasks, which places them, then converted --to native.
 */
async function nativeSource(perTask: number): Promise<string> {
  const generated = join(tmp(), 'generated');
  await buildSource(generated, perTask);
  const placed = join(tmp(), 'placed');
  expect((await SavepointWriter.from(await Savepoint.open(generated)).rescale(3).write(placed, { mode: 'relative' })).verify.ok).toBe(true);
  const src = join(tmp(), 'src');
  expect((await SavepointWriter.from(await Savepoint.open(placed)).convert('native').write(src, { mode: 'relative' })).verify.ok).toBe(true);
  expect((await verifySavepoint(src)).ok).toBe(true);
  return src;
}

describe('distributed relocate and edit of native (RocksDB) tasks: native-copy units', () => {
  it('relocate and edit (remove an operator): N = 1, 2 in-process shards then commit give the one-process bytes', async () => {
    const src = await nativeSource(200);
    const cases: Array<[string, (w: SavepointWriter) => SavepointWriter]> = [
      ['relocate', (w) => w.relocate()],
      ['edit', (w) => w.removeOperator('agg')],
      // A renamed native operator is a rewrite of its entries (the operator id is in every key): a rewrite unit reading the native task.
      ['edit', (w) => w.renameOperator('agg', 'counts')],
    ];
    for (const [command, build] of cases) {
      const one = join(tmp(), 'one');
      expect((await build(SavepointWriter.from(await Savepoint.open(src))).write(one, { mode: 'relative' })).verify.ok).toBe(true);
      const want = comparableTree(one);
      expect(Object.keys(want).some((k) => /^incr\/[^/]+\/task-0\/sst\//.test(k))).toBe(true);
      for (const n of [1, 2]) {
        const out = join(tmp(), `n${n}`);
        const plan = await writeDistributedPlan(await build(SavepointWriter.from(await Savepoint.open(src))).prepare(out, { mode: 'relative' }), { command });
        const nc = plan.units.filter((u): u is NativeCopyUnitSpec => u.kind === 'native-copy');
        expect(nc.length + plan.units.filter((u) => u.kind === 'rewrite').length).toBeGreaterThan(0);
        expect(nc.every((u) => u.files.some((f) => /^[0-9a-f]{64}$/.test(f.sha256 ?? '')))).toBe(true);
        // Nothing verifies before commit.
        expect((await verifySavepoint(out).catch(() => ({ ok: false }))).ok).toBe(false);
        await runShardsInProcess(out, n, { pollMs: 20 });
        expect((await commitDistributed(out)).verify.ok).toBe(true);
        expect(comparableTree(out)).toEqual(want);
        expect((await verifySavepoint(out)).ok).toBe(true);
      }
    }
  });

  it('ksp relocate --distributed, two shard processes, ksp commit, ksp verify: the one-process bytes', { timeout: 120_000 }, async () => {
    const src = await nativeSource(100);
    const one = join(tmp(), 'one');
    let r = await ksp(['relocate', src, one, '--mode', 'relative', '-q']);
    expect(r.code, r.stderr).toBe(0);
    const out = join(tmp(), 'out');
    r = await ksp(['relocate', src, out, '--mode', 'relative', '--distributed']);
    expect(r.code, r.stderr).toBe(0);
    const shards = await Promise.all([0, 1].map((i) => ksp(['work', out, '--shard', `${i}/2`], { KSP_WORK_POLL_MS: '50' })));
    for (const s of shards) expect(s.code, s.stderr).toBe(0);
    r = await ksp(['commit', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(comparableTree(out)).toEqual(comparableTree(one));
    expect((await ksp(['verify', out])).code).toBe(0);
    // Engine mode: the tables go to the job's shared incr/ folder (engine.test.ts holds it to the one-process bytes).
    r = await ksp(['relocate', src, '--mode', 'engine', '--base', join(tmp(), 'b'), '--distributed']);
    expect(r.code, r.stderr).toBe(0);
  });

  it('an SST damaged in the source after planning is refused with NATIVE_SST_HASH naming it, and nothing at the target verifies', async () => {
    const src = await nativeSource(100);
    const before = treeHashes(src);
    const out = join(tmp(), 'out');
    const plan = await writeDistributedPlan(await SavepointWriter.from(await Savepoint.open(src)).relocate().prepare(out, { mode: 'relative' }), { command: 'relocate' });
    const unit = plan.units.find((u): u is NativeCopyUnitSpec => u.kind === 'native-copy' && u.files.some((f) => f.sha256 !== undefined))!;
    const sst = unit.files.find((f) => f.sha256 !== undefined)!;
    expect(readdirSync(join(src, 'incr', unit.outOperator, unit.outTask, 'sst'))).toContain(sst.filename);
    const b = readFileSync(sst.from);
    b[b.length >> 1] ^= 0xff;
    writeFileSync(sst.from, b);
    const e = await runShardsInProcess(out, 2, { pollMs: 20 }).catch((x) => x);
    expect(e).toMatchObject({ code: 'NATIVE_SST_HASH' });
    expect(String(e.message)).toContain(sst.from);
    await expect(commitDistributed(out)).rejects.toMatchObject({ code: expect.stringMatching(/^DISTRIBUTED_/) });
    expect((await verifySavepoint(out).catch(() => ({ ok: false }))).ok).toBe(false);
    // Only the damaged table differs in the source; nothing else of it was touched.
    const after = treeHashes(src);
    const changed = Object.keys(before).filter((k) => before[k] !== after[k]);
    expect(changed).toEqual([`incr/${unit.outOperator}/${unit.outTask}/sst/${sst.filename}`]);
  });

  it('a MANIFEST, WAL or OPTIONS file damaged in the source after planning is refused with HASH_MISMATCH against the source manifest, naming it', async () => {
    const src = await nativeSource(100);
    const out = join(tmp(), 'out');
    const plan = await writeDistributedPlan(await SavepointWriter.from(await Savepoint.open(src)).relocate().prepare(out, { mode: 'relative' }), { command: 'relocate' });
    const unit = plan.units.find((u): u is NativeCopyUnitSpec => u.kind === 'native-copy' && u.files.some((f) => f.listed !== undefined))!;
    // sst_manifest.json hashes the tables only: the other files carry the source manifest's hash.
    const meta = unit.files.find((f) => /^MANIFEST-/.test(f.filename))!;
    expect(meta.sha256).toBeUndefined();
    expect(meta.listed).toMatch(/^[0-9a-f]{64}$/);
    const b = readFileSync(meta.from);
    b[b.length - 1] ^= 0xff;
    writeFileSync(meta.from, b);
    const e = await runShardsInProcess(out, 1, { pollMs: 20 }).catch((x) => x);
    expect(e).toMatchObject({ code: 'HASH_MISMATCH', data: { file: meta.from, expected: meta.listed } });
    expect(String(e.message)).toContain(meta.from);
    await expect(commitDistributed(out)).rejects.toMatchObject({ code: expect.stringMatching(/^DISTRIBUTED_/) });
  });

  it('checkPlan refuses a native-copy unit edited to read outside the source or write outside the target', async () => {
    const src = await nativeSource(30);
    const out = join(tmp(), 'out');
    await writeDistributedPlan(await SavepointWriter.from(await Savepoint.open(src)).relocate().prepare(out, { mode: 'relative' }), { command: 'relocate' });
    const planFile = join(out, '_ksp', 'plan.json');
    const text = readFileSync(planFile, 'utf8');
    const secret = join(tmp(), 'secret');
    writeFileSync(secret, 'not yours');
    const edits: Array<(u: NativeCopyUnitSpec) => void> = [
      (u) => (u.files[0]!.from = secret),
      (u) => (u.files[0]!.to = join(src, 'x.sst')),
      (u) => (u.manifest.to = join(src, 'sst_manifest.json')),
      (u) => (u.files[0]!.rel = 'elsewhere.sst'),
      (u) => (u.pointer = undefined as never),
    ];
    for (const edit of edits) {
      const doc = JSON.parse(text);
      edit(doc.units.find((u: { kind: string }) => u.kind === 'native-copy'));
      writeFileSync(planFile, JSON.stringify(doc));
      await expect(runShardsInProcess(out, 1)).rejects.toMatchObject({ code: 'DISTRIBUTED_PLAN_INVALID' });
    }
    writeFileSync(planFile, text);
    await runShardsInProcess(out, 1, { pollMs: 20 });
    expect((await commitDistributed(out)).verify.ok).toBe(true);
  });
});
