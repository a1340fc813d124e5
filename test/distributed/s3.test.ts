import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ksp } from '../support/cli.js';
import { newBucket, upload } from '../support/s3.js';
import { useTempDirs } from '../write/support.js';
import { start } from './processes.js';
import { buildSource, objects } from './support.js';

/**
 * Distributed rescale against the real S3 server of the tests: the plan,
 * N = 1, 2 and 5 shards as separate `ksp work` processes at once, and the
 * commit, each byte-identical to the one-process rescale into S3.
 */

const tmp = useTempDirs('ksp-dist-s3-');
let bucket: string;
beforeAll(async () => {
  bucket = await newBucket('ksp-dist');
  const src = join(tmp(), 'src');
  await buildSource(src, 4000);
  await upload(src, `s3://${bucket}/src`);
});


describe('distributed rescale into S3, shards as processes', () => {
  it('rescale 3→7 with N = 1, 2, 5 shards then commit: the one-process bytes', { timeout: 300_000 }, async () => {
    const src = `s3://${bucket}/src`;
    const one = `s3://${bucket}/one`;
    const r = await ksp(['rescale', src, one, '-p', '7', '--operator', 'windows', '--mode', 'relative', '-q']);
    expect(r.code, r.stderr).toBe(0);
    const want = await objects(one);
    expect(Object.keys(want)).toContain('windows/task-6/state.bin');
    for (const n of [1, 2, 5]) {
      const out = `s3://${bucket}/n${n}`;
      const p = await ksp(['rescale', src, out, '-p', '7', '--operator', 'windows', '--mode', 'relative', '--distributed', '--shards', String(n)]);
      expect(p.code, p.stderr).toBe(0);
      expect(p.stdout).toContain(`ksp work ${out} --shard 0/${n}`);
      expect((await ksp(['verify', out])).code).not.toBe(0);
      // Half the shards take their index from the environment, as pods of an Indexed Job or an AWS Batch array job do.
      const shards = Array.from({ length: n }, (_, i) => i % 2
        ? start(['work', out, '--shard', String(n)], { KSP_WORK_POLL_MS: '100', JOB_COMPLETION_INDEX: String(i) })
        : start(['work', out, '--shard', `${i}/${n}`], { KSP_WORK_POLL_MS: '100', AWS_BATCH_JOB_ARRAY_INDEX: '999' }));
      for (const s of shards) {
        const x = await s.done;
        expect(x.code, x.stderr).toBe(0);
      }
      const c = await ksp(['commit', out, '--json']);
      expect(c.code, c.stderr).toBe(0);
      expect(JSON.parse(c.stdout).verify.ok).toBe(true);
      const got = await objects(out);
      expect(Object.keys(got).filter((k) => k.startsWith('_ksp/'))).toEqual([]);
      expect(got).toEqual(want);
      expect((await ksp(['verify', out])).code).toBe(0);
    }
  });

  it('migrate (a value step from a module) with N = 1, 2, 5 shard processes then commit: the one-process bytes', { timeout: 300_000 }, async () => {
    const src = `s3://${bucket}/src`;
    const mod = join(tmp(), 'm.mjs');
    writeFileSync(mod, "export default (m, codecs) => { m.value('agg', 1, 2, codecs.utf8, codecs.utf8, (v) => v + '!', { state: 'count' }); };\n");
    const one = `s3://${bucket}/mig-one`;
    const r = await ksp(['migrate', src, one, '--migrations', mod, '--mode', 'relative', '-q']);
    expect(r.code, r.stderr).toBe(0);
    const want = await objects(one);
    for (const n of [1, 2, 5]) {
      const out = `s3://${bucket}/mig-n${n}`;
      const p = await ksp(['migrate', src, out, '--migrations', mod, '--mode', 'relative', '--distributed', '--shards', String(n)]);
      expect(p.code, p.stderr).toBe(0);
      await workAndCommit(out, n);
      expect(await objects(out)).toEqual(want);
    }
  });

  it('convert --to native with N = 1, 2, 5 shard processes then commit: the one-process bytes', { timeout: 300_000 }, async () => {
    const src = `s3://${bucket}/src`;
    const one = `s3://${bucket}/nat-one`;
    const r = await ksp(['convert', src, one, '--to', 'native', '--mode', 'relative', '-q']);
    expect(r.code, r.stderr).toBe(0);
    const want = await objects(one);
    expect(Object.keys(want).some((k) => k.startsWith('incr/windows/task-0/sst/'))).toBe(true);
    for (const n of [1, 2, 5]) {
      const out = `s3://${bucket}/nat-n${n}`;
      const p = await ksp(['convert', src, out, '--to', 'native', '--mode', 'relative', '--distributed', '--shards', String(n)]);
      expect(p.code, p.stderr).toBe(0);
      await workAndCommit(out, n);
      expect(await objects(out)).toEqual(want);
    }
  });

  it('a key-changing migration (entries of different source tasks collide, keep-last) with N = 1, 3 shard processes then commit: the one-process bytes', { timeout: 300_000 }, async () => {
    const src = `s3://${bucket}/src`;
    const mod = join(tmp(), 'keys.mjs');
    // `user-{t}-{i}` → `u-{i}` in each window's group key: the three source tasks' entries with one i and time now share a key.
    writeFileSync(mod, `export default (m, codecs) => {
  m.keyValue('windows', 1, 2, { key: codecs.raw, value: codecs.raw }, { key: codecs.raw, value: codecs.raw }, (key, value) => {
    const k = Buffer.from(key);
    const n = k.readUInt32LE(3);
    const g = Buffer.from(k.subarray(7, 7 + n).toString().replace(/^user-\\d+-/, 'u-'));
    const out = Buffer.concat([Buffer.from('tw:'), Buffer.alloc(4), g, k.subarray(7 + n)]);
    out.writeUInt32LE(g.length, 3);
    return { key: out, value };
  }, { state: 'sum' });
};
`);
    const one = `s3://${bucket}/key-one`;
    const r = await ksp(['migrate', src, one, '--migrations', mod, '--on-collision', 'keep-last', '--mode', 'relative', '-q']);
    expect(r.code, r.stderr).toBe(0);
    const want = await objects(one);
    for (const n of [1, 3]) {
      const out = `s3://${bucket}/key-n${n}`;
      const p = await ksp(['migrate', src, out, '--migrations', mod, '--on-collision', 'keep-last', '--mode', 'relative', '--distributed', '--shards', String(n)]);
      expect(p.code, p.stderr).toBe(0);
      await workAndCommit(out, n);
      expect(await objects(out)).toEqual(want);
    }
  });
});

/** N shard processes over a planned target, then its commit; each must succeed. */
async function workAndCommit(out: string, n: number): Promise<void> {
  const shards = Array.from({ length: n }, (_, i) => start(['work', out, '--shard', `${i}/${n}`], { KSP_WORK_POLL_MS: '100' }));
  for (const s of shards) {
    const x = await s.done;
    expect(x.code, x.stderr).toBe(0);
  }
  const c = await ksp(['commit', out]);
  expect(c.code, c.stderr).toBe(0);
}
