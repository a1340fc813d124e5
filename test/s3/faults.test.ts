import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resetS3Client } from '../../src/storage/s3.js';
import { locate } from '../../src/storage/uri.js';
import { FaultProxy } from '../support/fault-proxy.js';
import { newBucket } from '../support/s3.js';
import { useS3 } from '../support/env.js';

let proxy: FaultProxy;
let bucket: string;
const SIZE = 12 * 1024 * 1024 + 7;
const data = Buffer.alloc(SIZE);
for (let i = 0; i < SIZE; i++) data[i] = (i * 31) % 253;

beforeAll(async () => {
  bucket = await newBucket('ksp-faults');
  const direct = locate(`s3://${bucket}/obj.bin`);
  await direct.storage.write(direct.key, data);
  proxy = await FaultProxy.start(useS3());
  process.env.AWS_ENDPOINT_URL = proxy.endpoint;
  process.env.KSP_S3_MAX_ATTEMPTS = '4';
  resetS3Client();
});
afterAll(async () => {
  await proxy.stop();
  useS3();
});

async function readAll(uri: string): Promise<Buffer> {
  const loc = locate(uri);
  const parts: Buffer[] = [];
  for await (const c of loc.storage.read(loc.key)) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe('S3 under faults (a proxy on 127.0.0.1 in front of the real server)', () => {
  it('retries throttling (503) with backoff, then succeeds', async () => {
    proxy.failNext = 2;
    proxy.failStatus = 503;
    const before = proxy.seen.length;
    const loc = locate(`s3://${bucket}/obj.bin`);
    expect((await loc.storage.stat(loc.key))?.size).toBe(SIZE);
    expect(proxy.seen.slice(before).map((s) => s.status)).toEqual([503, 503, 200]);
  });

  it('retries 500s on reads', async () => {
    proxy.failNext = 1;
    proxy.failStatus = 500;
    expect((await readAll(`s3://${bucket}/obj.bin`)).equals(data)).toBe(true);
  });

  it('a download cut midway resumes with a ranged GET from where it stopped', async () => {
    const before = proxy.seen.length;
    proxy.cutNextGetAfter = 5 * 1024 * 1024;
    const back = await readAll(`s3://${bucket}/obj.bin`);
    expect(back.length).toBe(SIZE);
    expect(back.equals(data)).toBe(true);
    const gets = proxy.seen.slice(before).filter((s) => s.method === 'GET');
    expect(gets.length).toBe(2);
    expect(gets[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(Number(/bytes=(\d+)-/.exec(gets[1]!.range!)![1])).toBeGreaterThan(0);
  });

  it('gives up after its attempts with a STORAGE_IO error naming the object', async () => {
    proxy.failNext = 10;
    proxy.failStatus = 500;
    const loc = locate(`s3://${bucket}/obj.bin`);
    await expect(loc.storage.stat(loc.key)).rejects.toMatchObject({ code: 'STORAGE_IO', message: expect.stringContaining(`s3://${bucket}/obj.bin`) });
    proxy.failNext = 0;
  });
});
