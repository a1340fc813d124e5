import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { duck } from '../support/duck.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { locate } from '../../src/storage/uri.js';
import { tableFromIPC } from 'apache-arrow';
import { contiguousGroups } from '../../src/write/distributed/export-plan.js';
import { commitDistributed, runShardsInProcess } from '../../src/write/distributed/index.js';
import { ksp } from '../support/cli.js';
import { newBucket, upload } from '../support/s3.js';
import { useTempDirs } from '../write/support.js';
import { start } from './processes.js';
import { buildSource } from './support.js';

/**
 * Sharded `inspect --out`: planned into a folder, its parts written by
 * `ksp work` processes, sealed by `ksp commit`; DuckDB reads the folder of
 * parts as one table with the rows of the one-process export, in its order
 * when the parts are read in name order.
 */

const tmp = useTempDirs('ksp-dist-export-');


const COLS = 'operator_id, task_id, entry_operator, state_name, hex(key) AS k, hex(value) AS v, key_group, key_decoded, value_decoded';
const CODECS = ['--key-codec', 'hex', '--value-codec', 'utf8'];

/** Rows of one file, in file order. */
const fileRows = (file: string): Promise<Record<string, unknown>[]> => duck(`SELECT ${COLS} FROM read_parquet('${file}') ORDER BY file_row_number`);
/** Rows of a folder of parts read as one table, parts in name order, each in file order. */
const folderRows = (dir: string): Promise<Record<string, unknown>[]> => duck(`SELECT ${COLS} FROM read_parquet('${dir}/*.parquet', filename = true, file_row_number = true) ORDER BY filename, file_row_number`);
const sorted = (rows: Record<string, unknown>[]): string[] => rows.map((r) => JSON.stringify(r)).sort();

async function runShards(dir: string, n: number, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const shards = Array.from({ length: n }, (_, i) => start(['work', dir, '--shard', `${i}/${n}`], env));
  for (const s of shards) {
    const x = await s.done;
    expect(x.code, x.stderr).toBe(0);
  }
}

