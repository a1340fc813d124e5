import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FIXTURES } from '../support/env.js';
import { ksp } from '../support/cli.js';
import { treeHashes, useTempDirs } from '../write/support.js';
import { scanHex } from '../rocksdb/support.js';

/**
 * Issue 12, item 2: in engine mode native output shares
 * {base}/{job}/incr/{op}/{task}/sst/ with every other epoch of the job; a
 * write never replaces a file there.
 */

const tmp = useTempDirs('ksp-safety-');
const ep = (n: number): string => String(n).padStart(20, '0');

function hasLdb(): boolean {
  return !spawnSync('ldb', ['--help']).error;
}

/**
 * orders-agg/task-0 of an epoch, as the engine's restore lays it out
 * (incremental_checkpoint.rs, restore_checkpoint): every file its
 * sst_manifest.json lists, copied under its file name into a fresh folder.
 */
function restore(b: string, epoch: number): string {
  const task = join(b, 'shop', 'incr', 'orders-agg', 'task-0');
  const m = JSON.parse(readFileSync(join(task, 'epochs', ep(epoch), 'sst_manifest.json'), 'utf8')) as { sst_files: Array<{ filename: string; storage_path: string }>; meta_files: Array<{ filename: string; storage_path: string }> };
  const dir = join(tmp(), `restore-${epoch}`);
  mkdirSync(dir);
  for (const f of [...m.sst_files, ...m.meta_files]) copyFileSync(join(b, f.storage_path), join(dir, f.filename));
  return dir;
}

function base(): string {
  const b = join(tmp(), 'base');
  cpSync(join(FIXTURES, 'base'), b, { recursive: true });
  // The fixture has a (canonical) savepoint 9 too; the sequence writes 8 and 9.
  rmSync(join(b, 'shop', 'savepoints', ep(9)), { recursive: true });
  return b;
}

describe('engine-mode native output never replaces another savepoint\'s files', () => {
  it('epoch 7 → native 8, then 8 → native 9 (zstd): epoch 8 still verifies, and 9 uses fresh table numbers', async () => {
    const b = base();
    const sp = (n: number): string => join(b, 'shop', 'savepoints', ep(n));
    const r8 = await ksp(['convert', sp(7), b, '--to', 'native', '--epoch', '8']);
    expect(r8.code, r8.stderr).toBe(0);
    const sst = join(b, 'shop', 'incr', 'orders-agg', 'task-0', 'sst');
    const after8 = treeHashes(sst);
    expect(Object.keys(after8).length).toBeGreaterThan(0);

    const plan = await ksp(['convert', sp(8), b, '--to', 'native', '--epoch', '9', '--compression', 'zstd', '--dry-run']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/fresh numbers above every table already there/);

    const r9 = await ksp(['convert', sp(8), b, '--to', 'native', '--epoch', '9', '--compression', 'zstd']);
    expect(r9.code, r9.stderr).toBe(0);
    // Every table of epoch 8 is still there, byte for byte; epoch 9's are new names above them.
    const after9 = treeHashes(sst);
    for (const [name, hash] of Object.entries(after8)) expect(after9[name]).toBe(hash);
    const max8 = Math.max(...Object.keys(after8).map((n) => parseInt(n, 10)));
    const new9 = Object.keys(after9).filter((n) => !(n in after8));
    expect(new9.length).toBeGreaterThan(0);
    for (const n of new9) expect(parseInt(n, 10)).toBeGreaterThan(max8);

    for (const n of [8, 9]) {
      const v = await ksp(['verify', sp(n)]);
      expect(v.code, `epoch ${n}: ${v.stdout}${v.stderr}`).toBe(0);
    }
    // Real RocksDB opens both epochs, restored as the engine restores them, with the same entries.
    if (hasLdb()) {
      const e8 = scanHex(restore(b, 8), true);
      expect(e8.length).toBeGreaterThan(0);
      expect(scanHex(restore(b, 9), true)).toEqual(e8);
    }

    // Re-running the second write with --overwrite replaces epoch 9 only.
    const again = await ksp(['convert', sp(8), b, '--to', 'native', '--epoch', '9', '--compression', 'zstd', '--overwrite']);
    expect(again.code, again.stderr).toBe(0);
    for (const n of [8, 9]) expect((await ksp(['verify', sp(n)])).code).toBe(0);
  }, 180_000); // eight ksp runs and two RocksDB restores

  it('an existing epochs/{epoch}/ folder of another savepoint or checkpoint is refused', async () => {
    const b = base();
    const sp = (n: number): string => join(b, 'shop', 'savepoints', ep(n));
    expect((await ksp(['convert', sp(7), b, '--to', 'native', '--epoch', '8'])).code).toBe(0);
    // The savepoint folder goes, but its native files stay (as a checkpoint of epoch 8 would have them).
    rmSync(join(b, 'shop', 'savepoints', ep(8)), { recursive: true });
    rmSync(join(b, 'shop', 'savepoints', 'ksp-8'), { recursive: true, force: true });
    const epochs = join(b, 'shop', 'incr', 'orders-agg', 'task-0', 'epochs', ep(8));
    const before = treeHashes(epochs);
    const r = await ksp(['convert', sp(7), b, '--to', 'native', '--epoch', '8']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('[TARGET_FILE_EXISTS]');
    expect(r.stderr).toContain(ep(8));
    expect(treeHashes(epochs)).toEqual(before);
  });

  it('relocating a native savepoint to another epoch of the same job shares its tables and never deletes them', async () => {
    const b = base();
    const sp = (n: number): string => join(b, 'shop', 'savepoints', ep(n));
    expect((await ksp(['convert', sp(7), b, '--to', 'native', '--epoch', '8'])).code).toBe(0);
    const sst = join(b, 'shop', 'incr', 'orders-agg', 'task-0', 'sst');
    const tables = treeHashes(sst);
    const r = await ksp(['relocate', sp(8), b, '--epoch', '10']);
    expect(r.code, r.stderr).toBe(0);
    expect(treeHashes(sst)).toEqual(tables);
    expect((await ksp(['verify', sp(10)])).code).toBe(0);
    // A failing relocate (its target refused after planning) leaves the shared tables alone too.
    const again = await ksp(['relocate', sp(8), b, '--epoch', '10']);
    expect(again.code).toBe(2);
    expect(treeHashes(sst)).toEqual(tables);
    expect(readdirSync(sst).length).toBe(Object.keys(tables).length);
    expect((await ksp(['verify', sp(8)])).code).toBe(0);
  });
});
