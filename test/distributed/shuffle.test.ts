import { readFileSync, writeFileSync } from 'node:fs';
import { ksp } from '../support/cli.js';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { loadMigrations } from '../../src/migrate/load.js';
import { commitDistributed, runShardsInProcess, writeDistributedPlan } from '../../src/write/distributed/index.js';
import { useTempDirs } from '../write/support.js';
import { buildSource, comparableTree } from './support.js';
import { FIXTURES } from '../support/env.js';

const tmp = useTempDirs('ksp-dist-shuffle-');

type Build = (w: SavepointWriter) => SavepointWriter;

/**
 * The one-process write of `build`, then for each N a distributed plan,
 * N in-process shards and commit: the same bytes (meta.json's time aside).
 */
async function sameAsOneProcess(src: string, command: string, build: Build, ns: number[], check?: (plan: Awaited<ReturnType<typeof writeDistributedPlan>>) => void): Promise<Record<string, string>> {
  const one = join(tmp(), 'one');
  const r = await build(SavepointWriter.from(await Savepoint.open(src))).write(one, { mode: 'relative' });
  expect(r.verify.ok).toBe(true);
  const want = comparableTree(one);
  // A key step moves only what sat on its old key's owner: a source not placed by key stays so, and `ksp verify` says so of both.
  const alone = (await verifySavepoint(one)).ok;
  for (const n of ns) {
    const out = join(tmp(), `n${n}`);
    const plan = await writeDistributedPlan(await build(SavepointWriter.from(await Savepoint.open(src))).prepare(out, { mode: 'relative' }), { command });
    check?.(plan);
    expect((await verifySavepoint(out).catch(() => ({ ok: false }))).ok).toBe(false);
    await runShardsInProcess(out, n, { pollMs: 20 });
    expect((await commitDistributed(out)).verify.ok).toBe(true);
    expect(comparableTree(out)).toEqual(want);
    expect((await verifySavepoint(out)).ok).toBe(alone);
  }
  return want;
}

/** A migrations module written to a file, and its registry as loaded from it (so its steps can be loaded again by the shards). */
async function module(name: string, text: string): Promise<{ file: string; reg: Awaited<ReturnType<typeof loadMigrations>> }> {
  const file = join(tmp(), name);
  writeFileSync(file, text);
  return { file, reg: await loadMigrations(file) };
}

/** A value step on the rescaled operator's `sum` state, and one on `agg`. */
const VALUES = "export default (m, codecs) => { m.value('windows', 1, 2, codecs.utf8, codecs.utf8, (v) => v + '!', { state: 'sum' }); m.value('agg', 1, 2, codecs.utf8, codecs.utf8, (v) => v + '?', { state: 'count' }); };\n";

/**
 * A key step that drops the source task from each window's group key
 * (`user-{t}-{i}` → `u-{i}`): the entries of the three source tasks with the
 * same i and time now share a key, so they collide across tasks.
 */
const KEYS = `export default (m, codecs) => {
  m.keyValue('windows', 1, 2, { key: codecs.raw, value: codecs.raw }, { key: codecs.raw, value: codecs.raw }, (key, value) => {
    const k = Buffer.from(key);
    const n = k.readUInt32LE(3);
    const g = Buffer.from(k.subarray(7, 7 + n).toString().replace(/^user-\\d+-/, 'u-'));
    const ts = k.subarray(7 + n);
    const out = Buffer.alloc(7 + g.length + ts.length);
    out.write('tw:', 0);
    out.writeUInt32LE(g.length, 3);
    g.copy(out, 7);
    ts.copy(out, 7 + g.length);
    return { key: out, value };
  }, { state: 'sum' });
};
`;

describe('distributed rescale combined with a migration or rename (route units map, merge units gather)', () => {
  it('rescale 3→5 with value steps, and with a rename: N = 1, 2, 3 give the one-process bytes', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 300);
    const mod = await module('values.mjs', VALUES);
    await sameAsOneProcess(src, 'rescale', (w) => w.migrate(mod.reg).rescale(5), [1, 2, 3], (plan) => {
      expect(plan.units.filter((u) => u.kind === 'route' && u.map?.migrations.length === 1)).toHaveLength(6);
      expect(Object.keys(plan.modules ?? {})).toEqual([mod.file]);
    });
    await sameAsOneProcess(src, 'rescale', (w) => w.rescale(4, { operators: ['windows'] }).renameOperator('windows', 'win'), [1, 2, 3], (plan) => {
      expect(plan.units.filter((u) => u.kind === 'route' && u.map?.renames.length === 1)).toHaveLength(3);
    });
  });
});

