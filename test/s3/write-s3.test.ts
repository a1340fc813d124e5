import { join } from 'node:path';
import { cpSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { locate } from '../../src/storage/uri.js';
import { FIXTURES, SHOP_SP, tempDir } from '../support/env.js';
import { newBucket, upload } from '../support/s3.js';
import { ksp } from '../support/cli.js';
import { multiset, rows } from '../write/support.js';

const NATIVE_SP = join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007');
let bucket: string;
let other: string;
beforeAll(async () => {
  bucket = await newBucket('ksp-w');
  other = await newBucket('ksp-w2');
  await upload(join(FIXTURES, 'native'), `s3://${bucket}/native`);
});

/** `aws s3 cp --recursive`: every object under one prefix copied to another, by plain copies. */
async function copyPrefix(from: string, to: string): Promise<void> {
  const a = locate(from);
  const b = locate(to);
  for await (const e of a.storage.list(a.key)) {
    const rel = e.key.slice(a.key.length + 1);
    const chunks: Uint8Array[] = [];
    for await (const c of a.storage.read(e.key)) chunks.push(c);
    await b.storage.write(`${b.key}/${rel}`, Buffer.concat(chunks));
  }
}

describe('writing savepoints to and from S3', () => {
  it('local → S3 (relative), then moved to another bucket by plain copies, still verifies', async () => {
    const out = `s3://${bucket}/relocated/sp`;
    const r = await SavepointWriter.from(await Savepoint.open(NATIVE_SP)).relocate().write(out, { mode: 'relative' });
    expect(r.verify.ok).toBe(true);
    const moved = `s3://${other}/somewhere/else`;
    await copyPrefix(out, moved);
    const v = await verifySavepoint(moved);
    expect(v.ok).toBe(true);
    expect(v.totals.nativeTasks).toBe(1);
  });

  it('S3 → S3 in the engine layout (server-side copies), and S3 → local', async () => {
    const src = `s3://${bucket}/native/shop/savepoints/00000000000000000007`;
    const r = await SavepointWriter.from(await Savepoint.open(src)).rescale(2, { operators: ['orders-agg'], routing: 'state-key' }).write(`s3://${other}/base`, { mode: 'engine', jobId: 'shop2', epoch: 8n });
    expect(r.target).toBe(`s3://${other}/base/shop2/savepoints/00000000000000000008`);
    expect(r.verify.ok).toBe(true);
    const t = tempDir();
    try {
      const local = join(t.path, 'sp');
      const back = await SavepointWriter.from(await Savepoint.open(r.target)).relocate().write(local, { mode: 'relative' });
      expect(back.verify.ok).toBe(true);
      expect(multiset(await rows(local, 'orders-agg'))).toEqual(multiset(await rows(NATIVE_SP, 'orders-agg')));
      // And a plain local copy of that still verifies.
      cpSync(local, join(t.path, 'moved'), { recursive: true });
      expect((await verifySavepoint(join(t.path, 'moved'))).ok).toBe(true);
    } finally {
      t.cleanup();
    }
  });

  it('the CLI writes to S3, refuses a non-empty target, and --dry-run writes nothing', async () => {
    const out = `s3://${bucket}/cli/sp`;
    const dry = await ksp(['relocate', SHOP_SP, out, '--mode', 'relative', '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, plan: { mode: 'relative', target: out } });
    const l = locate(out);
    let n = 0;
    for await (const _ of l.storage.list(l.key)) n++;
    expect(n).toBe(0);
    const a = await ksp(['relocate', SHOP_SP, out, '--mode', 'relative']);
    expect(a.code).toBe(0);
    const b = await ksp(['relocate', SHOP_SP, out, '--mode', 'relative']);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('[TARGET_NOT_EMPTY]');
    const c = await ksp(['relocate', SHOP_SP, out, '--mode', 'relative', '--overwrite', '--json']);
    expect(c.code).toBe(0);
    expect(JSON.parse(c.stdout).verify.ok).toBe(true);
  });

  it('convert --to native into S3 (engine layout): tables streamed up, verified there, the same entries', async () => {
    const src = `s3://${bucket}/native/shop/savepoints/00000000000000000007`;
    const r = await SavepointWriter.from(await Savepoint.open(src)).convert('native', { compression: 'zstd', formatVersion: 6 }).write(`s3://${other}/native-out`, { mode: 'engine' });
    expect(r.verify.ok).toBe(true);
    expect(r.native.length).toBeGreaterThan(1);
    const v = await verifySavepoint(r.target);
    expect(v.ok).toBe(true);
    expect(v.totals.nativeTasks).toBe(r.native.length);
    expect(multiset(await rows(r.target))).toEqual(multiset(await rows(src)));
  });
});
