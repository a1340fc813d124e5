import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand, ListMultipartUploadsCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SHOP_SP, useS3 } from '../support/env.js';
import { ksp } from '../support/cli.js';
import { newBucket } from '../support/s3.js';
import { useTempDirs } from '../write/support.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { locate } from '../../src/storage/uri.js';
import { S3Storage } from '../../src/storage/s3.js';
import { LOCK_NAME } from '../../src/write/lock.js';

/** Issue 12, item 3: one writer per target, with a lock that a dead run cannot leave in the way. */

const tmp = useTempDirs('ksp-safety-');

function lockBody(pid: number, host = hostname()): string {
  return JSON.stringify({ pid, host, started: new Date().toISOString(), token: `t${pid}`, command: 'test' });
}

function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!;
}

describe('the target lock on local disk', () => {
  it('a live owner on this host refuses a second writer, even with --force-unlock, naming the owner', async () => {
    const sleeper = spawn('sleep', ['60']);
    try {
      const out = join(tmp(), 'out');
      mkdirSync(out);
      writeFileSync(join(out, LOCK_NAME), lockBody(sleeper.pid!));
      for (const extra of [[], ['--force-unlock'], ['--overwrite']]) {
        const r = await ksp(['relocate', SHOP_SP, out, '--mode', 'relative', ...extra]);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toContain('[TARGET_LOCKED]');
        expect(r.stderr).toContain(`pid ${sleeper.pid}`);
      }
      expect(existsSync(join(out, LOCK_NAME))).toBe(true);
    } finally {
      sleeper.kill();
    }
  });

  it('a lock left by a dead pid on this host is taken over, and released after the write', async () => {
    const out = join(tmp(), 'out');
    mkdirSync(out);
    writeFileSync(join(out, LOCK_NAME), lockBody(deadPid()));
    const r = await ksp(['relocate', SHOP_SP, out, '--mode', 'relative']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(out, LOCK_NAME))).toBe(false);
    expect((await verifySavepoint(out)).ok).toBe(true);
  });

  it('a fresh lock from another host needs --force-unlock', async () => {
    const out = join(tmp(), 'out');
    mkdirSync(out);
    writeFileSync(join(out, LOCK_NAME), lockBody(4242, 'some-other-host'));
    const r = await ksp(['relocate', SHOP_SP, out, '--mode', 'relative']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('[TARGET_LOCKED]');
    expect(r.stderr).toContain('some-other-host');
    const f = await ksp(['relocate', SHOP_SP, out, '--mode', 'relative', '--force-unlock']);
    expect(f.code, f.stderr).toBe(0);
    expect(existsSync(join(out, LOCK_NAME))).toBe(false);
  });

  it('a lock whose heartbeat stopped (older than the stale limit) is taken over, whatever its host', async () => {
    const out = join(tmp(), 'out');
    mkdirSync(out);
    writeFileSync(join(out, LOCK_NAME), lockBody(4242, 'some-other-host'));
    const old = new Date(Date.now() - 120_000);
    utimesSync(join(out, LOCK_NAME), old, old);
    const r = await ksp(['relocate', SHOP_SP, out, '--mode', 'relative']);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(out, LOCK_NAME))).toBe(false);
  });

  it('the lock is released on a failure too', async () => {
    const out = join(tmp(), 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'foreign.txt'), 'x');
    const w = SavepointWriter.from(await Savepoint.open(SHOP_SP)).relocate();
    await expect(w.write(out, { mode: 'relative', overwrite: true })).rejects.toMatchObject({ code: 'TARGET_FOREIGN_FILE' });
    expect(existsSync(join(out, LOCK_NAME))).toBe(false);
  });

  it('two concurrent --overwrite writers: every run either succeeds or is refused with TARGET_LOCKED, and the target verifies', async () => {
    const out = join(tmp(), 'out');
    expect((await ksp(['relocate', SHOP_SP, out, '--mode', 'relative'])).code).toBe(0);
    let refused = 0;
    for (let round = 0; round < 6 && refused === 0; round++) {
      const runs = await Promise.all([
        ksp(['rescale', SHOP_SP, out, '-p', '5', '--mode', 'relative', '--overwrite']),
        ksp(['rescale', SHOP_SP, out, '-p', '3', '--mode', 'relative', '--overwrite']),
      ]);
      for (const r of runs) {
        if (r.code !== 0) {
          expect(r.code, r.stderr).toBe(2);
          expect(r.stderr).toContain('[TARGET_LOCKED]');
          refused++;
        }
      }
      expect(runs.some((r) => r.code === 0)).toBe(true);
      const v = await verifySavepoint(out);
      expect(v.ok, JSON.stringify(v.findings)).toBe(true);
      expect(existsSync(join(out, LOCK_NAME))).toBe(false);
    }
    // Both runs plan, then race for the lock: rounds go on until one collides (one succeeds, one is refused).
    expect(refused).toBeGreaterThan(0);
  });
});

