import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { duck } from '../support/duck.js';
import { ksp } from '../support/cli.js';
import { ENGINE_SP, FIXTURES, HAS_SHARED, tempDir } from '../support/env.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { locate } from '../../src/storage/uri.js';
import { needsMallocEnv } from '../../src/cli/malloc-env.js';

/**
 * ksp import: an export imported back (byte-identical state with the layout
 * it came from, the same entries at another parallelism), rows edited in
 * DuckDB applied with upserts and deletes, the engine's fixture round trip,
 * bad rows refused with nothing written, and native output.
 */

const SHOP = join(FIXTURES, 'relative-savepoint');
const tmp = tempDir();
afterAll(() => tmp.cleanup());
const at = (name: string): string => join(tmp.path, name);

function stateFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else if (n === 'state.bin') out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/** Every entry of a savepoint as sorted text lines (operator, entry operator, state, key, value), read back by DuckDB from an export. */
async function content(sp: string, name: string): Promise<string[]> {
  const out = at(`${name}.parquet`);
  const r = await ksp(['inspect', sp, '--out', out, '--overwrite', '-q']);
  expect(r.code, r.stderr).toBe(0);
  const rows = await duck(`SELECT operator_id || ' ' || entry_operator || ' ' || state_name || ' ' || hex(key) || ' ' || hex(value) AS e FROM read_parquet('${out}') ORDER BY e`);
  return rows.map((x) => x.e as string);
}

async function exportOf(sp: string, file: string, extra: string[] = []): Promise<string> {
  const r = await ksp(['inspect', sp, '--out', file, '--overwrite', '-q', ...extra]);
  expect(r.code, r.stderr).toBe(0);
  return file;
}

describe('ksp import, the command', () => {
  it('--help shows the three forms with examples; it runs as a writing command', async () => {
    const r = await ksp(['import', '--help']);
    expect(r.code).toBe(0);
    for (const f of ['--like', '--into', '--parallelism', 'Examples:', '(upsert | delete)']) expect(r.stdout).toContain(f);
    if (process.platform === 'linux') expect(needsMallocEnv(['import', 'rows.parquet', 'dst'], {})).toBe(true);
  });

  it('a new savepoint needs --job-id, --epoch and --parallelism', async () => {
    const r = await ksp(['import', 'rows.parquet', at('usage'), '--job-id', 'j']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/needs --job-id, --epoch and --parallelism/);
  });
});

