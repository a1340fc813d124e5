import { cpSync, mkdirSync, readFileSync, readdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { FIXTURES } from '../support/env.js';
import { ksp } from '../support/cli.js';
import { treeHashes, useTempDirs } from '../write/support.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { verifySavepoint } from '../../src/model/verify.js';

/**
 * Issue 12, items 1 and 12: the overlap checks compare resolved real paths,
 * and --overwrite deletes only what a ksp write or the savepoint layout put
 * in the target, never through a symlink.
 */

const tmp = useTempDirs('ksp-safety-');
const SP_REL = join('shop', 'savepoints', '00000000000000000007');

/** A private copy of the shop base; returns the savepoint directory. */
function source(): { dir: string; base: string } {
  const base = join(tmp(), 'base');
  cpSync(join(FIXTURES, 'base'), base, { recursive: true });
  return { dir: join(base, SP_REL), base };
}

describe('overlap by real path (item 1)', () => {
  for (const cmd of [['relocate', '--mode', 'relative'], ['rescale', '-p', '7', '--mode', 'relative']]) {
    it(`ksp ${cmd[0]} SRC link --overwrite, where link -> SRC, refuses and leaves SRC byte-identical`, async () => {
      const { dir } = source();
      const before = treeHashes(dir);
      const link = join(tmp(), 'link');
      symlinkSync(dir, link);
      const r = await ksp([cmd[0]!, dir, link, ...cmd.slice(1), '--overwrite']);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('[TARGET_OVERLAPS_SOURCE]');
      expect(treeHashes(dir)).toEqual(before);
    });
  }

  it('a target reached through a symlinked parent folder is caught too', async () => {
    const { dir, base } = source();
    const before = treeHashes(dir);
    const plink = join(tmp(), 'plink');
    symlinkSync(join(base, 'shop', 'savepoints'), plink);
    for (const target of [join(plink, '00000000000000000007'), join(plink, '00000000000000000007', 'sub')]) {
      const r = await ksp(['rescale', dir, target, '-p', '7', '--mode', 'relative', '--overwrite']);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain('[TARGET_OVERLAPS_SOURCE]');
    }
    expect(treeHashes(dir)).toEqual(before);
  });

  it('a target folder holding a source file under a symlinked state path refuses (library)', async () => {
    const { dir } = source();
    const before = treeHashes(dir);
    // The target holds a symlink where the output's state file goes, pointing at a source file.
    const out = join(tmp(), 'out');
    mkdirSync(join(out, 'orders-agg', 'task-0'), { recursive: true });
    symlinkSync(join(dir, 'orders-agg', 'task-0', 'state.bin'), join(out, 'orders-agg', 'task-0', 'state.bin'));
    const w = SavepointWriter.from(await Savepoint.open(dir)).relocate();
    const e = await w.write(out, { mode: 'relative', overwrite: true }).catch((x: unknown) => x);
    // Caught at plan time: the file the run would write resolves to a source file.
    expect((e as { code?: string }).code).toBe('TARGET_OVERLAPS_SOURCE');
    expect(treeHashes(dir)).toEqual(before);
  });
});

describe('--overwrite deletes only ksp files (item 1, second point)', () => {
  it('a foreign file is an error naming it, and nothing is deleted', async () => {
    const { dir } = source();
    const out = join(tmp(), 'out');
    expect((await ksp(['relocate', dir, out, '--mode', 'relative'])).code).toBe(0);
    writeFileSync(join(out, 'notes.txt'), 'mine');
    const before = treeHashes(out);
    const r = await ksp(['relocate', dir, out, '--mode', 'relative', '--overwrite']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('[TARGET_FOREIGN_FILE]');
    expect(r.stderr).toContain('notes.txt');
    expect(treeHashes(out)).toEqual(before);
  });

  it('never deletes through a symlink or a FIFO', async () => {
    const { dir } = source();
    const elsewhere = join(tmp(), 'elsewhere');
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, 'state.bin'), 'precious');
    for (const make of [
      (out: string) => symlinkSync(elsewhere, join(out, 'incr')),
      (out: string) => symlinkSync(join(elsewhere, 'state.bin'), join(out, 'metadata.json')),
      (out: string) => mkfifoOrSkip(join(out, 'meta.json')),
    ]) {
      const out = join(tmp(), 'out');
      mkdirSync(out);
      if (make(out) === false) continue;
      const w = SavepointWriter.from(await Savepoint.open(dir)).relocate();
      const e = await w.write(out, { mode: 'relative', overwrite: true }).catch((x: unknown) => x);
      expect((e as { code?: string }).code).toBe('TARGET_FOREIGN_FILE');
      expect(treeHashes(elsewhere)).toEqual({ 'state.bin': expect.any(String) });
    }
  });

  it('state files the old savepoint\'s metadata names are part of its layout, whatever their name', async () => {
    const { dir } = source();
    const out = join(tmp(), 'out');
    expect((await ksp(['relocate', dir, out, '--mode', 'relative'])).code).toBe(0);
    const md = readFileSync(join(out, 'metadata.json'), 'utf8').replace('"orders-agg/task-0/state.bin"', '"orders-agg/task-0/snap-7.bin"');
    writeFileSync(join(out, 'metadata.json'), md);
    renameSync(join(out, 'orders-agg', 'task-0', 'state.bin'), join(out, 'orders-agg', 'task-0', 'snap-7.bin'));
    const r = await ksp(['relocate', dir, out, '--mode', 'relative', '--overwrite']);
    expect(r.code, r.stderr).toBe(0);
    expect(Object.keys(treeHashes(out))).not.toContain('orders-agg/task-0/snap-7.bin');
    expect((await verifySavepoint(out)).ok).toBe(true);
  });

  it('a previous ksp write, its temporary files and the savepoint layout are replaced', async () => {
    const { dir } = source();
    const out = join(tmp(), 'out');
    expect((await ksp(['rescale', dir, out, '-p', '3', '--mode', 'relative'])).code).toBe(0);
    writeFileSync(join(out, 'metadata.json.ksp-tmp-1-deadbeef'), 'half');
    mkdirSync(join(out, 'extra', 'x'), { recursive: true });
    writeFileSync(join(out, 'extra', 'x', 'old'), 'old');
    const r = await ksp(['relocate', dir, out, '--mode', 'relative', '--overwrite']);
    expect(r.code, r.stderr).toBe(0);
    const names = Object.keys(treeHashes(out));
    expect(names.some((n) => n.includes('.ksp-tmp-'))).toBe(false);
    expect(names).not.toContain('extra/x/old');
    expect((await verifySavepoint(out)).ok).toBe(true);
  });
});

