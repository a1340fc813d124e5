/**
 * The S3 row's parts: moto_server on a random loopback port (as the tests'
 * support starts it), the savepoint uploaded into it, and the reference — an
 * AWS SDK client downloading and SHA-256-hashing the same objects one after
 * another, hashing as it streams: Python's boto3 when it imports, else the
 * AWS SDK for JavaScript in Node.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createReadStream, readdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { RefRun } from './bench-measure.js';
import { freePort, waitHttp } from './loopback-server.js';

export interface S3Bench {
  endpoint: string;
  /** What the ksp child processes need to reach the server. */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}


/** Starts moto_server, or returns why it cannot (the row is then skipped with that note). */
export async function startMoto(): Promise<S3Bench | string> {
  const moto = spawnSync('sh', ['-c', 'command -v moto_server'], { encoding: 'utf8' }).stdout.trim();
  if (!moto) return 'moto_server is not on PATH (pip install "moto[server]")';
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn(moto, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  await waitHttp(endpoint, child, 'moto_server');
  const env = { ...process.env, AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1' };
  return {
    endpoint, env,
    stop: async () => {
      if (child.exitCode !== null) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([done, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}

/** Uploads every file under `dir` to s3://bucket/prefix/ through ksp's own storage layer (multipart for large files). */
export async function uploadDir(s3: S3Bench, dir: string, bucket: string, prefix: string): Promise<void> {
  Object.assign(process.env, { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', AWS_ENDPOINT_URL: s3.endpoint, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1' });
  const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
  const c = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  try {
    await c.send(new CreateBucketCommand({ Bucket: bucket }));
  } catch (e) {
    if ((e as { name?: string }).name !== 'BucketAlreadyOwnedByYou') throw e;
  } finally {
    c.destroy();
  }
  const { locate } = await import('../storage/uri.js');
  const { resetS3Client } = await import('../storage/s3.js');
  resetS3Client();
  const target = locate(`s3://${bucket}/${prefix}`);
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const rel = relative(dir, join(e.parentPath, e.name)).split('\\').join('/');
    await target.storage.write(`${target.key}/${rel}`, createReadStream(join(e.parentPath, e.name), { highWaterMark: 1 << 20 }));
  }
}

const PYTHON = `
import hashlib, json, sys, time
import boto3
endpoint, bucket, prefix = sys.argv[1:4]
t0 = time.perf_counter()
s3 = boto3.client('s3', endpoint_url=endpoint, region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')
keys = sorted(o['Key'] for p in s3.get_paginator('list_objects_v2').paginate(Bucket=bucket, Prefix=prefix) for o in p.get('Contents', []))
n = 0
for k in keys:
    h = hashlib.sha256()
    for c in s3.get_object(Bucket=bucket, Key=k)['Body'].iter_chunks(1 << 20):
        h.update(c)
        n += len(c)
    h.hexdigest()
print('@@ref ' + json.dumps({'secs': time.perf_counter() - t0, 'bytes': n, 'objects': len(keys)}))
`;

const NODE = `
import { createHash } from 'node:crypto';
import { S3Client, ListObjectsV2Command, GetObjectCommand } from '@aws-sdk/client-s3';
const [endpoint, bucket, prefix] = process.argv.slice(2);
const t0 = process.hrtime.bigint();
const s3 = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
const keys = [];
let token;
do {
  const r = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
  for (const o of r.Contents ?? []) keys.push(o.Key);
  token = r.NextContinuationToken;
} while (token);
keys.sort();
let n = 0;
for (const k of keys) {
  const h = createHash('sha256');
  for await (const c of (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: k }))).Body) { h.update(c); n += c.length; }
  h.digest('hex');
}
console.log('@@ref ' + JSON.stringify({ secs: Number(process.hrtime.bigint() - t0) / 1e9, bytes: n, objects: keys.length }));
s3.destroy();
`;

export interface S3Reference {
  /** The command as the table prints it. */
  command: string;
  run(): RefRun;
}

/** The reference client: boto3 if python3 can import it, else @aws-sdk/client-s3 in Node. Its script is written to `dir` (under the repo, so Node finds node_modules). */
export function s3Reference(s3: S3Bench, dir: string, bucket: string, prefix: string): S3Reference {
  const boto = spawnSync('python3', ['-c', 'import boto3'], { stdio: 'ignore' }).status === 0;
  const script = join(dir, boto ? 's3-ref.py' : 's3-ref.mjs');
  writeFileSync(script, boto ? PYTHON : NODE);
  const cmd = boto ? 'python3' : process.execPath;
  const args = [script, s3.endpoint, bucket, prefix];
  return {
    command: boto
      ? 'python3 + boto3: list, then get_object + hashlib.sha256 per object, one after another, streamed in 1 MiB chunks'
      : 'node + @aws-sdk/client-s3: list, then GetObject + sha256 per object, one after another, streamed',
    run: () => {
      const r = spawnSync(cmd, args, { env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' }, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
      const m = /@@ref (.*)/.exec(r.stdout ?? '');
      if (!m || r.status !== 0) return { ok: false, secs: NaN, error: `${r.error ?? ''}${(r.stderr ?? '').slice(-800)}` };
      return { ok: true, secs: (JSON.parse(m[1]!) as { secs: number }).secs };
    },
  };
}