describe('the target lock on S3', () => {
  let bucket: string;
  let client: S3Client;
  beforeAll(async () => {
    const endpoint = useS3();
    bucket = await newBucket('ksp-lock');
    client = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID!, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY! } });
  });
  afterAll(() => client?.destroy());

  it('PutObject with If-None-Match: * creates a key once (the server honours the condition)', async () => {
    const s = locate(`s3://${bucket}/x`).storage as S3Storage;
    expect(await s.putIfAbsent('cond/key', Buffer.from('a'))).toBe(true);
    expect(await s.putIfAbsent('cond/key', Buffer.from('b'))).toBe(false);
    expect(Buffer.from(await s.readSmall('cond/key')).toString()).toBe('a');
  });

  it('a live lock refuses a writer; a write takes and releases its own', async () => {
    const out = `s3://${bucket}/locked/sp`;
    const s = locate(out).storage as S3Storage;
    await s.write(`locked/sp/${LOCK_NAME}`, Buffer.from(lockBody(4242, 'some-other-host')));
    const w = SavepointWriter.from(await Savepoint.open(SHOP_SP)).relocate();
    await expect(w.write(out, { mode: 'relative' })).rejects.toMatchObject({ code: 'TARGET_LOCKED' });
    const r = await w.write(out, { mode: 'relative', forceUnlock: true });
    expect(r.verify.ok).toBe(true);
    expect(await s.stat(`locked/sp/${LOCK_NAME}`)).toBeNull();
  });

  it('--overwrite and rollback abort incomplete multipart uploads under the target', async () => {
    const out = `s3://${bucket}/mpu/sp`;
    const w = SavepointWriter.from(await Savepoint.open(SHOP_SP)).relocate();
    expect((await w.write(out, { mode: 'relative' })).verify.ok).toBe(true);
    // A killed run's upload: parts stored, never completed.
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mpu/sp/orders-agg/task-0/state.bin' }));
    await client.send(new UploadPartCommand({ Bucket: bucket, Key: 'mpu/sp/orders-agg/task-0/state.bin', UploadId, PartNumber: 1, Body: Buffer.alloc(1024, 1) }));
    const outside = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'mpu/other/file' }));
    const uploads = async (): Promise<string[]> => ((await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'mpu/' }))).Uploads ?? []).map((u) => u.Key!);
    expect(await uploads()).toContain('mpu/sp/orders-agg/task-0/state.bin');
    expect((await w.write(out, { mode: 'relative', overwrite: true })).verify.ok).toBe(true);
    expect(await uploads()).toEqual(['mpu/other/file']);
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'mpu/other/file', UploadId: outside.UploadId }));
  });

  it('a failing write rolls back its objects, its lock and incomplete multipart uploads under the target', async () => {
    const out = `s3://${bucket}/failing/sp`;
    await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'failing/sp/metadata.json' }));
    const w = SavepointWriter.from(await Savepoint.open(SHOP_SP)).relocate();
    const e = await w.write(out, { mode: 'relative', onPhase: (p) => { if (p === 'verify') throw new Error('stop here'); } }).catch((x: unknown) => x);
    expect((e as Error).message).toBe('stop here');
    const s = locate(out).storage as S3Storage;
    const left: string[] = [];
    for await (const x of s.list('failing/sp')) left.push(x.key);
    expect(left).toEqual([]);
    expect((await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'failing/' }))).Uploads ?? []).toEqual([]);
  });
});

describe('the lock object', () => {
  it('refreshes its heartbeat, notices a takeover before sealing, and releases only its own lock', async () => {
    process.env.KSP_LOCK_HEARTBEAT_MS = '50';
    vi.resetModules();
    try {
      const { TargetLock, lockState } = await import('../../src/write/lock.js');
      const { locate: loc } = await import('../../src/storage/uri.js');
      const dir = join(tmp(), 'target');
      const lock = await TargetLock.acquire(loc(dir), { command: 'test' });
      const path = join(dir, LOCK_NAME);
      const old = new Date(Date.now() - 20_000);
      utimesSync(path, old, old);
      await new Promise((r) => setTimeout(r, 300));
      expect(Date.now() - statSync(path).mtimeMs).toBeLessThan(5_000);
      expect((await lockState(loc(dir)))?.live).toBe(true);
      await lock.assertHeld();
      // Another run took it over (judging this one stale): sealing is refused, and release leaves theirs.
      writeFileSync(path, lockBody(4242, 'some-other-host'));
      await expect(lock.assertHeld()).rejects.toMatchObject({ code: 'TARGET_LOCKED' });
      await lock.release();
      expect(readFileSync(path, 'utf8')).toContain('some-other-host');
    } finally {
      delete process.env.KSP_LOCK_HEARTBEAT_MS;
      vi.resetModules();
    }
  });
});