describe('sharded inspect --out', () => {
  it('contiguous groups: non-empty, in order, about equal', () => {
    expect(contiguousGroups([10, 10, 10, 10], 2)).toEqual([0, 0, 1, 1]);
    expect(contiguousGroups([100, 1, 1, 1], 3)).toEqual([0, 1, 2, 2]);
    expect(contiguousGroups([1, 1], 5)).toEqual([0, 1]);
    expect(contiguousGroups([], 4)).toEqual([]);
    for (const [w, n] of [[[5, 0, 0, 0, 0, 9, 1], 4], [[1, 2, 3, 4, 5, 6, 7, 8], 3], [[0, 0, 0], 3]] as const) {
      const g = contiguousGroups(w, n);
      expect(new Set(g).size).toBe(Math.min(n, w.length));
      g.forEach((x, i) => expect(x - (g[i - 1] ?? -1)).toBeGreaterThanOrEqual(0));
    }
  });

  it('shards 1, 2, 3 as processes: DuckDB reads the folder as one table with the one-process rows and order', { timeout: 240_000 }, async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 400);
    const one = join(tmp(), 'one.parquet');
    const r1 = await ksp(['inspect', src, '--out', one, ...CODECS, '-q']);
    expect(r1.code, r1.stderr).toBe(0);
    const want = await fileRows(one);
    expect(want.length).toBeGreaterThan(1000);
    for (const n of [1, 2, 3]) {
      const dir = join(tmp(), `parts-${n}`);
      const p = await ksp(['inspect', src, '--out', `${dir}/`, '--distributed', '--shards', String(n), ...CODECS]);
      expect(p.code, p.stderr).toBe(0);
      expect(p.stdout).toContain(`ksp work ${dir} --shard 0/${n}`);
      const st = await ksp(['status', dir, '--json']);
      expect(st.code).toBe(1);
      expect(JSON.parse(st.stdout).units).toMatchObject({ total: n, missing: n });
      await runShards(dir, n);
      // Not sealed before commit: no _SUCCESS, the plan and records under _ksp/.
      expect(existsSync(join(dir, '_SUCCESS'))).toBe(false);
      expect(existsSync(join(dir, '_ksp', 'plan.json'))).toBe(true);
      const c = await ksp(['commit', dir, '--json']);
      expect(c.code, c.stderr).toBe(0);
      const rep = JSON.parse(c.stdout);
      expect(rep.export).toMatchObject({ format: 'parquet', parts: n, rows: want.length });
      const names = Array.from({ length: n }, (_, k) => `part-${String(k).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.parquet`);
      expect(readdirSync(dir).sort()).toEqual(['_SUCCESS', ...names]);
      expect(JSON.parse(readFileSync(join(dir, '_SUCCESS'), 'utf8'))).toMatchObject({ rows: want.length, parts: names.map((file) => ({ file })) });
      const got = await folderRows(dir);
      expect(sorted(got)).toEqual(sorted(want));
      expect(got).toEqual(want);
      expect((await ksp(['status', dir])).code).toBe(0);
      // A shard started again after the commit does nothing.
      const again = await ksp(['work', dir, '--shard', `0/${n}`]);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain('already committed');
    }
  });

  it('a filter, JSON Lines parts and a duplicate shard: the parts concatenated are the one-process file', { timeout: 120_000 }, async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 300);
    const one = join(tmp(), 'one.jsonl');
    expect((await ksp(['inspect', src, '--out', one, '--operator', 'windows', '--value-codec', 'utf8', '-q'])).code).toBe(0);
    const dir = join(tmp(), 'entries.jsonl');
    expect((await ksp(['inspect', src, '--out', dir, '--distributed', '--shards', '2', '--operator', 'windows', '--value-codec', 'utf8'])).code).toBe(0);
    // Two processes on the same shard (a retried pod beside a slow one), and the other shard.
    await Promise.all([runShards(dir, 1, {}).catch(() => undefined), Promise.all([start(['work', dir, '--shard', '0/2']).done, start(['work', dir, '--shard', '0/2']).done, start(['work', dir, '--shard', '1/2']).done]).then((xs) => xs.forEach((x) => expect(x.code, x.stderr).toBe(0)))]);
    const c = await ksp(['commit', dir]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toMatch(/row\(s\) in 2 jsonl part/);
    const parts = readdirSync(dir).filter((f) => f.endsWith('.jsonl')).sort();
    expect(parts).toEqual(['part-00000-of-00002.jsonl', 'part-00001-of-00002.jsonl']);
    expect(parts.map((f) => readFileSync(join(dir, f), 'utf8')).join('')).toBe(readFileSync(one, 'utf8'));
    const n = await duck(`SELECT count(*)::INTEGER AS n FROM read_json('${dir}/*.jsonl')`);
    expect(n[0]!.n).toBe(readFileSync(one, 'utf8').split('\n').length - 1);
  });

  it('a shard killed mid-part and run again beside a duplicate: the same part bytes as a clean run, no leftovers', { timeout: 240_000 }, async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 6000);
    const clean = join(tmp(), 'clean');
    expect((await ksp(['inspect', src, '--out', clean, '--distributed', '--shards', '2', ...CODECS])).code).toBe(0);
    await runShards(clean, 2);
    expect((await ksp(['commit', clean])).code).toBe(0);
    const dir = join(tmp(), 'parts');
    expect((await ksp(['inspect', src, '--out', dir, '--distributed', '--shards', '2', ...CODECS])).code).toBe(0);
    const a = start(['work', dir, '--shard', '0/1']);
    const units = join(dir, '_ksp', 'units');
    const end = Date.now() + 60_000;
    while (!(existsSync(units) && readdirSync(units).some((f) => f.endsWith('.started.json')))) {
      if (Date.now() > end) throw new Error('no unit started');
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 150));
    a.kill();
    expect((await a.done).signal).toBe('SIGKILL');
    expect(readdirSync(units).filter((f) => f.endsWith('.done.json')).length).toBeLessThan(2);
    const c0 = await ksp(['commit', dir]);
    expect(c0.code).toBe(1);
    expect(c0.stderr).toContain('DISTRIBUTED_INCOMPLETE');
    await Promise.all([runShards(dir, 2), runShards(dir, 1)]);
    const c = await ksp(['commit', dir]);
    expect(c.code, c.stderr).toBe(0);
    const files = readdirSync(dir).sort();
    expect(files).toEqual(readdirSync(clean).sort());
    for (const f of files.filter((x) => x.startsWith('part-'))) expect(readFileSync(join(dir, f)).equals(readFileSync(join(clean, f))), f).toBe(true);
  });

  it('Arrow IPC parts, shards run in this process (the library path): the one-process rows', { timeout: 120_000 }, async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 300);
    const one = join(tmp(), 'one.arrow');
    expect((await ksp(['inspect', src, '--out', one, '--state', 'sum', '-q'])).code).toBe(0);
    const dir = join(tmp(), 'entries.arrow');
    expect((await ksp(['inspect', src, '--out', dir, '--distributed', '--shards', '3', '--state', 'sum'])).code).toBe(0);
    const reports = await runShardsInProcess(dir, 2, { pollMs: 20 });
    expect(reports.flatMap((r) => r.ran).sort()).toEqual(['e-0000', 'e-0001', 'e-0002']);
    const c = await commitDistributed(dir);
    expect(c.export).toMatchObject({ format: 'arrow', parts: 3 });
    const rows = (t: ReturnType<typeof tableFromIPC>): string[] => t.toArray().map((r) => JSON.stringify([r.task_id, Buffer.from(r.key).toString('hex'), Buffer.from(r.value).toString('hex'), r.key_group]));
    const want = rows(tableFromIPC(readFileSync(one)));
    const parts = readdirSync(dir).filter((f) => f.endsWith('.arrow')).sort();
    expect(parts).toHaveLength(3);
    const got = parts.flatMap((f) => rows(tableFromIPC(readFileSync(join(dir, f)))));
    expect(got).toEqual(want);
    expect(c.export!.rows).toBe(want.length);
  });

  it('commit refuses while a unit is missing; a source changed after the plan is refused', { timeout: 120_000 }, async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 200);
    const dir = join(tmp(), 'parts');
    expect((await ksp(['inspect', src, '--out', dir, '--distributed', '--shards', '3'])).code).toBe(0);
    // Shard 2 of 3 never ran.
    for (const i of [0, 1]) expect((await ksp(['work', dir, '--shard', `${i}/3`])).code).toBe(0);
    const c = await ksp(['commit', dir, '--json']);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain('DISTRIBUTED_INCOMPLETE');
    expect(c.stderr).toContain('1 missing (e-000');
    expect(existsSync(join(dir, '_SUCCESS'))).toBe(false);
    expect(readdirSync(dir).filter((f) => f.endsWith('.parquet'))).toHaveLength(2);
    // A stray file would be read as part of the table: refused, not deleted.
    writeFileSync(join(dir, 'stray.parquet'), 'x');
    expect((await ksp(['work', dir, '--shard', '2/3'])).code).toBe(0);
    const c2 = await ksp(['commit', dir]);
    expect(c2.code).not.toBe(0);
    expect(c2.stderr).toContain('TARGET_FOREIGN_FILE');
    rmSync(join(dir, 'stray.parquet'));
    expect((await ksp(['commit', dir])).code).toBe(0);

    // The source rewritten between plan and work.
    const dir2 = join(tmp(), 'parts2');
    expect((await ksp(['inspect', src, '--out', dir2, '--distributed', '--shards', '2'])).code).toBe(0);
    rmSync(src, { recursive: true });
    await buildSource(src, 201);
    const w = await ksp(['work', dir2, '--shard', '0/2']);
    expect(w.code).toBe(3);
    expect(w.stderr).toContain('DISTRIBUTED_SOURCE_CHANGED');
    expect(readdirSync(dir2)).toEqual(['_ksp']);
  });
});

