import { readdirSync, statSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { locate } from '../../src/storage/uri.js';
import { useS3 } from './env.js';

let n = 0;
/** A fresh bucket on the test server. */
export async function newBucket(prefix = 'ksp-test'): Promise<string> {
  const endpoint = useS3();
  const name = `${prefix}-${process.pid}-${Date.now().toString(36)}-${n++}`.toLowerCase();
  const c = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID!, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY! } });
  await c.send(new CreateBucketCommand({ Bucket: name }));
  c.destroy();
  return name;
}

export async function createBucket(name: string): Promise<void> {
  const endpoint = useS3();
  const c = new S3Client({ endpoint, forcePathStyle: true, region: 'us-east-1', credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID!, secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY! } });
  try {
    await c.send(new CreateBucketCommand({ Bucket: name }));
  } catch (e) {
    if ((e as { name?: string }).name !== 'BucketAlreadyOwnedByYou' && (e as { name?: string }).name !== 'BucketAlreadyExists') throw e;
  } finally {
    c.destroy();
  }
}

function* walk(dir: string): Generator<string> {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) yield* walk(p);
    else yield p;
  }
}

/** Uploads a local folder to s3://bucket/prefix. */
export async function upload(dir: string, uri: string): Promise<void> {
  const target = locate(uri);
  for (const f of walk(dir)) {
    const rel = relative(dir, f).split('\\').join('/');
    await target.storage.write(target.key ? `${target.key}/${rel}` : rel, readFileSync(f));
  }
}
