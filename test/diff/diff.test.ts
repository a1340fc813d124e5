import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Packr, Unpackr } from 'msgpackr';
import { tableFromIPC } from 'apache-arrow';
import { diffSavepoints } from '../../src/index.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { codecs } from '../../src/migrate/codecs.js';
import { defineMigrations } from '../../src/migrate/registry.js';
import { ENGINE_CP, ENGINE_SP, FIXTURES, HAS_SHARED, SHOP_SP, tempDir } from '../support/env.js';
import { ksp } from '../support/cli.js';
import { duck } from '../support/duck.js';
import { newBucket, upload } from '../support/s3.js';
import { buildSavepoint } from '../write/build.js';
import { entry, rows } from '../write/support.js';

/** ksp diff (issue 15): logical content compared whatever the tasks, format, storage or path mode. */

const REL = join(FIXTURES, 'relative-savepoint');
const dirs: Array<() => void> = [];
function tmp(): string {
  const t = tempDir('ksp-diff-');
  dirs.push(t.cleanup);
  return t.path;
}
afterAll(() => dirs.forEach((c) => c()));

const write = async (src: string, f: (w: SavepointWriter) => SavepointWriter, opts: Parameters<SavepointWriter['write']>[1] = { mode: 'relative' }, out = join(tmp(), 'out')): Promise<string> => {
  const r = await f(SavepointWriter.from(await Savepoint.open(src))).write(out, opts);
  return r.target;
};

describe('copies of a savepoint have no differences', () => {
  let rescaled: string;
  let relocated: string;
  let native: string;
  beforeAll(async () => {
    rescaled = await write(REL, (w) => w.rescale(5));
    relocated = await write(REL, (w) => w.relocate(), { mode: 'engine', epoch: 99n }, tmp());
    native = await write(REL, (w) => w.convert('native'));
  });

  it('rescaled (watermarks merged across tasks), relocated into the engine layout, converted to native, and rescaled + native: exit 0', async () => {
    const both = await write(rescaled, (w) => w.convert('native'));
    for (const b of [rescaled, relocated, native, both, SHOP_SP]) {
      const r = await ksp(['diff', REL, b, '--json']);
      expect(r.code, `${b}: ${r.stderr}`).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j).toMatchObject({ same: true, totals: { added: 0, removed: 0, changed: 0 } });
      // Every entry once, the two watermark copies of `windows` merged into one.
      expect(j.totals.unchanged).toBe(157);
      expect(j.metadata.filter((m: { logical: boolean }) => m.logical)).toEqual([]);
    }
    // The other way round too, and the task counts are a note, not a difference.
    const back = await ksp(['diff', rescaled, REL]);
    expect(back.code).toBe(0);
    expect(back.stdout).toContain('same content: 0 added, 0 removed, 0 changed, 157 unchanged');
    expect(back.stdout).toMatch(/metadata notes \(not differences\):\n(.*\n)*  tasks\.orders-agg: 5 -> 3/);
  });

  it('on S3: a copy uploaded to a bucket compares the same as its local source', async () => {
    const bucket = await newBucket('ksp-diff');
    await upload(native, `s3://${bucket}/native`);
    const r = await diffSavepoints(REL, `s3://${bucket}/native`);
    expect(r.same).toBe(true);
    expect(r.totals.unchanged).toBe(157);
    const cli = await ksp(['diff', `s3://${bucket}/native`, relocated]);
    expect(cli.code).toBe(0);
  });

  it.skipIf(!HAS_SHARED)('the engine-written fixture: its savepoint and checkpoint hold the same entries', async () => {
    const r = await ksp(['diff', ENGINE_SP, ENGINE_CP, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.totals.unchanged).toBeGreaterThan(0);
    expect(j.metadata).toContainEqual({ field: 'kind', a: 'savepoint', b: 'checkpoint', logical: false });
    // And against its own native conversion.
    const native = await write(ENGINE_SP, (w) => w.convert('native'));
    expect((await diffSavepoints(ENGINE_SP, native)).same).toBe(true);
  });
});

