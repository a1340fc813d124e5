import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { listHint } from '../../src/model/list.js';
import { FIXTURES, SHOP_SP, tempDir } from '../support/env.js';
import { ksp } from '../support/cli.js';

describe('ksp list pointed one level too deep', () => {
  it('at a savepoint: nothing listed, and a note that it is a savepoint, suggesting ksp inspect', async () => {
    const r = await ksp(['list', SHOP_SP]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^no checkpoints or savepoints under /);
    expect(r.stderr).toContain('is a savepoint or checkpoint directory itself');
    expect(r.stderr).toMatch(/`ksp inspect \S*fixtures\/base\/shop\/savepoints\/00000000000000000007`/);
    // --json keeps stdout a JSON array; the note is on stderr.
    const j = await ksp(['list', SHOP_SP, '--json']);
    expect(JSON.parse(j.stdout)).toEqual([]);
    expect(j.stderr).toContain('ksp inspect');
    expect((await ksp(['list', SHOP_SP, '-q'])).stderr).toBe('');
  });

  it("at a job's savepoints/ folder: a note naming the job directory", async () => {
    const r = await ksp(['list', join(FIXTURES, 'base', 'shop', 'savepoints')]);
    expect(r.stderr).toContain("is a job's savepoints/ folder: list the job directory above it");
  });

  it('no note for a real base, or an empty folder', async () => {
    expect(await listHint(join(FIXTURES, 'base'))).toBeNull();
    const t = tempDir();
    try {
      expect(await listHint(t.path)).toBeNull();
      expect((await ksp(['list', t.path])).stderr).toBe('');
    } finally {
      t.cleanup();
    }
  });
});
