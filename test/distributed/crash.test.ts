import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildSavepoint } from '../write/build.js';
import { entry, useTempDirs } from '../write/support.js';
import { ksp } from '../support/cli.js';
import { newBucket, upload } from '../support/s3.js';
import { start } from './processes.js';
import { objects } from './support.js';
import { locate } from '../../src/storage/uri.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';

/**
 * Crash safety of distributed runs, as separate `ksp` processes, on a local
 * target and on the S3 server of the tests: a shard killed with SIGKILL in
 * the middle of a unit and started again, with a duplicate of it running
 * beside it, still gives the one-process bytes; a commit with units missing
 * is refused and nothing at the target verifies; a commit killed in the
 * middle of its verification leaves a target that does not verify, and
 * running it again seals it.
 */

const tmp = useTempDirs('ksp-dist-crash-');
const FAST = { KSP_WORK_POLL_MS: '50' };
let localSrc: string;
let bucket: string;

beforeAll(async () => {
  localSrc = join(tmp(), 'src');
  const tasks: StateEntry[][] = [];
  for (let t = 0; t < 3; t++) {
    const list: StateEntry[] = [];
    for (let i = 0; i < 120_000; i++) list.push(entry('agg', 'sum', `key-${t}-${i}`, `value-${i}-${'x'.repeat(40)}`));
    tasks.push(list);
  }
  await buildSavepoint(localSrc, [{ id: 'agg', tasks }]);
  bucket = await newBucket('ksp-dist-crash');
  await upload(localSrc, `s3://${bucket}/src`);
}, 300_000);

async function exists(uri: string, rel: string): Promise<boolean> {
  const d = locate(uri);
  return (await d.storage.stat(`${d.key}/${rel}`)) !== null;
}

/** Units started and not done. */
async function inFlight(uri: string): Promise<string[]> {
  const d = locate(uri);
  const names: string[] = [];
  for await (const e of d.storage.list(`${d.key}/_ksp/units`)) names.push(e.key.slice(e.key.lastIndexOf('/') + 1));
  return names.filter((n) => n.endsWith('.started.json') && !names.includes(n.replace('.started.', '.done.'))).map((n) => n.split('.')[0]!);
}

async function until(cond: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('distributed runs survive crashes (separate processes)', () => {
  for (const where of ['local', 's3'] as const) {
    it(`${where}: SIGKILL mid-unit, re-run with a duplicate beside it: the one-process bytes; commit with a unit missing is refused; a killed commit leaves nothing that verifies`, { timeout: 300_000 }, async () => {
      const src = where === 'local' ? localSrc : `s3://${bucket}/src`;
      const at = (name: string): string => (where === 'local' ? join(tmp(), name) : `s3://${bucket}/${name}`);
      const one = at('one');
      const r1 = await ksp(['rescale', src, one, '-p', '7', '--routing', 'state-key', '--mode', 'relative', '-q']);
      expect(r1.code, r1.stderr).toBe(0);

      const out = at('out');
      const p = await ksp(['rescale', src, out, '-p', '7', '--routing', 'state-key', '--mode', 'relative', '--distributed', '--shards', '2', '--json']);
      expect(p.code, p.stderr).toBe(0);
      expect(JSON.parse(p.stdout).launch[0]).toContain('--shard 0/2');

      // Shard 0 killed while one of its units runs (its started record exists, its completion record does not).
      const a = start(['work', out, '--shard', '0/2'], FAST);
      await until(async () => (await inFlight(out)).length > 0);
      await new Promise((r) => setTimeout(r, 150));
      a.kill();
      expect((await a.done).signal).toBe('SIGKILL');
      const interrupted = await inFlight(out);
      expect(interrupted.length).toBeGreaterThan(0);

      // Commit now: refused, naming what is not done; nothing at the target verifies.
      const c0 = await ksp(['commit', out, '--json']);
      expect(c0.code, c0.stderr).toBe(1);
      const e = JSON.parse(c0.stdout).error;
      expect(e.code).toBe('DISTRIBUTED_INCOMPLETE');
      expect([...e.missing, ...e.running, ...e.stalled]).toEqual(expect.arrayContaining(interrupted));
      expect((await ksp(['verify', out])).code).not.toBe(0);
      expect(await exists(out, 'manifest.sha256')).toBe(false);
      expect(await exists(out, 'metadata.json')).toBe(false);
      const s0 = await ksp(['status', out, '--json']);
      expect(s0.code).toBe(1);
      expect(JSON.parse(s0.stdout).units.done).toBeLessThan(JSON.parse(s0.stdout).units.total);

      // Shard 0 again, a duplicate of it beside it, and shard 1.
      const runs = [start(['work', out, '--shard', '0/2'], FAST), start(['work', out, '--shard', '0/2'], FAST), start(['work', out, '--shard', '1/2'], FAST)];
      for (const r of runs) {
        const x = await r.done;
        expect(x.code, x.stderr).toBe(0);
      }
      expect((await ksp(['status', out])).code).toBe(0);

      // The shards' verify shares wrote metadata.json; without the manifest nothing verifies.
      expect(await exists(out, 'metadata.json')).toBe(true);
      expect((await ksp(['verify', out])).code).not.toBe(0);
      // The commit killed while it verifies (--full-verify reads everything again): nothing verifies; again, and it seals.
      const c = start(['commit', out, '--full-verify'], {});
      await until(() => exists(out, '.ksp-lock'));
      await new Promise((r) => setTimeout(r, 300));
      c.kill();
      await c.done;
      expect(await exists(out, 'manifest.sha256')).toBe(false);
      expect((await ksp(['verify', out])).code).not.toBe(0);
      const c1 = await ksp(['commit', out]);
      expect(c1.code, c1.stderr).toBe(0);
      const got = await objects(out);
      expect(Object.keys(got).filter((k) => k.startsWith('_ksp/') || k.includes('.ksp-tmp-') || k === '.ksp-lock')).toEqual([]);
      expect(got).toEqual(await objects(one));
      expect((await ksp(['verify', out])).code).toBe(0);
      // A pod retried after the commit has nothing to do.
      const late = await ksp(['work', out, '--shard', '1/2']);
      expect(late.code, late.stderr).toBe(0);
      expect(late.stdout).toContain('already committed');
    });
  }
});