describe('after a known migration', () => {
  const unpack = new Unpackr({ useRecords: false, mapsAsObjects: true });
  const pack = new Packr({ useRecords: false });
  const id = (k: string): number => Number(k.split('-')[1]);
  // totals: customers whose id is a multiple of 3 get their sum doubled (others keep their bytes);
  // last-seen: customers with an even id are renamed customer-N -> cust-N (removed + added).
  const reg = defineMigrations((m) => {
    m.keyValue('orders-agg', 1, 2, { key: codecs.utf8, value: codecs.raw }, { key: codecs.utf8, value: codecs.raw }, (k: string, v: Uint8Array) => {
      if (id(k) % 3 !== 0) return { key: k, value: v };
      const o = unpack.unpack(v) as { sum: number };
      return { key: k, value: pack.pack({ ...o, sum: o.sum * 2 }) };
    }, { state: 'totals' });
    m.keyValue('orders-agg', 1, 2, { key: codecs.utf8, value: codecs.raw }, { key: codecs.utf8, value: codecs.raw }, (k: string, v: Uint8Array) => ({ key: id(k) % 2 === 0 ? k.replace('customer-', 'cust-') : k, value: v }), { state: 'last-seen' });
  });
  let migrated: string;
  let expected: { changed: number; sameTotals: number; renamed: number; lastSeen: number };
  beforeAll(async () => {
    migrated = await write(REL, (w) => w.migrate(reg));
    const before = await rows(REL, 'orders-agg');
    const totals = before.filter((r) => r.state === 'totals');
    const lastSeen = before.filter((r) => r.state === 'last-seen');
    const key = (h: string): string => Buffer.from(h, 'hex').toString('utf8');
    const changed = totals.filter((r) => id(key(r.key)) % 3 === 0 && (unpack.unpack(Buffer.from(r.value, 'hex')) as { sum: number }).sum !== 0).length;
    expected = { changed, sameTotals: totals.length - changed, renamed: lastSeen.filter((r) => id(key(r.key)) % 2 === 0).length, lastSeen: lastSeen.length };
    expect(changed).toBeGreaterThan(0);
    expect(expected.renamed).toBeGreaterThan(0);
  });

  it('gives the expected counts per state exactly, the version change as a metadata difference, and exit 1', async () => {
    const r = await ksp(['diff', REL, migrated, '--json']);
    expect(r.code, r.stderr).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.same).toBe(false);
    const state = (s: string) => j.states.find((x: { operator: string; state: string }) => x.operator === 'orders-agg' && x.state === s);
    expect(state('totals')).toMatchObject({ added: 0, removed: 0, changed: expected.changed, unchanged: expected.sameTotals });
    expect(state('last-seen')).toMatchObject({ added: expected.renamed, removed: expected.renamed, changed: 0, unchanged: expected.lastSeen - expected.renamed });
    expect(j.totals).toMatchObject({ added: expected.renamed, removed: expected.renamed, changed: expected.changed, unchanged: 157 - expected.changed - expected.renamed });
    for (const s of j.states.filter((x: { operator: string }) => x.operator !== 'orders-agg')) expect(s).toMatchObject({ added: 0, removed: 0, changed: 0 });
    expect(j.metadata).toContainEqual({ field: 'operator_versions.orders-agg', a: '1', b: '2', logical: true });
    // Examples: key preview and value sizes.
    expect(state('last-seen').examples[0]).toMatchObject({ key: expect.stringMatching(/^"cust(omer)?-\d+"$/) });
    expect(state('last-seen').examples.map((e: { oldSize: number | null; newSize: number | null }) => (e.oldSize ?? e.newSize))).toEqual([8, 8, 8]);
    expect(state('totals').examples.length).toBe(3);
    // The human summary says the same.
    const h = await ksp(['diff', REL, migrated]);
    expect(h.code).toBe(1);
    expect(h.stdout).toMatch(new RegExp(`^orders-agg/totals +0 +0 +${expected.changed} +${expected.sameTotals}$`, 'm'));
    expect(h.stdout).toContain('operator_versions.orders-agg: 1 -> 2');
  });

  it('--out diff.parquet: one row per difference, read back with DuckDB, values decoded with inspect\'s codecs', async () => {
    const out = join(tmp(), 'diff.parquet');
    const r = await ksp(['diff', REL, migrated, '--out', out, '--key-codec', 'utf8', '--value-codec', 'totals=msgpack,*=raw', '--json']);
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout).out).toMatchObject({ rows: expected.changed + 2 * expected.renamed, format: 'parquet' });
    const counts = await duck(`SELECT state_name, change, count(*)::INT AS n FROM '${out}' GROUP BY ALL ORDER BY ALL`);
    expect(counts).toEqual([
      { state_name: 'last-seen', change: 'added', n: expected.renamed },
      { state_name: 'last-seen', change: 'removed', n: expected.renamed },
      { state_name: 'totals', change: 'changed', n: expected.changed },
    ]);
    const one = await duck(`SELECT key_decoded, old_value_decoded, new_value_decoded, old_value IS NULL AS no_old, operator_id, entry_operator FROM '${out}' WHERE state_name = 'totals' AND key_decoded = 'customer-3'`);
    expect(one).toHaveLength(1);
    const o = JSON.parse(one[0]!.old_value_decoded as string);
    expect(JSON.parse(one[0]!.new_value_decoded as string)).toEqual({ ...o, sum: o.sum * 2 });
    expect(one[0]).toMatchObject({ no_old: false, operator_id: 'orders-agg', entry_operator: 'orders-agg' });
    const added = await duck(`SELECT count(*)::INT AS n FROM '${out}' WHERE change = 'added' AND old_value IS NULL AND new_value IS NOT NULL AND key_decoded LIKE 'cust-%'`);
    expect(added).toEqual([{ n: expected.renamed }]);
    // An existing --out is refused without --overwrite (usage, exit 2).
    expect((await ksp(['diff', REL, migrated, '--out', out])).code).toBe(2);
  });

  it('--out .jsonl and .arrow carry the same rows', async () => {
    const d = tmp();
    expect((await ksp(['diff', REL, migrated, '--out', join(d, 'd.jsonl')])).code).toBe(1);
    const lines = readFileSync(join(d, 'd.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(expected.changed + 2 * expected.renamed);
    expect(lines.find((l) => l.change === 'removed')).toMatchObject({ operator_id: 'orders-agg', state_name: 'last-seen', new_value_hex: null, old_value_hex: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect((await ksp(['diff', REL, migrated, '--out', join(d, 'd.arrow')])).code).toBe(1);
    // Read back with apache-arrow's own IPC file reader.
    const t = tableFromIPC(readFileSync(join(d, 'd.arrow')));
    expect(t.numRows).toBe(lines.length);
    expect(t.schema.fields.map((f) => f.name)).toEqual(['operator_id', 'entry_operator', 'state_name', 'change', 'key', 'old_value', 'new_value', 'key_group']);
    const removed = t.toArray().find((r) => r.change === 'removed')!;
    expect(removed.new_value).toBeNull();
    expect(Buffer.from(removed.old_value as Uint8Array).toString('hex')).toBe(lines.find((l) => l.change === 'removed').old_value_hex);
  });

  it('--operator and --state filters: only the chosen entries and their metadata', async () => {
    const fraud = await ksp(['diff', REL, migrated, '--operator', 'fraud', '--json']);
    expect(fraud.code).toBe(0);
    const j = JSON.parse(fraud.stdout);
    expect(new Set(j.states.map((s: { operator: string }) => s.operator))).toEqual(new Set(['fraud']));
    expect(j.metadata).toEqual([]);
    const ls = await diffSavepoints(REL, migrated, { operator: 'orders-agg', state: 'last-seen' });
    expect(ls.states.map((s) => s.state)).toEqual(['last-seen']);
    expect(ls.totals).toMatchObject({ added: expected.renamed, removed: expected.renamed, changed: 0, entriesA: expected.lastSeen, entriesB: expected.lastSeen });
    expect(ls.same).toBe(false);
    // The library hands every difference over.
    let n = 0;
    await diffSavepoints(REL, migrated, { operator: 'orders-agg', onRows: (b) => void (n += b.length) });
    expect(n).toBe(expected.changed + 2 * expected.renamed);
  });
});

describe('repeated keys, copies across tasks, spills', () => {
  it('a key repeated within a task is compared as the engine loads it (the last), and reported; tasks holding one key merge as rescale does', async () => {
    const a = tmp();
    const b = tmp();
    const c = tmp();
    const wm = (n: bigint): Buffer => {
      const x = Buffer.alloc(8);
      x.writeBigInt64LE(n);
      return x;
    };
    await buildSavepoint(a, [{ id: 'op', tasks: [[entry('op', 's', 'k1', 'old'), entry('op', 's', 'k2', 'x'), entry('op', 's', 'k1', 'new'), entry('op', 's', 'wm:', wm(7n))], [entry('op', 's', 'k3', 'y'), entry('op', 's', 'wm:', wm(5n))]] }]);
    await buildSavepoint(b, [{ id: 'op', tasks: [[entry('op', 's', 'k1', 'new'), entry('op', 's', 'k2', 'x'), entry('op', 's', 'k3', 'y'), entry('op', 's', 'wm:', wm(5n))]] }]);
    await buildSavepoint(c, [{ id: 'op', tasks: [[entry('op', 's', 'k1', 'old'), entry('op', 's', 'k2', 'x'), entry('op', 's', 'k3', 'y'), entry('op', 's', 'wm:', wm(5n))]] }]);
    const same = await ksp(['diff', a, b, '--json']);
    expect(same.code, same.stderr).toBe(0);
    const j = JSON.parse(same.stdout);
    expect(j.totals).toMatchObject({ added: 0, removed: 0, changed: 0, unchanged: 4, entriesA: 6, entriesB: 4 });
    expect(j.states[0]).toMatchObject({ repeated: { a: 1, b: 0 }, conflicts: { a: 0, b: 0 } });
    expect((await ksp(['diff', a, b])).stdout).toContain('note: op/s in A: 1 entry repeats a key stored later in the same task');
    const changed = await diffSavepoints(a, c);
    expect(changed.totals).toMatchObject({ changed: 1, unchanged: 3 });
    expect(changed.states[0]!.examples).toEqual([{ change: 'changed', key: '"k1"', keyHex: Buffer.from('k1').toString('hex'), oldSize: 3, newSize: 3 }]);
    // Two tasks holding one key with values that cannot merge: counted as a conflict, the first task's compared.
    const d = tmp();
    await buildSavepoint(d, [{ id: 'op', tasks: [[entry('op', 's', 'k1', 'new'), entry('op', 's', 'k2', 'x'), entry('op', 's', 'wm:', wm(5n))], [entry('op', 's', 'k3', 'y'), entry('op', 's', 'k2', 'zz')]] }]);
    const conflict = await diffSavepoints(d, b);
    expect(conflict.same).toBe(true);
    expect(conflict.states[0]!.conflicts).toEqual({ a: 1, b: 0 });
  });

  it('spills to disk when the sort arena is small, with the same answer', async () => {
    const a = tmp();
    const b = tmp();
    const entries = (from: number, n: number, f: (i: number) => string) => Array.from({ length: n }, (_, j) => entry('big', 'st', `key-${String(from + j).padStart(6, '0')}`, f(from + j)));
    const value = (i: number): string => `v${i}-`.repeat(12);
    await buildSavepoint(a, [{ id: 'big', tasks: [entries(0, 20000, value), entries(20000, 20000, value)] }]);
    // B: other tasks, every 1000th value changed, the last 10 keys gone, 5 new ones.
    const changedValue = (i: number): string => (i % 1000 === 0 ? `changed-${i}` : value(i));
    await buildSavepoint(b, [{ id: 'big', tasks: [entries(25000, 14990, changedValue), entries(0, 25000, changedValue), entries(50000, 5, value)] }]);
    const rescaled = await write(a, (w) => w.rescale(3, { routing: 'state-key' }));
    const small = { KSP_SORT_RUN_BYTES: String(1 << 20) };
    const same = await ksp(['diff', a, rescaled, '--json'], small);
    expect(same.code, same.stdout).toBe(0);
    expect(JSON.parse(same.stdout).totals).toMatchObject({ unchanged: 40000, entriesA: 40000, entriesB: 40000 });
    const r = await ksp(['diff', rescaled, b, '--json'], small);
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stdout).totals).toEqual({ added: 5, removed: 10, changed: 40, unchanged: 40000 - 50, entriesA: 40000, entriesB: 39995 });
  });
});

