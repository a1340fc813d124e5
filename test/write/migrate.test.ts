import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Packr, Unpackr } from 'msgpackr';
import { Savepoint } from '../../src/model/savepoint.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { codecs } from '../../src/migrate/codecs.js';
import { defineMigrations } from '../../src/migrate/registry.js';
import { loadMigrations } from '../../src/migrate/load.js';
import { KspError } from '../../src/errors.js';
import { FIXTURES, SHOP_SP } from '../support/env.js';
import { ksp } from '../support/cli.js';
import { rows, useTempDirs } from './support.js';

const tmp = useTempDirs();

const REL = join(FIXTURES, 'relative-savepoint');

async function migrate(src: string, registry: ReturnType<typeof defineMigrations>, opts = {}, out = join(tmp(), 'out')) {
  const report = await SavepointWriter.from(await Savepoint.open(src)).migrate(registry, opts).write(out, { mode: 'relative' });
  return { report, out };
}

describe('migration registry', () => {
  const reg = defineMigrations((m) => {
    m.value('fraud', 1, 2, codecs.raw, codecs.raw, (v) => v);
    m.value('fraud', 2, 3, codecs.raw, codecs.raw, (v) => v);
    m.value('orders-agg', 3, 4, codecs.raw, codecs.raw, (v) => v);
  });

  it('chains one version at a time; a gap or a downgrade is an error naming the operator', () => {
    expect(reg.chain('fraud', 1, 3)).toHaveLength(2);
    expect(reg.chain('fraud', 2, 2)).toHaveLength(0);
    expect(reg.highest('fraud')).toBe(3);
    expect(() => reg.chain('orders-agg', 1, 4)).toThrow(expect.objectContaining({ code: 'MIGRATION_STEP_MISSING', message: expect.stringContaining('orders-agg') }));
    expect(() => reg.chain('fraud', 3, 1)).toThrow(expect.objectContaining({ code: 'MIGRATION_DOWNGRADE' }));
    expect(() => defineMigrations((m) => m.value('x', 1, 3, codecs.raw, codecs.raw, (v) => v))).toThrow(expect.objectContaining({ code: 'MIGRATIONS_MODULE' }));
  });

  it('codecs round-trip and refuse the wrong type', () => {
    expect(codecs.i64le.decode(codecs.i64le.encode(-5n))).toBe(-5n);
    expect(codecs.u64le.decode(codecs.u64le.encode(2n ** 64n - 1n))).toBe(2n ** 64n - 1n);
    expect(codecs.f64le.decode(codecs.f64le.encode(1.5))).toBe(1.5);
    expect(codecs.json.decode(codecs.json.encode({ a: [1] }))).toEqual({ a: [1] });
    expect(codecs.msgpack.decode(codecs.msgpack.encode({ a: 1, b: 'x' }))).toEqual({ a: 1, b: 'x' });
    expect(codecs.utf8.decode(codecs.utf8.encode('é'))).toBe('é');
    expect(() => codecs.utf8.encode(5 as never)).toThrow(/expected a string/);
    expect(() => codecs.i64le.encode('x' as never)).toThrow(/bigint/);
    expect(() => codecs.u64le.encode(-1n)).toThrow(/out of range/);
    expect(() => codecs.msgpack.encode(undefined)).toThrow(/expected a value/);
    expect(() => codecs.i64le.decode(Buffer.alloc(3))).toThrow(/8 bytes/);
    const c = codecs.custom('upper', (b) => Buffer.from(b).toString().toUpperCase(), (s: string) => Buffer.from(s.toLowerCase()));
    expect(c.decode(c.encode('AB'))).toBe('AB');
  });
});

