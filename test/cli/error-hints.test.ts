import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { exportEntries } from '../../src/export/export.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { credentialHint } from '../../src/storage/s3.js';
import { locate } from '../../src/storage/uri.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { SHOP_SP, tempDir } from '../support/env.js';
import { ksp, kspInEnv, type Run } from '../support/cli.js';
import { refusal } from '../support/refusal.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/** A target that is not empty. */
function occupied(name: string): string {
  const dir = join(tmp.path, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'notes.txt'), 'x');
  return dir;
}

describe('a refusal names the option the caller can pass', () => {
  it('library: { overwrite: true }, not --overwrite', async () => {
    const e = await refusal(SavepointWriter.from(await Savepoint.open(SHOP_SP)).relocate().write(occupied('lib'), { mode: 'relative' }));
    expect(e.code).toBe('TARGET_NOT_EMPTY');
    expect(e.message).toContain('pass { overwrite: true } to replace it');
    expect(e.message).not.toContain('--overwrite');
  });

  it('command line: --overwrite', async () => {
    const r = await ksp(['relocate', SHOP_SP, occupied('cli'), '--mode', 'relative']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('pass --overwrite to replace it');
    expect(r.stderr).not.toContain('{ overwrite: true }');
  });
});

describe('EXPORT_FORMAT names the path as given', () => {
  it("keeps an absolute path's leading /, in the library and on the command line", async () => {
    const out = join(tmp.path, 'entries.txt');
    const e = await refusal(exportEntries((async function* () {})(), locate(out)));
    expect(e.code).toBe('EXPORT_FORMAT');
    expect(e.message.startsWith(`${out}: cannot tell the export format`)).toBe(true);
    const r = await ksp(['inspect', SHOP_SP, '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`[EXPORT_FORMAT]: ${out}: cannot tell`);
  });
});

/** ksp with no AWS credentials anywhere: no variables, an empty home, no instance metadata. */
function kspWithoutCredentials(args: string[], extra: Record<string, string> = {}): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AWS_')) env[k] = v;
  Object.assign(env, { HOME: tmp.path, AWS_EC2_METADATA_DISABLED: 'true', AWS_CONFIG_FILE: join(tmp.path, 'none'), AWS_SHARED_CREDENTIALS_FILE: join(tmp.path, 'none'), ...extra });
  return kspInEnv(args, env);
}

describe('S3 without credentials', () => {
  it('says what to set, and AWS_ENDPOINT_URL when no endpoint is set', async () => {
    const r = await kspWithoutCredentials(['verify', 's3://ksp-no-creds/sp', '--json']);
    expect(r.code).toBe(5);
    const e = JSON.parse(r.stdout).error;
    expect(e.code).toBe('STORAGE_IO');
    for (const v of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_PROFILE', 'IRSA', 'AWS_ENDPOINT_URL']) expect(e.message).toContain(v);
    expect(e.hint).toMatch(/^no S3 credentials were found/);
    // With an endpoint already set, it is not suggested again.
    const local = await kspWithoutCredentials(['verify', 's3://ksp-no-creds/sp'], { AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
    expect(local.code).toBe(5);
    expect(local.stderr).toContain('no S3 credentials were found');
    expect(local.stderr).not.toContain('also set AWS_ENDPOINT_URL');
  });

  it('refused credentials get a hint; other errors none', () => {
    expect(credentialHint({ name: 'InvalidAccessKeyId', $metadata: { httpStatusCode: 403 } }, {})).toMatch(/credentials were refused.*AWS_ENDPOINT_URL/);
    expect(credentialHint({ name: 'SignatureDoesNotMatch' }, { AWS_ENDPOINT_URL: 'http://s3.local' })).toMatch(/valid for http:\/\/s3\.local$/);
    expect(credentialHint({ name: 'SlowDown', message: 'x', $metadata: { httpStatusCode: 503 } }, {})).toBeNull();
  });
});