describe('metadata', () => {
  it('a changed source offset and a removed operator are differences; the CLI and the library agree', async () => {
    const { cpSync, readFileSync: read, writeFileSync } = await import('node:fs');
    const d = tmp();
    cpSync(REL, d, { recursive: true });
    // Edited as text: the file holds u64 values JSON.parse would round.
    const text = read(join(d, 'metadata.json'), 'utf8');
    const edited = text.replace('"offset": 1234', '"offset": 1300').replace(/,\s*\{\s*"operator_id": "sink"[^}]*\}\s*,\s*\{\s*"operator_id": "sink"[^}]*\}/, '');
    expect(edited).not.toContain('"sink"');
    writeFileSync(join(d, 'metadata.json'), edited);
    const r = await diffSavepoints(REL, d);
    expect(r.same).toBe(false);
    expect(r.totals).toMatchObject({ added: 0, removed: 0, changed: 0, unchanged: 157 });
    expect(r.metadata.filter((m) => m.logical)).toEqual([
      { field: 'source_offsets.orders-0', a: '1234 (encoded d204000000000000)', b: '1300 (encoded d204000000000000)', logical: true },
      { field: 'operator.sink', a: 'present', b: null, logical: true },
    ]);
    // The edited metadata no longer matches its manifest: the CLI refuses it unless trusted, then exits 1.
    expect((await ksp(['diff', REL, d])).code).toBe(3);
    const cli = await ksp(['diff', REL, d, '--trust-source', '-q']);
    expect(cli.code).toBe(1);
    expect(cli.stdout).toContain('metadata differences:\n  source_offsets.orders-0: 1234 (encoded d204000000000000) -> 1300 (encoded d204000000000000)\n  operator.sink: present -> (absent)');
  });
});

