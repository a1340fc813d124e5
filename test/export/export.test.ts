import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { duck } from '../support/duck.js';
import { tableFromIPC } from 'apache-arrow';
import { Packr } from 'msgpackr';
import { afterAll, describe, expect, it } from 'vitest';
import { exportEntries, formatFromPath } from '../../src/export/export.js';
import { Savepoint, type EntryRow } from '../../src/model/savepoint.js';
import { viewCodec } from '../../src/model/value-codecs.js';
import { keyGroup } from '../../src/model/key-group.js';
import { windowGroupKey } from '../../src/model/routing.js';
import { locate } from '../../src/storage/uri.js';
import { ENGINE_SP, HAS_SHARED, SHOP_SP, tempDir } from '../support/env.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

async function collect(sp: Savepoint): Promise<EntryRow[]> {
  const out: EntryRow[] = [];
  for await (const b of sp.entries()) for (const e of b) out.push({ ...e, key: Buffer.from(e.key), value: Buffer.from(e.value) });
  return out;
}


describe('export to Parquet, read back by DuckDB (an independent reader)', () => {
  it('all entries of a savepoint: counts, every row\'s bytes, key groups, column types', async () => {
    const sp = await Savepoint.open(SHOP_SP);
    const rows = await collect(sp);
    const out = join(tmp.path, 'shop.parquet');
    const r = await exportEntries(sp.entries(), locate(out));
    expect(r).toMatchObject({ rows: 158, format: 'parquet' });
    const types = await duck(`DESCRIBE SELECT * FROM read_parquet('${out}')`);
    expect(types.map((t) => [t.column_name, t.column_type])).toEqual([
      ['operator_id', 'VARCHAR'], ['task_id', 'VARCHAR'], ['entry_operator', 'VARCHAR'], ['state_name', 'VARCHAR'],
      ['key', 'BLOB'], ['value', 'BLOB'], ['key_group', 'INTEGER'],
    ]);
    const back = await duck(`SELECT operator_id, task_id, entry_operator, state_name, hex(key) AS k, hex(value) AS v, key_group FROM read_parquet('${out}')`);
    expect(back).toHaveLength(rows.length);
    back.forEach((b, i) => {
      const e = rows[i]!;
      expect(b).toEqual({
        operator_id: e.task.operatorId, task_id: e.task.taskId, entry_operator: e.operatorId, state_name: e.stateName,
        k: Buffer.from(e.key).toString('hex').toUpperCase(), v: Buffer.from(e.value).toString('hex').toUpperCase(),
        key_group: keyGroup(windowGroupKey(e.key) ?? e.key),
      });
    });
    const agg = await duck(`SELECT state_name, count(*)::INTEGER AS n FROM read_parquet('${out}') GROUP BY 1 ORDER BY 1`);
    expect(agg).toContainEqual({ state_name: 'totals', n: 60 });
  });

  it.skipIf(!HAS_SHARED)('the engine fixture with decoded values', async () => {
    const sp = await Savepoint.open(ENGINE_SP);
    const out = join(tmp.path, 'engine.parquet');
    await exportEntries(sp.entries(), locate(out), { codecs: { key: await viewCodec('utf8'), value: await viewCodec('i64le') }, compression: 'snappy' });
    const back = await duck(`SELECT operator_id, entry_operator, key_decoded, value_decoded::VARCHAR AS v FROM read_parquet('${out}')`);
    expect(back).toEqual([
      { operator_id: 'op-0', entry_operator: 'continuous-window', key_decoded: 'tw:key-a', v: null },
      { operator_id: 'op-0', entry_operator: 'continuous-window', key_decoded: 'wm:', v: '9000' },
    ]);
  });

  it('msgpack values decode to JSON text', async () => {
    const sp = await Savepoint.open(SHOP_SP);
    const out = join(tmp.path, 'orders.parquet');
    const r = await exportEntries(sp.entries({ state: 'totals' }), locate(out), { codecs: { value: await viewCodec('msgpack') } });
    expect(r.decode.valueFailures).toBe(0);
    const back = await duck(`SELECT json_extract(value_decoded, '$.currency') AS c, value FROM read_parquet('${out}') LIMIT 3`);
    for (const b of back) expect(b.c).toBe('"EUR"');
    const u = new Packr({ useRecords: false });
    const first = await duck(`SELECT hex(value) AS v, value_decoded AS d FROM read_parquet('${out}') LIMIT 1`);
    expect(JSON.parse(first[0]!.d as string)).toEqual(u.unpack(Buffer.from(first[0]!.v as string, 'hex')));
  });

  it('an empty selection still writes a valid file', async () => {
    const sp = await Savepoint.open(SHOP_SP);
    const out = join(tmp.path, 'empty.parquet');
    expect((await exportEntries(sp.entries({ state: 'no-such-state' }), locate(out))).rows).toBe(0);
    expect(await duck(`SELECT count(*)::INTEGER AS n FROM read_parquet('${out}')`)).toEqual([{ n: 0 }]);
  });
});

