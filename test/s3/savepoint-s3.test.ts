import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { exportEntries } from '../../src/export/export.js';
import { inspectSavepoint } from '../../src/model/inspect.js';
import { listStorage } from '../../src/model/list.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { locate } from '../../src/storage/uri.js';
import { FIXTURE_BUCKET } from '../../src/tools/gen-fixtures.js';
import { ENGINE_SP, FIXTURES, HAS_SHARED, SHOP_SP, tempDir } from '../support/env.js';
import { createBucket, newBucket, upload } from '../support/s3.js';
import { ksp } from '../support/cli.js';

let bucket: string;
beforeAll(async () => {
  bucket = await newBucket('ksp-sp');
  await upload(join(FIXTURES, 'base'), `s3://${bucket}/base`);
  await createBucket(FIXTURE_BUCKET);
  await upload(join(FIXTURES, 'base'), `s3://${FIXTURE_BUCKET}`);
});

describe('savepoints in S3', () => {
  it('verify and inspect give the same answers as on disk', async () => {
    const uri = `s3://${bucket}/base/shop/savepoints/00000000000000000007`;
    const r = await verifySavepoint(uri);
    expect(r.ok).toBe(true);
    expect(r.totals).toMatchObject({ files: 9, tasks: 8, entries: 158 });
    const s3 = await inspectSavepoint(uri);
    const local = await inspectSavepoint(SHOP_SP);
    expect({ ...s3, uri: '', operators: s3.operators.map((o) => ({ ...o, tasks: o.tasks.map((t) => ({ ...t, file: '' })) })) })
      .toEqual({ ...local, uri: '', operators: local.operators.map((o) => ({ ...o, tasks: o.tasks.map((t) => ({ ...t, file: '' })) })) });
    expect(s3.savepointId).toBe('5b1f3c7e-2d4a-4e8b-9c61-0a7d2e4f8b13');
  });

  it('a tampered object fails verification', async () => {
    const uri = `s3://${bucket}/tampered/sp`;
    await upload(SHOP_SP, uri);
    const loc = locate(`${uri}/windows/task-1/state.bin`);
    const b = Buffer.from(readFileSync(join(SHOP_SP, 'windows', 'task-1', 'state.bin')));
    b[40] ^= 0x10;
    await loc.storage.write(loc.key, b);
    const r = await verifySavepoint(uri);
    expect(r.ok).toBe(false);
    expect(r.findings.map((f) => f.code)).toContain('HASH_MISMATCH');
  });

  it('exports Parquet straight to S3', async () => {
    const sp = await Savepoint.open(`s3://${bucket}/base/shop/savepoints/00000000000000000007`);
    const out = `s3://${bucket}/exports/shop.parquet`;
    const r = await exportEntries(sp.entries(), locate(out));
    expect(r.rows).toBe(158);
    const loc = locate(out);
    expect((await loc.storage.stat(loc.key))?.size).toBe(r.bytes);
    expect(Buffer.from(await loc.storage.readSmall(loc.key)).subarray(0, 4).toString()).toBe('PAR1');
  });

  // s3rver (the fallback server) drops folders from delimiter listings.
  it.skipIf(inject('s3Flavour') === 's3rver')('lists jobs, checkpoints and savepoints under an S3 base', async () => {
    const rows = await listStorage(`s3://${bucket}/base`);
    expect(rows.map((r) => [r.jobId, r.kind, r.epoch, r.manifest, r.label])).toEqual([
      ['shop', 'checkpoint', '7', true, null],
      ['shop', 'checkpoint', '8', false, null],
      ['shop', 'savepoint', '7', true, 'before-v2'],
      ['shop', 'savepoint', '9', true, 'reuses-epoch-7'],
    ]);
    expect(rows[2]!.savepointId).toBe('5b1f3c7e-2d4a-4e8b-9c61-0a7d2e4f8b13');
  });

  it('a local savepoint whose metadata names s3:// state files reads them from S3', async () => {
    // Another storage than the savepoint's own: read only when allowed.
    expect((await verifySavepoint(join(FIXTURES, 'absolute-paths'))).findings.map((f) => f.code)).toEqual(['PATH_UNSAFE']);
    const r = await verifySavepoint(join(FIXTURES, 'absolute-paths'), { allowRoots: [`s3://${FIXTURE_BUCKET}`] });
    expect(r.ok).toBe(true);
    expect(r.totals.entries).toBe(158);
    expect(r.findings.filter((f) => f.code === 'OUTSIDE_DIRECTORY')).toHaveLength(8);
  });

  it.skipIf(!HAS_SHARED)('the engine fixture verifies from S3 through the CLI', async () => {
    await upload(join(ENGINE_SP, '..', '..', '..'), `s3://${bucket}/engine`);
    const r = await ksp(['verify', `s3://${bucket}/engine/fixture-job/savepoints/00000000000000000001`, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, totals: { entries: 2 } });
  });

  it('local absolute paths resolve too', async () => {
    const t = tempDir();
    try {
      const md = readFileSync(join(FIXTURES, 'absolute-paths', 'metadata.json'), 'utf8').replaceAll(`s3://${FIXTURE_BUCKET}/`, `${join(FIXTURES, 'base')}/`);
      writeFileSync(join(t.path, 'metadata.json'), md);
      const r = await verifySavepoint(t.path, { allowRoots: [join(FIXTURES, 'base')] });
      expect(r.findings.map((f) => f.code)).toContain('MANIFEST_MISSING');
      expect(r.totals.entries).toBe(158);
    } finally {
      t.cleanup();
    }
  });
});

describe('large objects in S3', () => {
  // Ranged reads are off by default (src/storage/s3.ts says why); these turn them on.
  beforeAll(() => void (process.env.KSP_S3_RANGES = '4'));
  afterAll(() => void delete process.env.KSP_S3_RANGES);

  it('a read with a known size comes back whole and in order as parallel ranges', async () => {
    const loc = locate(`s3://${bucket}/large/blob.bin`);
    // 3.5 parts of 8 MiB: four ranges, the last one short.
    const data = Buffer.alloc(28 * 1024 * 1024 + 12345);
    for (let i = 0; i + 4 <= data.length; i += 4) data.writeUInt32LE(i >>> 2, i);
    await loc.storage.write(loc.key, data);
    const parts: Buffer[] = [];
    for await (const c of loc.storage.read(loc.key, { size: data.length })) parts.push(Buffer.from(c));
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    // A size larger than the object: what exists comes back, nothing more (the caller counts bytes).
    let n = 0;
    for await (const c of loc.storage.read(loc.key, { size: data.length + (20 << 20) })) n += c.length;
    expect(n).toBe(data.length);
  });

  it('verify of a savepoint with a large state file reads it in ranges and agrees with disk', async () => {
    const dir = tempDir('ksp-s3-large-');
    const { writeSyntheticSavepoint } = await import('../../src/tools/synthetic.js');
    // Two tasks of ~22 MB each: above the 16 MiB where ranged reads start.
    const r = await writeSyntheticSavepoint(dir.path, { job: 'big', operator: 'op', entries: 300_000, tasks: 2, fill: (pool) => void pool.fill(7) });
    await upload(join(dir.path, 'big'), `s3://${bucket}/lg/big`);
    const uri = `s3://${bucket}/lg/big/savepoints/00000000000000000001`;
    const [s3, disk] = [await verifySavepoint(uri), await verifySavepoint(r.sp)];
    dir.cleanup();
    expect(s3.ok).toBe(true);
    expect(s3.totals).toEqual(disk.totals);
    expect(s3.files.map((f) => f.found)).toEqual(disk.files.map((f) => f.found));
  });
});