describe('temporary files inside a target (item 12)', () => {
  it('the emptiness check sees them, and verify reports one inside a sealed savepoint', async () => {
    const { dir } = source();
    const out = join(tmp(), 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'state.bin.ksp-tmp-123-abcd'), 'x');
    const r = await ksp(['relocate', dir, out, '--mode', 'relative']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('[TARGET_NOT_EMPTY]');
    expect(r.stderr).toContain('state.bin.ksp-tmp-123-abcd');

    const sealed = join(tmp(), 'sealed');
    expect((await ksp(['relocate', dir, sealed, '--mode', 'relative'])).code).toBe(0);
    writeFileSync(join(sealed, 'orders-agg', 'task-0', 'state.bin.ksp-tmp-99-beef'), 'x');
    const v = await ksp(['verify', sealed, '--json']);
    const rep = JSON.parse(v.stdout);
    expect(rep.findings.map((f: { code: string }) => f.code)).toContain('STRAY_TEMP_FILE');
    expect(readdirSync(join(sealed, 'orders-agg', 'task-0'))).toContain('state.bin.ksp-tmp-99-beef');
  });
});

/** A FIFO where a file would be (false where mkfifo is not available: that case is skipped). */
function mkfifoOrSkip(path: string): boolean {
  try {
    execFileSync('mkfifo', [path]);
    return true;
  } catch {
    return false;
  }
}
