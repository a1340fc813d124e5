import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { FIXTURES, SHOP_SP, tempDir } from '../support/env.js';
import { ksp } from '../support/cli.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

async function plan(dst: string, options = {}) {
  return SavepointWriter.from(await Savepoint.open(SHOP_SP)).relocate().plan(dst, options);
}

describe('the default output mode for a source in the engine layout', () => {
  it('a plain folder: the savepoint is written right there (relative), and the plan says why', async () => {
    const out = join(tmp.path, 'v2');
    const r = await ksp(['relocate', SHOP_SP, out]);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(join(out, 'metadata.json'))).toBe(true);
    expect(existsSync(join(out, 'shop'))).toBe(false);
    expect((await verifySavepoint(out)).ok).toBe(true);
    const dry = await ksp(['relocate', SHOP_SP, join(tmp.path, 'v3'), '--dry-run']);
    expect(dry.stdout).toContain('(relative mode, job shop, epoch 7');
    expect(dry.stdout).toMatch(/relative mode: the target is not in the engine's layout, so the savepoint is written right there.*--mode engine writes it under .*\/v3\/\{job\}\/savepoints\/\{epoch:020\} instead/);
  });

  it('the engine layout where the target asks for it, each with its reason', async () => {
    const inLayout = await plan(join(tmp.path, 'b', 'shop', 'savepoints', '00000000000000000008'));
    expect(inLayout).toMatchObject({ mode: 'engine', epoch: '8', modeReason: "engine mode: the target is a savepoint directory in the engine's layout" });
    const withEpoch = await plan(join(tmp.path, 'b'), { epoch: 9n });
    expect(withEpoch.mode).toBe('engine');
    expect(withEpoch.target).toBe(join(tmp.path, 'b', 'shop', 'savepoints', '00000000000000000009'));
    expect((await plan(join(FIXTURES, 'base'), { jobId: 'shop2' })).modeReason).toMatch(/a job id or epoch is given/);
    const withBase = await SavepointWriter.from(await Savepoint.open(SHOP_SP)).relocate().plan(undefined, { base: join(tmp.path, 'c') });
    expect(withBase.modeReason).toBe('engine mode: a storage base is given');
    expect((await plan(join(tmp.path, 'd'), { mode: 'engine' })).target).toBe(join(tmp.path, 'd', 'shop', 'savepoints', '00000000000000000007'));
    // In the library the hint names the library option.
    expect((await plan(join(tmp.path, 'e'))).modeReason).toContain("{ mode: 'engine' } writes it under");
  });

  it('a source outside the engine layout stays relative', async () => {
    const p = SavepointWriter.from(await Savepoint.open(join(FIXTURES, 'relative-savepoint'))).relocate();
    expect(await p.plan(join(tmp.path, 'f'))).toMatchObject({ mode: 'relative', modeReason: 'relative mode: the source is not in the engine layout' });
  });
});
