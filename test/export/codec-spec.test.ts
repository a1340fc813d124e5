import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { duck } from '../support/duck.js';
import { ksp } from '../support/cli.js';
import { reseal } from '../support/reseal.js';
import { exportEntries } from '../../src/export/export.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { codecSpec } from '../../src/model/value-codecs.js';
import { encodeAggState, type AggEntry } from '../../src/model/aggstate.js';
import { encodeStateBinToBuffer } from '../../src/formats/state-bin/encoder.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';
import { locate } from '../../src/storage/uri.js';
import { ENGINE_SP, HAS_SHARED, SHOP_SP, copyOf, tempDir } from '../support/env.js';

/**
 * Per-state codecs, window keys as columns and the engine's window
 * accumulator, exported and read back by DuckDB.
 */

const tmp = tempDir();
afterAll(() => tmp.cleanup());

// A codec for every state of the shop fixture (src/tools/gen-fixtures.ts).
const SHOP_VALUES = 'totals=msgpack,last-seen=i64le,tumbling=i64le,sliding=i64le,session=json,bitmap=u64le,score=f64le';

describe('per-state codecs', () => {
  it('one codec for every state leaves most values null; a codec per state decodes them all (Parquet, DuckDB)', async () => {
    const sp = await Savepoint.open(SHOP_SP);
    const one = await exportEntries(sp.entries(), locate(join(tmp.path, 'one.parquet')), { codecs: { value: await codecSpec('msgpack', 'value') } });
    expect(one.decode.valueFailures).toBe(97);
    const out = join(tmp.path, 'per-state.parquet');
    const r = await exportEntries(sp.entries(), locate(out), { codecs: { value: await codecSpec(SHOP_VALUES, 'value') } });
    // Two bitmap values are not 8 bytes (0 and 1 byte): the only values no codec of their state reads.
    expect(r.decode.valueFailures).toBe(2);
    const types = await duck(`SELECT column_type AS t FROM (DESCRIBE SELECT * FROM read_parquet('${out}')) WHERE column_name = 'value_decoded'`);
    expect(types).toEqual([{ t: 'VARCHAR' }]);
    const nulls = await duck(`SELECT state_name, count(*)::INTEGER AS n, count(value_decoded)::INTEGER AS decoded FROM read_parquet('${out}') GROUP BY 1 ORDER BY 1`);
    expect(nulls).toEqual([
      { state_name: 'bitmap', n: 14, decoded: 12 }, { state_name: 'last-seen', n: 10, decoded: 10 }, { state_name: 'score', n: 12, decoded: 12 },
      { state_name: 'session', n: 20, decoded: 20 }, { state_name: 'sliding', n: 20, decoded: 20 }, { state_name: 'totals', n: 60, decoded: 60 },
      { state_name: 'tumbling', n: 22, decoded: 22 },
    ]);
    // Each state's values as its codec reads them: msgpack as JSON, f64 and i64 as numbers (in text).
    const score = await duck(`SELECT value_decoded::DOUBLE AS d, hex(value) AS h FROM read_parquet('${out}') WHERE state_name = 'score'`);
    for (const s of score) expect(s.d).toBe(Buffer.from(s.h as string, 'hex').readDoubleLE(0));
    const totals = await duck(`SELECT DISTINCT json_extract_string(value_decoded, '$.currency') AS c FROM read_parquet('${out}') WHERE state_name = 'totals'`);
    expect(totals).toEqual([{ c: 'EUR' }]);
  });

  it('*=raw leaves states undecoded without counting them as failures; one numeric type keeps its column type (JSON Lines too)', async () => {
    const sp = await Savepoint.open(SHOP_SP);
    const out = join(tmp.path, 'score.jsonl');
    const r = await exportEntries(sp.entries(), locate(out), { codecs: { value: await codecSpec('score=f64le,*=raw', 'value') } });
    expect(r.decode.valueFailures).toBe(0);
    const back = await duck(`SELECT state_name, count(value_decoded)::INTEGER AS n FROM read_json_auto('${out}') GROUP BY 1 HAVING n > 0`);
    expect(back).toEqual([{ state_name: 'score', n: 12 }]);
    const pq = join(tmp.path, 'score.parquet');
    await exportEntries(sp.entries(), locate(pq), { codecs: { value: await codecSpec('score=f64le,*=raw', 'value') } });
    expect(await duck(`SELECT column_type AS t FROM (DESCRIBE SELECT * FROM read_parquet('${pq}')) WHERE column_name = 'value_decoded'`)).toEqual([{ t: 'DOUBLE' }]);
  });

  it('the CLI: a per-state spec, an unknown state name listing the valid ones, the single-codec form', async () => {
    const out = join(tmp.path, 'cli.parquet');
    const ok = await ksp(['inspect', SHOP_SP, '--out', out, '--value-codec', 'totals=msgpack,score=f64le,*=raw', '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ rows: 158, decode: { valueFailures: 0 } });
    const bad = await ksp(['inspect', SHOP_SP, '--out', join(tmp.path, 'bad.parquet'), '--value-codec', 'totals=msgpack,scores=f64le']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--value-codec: no state named "scores" in the entries selected; state names: "bitmap", "last-seen", "score", "session", "sliding", "totals", "tumbling"');
    expect(statSync(tmp.path).isDirectory() && readdirSync(tmp.path)).not.toContain('bad.parquet');
    const single = await ksp(['inspect', SHOP_SP, '--state', 'last-seen', '--entries', '--value-codec', 'i64le', '--json']);
    expect(single.code).toBe(0);
    expect(single.stdout.trim().split('\n').map((l) => typeof JSON.parse(l).value_decoded)).toEqual(Array(10).fill('number'));
  });
});

describe('window keys as columns', () => {
  it('tw:/sw:/ses: keys give group key, start and end; wm: its watermark; other keys null and counted (Parquet, DuckDB)', async () => {
    const sp = await Savepoint.open(SHOP_SP);
    const out = join(tmp.path, 'windows.parquet');
    const r = await exportEntries(sp.entries(), locate(out), { codecs: { key: await codecSpec('tumbling=window:60000,sliding=window,session=window,totals=utf8', 'key') } });
    expect(r.decode.keyFailures).toBe(0);
    const types = await duck(`SELECT column_name AS c, column_type AS t FROM (DESCRIBE SELECT * FROM read_parquet('${out}')) WHERE column_name IN ('key_decoded', 'window_kind', 'group_key', 'window_start', 'window_end', 'watermark')`);
    expect(types).toEqual([
      { c: 'key_decoded', t: 'VARCHAR' }, { c: 'window_kind', t: 'VARCHAR' }, { c: 'group_key', t: 'VARCHAR' },
      { c: 'window_start', t: 'BIGINT' }, { c: 'window_end', t: 'BIGINT' }, { c: 'watermark', t: 'BIGINT' },
    ]);
    const T0 = 1760000000000;
    const tw = await duck(`SELECT group_key, window_start::VARCHAR AS s, window_end::VARCHAR AS e FROM read_parquet('${out}') WHERE window_kind = 'tw' AND group_key = 'user-3'`);
    expect(tw).toEqual([{ group_key: 'user-3', s: String(T0 - 60000), e: String(T0) }]);
    const sw = await duck(`SELECT count(*)::INTEGER AS n, count(window_end)::INTEGER AS ends FROM read_parquet('${out}') WHERE window_kind = 'sw'`);
    expect(sw).toEqual([{ n: 20, ends: 0 }]);
    const ses = await duck(`SELECT DISTINCT window_start::VARCHAR AS s, window_end::VARCHAR AS e FROM read_parquet('${out}') WHERE window_kind = 'ses'`);
    expect(ses).toEqual([{ s: String(T0 - 60000), e: String(T0) }]);
    const wm = await duck(`SELECT watermark::VARCHAR AS w, key_decoded FROM read_parquet('${out}') WHERE window_kind = 'wm' ORDER BY 1`);
    expect(wm).toEqual([{ w: String(T0 - 7000), key_decoded: null }, { w: String(T0 - 5000), key_decoded: null }]);
    // States decoded as utf8 have key_decoded and no window columns.
    const plain = await duck(`SELECT count(*)::INTEGER AS n FROM read_parquet('${out}') WHERE state_name = 'totals' AND key_decoded LIKE 'customer-%' AND window_kind IS NULL`);
    expect(plain).toEqual([{ n: 60 }]);
  });

  it('the same columns in JSON Lines and Arrow IPC', async () => {
    const sp = await Savepoint.open(SHOP_SP);
    for (const f of ['w.jsonl', 'w.arrow']) {
      const out = join(tmp.path, f);
      const r = await exportEntries(sp.entries({ operator: 'windows' }), locate(out), { codecs: { key: await codecSpec('window', 'key') } });
      expect(r.decode.keyFailures).toBe(0);
      if (f.endsWith('.jsonl')) {
        const back = await duck(`SELECT window_kind, count(*)::INTEGER AS n, count(group_key)::INTEGER AS g, count(watermark)::INTEGER AS w FROM read_json_auto('${out}') GROUP BY 1 ORDER BY 1`);
        expect(back).toEqual([{ window_kind: 'ses', n: 20, g: 20, w: 0 }, { window_kind: 'sw', n: 20, g: 20, w: 0 }, { window_kind: 'tw', n: 20, g: 20, w: 0 }, { window_kind: 'wm', n: 2, g: 0, w: 2 }]);
      } else {
        const { tableFromIPC } = await import('apache-arrow');
        const t = tableFromIPC(readFileSync(out));
        expect(t.schema.fields.map((x) => x.name).slice(-5)).toEqual(['window_kind', 'group_key', 'window_start', 'window_end', 'watermark']);
        expect(t.getChild('window_kind')!.toArray().filter((k: string | null) => k === 'wm')).toHaveLength(2);
      }
    }
  });

  it.skipIf(!HAS_SHARED)('the engine fixture: its "tw:key-a" is not in the length-prefixed layout (null, counted); wm: is 9000', async () => {
    const sp = await Savepoint.open(ENGINE_SP);
    const out = join(tmp.path, 'engine.parquet');
    const r = await exportEntries(sp.entries(), locate(out), { codecs: { key: await codecSpec('window', 'key') } });
    expect(r.decode.keyFailures).toBe(1);
    expect(await duck(`SELECT window_kind, watermark::VARCHAR AS w FROM read_parquet('${out}')`)).toEqual([{ window_kind: null, w: null }, { window_kind: 'wm', w: '9000' }]);
  });
});

/** The shop savepoint with its window values as the engine's accumulators: tumbling in binary v1, sliding in the legacy JSON. */
function aggStateSavepoint(): string {
  const t = copyOf(SHOP_SP);
  afterAll(t.cleanup);
  return t.path;
}

function agg(u: number): AggEntry[] {
  return [{ value: BigInt(u), hasValue: true, avgSum: u * 1.5, avgCount: BigInt(u + 1), floatValue: u / 4, sqSum: u * u }];
}

describe('the window accumulator (aggstate)', () => {
  let dir = '';
  beforeAll(async () => {
    dir = aggStateSavepoint();
    const sp = await Savepoint.open(SHOP_SP);
    for (const task of ['task-0', 'task-1']) {
      const entries: StateEntry[] = [];
      for await (const b of sp.entries({ operator: 'windows' })) {
        for (const e of b) {
          if (e.task.taskId !== task) continue;
          let value = Buffer.from(e.value);
          const u = Number(Buffer.from(e.key).subarray(7, Buffer.from(e.key).length - 8).toString('utf8').replace('user-', ''));
          if (e.stateName === 'tumbling' && e.key.length > 3) value = encodeAggState(agg(u));
          if (e.stateName === 'sliding') value = Buffer.from(JSON.stringify({ values: [u], has_value: [true], avg_sums: [0.5], avg_counts: [2], float_values: [1.25], sq_sums: [4] }));
          entries.push({ operatorId: e.operatorId, stateName: e.stateName, key: Buffer.from(e.key), value });
        }
      }
      writeFileSync(join(dir, 'windows', task, 'state.bin'), await encodeStateBinToBuffer(entries));
    }
    reseal(dir);
  });

  it('binary v1 and legacy JSON values decode to JSON entries; wm: gives its watermark (Parquet, DuckDB)', async () => {
    const sp = await Savepoint.open(dir);
    const out = join(tmp.path, 'agg.parquet');
    const r = await exportEntries(sp.entries({ operator: 'windows' }), locate(out), { codecs: { key: await codecSpec('window', 'key'), value: await codecSpec('tumbling=aggstate,sliding=aggstate,*=json', 'value') } });
    expect(r.decode).toEqual({ keyFailures: 0, valueFailures: 0 });
    const tw = await duck(`SELECT group_key, json_extract(value_decoded, '$[0].value')::INTEGER AS v, json_extract(value_decoded, '$[0].avg_count')::INTEGER AS c, json_extract(value_decoded, '$[0].sq_sum')::DOUBLE AS sq, json_array_length(value_decoded)::INTEGER AS n FROM read_parquet('${out}') WHERE window_kind = 'tw' ORDER BY group_key`);
    expect(tw).toHaveLength(20);
    for (const row of tw) {
      const u = Number((row.group_key as string).slice(5));
      expect(row).toEqual({ group_key: `user-${u}`, v: u, c: u + 1, sq: u * u, n: 1 });
    }
    const sw = await duck(`SELECT DISTINCT json_extract(value_decoded, '$[0].float_value')::DOUBLE AS f, json_extract(value_decoded, '$[0].has_value')::BOOLEAN AS h FROM read_parquet('${out}') WHERE window_kind = 'sw'`);
    expect(sw).toEqual([{ f: 1.25, h: true }]);
    const wm = await duck(`SELECT json_extract(value_decoded, '$.watermark_ms')::BIGINT::VARCHAR AS w FROM read_parquet('${out}') WHERE window_kind = 'wm' ORDER BY 1`);
    expect(wm).toEqual([{ w: '1759999993000' }, { w: '1759999995000' }]);
  });

  it('the CLI lists them decoded', async () => {
    const r = await ksp(['inspect', dir, '--state', 'tumbling', '--key-codec', 'window:60000', '--value-codec', 'aggstate', '--limit', '50']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('tw: "user-3" [1759999940000, 1760000000000] => [{"value":3,"has_value":true,"avg_sum":4.5,"avg_count":4,"float_value":0.75,"sq_sum":9}]');
    expect(r.stdout).toMatch(/wm: \(watermark 17599999[59]5000\) => \{"watermark_ms":17599999[59]5000\}/);
  });
});