describe('import of an export', () => {
  for (const ext of ['parquet', 'jsonl', 'arrow', 'arrows']) {
    it(`--like the source: every state.bin byte-identical (${ext})`, async () => {
      const rows = await exportOf(SHOP, at(`shop.${ext}`));
      const dst = at(`like-${ext}`);
      const r = await ksp(['import', rows, dst, '--like', SHOP]);
      expect(r.code, r.stderr).toBe(0);
      const files = stateFiles(SHOP);
      expect(stateFiles(dst)).toEqual(files);
      for (const f of files) expect(readFileSync(join(dst, f)).equals(readFileSync(join(SHOP, f))), f).toBe(true);
      const v = await ksp(['verify', dst]);
      expect(v.code, v.stdout + v.stderr).toBe(0);
    });
  }

  it('a new savepoint at another parallelism holds the same entries, and verifies', async () => {
    const rows = await exportOf(SHOP, at('shop-new.parquet'));
    const dst = at('new-p3');
    const r = await ksp(['import', rows, dst, '--job-id', 'shop2', '--epoch', '9', '--parallelism', '3', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.verify.ok).toBe(true);
    expect(report.plan.jobId).toBe('shop2');
    expect(report.plan.epoch).toBe('9');
    const meta = JSON.parse(readFileSync(join(dst, 'meta.json'), 'utf8'));
    expect(meta.ksp.source).toBe('(new, from shop-new.parquet)');
    expect(meta.ksp.operations[0]).toMatchObject({ op: 'import', mode: 'new', rows: 'shop-new.parquet', upserts: 158, deletes: 0 });
    const sp = await Savepoint.open(dst);
    const ops = new Map<string, number>();
    for (const t of sp.tasks) ops.set(t.operatorId, (ops.get(t.operatorId) ?? 0) + 1);
    // The sink holds no entries, so no row names it.
    expect([...ops]).toEqual([['orders-agg', 3], ['windows', 3], ['fraud', 3]]);
    // Watermarks are per task: the export names each one's task, which the new layout still has.
    expect(await content(dst, 'new-p3')).toEqual(await content(SHOP, 'shop-content'));
  });

  it('the library: SavepointWriter.from(sp).apply(rows) plans without writing, then writes', async () => {
    const rows = await exportOf(SHOP, at('shop-lib.jsonl'));
    const sp = await Savepoint.open(SHOP);
    const w = SavepointWriter.from(sp).apply(rows, { mode: 'like' });
    const dst = at('lib');
    const plan = await w.plan(dst);
    expect(plan.operators.map((o) => o.action)).toEqual(['import', 'import', 'import', 'import']);
    expect(existsSync(dst)).toBe(false);
    const report = await w.write(dst);
    expect(report.imported.map((i) => i.upserts)).toEqual([70, 62, 26, 0]);
    expect((await verifySavepoint(locate(dst))).ok).toBe(true);
    // The rows routed by the plan and by the write are gone with them.
    expect(readdirSync(tmpdir()).filter((n) => n.startsWith(`ksp-import-${process.pid}-`))).toEqual([]);
  });
});

describe('edit in DuckDB, import back', () => {
  let rows: string;
  beforeAll(async () => {
    rows = await exportOf(SHOP, at('edit.parquet'), ['--value-codec', 'totals=msgpack']);
  });

  it('deletes poisoned keys and upserts new ones with --into; verify passes and inspect shows the change', async () => {
    const fixed = at('changes.parquet');
    // Poisoned: two customers' totals. New: customer-100, its value given as JSON and packed with --value-codec msgpack; customer-1 changed.
    await duck(`COPY (
      SELECT operator_id, task_id, entry_operator, state_name, key, value, value_decoded, 'delete' AS change FROM read_parquet('${rows}')
        WHERE state_name = 'totals' AND decode(key) IN ('customer-3', 'customer-7')
      UNION ALL
      SELECT operator_id, NULL, entry_operator, state_name, encode('customer-100'), NULL, '{"count":1,"sum":5.5,"currency":"EUR"}', 'upsert' FROM read_parquet('${rows}')
        WHERE state_name = 'totals' AND decode(key) = 'customer-1'
      UNION ALL
      SELECT operator_id, task_id, entry_operator, state_name, key, NULL, '{"count":9,"sum":1.25,"currency":"EUR"}', 'upsert' FROM read_parquet('${rows}')
        WHERE state_name = 'totals' AND decode(key) = 'customer-1'
    ) TO '${fixed}' (FORMAT parquet)`);
    const dst = at('into');
    const r = await ksp(['import', fixed, dst, '--into', SHOP, '--value-codec', 'msgpack', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.imported).toEqual([expect.objectContaining({ operator: 'orders-agg', upserts: 2, deletes: 2, replaced: 3 })]);
    // Operators without rows are copied as they are.
    expect(report.written.copied).toBe(5);
    const v = await ksp(['verify', dst]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    const after = at('into-out.parquet');
    await exportOf(dst, after, ['--value-codec', 'totals=msgpack']);
    const totals = await duck(`SELECT decode(key) AS k, value_decoded AS v FROM read_parquet('${after}') WHERE state_name = 'totals' ORDER BY k`);
    const keys = totals.map((t) => t.k);
    expect(keys).not.toContain('customer-3');
    expect(keys).not.toContain('customer-7');
    expect(totals.find((t) => t.k === 'customer-100')?.v).toBe('{"count":1,"sum":5.5,"currency":"EUR"}');
    expect(totals.find((t) => t.k === 'customer-1')?.v).toBe('{"count":9,"sum":1.25,"currency":"EUR"}');
    expect(totals.length).toBe(60 - 2 + 1);
    // Everything else is untouched.
    const other = (c: string[]): string[] => c.filter((l) => !/ totals /.test(l));
    expect(other(await content(dst, 'into-content'))).toEqual(other(await content(SHOP, 'shop-content2')));
  });

  it("the README's workflow: COPY (SELECT … WHERE NOT poisoned) and import it as the whole state (--like)", async () => {
    const fixed = at('fixed.parquet');
    await duck(`COPY (SELECT * EXCLUDE (value_decoded) FROM (SELECT *, state_name = 'totals' AND key IN (encode('customer-3'), encode('customer-7')) AS poisoned FROM read_parquet('${rows}')) WHERE NOT poisoned) TO '${fixed}' (FORMAT parquet)`);
    const dst = at('fixed');
    const r = await ksp(['import', fixed, dst, '--like', SHOP]);
    expect(r.code, r.stderr).toBe(0);
    expect((await ksp(['verify', dst])).code).toBe(0);
    const before = await content(SHOP, 'shop-content3');
    const after = await content(dst, 'fixed-content');
    expect(after.length).toBe(before.length - 2);
    const gone = (k: string): string => Buffer.from(k).toString('hex').toUpperCase();
    expect(before.filter((l) => !l.includes(` totals ${gone('customer-3')} `) && !l.includes(` totals ${gone('customer-7')} `))).toEqual(after);
  });

  it('adds a new operator given its layout; without one the row is refused', async () => {
    const add = at('add.jsonl');
    writeFileSync(add, [
      { operator_id: 'enrich', state_name: 'seen', key_utf8: 'a', value_hex: '01' },
      { operator_id: 'enrich', state_name: 'seen', key_utf8: 'b', value_hex: '02' },
    ].map((o) => JSON.stringify(o)).join('\n') + '\n');
    const refused = await ksp(['import', add, at('add-refused'), '--into', SHOP]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/IMPORT_ROW|row 1, column operator_id: unknown operator "enrich"/);
    expect(existsSync(at('add-refused'))).toBe(false);
    const dst = at('add');
    const r = await ksp(['import', add, dst, '--into', SHOP, '--operator', 'enrich=2']);
    expect(r.code, r.stderr).toBe(0);
    const sp = await Savepoint.open(dst);
    expect(sp.tasks.filter((t) => t.operatorId === 'enrich').map((t) => t.taskId)).toEqual(['task-0', 'task-1']);
    expect((await content(dst, 'add-content')).filter((l) => l.startsWith('enrich '))).toEqual(['enrich enrich seen 61 01', 'enrich enrich seen 62 02']);
  });
});

describe('bad rows: a typed error naming the row, nothing at the target', () => {
  const refused = async (file: string, args: string[], message: RegExp): Promise<void> => {
    const dst = at(`bad-${relative(tmp.path, file)}`);
    const r = await ksp(['import', file, dst, '--into', SHOP, '--json', ...args]);
    expect(r.code, r.stdout + r.stderr).toBe(3);
    const e = JSON.parse(r.stdout || r.stderr);
    expect(JSON.stringify(e)).toContain('IMPORT_ROW');
    expect(r.stdout + r.stderr).toMatch(message);
    expect(existsSync(dst)).toBe(false);
  };

  it('a missing column', async () => {
    const f = at('missing.jsonl');
    writeFileSync(f, `${JSON.stringify({ operator_id: 'fraud', state_name: 's', key_hex: '01', value_hex: '02' })}\n${JSON.stringify({ operator_id: 'fraud', key_hex: '01', value_hex: '02' })}\n`);
    await refused(f, [], /row 2, column state_name: missing column/);
  });

  it('a missing column in Parquet (DuckDB without state_name)', async () => {
    const rows = await exportOf(SHOP, at('nostate-src.parquet'));
    const f = at('nostate.parquet');
    await duck(`COPY (SELECT * EXCLUDE (state_name) FROM read_parquet('${rows}')) TO '${f}' (FORMAT parquet)`);
    await refused(f, [], /row 1, column state_name: missing column/);
  });

  it('an undecodable value', async () => {
    const f = at('undecodable.jsonl');
    const ok = { operator_id: 'fraud', entry_operator: 'fraud-model', state_name: 'score', key_hex: '01', value_decoded: 1.5 };
    writeFileSync(f, [ok, ok, { ...ok, value_decoded: 'not a number' }].map((o) => JSON.stringify(o)).join('\n') + '\n');
    await refused(f, ['--value-codec', 'f64le'], /row 3, column value_decoded: cannot encode as f64le/);
  });

  it('bad hex and an unknown change', async () => {
    const f = at('badhex.jsonl');
    writeFileSync(f, `${JSON.stringify({ operator_id: 'fraud', state_name: 's', key_hex: 'zz', value_hex: '02' })}\n`);
    await refused(f, [], /row 1, column key_hex/);
    const g = at('badchange.jsonl');
    writeFileSync(g, `${JSON.stringify({ operator_id: 'fraud', state_name: 's', key_hex: '01', value_hex: '02', change: 'merge' })}\n`);
    await refused(g, [], /row 1, column change: "merge" is neither upsert nor delete/);
  });

  it('an unknown operator', async () => {
    const f = at('unknown.jsonl');
    writeFileSync(f, [{ operator_id: 'fraud', state_name: 's', key_hex: '01', value_hex: '02' }, { operator_id: 'nope', state_name: 's', key_hex: '01', value_hex: '02' }].map((o) => JSON.stringify(o)).join('\n') + '\n');
    await refused(f, [], /row 2, column operator_id: unknown operator "nope"/);
  });
});

describe('--to native', () => {
  it('an export imported as native RocksDB state verifies and holds the same entries', async () => {
    const rows = await exportOf(SHOP, at('native-src.parquet'));
    const dst = at('native');
    const r = await ksp(['import', rows, dst, '--like', SHOP, '--to', 'native']);
    expect(r.code, r.stderr).toBe(0);
    const v = await ksp(['verify', dst]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    const sp = await Savepoint.open(dst);
    const kinds = await Promise.all(sp.tasks.map(async (t) => (await sp.probe(t)).kind));
    expect(kinds).toContain('native');
    expect(await content(dst, 'native-content')).toEqual(await content(SHOP, 'shop-content4'));
  });
});

describe('a native source', () => {
  it('--into a savepoint of RocksDB tasks: the operator the rows change is written canonical, the rest copied native; verify passes', async () => {
    const src = join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007');
    const rows = at('native-changes.jsonl');
    writeFileSync(rows, [
      { operator_id: 'orders-agg', state_name: 'totals', key_utf8: 'customer-0', change: 'delete' },
      { operator_id: 'orders-agg', state_name: 'totals', key_utf8: 'customer-new', value_hex: 'c0' },
    ].map((o) => JSON.stringify(o)).join('\n') + '\n');
    const dst = at('native-into');
    const r = await ksp(['import', rows, dst, '--into', src, '--mode', 'relative', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).imported).toEqual([expect.objectContaining({ operator: 'orders-agg', upserts: 1, deletes: 1, replaced: 1 })]);
    expect((await ksp(['verify', dst])).code).toBe(0);
    const c = await content(dst, 'native-into-content');
    expect(c).toContain(`orders-agg orders-agg totals ${Buffer.from('customer-new').toString('hex').toUpperCase()} C0`);
    expect(c.some((l) => l.includes(` totals ${Buffer.from('customer-0').toString('hex').toUpperCase()} `))).toBe(false);
  });
});

describe.skipIf(!HAS_SHARED)("the engine's fixture", () => {
  it('export → import → ksp verify', async () => {
    const rows = await exportOf(ENGINE_SP, at('engine.parquet'));
    const dst = at('engine');
    const r = await ksp(['import', rows, dst, '--like', ENGINE_SP, '--mode', 'relative']);
    expect(r.code, r.stderr).toBe(0);
    const v = await ksp(['verify', dst]);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    expect(await content(dst, 'engine-out')).toEqual(await content(ENGINE_SP, 'engine-in'));
  });
});
