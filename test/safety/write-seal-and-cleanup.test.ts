import fs, { existsSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHOP_SP } from '../support/env.js';
import { entry, files, useTempDirs } from '../write/support.js';
import { KspError } from '../../src/errors.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { Spill } from '../../src/write/spill.js';

/**
 * Issue 12, items 13 and 14: nothing is sealed before it verified, and a
 * cleanup that fails again never hides the first error.
 */

const tmp = useTempDirs('ksp-safety-');

describe('nothing is sealed before it is verified (item 14)', () => {
  it('while the output is re-verified there is no manifest at the target; afterwards it verifies', async () => {
    const out = join(tmp(), 'out');
    const seen: Array<{ phase: string; manifest: boolean; metadata: boolean }> = [];
    const r = await SavepointWriter.from(await Savepoint.open(SHOP_SP)).rescale(3).write(out, {
      mode: 'relative',
      onPhase: (phase) => seen.push({ phase, manifest: existsSync(join(out, 'manifest.sha256')), metadata: existsSync(join(out, 'metadata.json')) }),
    });
    expect(r.verify.ok).toBe(true);
    expect(seen.find((s) => s.phase === 'verify')).toEqual({ phase: 'verify', manifest: false, metadata: true });
    expect(existsSync(join(out, 'manifest.sha256'))).toBe(true);
    expect((await verifySavepoint(out)).ok).toBe(true);
  });

  it('an output that fails its re-verify never had a manifest', async () => {
    const out = join(tmp(), 'out');
    let sawManifest = false;
    const w = SavepointWriter.from(await Savepoint.open(SHOP_SP)).relocate();
    const e = await w.write(out, {
      mode: 'relative',
      onPhase: (phase) => {
        // Corrupt a written file just before the re-verify.
        if (phase !== 'verify') return;
        sawManifest = existsSync(join(out, 'manifest.sha256'));
        fs.writeFileSync(join(out, 'orders-agg', 'task-0', 'state.bin'), 'garbage');
      },
    }).catch((x: unknown) => x);
    expect((e as KspError).code).toBe('OUTPUT_VERIFY_FAILED');
    expect(sawManifest).toBe(false);
    expect(existsSync(out)).toBe(false);
  });
});

describe('cleanup errors never hide the first error (item 13)', () => {
  it('a spill file on a full disk is STORAGE_IO naming it, and removing it does not throw', () => {
    if (!existsSync('/dev/full')) return;
    const dir = tmp();
    symlinkSync('/dev/full', join(dir, 'task.entries'));
    const s = new Spill(dir, 'task', 64 * 1024, false);
    let err: unknown;
    try {
      for (let i = 0; i < 10_000; i++) s.append(entry('op', 'st', `k${i}`, 'v'.repeat(100)), { task: 0, index: i });
      s.close();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KspError);
    expect((err as KspError).code).toBe('STORAGE_IO');
    expect((err as KspError).message).toContain('task.entries');
    expect((err as KspError).message).toContain('--temp-dir');
    expect(() => s.remove()).not.toThrow();
  });

  it('rescale with a temp disk that fills up mid-run (and stays full during cleanup) fails with STORAGE_IO, not internal', async () => {
    const temp = join(tmp(), 'temp');
    mkdirSync(temp);
    const out = join(tmp(), 'out');
    const orig = fs.writeSync;
    let n = 0;
    // Every synchronous write (the spill files') fails with ENOSPC after the first few: the
    // failure of the run and of every flush in its cleanup.
    (fs as { writeSync: unknown }).writeSync = ((...a: Parameters<typeof fs.writeSync>) => {
      if (++n > 2) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
      return (orig as (...x: unknown[]) => number)(...a);
    }) as typeof fs.writeSync;
    syncBuiltinESMExports();
    let e: unknown;
    // The spill path (S3 and native targets, key migrations): a local canonical rescale takes none unless told so.
    process.env.KSP_WRITE_UNITS = '0';
    try {
      e = await SavepointWriter.from(await Savepoint.open(SHOP_SP)).rescale(5).write(out, { mode: 'relative', tempDir: temp }).catch((x: unknown) => x);
    } finally {
      delete process.env.KSP_WRITE_UNITS;
      (fs as { writeSync: unknown }).writeSync = orig;
      syncBuiltinESMExports();
    }
    expect(n).toBeGreaterThan(2);
    expect(e).toBeInstanceOf(KspError);
    expect((e as KspError).code).toBe('STORAGE_IO');
    expect((e as KspError).exitCode).toBe(5);
    expect((e as KspError).message).toContain('--temp-dir');
    expect(readdirSync(temp)).toEqual([]);
    expect(existsSync(out) ? files(out) : []).toEqual([]);
  });
});