describe('bad input', () => {
  it('a missing savepoint is NOT_FOUND, exit 4, with a typed JSON error', async () => {
    const r = await ksp(['diff', join(tmp(), 'nope'), REL, '--json']);
    expect(r.code).toBe(4);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'NOT_FOUND' });
    expect(r.stderr).toMatch(/^ksp: error \[NOT_FOUND\]/);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
  });

  it('usage errors exit 2: a codec without --out, an unknown state in a codec spec, one savepoint only', async () => {
    expect((await ksp(['diff', REL, SHOP_SP, '--value-codec', 'msgpack'])).code).toBe(2);
    const out = join(tmp(), 'x.parquet');
    const r = await ksp(['diff', REL, SHOP_SP, '--out', out, '--value-codec', 'nosuch=msgpack']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no state named "nosuch"');
    expect((await ksp(['diff', REL])).code).toBe(2);
  });

  it('a damaged state file is bad input, exit 3', async () => {
    const d = tmp();
    const { cpSync, writeFileSync } = await import('node:fs');
    cpSync(REL, d, { recursive: true });
    writeFileSync(join(d, 'fraud/task-0/state.bin'), Buffer.from('garbage'));
    const r = await ksp(['diff', REL, d, '--trust-source']);
    expect(r.code).toBe(3);
  });
});
