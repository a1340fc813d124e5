import { inject } from 'vitest';
import { mkdtempSync, rmSync, cpSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { resetS3Client } from '../../src/storage/s3.js';

export const ROOT = resolve(new URL('../..', import.meta.url).pathname);
export const FIXTURES = join(ROOT, 'fixtures');
export const SHARED_FIXTURE = resolve(ROOT, '..', 'shared', 'fixtures', 'krishiv-savepoint-v1');
export const HAS_SHARED = existsSync(SHARED_FIXTURE);
export const ENGINE_SP = join(SHARED_FIXTURE, 'fixture-job', 'savepoints', '00000000000000000001');
export const ENGINE_CP = join(SHARED_FIXTURE, 'fixture-job', 'checkpoints', '00000000000000000001');
export const SHOP_SP = join(FIXTURES, 'base', 'shop', 'savepoints', '00000000000000000007');
export const SHOP_CP = join(FIXTURES, 'base', 'shop', 'checkpoints', '00000000000000000007');

if (!HAS_SHARED) {
  // Said once per test file; the tests that need it are skipped, visibly.
  console.warn(`engine fixture tests skipped: ../shared/fixtures/krishiv-savepoint-v1 is absent`);
}

/** Points ksp's S3 client at the test server. */
export function useS3(): string {
  const endpoint = inject('s3Endpoint');
  process.env.AWS_ENDPOINT_URL = endpoint;
  process.env.AWS_ACCESS_KEY_ID = inject('s3AccessKey');
  process.env.AWS_SECRET_ACCESS_KEY = inject('s3SecretKey');
  process.env.AWS_REGION = 'us-east-1';
  process.env.KSP_S3_MAX_ATTEMPTS = '2';
  resetS3Client();
  return endpoint;
}

export function tempDir(prefix = 'ksp-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A writable copy of a fixture directory. */
export function copyOf(src: string): { path: string; cleanup: () => void } {
  const t = tempDir();
  cpSync(src, t.path, { recursive: true });
  return t;
}