describe('distributed key-changing migrations (collisions resolved as one process resolves them)', () => {
  it('a key step at unchanged parallelism (routing moved), keep-first and keep-last: N = 1, 2, 3 give the one-process bytes', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 300);
    const mod = await module('keys.mjs', KEYS);
    for (const onCollision of ['keep-first', 'keep-last'] as const) {
      const want = await sameAsOneProcess(src, 'migrate', (w) => w.migrate(mod.reg, { onCollision }), [1, 2, 3], (plan) => {
        expect(plan.units.filter((u) => u.kind === 'route' && u.routing === 'moved' && u.keyChange)).toHaveLength(3);
        expect(plan.units.filter((u) => u.kind === 'merge' && u.keyChange && u.onCollision === onCollision)).toHaveLength(3);
        // Moves keep the source's placement otherwise: not held to it.
        expect(plan.routedTasks).toEqual([]);
      });
      expect(Object.keys(want).filter((k) => k.startsWith('windows/'))).toHaveLength(3);
    }
  });

  it('a key step with a rescale 3→4: N = 1, 3 give the one-process bytes; the default rule (fail) fails its merge unit with KEY_COLLISION and commit refuses', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 200);
    const mod = await module('keys.mjs', KEYS);
    await sameAsOneProcess(src, 'rescale', (w) => w.migrate(mod.reg, { onCollision: 'keep-last' }).rescale(4, { operators: ['windows'] }), [1, 3]);
    const one = await SavepointWriter.from(await Savepoint.open(src)).migrate(mod.reg).rescale(4, { operators: ['windows'] }).write(join(tmp(), 'one'), { mode: 'relative' }).catch((e) => e);
    expect(one.code).toBe('KEY_COLLISION');
    const out = join(tmp(), 'fail');
    await writeDistributedPlan(await SavepointWriter.from(await Savepoint.open(src)).migrate(mod.reg).rescale(4, { operators: ['windows'] }).prepare(out, { mode: 'relative' }), { command: 'rescale' });
    const e = await runShardsInProcess(out, 2, { pollMs: 20 }).catch((x) => x);
    expect(e.code).toBe('KEY_COLLISION');
    // The message names the colliding entries by source task and index, as one process does.
    expect(e.message).toMatch(/task-\d entry #\d+ and task-\d entry #\d+/);
    await expect(commitDistributed(out)).rejects.toMatchObject({ code: 'DISTRIBUTED_INCOMPLETE' });
    expect((await verifySavepoint(out).catch(() => ({ ok: false }))).ok).toBe(false);
  });
});

describe('distributed renames and migrations of native sources, native output with a map', () => {
  const NATIVE = join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007');
  it('a native source renamed (kept canonical), key-migrated (moved) and rescaled with a rename: N = 1, 2, 3 give the one-process bytes', async () => {
    const mod = await module('upper.mjs', "export default (m, codecs) => { m.keyValue('orders-agg', 1, 2, { key: codecs.utf8, value: codecs.raw }, { key: codecs.utf8, value: codecs.raw }, (k, v) => ({ key: k.toUpperCase(), value: v })); };\n");
    const cases: Array<[string, Build]> = [
      ['edit', (w) => w.renameOperator('orders-agg', 'oa').convert('canonical')],
      ['migrate', (w) => w.migrate(mod.reg).convert('canonical')],
      ['rescale', (w) => w.rescale(3, { operators: ['orders-agg'], routing: 'state-key' }).renameOperator('orders-agg', 'oa').convert('canonical')],
    ];
    for (const [command, build] of cases) await sameAsOneProcess(NATIVE, command, build, [1, 2, 3]);
  });

  it('convert --to native with value steps, with a key step, and with a rescale: N = 1, 2, 3 give the one-process bytes', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 200);
    const values = await module('values.mjs', VALUES);
    const keys = await module('keys.mjs', KEYS);
    const cases: Array<[string, Build]> = [
      ['convert', (w) => w.migrate(values.reg).convert('native')],
      ['convert', (w) => w.migrate(keys.reg, { onCollision: 'keep-first' }).convert('native')],
      ['convert', (w) => w.rescale(2, { operators: ['windows'] }).renameOperator('agg', 'counts').convert('native')],
    ];
    for (const [command, build] of cases) {
      const want = await sameAsOneProcess(src, command, build, [1, 2, 3]);
      expect(Object.keys(want).some((k) => /^incr\/[^/]+\/task-0\/sst\//.test(k))).toBe(true);
    }
  });
});

describe('distributed runs with steps from a TypeScript module (loaded again by each shard, as the one-process path loads it)', () => {
  it('ksp migrate --migrations steps.ts --distributed, two shard processes, ksp commit: the one-process bytes', { timeout: 120_000 }, async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 200);
    const ts = join(tmp(), 'steps.ts');
    writeFileSync(ts, "const bang = (v: string): string => v + '!';\nexport default (m: { value: (...a: unknown[]) => void }, codecs: { utf8: unknown }): void => {\n  m.value('windows', 1, 2, codecs.utf8, codecs.utf8, bang, { state: 'sum' });\n  m.value('agg', 1, 2, codecs.utf8, codecs.utf8, bang, { state: 'count' });\n};\n");
    const one = join(tmp(), 'one');
    let r = await ksp(['migrate', src, one, '--migrations', ts, '--mode', 'relative', '-q']);
    expect(r.code, r.stderr).toBe(0);
    const out = join(tmp(), 'out');
    r = await ksp(['migrate', src, out, '--migrations', ts, '--mode', 'relative', '--distributed']);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(readFileSync(join(out, '_ksp', 'plan.json'), 'utf8'));
    expect(Object.keys(plan.modules)).toEqual([ts]);
    const shards = await Promise.all([0, 1].map((i) => ksp(['work', out, '--shard', `${i}/2`], { KSP_WORK_POLL_MS: '50' })));
    for (const x of shards) expect(x.code, x.stderr).toBe(0);
    r = await ksp(['commit', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(comparableTree(out)).toEqual(comparableTree(one));
  });
});