describe('sharded inspect --out into S3', () => {
  let bucket: string;
  beforeAll(async () => {
    bucket = await newBucket('ksp-dist-export');
  });

  it('plan, 2 shard processes and commit on S3: the parts read as one table with the one-process rows', { timeout: 180_000 }, async () => {
    const local = join(tmp(), 'src');
    await buildSource(local, 400);
    const src = `s3://${bucket}/src`;
    await upload(local, src);
    const one = join(tmp(), 'one.parquet');
    expect((await ksp(['inspect', src, '--out', one, ...CODECS, '-q'])).code).toBe(0);
    const want = await fileRows(one);
    const out = `s3://${bucket}/exports/sp`;
    const p = await ksp(['inspect', src, '--out', out, '--distributed', '--shards', '2', ...CODECS]);
    expect(p.code, p.stderr).toBe(0);
    await runShards(out, 2, { KSP_WORK_POLL_MS: '100' });
    const c = await ksp(['commit', out, '--json']);
    expect(c.code, c.stderr).toBe(0);
    expect(JSON.parse(c.stdout).export).toMatchObject({ parts: 2, rows: want.length });
    // Copy the folder down and read it as one table.
    const d = locate(out);
    const down = join(tmp(), 'down');
    const keys: string[] = [];
    for await (const e of d.storage.list(d.key)) {
      if (e.isPrefix) continue;
      const rel = e.key.slice(d.key.length + 1);
      keys.push(rel);
      const { mkdirSync } = await import('node:fs');
      mkdirSync(down, { recursive: true });
      writeFileSync(join(down, rel), Buffer.from(await d.storage.readSmall(e.key, 1 << 30)));
    }
    expect(keys.sort()).toEqual(['_SUCCESS', 'part-00000-of-00002.parquet', 'part-00001-of-00002.parquet']);
    expect(await folderRows(down)).toEqual(want);
  });
});