describe('ksp migrate', () => {
  it('value steps rewrite values, chain versions, update operator_versions and record provenance', async () => {
    const unpack = new Unpackr({ useRecords: false, mapsAsObjects: true });
    const reg = defineMigrations((m) => {
      m.value('orders-agg', 1, 2, codecs.msgpack, codecs.msgpack, (o: { count: number; sum: number }) => ({ ...o, sum: o.sum * 2 }), { state: 'totals' });
      m.value('orders-agg', 2, 3, codecs.msgpack, codecs.msgpack, (o: Record<string, unknown>) => ({ ...o, v: 3 }), { state: 'totals' });
    });
    const { report, out } = await migrate(REL, reg);
    expect(report.plan.operators.find((o) => o.id === 'orders-agg')).toMatchObject({ action: 'rewrite', version: { from: '1', to: '3' } });
    const before = (await rows(REL)).filter((r) => r.state === 'totals');
    const after = (await rows(out)).filter((r) => r.state === 'totals');
    expect(after.length).toBe(before.length);
    for (let i = 0; i < before.length; i++) {
      const a = unpack.unpack(Buffer.from(before[i]!.value, 'hex')) as { sum: number };
      const b = unpack.unpack(Buffer.from(after[i]!.value, 'hex')) as { sum: number; v: number };
      expect(b).toMatchObject({ sum: a.sum * 2, v: 3 });
    }
    // Other states of the operator, and operators without steps, are untouched.
    expect((await rows(out)).filter((r) => r.state === 'last-seen')).toEqual((await rows(REL)).filter((r) => r.state === 'last-seen'));
    expect(readFileSync(join(out, 'windows/task-0/state.bin')).equals(readFileSync(join(REL, 'windows/task-0/state.bin')))).toBe(true);
    const meta = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8'));
    expect(meta.operator_versions).toMatchObject({ 'orders-agg': 3, windows: 2 });
    expect(meta.ksp.operations).toEqual([{ op: 'migrate', operators: { 'orders-agg': { from: '1', to: '3' } }, onCollision: 'fail' }]);
    expect(meta.ksp.source).toBe(REL);
  });

  it('versions come from meta.json, else 1, unless --from-version / --to-version say otherwise', async () => {
    const reg = defineMigrations((m) => {
      m.value('windows', 1, 2, codecs.raw, codecs.raw, () => Buffer.from('one-two'));
      m.value('windows', 2, 3, codecs.raw, codecs.raw, () => Buffer.from('two-three'));
    });
    // The record says windows is at 2: only 2→3 runs.
    const a = await migrate(REL, reg);
    expect(new Set((await rows(a.out)).filter((r) => r.operator === 'windows').map((r) => Buffer.from(r.value, 'hex').toString()))).toEqual(new Set(['two-three']));
    const b = await migrate(REL, reg, { fromVersions: { windows: 1 }, toVersions: { windows: 2 } });
    expect(new Set((await rows(b.out)).filter((r) => r.operator === 'windows').map((r) => Buffer.from(r.value, 'hex').toString()))).toEqual(new Set(['one-two']));
    await expect(migrate(REL, reg, { toVersions: { windows: 1 } })).rejects.toMatchObject({ code: 'MIGRATION_DOWNGRADE' });
    // The engine's checkpoint has no meta.json: everything starts at 1.
    const cp = join(FIXTURES, 'base/shop/checkpoints/00000000000000000007');
    const c = await SavepointWriter.from(await Savepoint.open(cp)).migrate(reg).plan(join(tmp(), 'x'), { mode: 'relative' });
    expect(c.operators.find((o) => o.id === 'windows')?.version).toEqual({ from: '1', to: '3' });
  });

  it('errors name operator, state, task, entry index and key: a throwing step, a wrong result, undecodable bytes', async () => {
    const cases: Array<[ReturnType<typeof defineMigrations>, string]> = [
      [defineMigrations((m) => m.value('orders-agg', 1, 2, codecs.msgpack, codecs.msgpack, () => { throw new Error('boom'); })), 'MIGRATION_FAILED'],
      [defineMigrations((m) => m.value('orders-agg', 1, 2, codecs.msgpack, codecs.i64le, () => 'not a number' as never)), 'MIGRATION_RESULT'],
      [defineMigrations((m) => m.value('orders-agg', 1, 2, codecs.utf8, codecs.utf8, (s) => s, { state: 'last-seen' })), 'CODEC_DECODE'],
    ];
    for (const [reg, code] of cases) {
      const out = join(tmp(), 'o');
      const e = (await migrate(REL, reg, {}, out).catch((x: unknown) => x)) as KspError;
      expect(e).toBeInstanceOf(KspError);
      expect(e.code).toBe(code);
      expect(e.data).toMatchObject({ operator: 'orders-agg', task: expect.stringMatching(/^task-\d$/), entry: expect.any(Number), key: expect.any(String) });
      expect(e.data.state).toBe(code === 'CODEC_DECODE' ? 'last-seen' : 'totals');
      expect(e.message).toMatch(/entry #\d+ \(key /);
    }
  });

  it('a key migration that collides fails with a count, or keeps the first / last entry as told', async () => {
    // Lower-case keys fold "customer-1" and "CUSTOMER-1" together: add the upper-case twin to task-0.
    const { encodeStateBinToBuffer } = await import('../../src/formats/state-bin/encoder.js');
    const src = join(tmp(), 'src');
    const { cpSync } = await import('node:fs');
    cpSync(REL, src, { recursive: true });
    const e = (k: string, v: string) => ({ operatorId: 'orders-agg', stateName: 's', key: Buffer.from(k), value: Buffer.from(v) });
    writeFileSync(join(src, 'orders-agg/task-0/state.bin'), await encodeStateBinToBuffer([e('a', '1'), e('A', '2'), e('b', '3'), e('B', '4'), e('a2', '5')]));
    // A new manifest for the new file: writers refuse a source whose files disagree with it.
    (await import('../safety/source-support.js')).reseal(src);
    const reg = defineMigrations((m) => m.keyValue('orders-agg', 1, 2, { key: codecs.utf8, value: codecs.raw }, { key: codecs.utf8, value: codecs.raw }, (k, v) => ({ key: k.toLowerCase(), value: v })));
    const fail = (await migrate(src, reg).catch((x: unknown) => x)) as KspError;
    expect(fail.code).toBe('KEY_COLLISION');
    expect(fail.data).toMatchObject({ collisions: 2, keys: 2 });
    const first = await migrate(src, reg, { onCollision: 'keep-first' });
    const t0 = (r: Awaited<ReturnType<typeof rows>>) => r.filter((x) => x.operator === 'orders-agg' && x.task === 'task-0').map((x) => `${Buffer.from(x.key, 'hex')}=${Buffer.from(x.value, 'hex')}`);
    expect(t0(await rows(first.out))).toEqual(['a=1', 'b=3', 'a2=5']);
    expect(first.report.collisions).toEqual([expect.objectContaining({ operator: 'orders-agg', dropped: 2, keys: 2 })]);
    const last = await migrate(src, reg, { onCollision: 'keep-last' });
    expect(t0(await rows(last.out))).toEqual(['a=2', 'b=4', 'a2=5']);
  });

  it('a migrations module in TypeScript loads through the type-stripping loader (CLI)', async () => {
    const dir = tmp();
    const mod = join(dir, 'migrations.ts');
    writeFileSync(mod, `
interface Score { value: number }
type Codecs = Record<string, any>;
export default (m: any, codecs: Codecs): void => {
  m.value('fraud', 1, 2, codecs.f64le, codecs.f64le, (old: number): number => old * 1.5, { state: 'score' });
};
`);
    const out = join(dir, 'out');
    const r = await ksp(['migrate', REL, out, '--migrations', mod, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.plan.operators.find((o: { id: string }) => o.id === 'fraud')).toMatchObject({ action: 'rewrite', version: { from: '1', to: '2' } });
    const before = (await rows(REL)).filter((x) => x.state === 'score').map((x) => Buffer.from(x.value, 'hex').readDoubleLE(0));
    const after = (await rows(out)).filter((x) => x.state === 'score').map((x) => Buffer.from(x.value, 'hex').readDoubleLE(0));
    expect(after).toEqual(before.map((v) => v * 1.5));
  });

  it('a module that fails to load, or exports nothing usable, is a usage error', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'bad.mjs'), 'export default 42;');
    await expect(loadMigrations(join(dir, 'bad.mjs'))).rejects.toMatchObject({ code: 'MIGRATIONS_MODULE' });
    writeFileSync(join(dir, 'syntax.mjs'), 'export default (m => ;');
    await expect(loadMigrations(join(dir, 'syntax.mjs'))).rejects.toMatchObject({ code: 'MIGRATIONS_MODULE' });
    await expect(loadMigrations(join(dir, 'none.mjs'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const r = await ksp(['migrate', SHOP_SP, join(dir, 'o'), '--migrations', join(dir, 'bad.mjs')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('[MIGRATIONS_MODULE]');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('msgpack values written by other tools survive an identity msgpack step unchanged', async () => {
    const pack = new Packr({ useRecords: false });
    const reg = defineMigrations((m) => m.value('orders-agg', 1, 2, codecs.msgpack, codecs.msgpack, (v) => v, { state: 'totals' }));
    const { out } = await migrate(REL, reg);
    const a = (await rows(REL)).filter((x) => x.state === 'totals');
    const b = (await rows(out)).filter((x) => x.state === 'totals');
    expect(b.map((x) => x.value)).toEqual(a.map((x) => x.value));
    expect(pack).toBeDefined();
  });
});