describe('export to Arrow IPC and JSON Lines', () => {
  it.each(['arrow', 'arrows'])('.%s reads back with apache-arrow', async (ext) => {
    const sp = await Savepoint.open(SHOP_SP);
    const rows = await collect(sp);
    const out = join(tmp.path, `shop.${ext}`);
    await exportEntries(sp.entries(), locate(out), { codecs: { value: await viewCodec('hex') } });
    const t = tableFromIPC(readFileSync(out));
    expect(t.numRows).toBe(rows.length);
    expect(t.schema.fields.map((f) => f.name)).toEqual(['operator_id', 'task_id', 'entry_operator', 'state_name', 'key', 'value', 'key_group', 'value_decoded']);
    const i = 77;
    expect(Buffer.from(t.getChild('key')!.get(i) as Uint8Array).equals(rows[i]!.key)).toBe(true);
    expect(t.getChild('value_decoded')!.get(i)).toBe(Buffer.from(rows[i]!.value).toString('hex'));
  });

  it('.jsonl: one object per entry, hex bytes, decoded values, nulls where a codec cannot decode', async () => {
    const sp = await Savepoint.open(SHOP_SP);
    const out = join(tmp.path, 'w.jsonl');
    const r = await exportEntries(sp.entries({ operator: 'windows', state: 'tumbling' }), locate(out), { codecs: { value: await viewCodec('i64le'), key: await viewCodec('utf8') } });
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(22);
    expect(r.rows).toBe(22);
    const wm = lines.filter((l) => l.key_hex === Buffer.from('wm:').toString('hex'));
    expect(wm.map((l) => l.value_decoded)).toEqual([1759999995000, 1759999993000]);
    // The window keys end in binary window-start bytes that are not UTF-8: key_decoded is null there.
    expect(r.decode.keyFailures).toBe(lines.filter((l) => l.key_decoded === null).length);
  });

  it('many batches: every row of 40,000 (three record batches over reused buffers) reads back, nulls included', async () => {
    // Built in memory: ids that change mid-stream, keys and values of varying
    // length, values of 8 bytes (an i64le decodes them) between others (null).
    const task = (id: string) => ({ operatorId: 'op', taskId: id }) as unknown as EntryRow['task'];
    const tasks = [task('t0'), task('t1')];
    const N = 40_000;
    const all: EntryRow[] = [];
    for (let i = 0; i < N; i++) {
      const key = Buffer.alloc(4 + (i % 29));
      key.writeUInt32LE(i);
      const value = i % 3 === 0 ? Buffer.alloc(8) : Buffer.alloc(i % 50, i & 0xff);
      if (i % 3 === 0) value.writeBigInt64LE(BigInt(i) * -7n);
      all.push({ operatorId: i < 20_000 ? 'a' : 'bb', stateName: `s${i % 3}`, key, value, task: tasks[i < 30_000 ? 0 : 1]!, index: i });
    }
    async function* rows(): AsyncGenerator<EntryRow[]> {
      for (let i = 0; i < N; i += 1000) yield all.slice(i, i + 1000);
    }
    const out = join(tmp.path, 'many.arrow');
    await exportEntries(rows(), locate(out), { codecs: { value: await viewCodec('i64le') } });
    const t = tableFromIPC(readFileSync(out));
    expect(t.numRows).toBe(N);
    expect(t.batches.length).toBe(3);
    const col = (n: string) => t.getChild(n)!.toArray() as unknown[];
    const [key, value, group, decoded, op, taskId, state] = ['key', 'value', 'key_group', 'value_decoded', 'entry_operator', 'task_id', 'state_name'].map((n) => (n === 'value_decoded' ? [...t.getChild(n)!] : col(n)));
    for (let i = 0; i < N; i++) {
      const r = all[i]!;
      if (!Buffer.from(key![i] as Uint8Array).equals(r.key) || !Buffer.from(value![i] as Uint8Array).equals(r.value)) throw new Error(`row ${i}: bytes differ`);
      expect(group![i]).toBe(keyGroup(windowGroupKey(r.key) ?? r.key));
      expect(decoded![i]).toBe(r.value.length === 8 ? Buffer.from(r.value).readBigInt64LE(0) : null);
      expect([op![i], taskId![i], state![i]]).toEqual([r.operatorId, r.task.taskId, r.stateName]);
    }
  });

  it('refuses an unknown extension', () => {
    expect(() => formatFromPath('x.csv')).toThrow(/\.parquet, \.arrow/);
  });
});
