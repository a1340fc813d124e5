import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Savepoint } from '../../src/model/savepoint.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { codecs } from '../../src/migrate/codecs.js';
import { defineMigrations } from '../../src/migrate/registry.js';
import { SHOP_SP, tempDir } from '../support/env.js';
import { ksp } from '../support/cli.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

const failing = defineMigrations((m) => {
  m.value('fraud', 1, 2, codecs.raw, codecs.raw, () => {
    throw new Error('boom');
  }, { state: 'score' });
});

describe('a failed write leaves no folder tree behind', () => {
  it('library, engine layout: the target, its missing parents and the record folder all go', async () => {
    const root = join(tmp.path, 'lib');
    mkdirSync(root);
    const w = SavepointWriter.from(await Savepoint.open(SHOP_SP)).migrate(failing);
    await expect(w.write(join(root, 'a', 'b', 'c'), { mode: 'engine' })).rejects.toMatchObject({ code: 'MIGRATION_FAILED' });
    expect(readdirSync(root)).toEqual([]);
  });

  it('command line, relative mode: a folder that existed stays, with what was in it', { timeout: 180_000 }, async () => {
    const root = join(tmp.path, 'cli');
    mkdirSync(join(root, 'keep'), { recursive: true });
    writeFileSync(join(root, 'keep', 'mine.txt'), 'x');
    const mod = join(tmp.path, 'm.mjs');
    writeFileSync(mod, "export default (m, codecs) => { m.value('fraud', 1, 2, codecs.raw, codecs.raw, () => { throw new Error('boom'); }, { state: 'score' }); };\n");
    const r = await ksp(['migrate', SHOP_SP, join(root, 'new', 'deeper', 'out'), '--migrations', mod, '--mode', 'relative']);
    expect(r.code).toBe(3);
    expect(readdirSync(root)).toEqual(['keep']);
    const r2 = await ksp(['migrate', SHOP_SP, join(root, 'keep', 'out'), '--migrations', mod, '--mode', 'relative']);
    expect(r2.code).toBe(3);
    expect(readdirSync(join(root, 'keep'))).toEqual(['mine.txt']);
  });

  it('a write that succeeds keeps its folders', async () => {
    const out = join(tmp.path, 'ok', 'x', 'out');
    await SavepointWriter.from(await Savepoint.open(SHOP_SP)).relocate().write(out, { mode: 'relative' });
    expect(existsSync(join(out, 'manifest.sha256'))).toBe(true);
  });
});
