import { readFileSync, writeFileSync, rmSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { verifySavepoint, type VerifyReport } from '../../src/model/verify.js';
import { ENGINE_CP, ENGINE_SP, FIXTURES, HAS_SHARED, SHOP_CP, SHOP_SP, copyOf } from '../support/env.js';

const cleanups: Array<() => void> = [];
afterEach(() => { while (cleanups.length) cleanups.pop()!(); });

function copy(src: string): string {
  const t = copyOf(src);
  cleanups.push(t.cleanup);
  return t.path;
}

function codes(r: VerifyReport, severity = 'error'): string[] {
  return r.findings.filter((f) => f.severity === severity).map((f) => f.code);
}

function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/** Rewrites the manifest so that only the tampering under test is wrong. */
function reseal(dir: string): void {
  const lines = files(dir).filter((f) => f !== 'manifest.sha256')
    .map((f) => `sha256:${createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')}  ${f}\n`);
  writeFileSync(join(dir, 'manifest.sha256'), lines.join(''));
}

describe.skipIf(!HAS_SHARED)('verify: the engine fixture', () => {
  it.each([ENGINE_SP, ENGINE_CP, join(ENGINE_SP, 'metadata.json')])('%s verifies', async (p) => {
    const r = await verifySavepoint(p);
    expect(codes(r)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.totals).toMatchObject({ files: 2, tasks: 1, entries: 2 });
    expect(r.tasks[0]).toMatchObject({ operator: 'op-0', task: 'task-0', format: 'canonical', entries: 2 });
    expect(r.tasks[0]!.states).toEqual([{ operator: 'continuous-window', state: 'tumbling', entries: 2, keyBytes: 11, valueBytes: 10 }]);
  });
});

describe('verify: bundled fixtures', () => {
  it('an engine-layout savepoint and checkpoint verify with every task decoded', async () => {
    for (const dir of [SHOP_SP, SHOP_CP]) {
      const r = await verifySavepoint(dir);
      expect(codes(r)).toEqual([]);
      expect(codes(r, 'warning')).toEqual([]);
      expect(r.totals).toMatchObject({ tasks: 8, entries: 158, nativeTasks: 0 });
      expect(r.tasks.filter((t) => t.format === 'stateless').length).toBe(2);
    }
  });

  it('the relative-mode savepoint verifies (not in engine layout: identity is an info note)', async () => {
    const r = await verifySavepoint(join(FIXTURES, 'relative-savepoint'));
    expect(r.ok).toBe(true);
    // orders-agg and fraud hold keys outside the window layouts: their placement is a note.
    expect(codes(r, 'info')).toEqual(['NOT_ENGINE_LAYOUT', 'PLACEMENT_UNKNOWN']);
    expect(r.files.map((f) => f.path)).toContain('meta.json');
  });

  it('base-relative paths outside the directory are read, and warned about', async () => {
    const r = await verifySavepoint(join(FIXTURES, 'base', 'shop', 'savepoints', '00000000000000000009'));
    expect(r.ok).toBe(true);
    expect(codes(r, 'warning')).toEqual(['OUTSIDE_DIRECTORY', 'OUTSIDE_DIRECTORY', 'OUTSIDE_DIRECTORY']);
    expect(r.totals.entries).toBe(158);
  });

  it('native state is decoded and verified like canonical state', async () => {
    const r = await verifySavepoint(join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007'));
    expect(r.ok).toBe(true);
    expect(codes(r, 'warning')).toEqual([]);
    expect(r.tasks.find((t) => t.operator === 'windows')).toMatchObject({ entries: 5, native: { sstFiles: 1, formatVersions: [5] } });
    expect(r.tasks.find((t) => t.operator === 'windows')).toMatchObject({ format: 'native', pointer: 'shop/incr/windows/task-0/epochs/00000000000000000007/sst_manifest.json' });
  });

  it('a checkpoint without manifest does not verify', async () => {
    const r = await verifySavepoint(join(FIXTURES, 'base', 'shop', 'checkpoints', '00000000000000000008'));
    expect(codes(r)).toEqual(['MANIFEST_MISSING']);
  });
});

describe('verify: tampering and damage', () => {
  it('any flipped byte in any file fails verification', async () => {
    const dir = copy(SHOP_SP);
    for (const f of files(dir)) {
      const p = join(dir, f);
      const orig = readFileSync(p);
      if (orig.length === 0) continue;
      for (const at of [0, Math.floor(orig.length / 2), orig.length - 1]) {
        const b = Buffer.from(orig);
        b[at] = b[at]! ^ 0x01;
        writeFileSync(p, b);
        const r = await verifySavepoint(dir).catch((e) => ({ ok: false, thrown: e }));
        expect(r.ok, `${f} byte ${at}`).toBe(false);
      }
      writeFileSync(p, orig);
    }
    expect((await verifySavepoint(dir)).ok).toBe(true);
  });

  it('a hash mismatch names the file, expected and found', async () => {
    const dir = copy(SHOP_SP);
    const p = join(dir, 'windows', 'task-0', 'state.bin');
    const b = readFileSync(p);
    b[b.length - 1] ^= 0xff;
    writeFileSync(p, b);
    const r = await verifySavepoint(dir);
    const f = r.findings.find((x) => x.code === 'HASH_MISMATCH')!;
    expect(f.file).toBe(p);
    expect(f.message).toMatch(/expected [0-9a-f]{64}, found [0-9a-f]{64}/);
  });

  it('a corrupt state file, resealed, is caught by the decode with its offset', async () => {
    const dir = copy(SHOP_SP);
    const p = join(dir, 'orders-agg', 'task-1', 'state.bin');
    writeFileSync(p, Buffer.concat([readFileSync(p), Buffer.from([1, 2, 3])]));
    reseal(dir);
    const r = await verifySavepoint(dir);
    const f = r.findings.find((x) => x.severity === 'error')!;
    expect(f.code).toBe('STATE_BIN_TRAILING');
    expect(f.file).toBe(p);
    expect(f.data?.offset).toBe(readFileSync(p).length - 3);
  });

  it('a missing listed file, a missing state file, an unlisted snapshot', async () => {
    const dir = copy(SHOP_SP);
    rmSync(join(dir, 'fraud', 'task-0', 'state.bin'));
    expect(codes(await verifySavepoint(dir))).toEqual(['FILE_MISSING']);
    reseal(dir);
    const r = await verifySavepoint(dir);
    // Unlisted and gone: both are said, the gap in the manifest and the missing file.
    expect(codes(r)).toEqual(['MANIFEST_INCOMPLETE', 'FILE_MISSING']);
    expect(r.findings[0]!.message).toMatch(/does not list fraud\/task-0\/state.bin/);
  });

  it('identity: job and epoch must match the directory', async () => {
    const dir = copy(join(FIXTURES, 'base'));
    const sp = join(dir, 'shop', 'savepoints', '00000000000000000007');
    const md = join(sp, 'metadata.json');
    writeFileSync(md, readFileSync(md, 'utf8').replace('"epoch": 7', '"epoch": 6').replace(/"job_id": "shop"/, '"job_id": "other"'));
    reseal(sp);
    const r = await verifySavepoint(sp);
    expect(codes(r)).toEqual(expect.arrayContaining(['IDENTITY_JOB', 'IDENTITY_EPOCH']));
  });

  it('unsafe stored paths are refused, never cleaned', async () => {
    const dir = copy(join(FIXTURES, 'relative-savepoint'));
    const md = join(dir, 'metadata.json');
    writeFileSync(md, readFileSync(md, 'utf8').replace('"fraud/task-0/state.bin"', '"fraud/../../escape/state.bin"'));
    reseal(dir);
    const r = await verifySavepoint(dir);
    expect(codes(r)).toEqual(['PATH_UNSAFE']);
    expect(r.findings[0]!.message).toMatch(/operator_snapshots\[\d+\]\.snapshot_path "fraud\/\.\.\/\.\.\/escape\/state\.bin" is not a safe relative path: it has a "\.\." component/);
  });

  it('a malformed manifest and malformed metadata are findings with their file', async () => {
    const dir = copy(SHOP_SP);
    writeFileSync(join(dir, 'manifest.sha256'), 'sha256:zz  metadata.json\n');
    expect(codes(await verifySavepoint(dir))).toEqual(['MANIFEST_MALFORMED']);
    writeFileSync(join(dir, 'metadata.json'), '{"version": 3,');
    const r = await verifySavepoint(dir);
    expect(codes(r)).toEqual(['JSON_SYNTAX']);
  });

  it('a directory that is not a savepoint is NOT_FOUND', async () => {
    await expect(verifySavepoint(FIXTURES)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('verify: hashes adopted by a writer', () => {
  it('an adopted file is hashed by the read-back that decodes it; the manifest placeholder is not compared, damage still fails', async () => {
    const dir = copy(SHOP_SP);
    const rel = 'windows/task-0/state.bin';
    const real = createHash('sha256').update(readFileSync(join(dir, rel))).digest('hex');
    const manifest = Buffer.from(readFileSync(join(dir, 'manifest.sha256'), 'utf8').replace(real, '0'.repeat(64)));
    const plain = await verifySavepoint(dir, { manifest });
    expect(codes(plain)).toEqual(['HASH_MISMATCH']);
    const adopted = await verifySavepoint(dir, { manifest, adopt: new Set([rel]) });
    expect(codes(adopted)).toEqual([]);
    expect(adopted.files.find((f) => f.path === rel)).toMatchObject({ expected: real, found: real, ok: true });
    // Cut short: the hash is adopted, but the decode in the same pass fails.
    const b = readFileSync(join(dir, rel));
    writeFileSync(join(dir, rel), b.subarray(0, b.length - 1));
    const cut = await verifySavepoint(dir, { manifest, adopt: new Set([rel]) });
    expect(cut.ok).toBe(false);
    expect(codes(cut)).not.toContain('HASH_MISMATCH');
  });
});
