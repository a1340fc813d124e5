import { cpSync, existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { keyGroup, taskForKeyGroup } from '../../src/model/key-group.js';
import { routingKey } from '../../src/model/routing.js';
import { LocalStorage } from '../../src/storage/local.js';
import { locate, type Location } from '../../src/storage/uri.js';
import type { ByteSource } from '../../src/storage/storage.js';
import { KspError } from '../../src/errors.js';
import { ENGINE_SP, FIXTURES, HAS_SHARED, SHOP_SP } from '../support/env.js';
import { files, multiset, rows, treeHashes, useTempDirs } from './support.js';

const tmp = useTempDirs();

async function writer(src: string): Promise<SavepointWriter> {
  return SavepointWriter.from(await Savepoint.open(src));
}

const NATIVE_SP = join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007');
const SP9 = join(FIXTURES, 'base', 'shop', 'savepoints', '00000000000000000009');

describe('relocate', () => {
  it('relative mode: self-contained, same entries, still verifies after a plain copy elsewhere', async () => {
    const out = join(tmp(), 'rel');
    const before = treeHashes(join(FIXTURES, 'base'));
    const r = await (await writer(SP9)).relocate().write(out, { mode: 'relative' });
    expect(r.verify.ok).toBe(true);
    expect(treeHashes(join(FIXTURES, 'base'))).toEqual(before); // source untouched
    const md = JSON.parse(readFileSync(join(out, 'metadata.json'), 'utf8'));
    for (const s of md.operator_snapshots) expect(s.snapshot_path).toBe(`${s.operator_id}/${s.task_id}/state.bin`);
    const meta = JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8'));
    expect(meta.ksp).toMatchObject({ mode: 'relative', operations: [{ op: 'relocate', mode: 'relative' }] });
    expect(multiset(await rows(out))).toEqual(multiset(await rows(SP9)));
    // Savepoint 9 reached outside its directory; the output does not.
    const v = await verifySavepoint(out);
    expect(v.findings.filter((f) => f.code === 'OUTSIDE_DIRECTORY')).toEqual([]);
    const moved = join(tmp(), 'elsewhere', 'deeper');
    mkdirSync(join(moved, '..'), { recursive: true });
    cpSync(out, moved, { recursive: true });
    expect((await verifySavepoint(moved)).ok).toBe(true);
    expect(multiset(await rows(moved))).toEqual(multiset(await rows(SP9)));
  });

  it('engine mode: the engine layout, snapshot paths under {job}/checkpoints/{epoch:020}, record by savepoint id', async () => {
    const base = tmp();
    const r = await (await writer(join(FIXTURES, 'relative-savepoint'))).relocate().write(base, { mode: 'engine', jobId: 'shop-v2', epoch: 42n });
    const dir = join(base, 'shop-v2', 'savepoints', '00000000000000000042');
    expect(r.target).toBe(dir);
    const md = JSON.parse(readFileSync(join(dir, 'metadata.json'), 'utf8'));
    expect(md.job_id).toBe('shop-v2');
    expect(md.epoch).toBe(42);
    expect(md.is_savepoint).toBe(true);
    for (const s of md.operator_snapshots) expect(s.snapshot_path).toBe(`shop-v2/checkpoints/00000000000000000042/${s.operator_id}/${s.task_id}/state.bin`);
    const meta = JSON.parse(readFileSync(join(base, 'shop-v2', 'savepoints', 'ksp-42', 'meta.json'), 'utf8'));
    expect(meta).toMatchObject({ savepoint_id: 'ksp-42', job_id: 'shop-v2', epoch: 42, operator_versions: { 'orders-agg': 1, windows: 2 } });
    const v = await verifySavepoint(dir);
    expect(v.ok).toBe(true);
    expect(v.findings.map((f) => f.code)).not.toContain('NOT_ENGINE_LAYOUT');
  });

  it('native state in shared incr/ folders becomes self-contained, pointer and sst_manifest rewritten', async () => {
    const out = join(tmp(), 'nat');
    await (await writer(NATIVE_SP)).write(out, { mode: 'relative' });
    const pointer = readFileSync(join(out, 'windows/task-0/state.bin'), 'utf8');
    expect(pointer).toBe('INCR-SST-V1|incr/windows/task-0/epochs/00000000000000000007/sst_manifest.json');
    const m = JSON.parse(readFileSync(join(out, 'incr/windows/task-0/epochs/00000000000000000007/sst_manifest.json'), 'utf8'));
    expect(m.sst_files[0].storage_path).toBe('incr/windows/task-0/sst/000012.sst');
    expect(m.manifest_storage_path).toBe('incr/windows/task-0/epochs/00000000000000000007/sst_manifest.json');
    const listed = readFileSync(join(out, 'manifest.sha256'), 'utf8');
    expect(listed).toContain('  incr/windows/task-0/sst/000012.sst\n');
    const moved = join(tmp(), 'moved');
    cpSync(out, moved, { recursive: true });
    const v = await verifySavepoint(moved);
    expect(v.ok).toBe(true);
    expect(v.totals.nativeTasks).toBe(1);
  });

  it.skipIf(!HAS_SHARED)("the engine's fixture relocates to both modes; each output verifies with the same entries", async () => {
    const rel = join(tmp(), 'rel');
    await (await writer(ENGINE_SP)).relocate().write(rel, { mode: 'relative' });
    const base = tmp();
    const eng = await (await writer(rel)).relocate().write(base, { mode: 'engine', epoch: 2n });
    expect(eng.target).toBe(join(base, 'fixture-job', 'savepoints', '00000000000000000002'));
    for (const dir of [rel, eng.target]) {
      expect((await verifySavepoint(dir)).ok).toBe(true);
      expect(multiset(await rows(dir))).toEqual(multiset(await rows(ENGINE_SP)));
    }
    // The engine's layout: metadata keeps every member it had, only paths, epoch and flags change.
    const md = readFileSync(join(eng.target, 'metadata.json'), 'utf8');
    expect(md).toContain('"snapshot_path": "fixture-job/checkpoints/00000000000000000002/op-0/task-0/state.bin"');
    expect(md).toContain('"savepoint_label": "v1-compat-fixture"');
  });

  it('lists every missing referenced file in one error and writes nothing', async () => {
    const src = join(tmp(), 'sp');
    cpSync(NATIVE_SP, src, { recursive: true });
    // Point two tasks at files that do not exist.
    // Text edit, not JSON.parse: the file holds a u64 above 2^53.
    const md = readFileSync(join(src, 'metadata.json'), 'utf8').replace('orders-agg/task-0/state.bin', 'orders-agg/task-0/gone.bin');
    writeFileSync(join(src, 'metadata.json'), md);
    const out = join(tmp(), 'out');
    // The manifest no longer matches the edited metadata: trusted here, to reach the missing files.
    const e = await (await writer(src)).write(out, { mode: 'relative', trustSource: true }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(KspError);
    expect((e as KspError).code).toBe('FILES_MISSING');
    const missing = (e as KspError).data.missing as string[];
    expect(missing.length).toBe(2); // the state file, and the sst_manifest.json the pointer names (outside this copy)
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a non-empty target unless overwrite, and a target overlapping the source', async () => {
    const out = tmp();
    writeFileSync(join(out, 'metadata.json'), 'x');
    const w = await writer(SHOP_SP);
    await expect(w.write(out, { mode: 'relative' })).rejects.toMatchObject({ code: 'TARGET_NOT_EMPTY' });
    const r = await w.write(out, { mode: 'relative', overwrite: true });
    expect(r.verify.ok).toBe(true);
    // A file no ksp write puts there is never deleted by --overwrite (test/safety/write-overwrite.test.ts).
    writeFileSync(join(out, 'keep.txt'), 'x');
    await expect(w.write(out, { mode: 'relative', overwrite: true })).rejects.toMatchObject({ code: 'TARGET_FOREIGN_FILE' });
    expect(existsSync(join(out, 'keep.txt'))).toBe(true);
    await expect(w.write(join(SHOP_SP, 'inside'), { mode: 'relative' })).rejects.toMatchObject({ code: 'TARGET_OVERLAPS_SOURCE' });
    await expect(w.write(join(SHOP_SP, '..'), { mode: 'relative' })).rejects.toMatchObject({ code: 'TARGET_OVERLAPS_SOURCE' });
  });

  it('a dry run (plan) writes nothing and describes every file', async () => {
    const out = join(tmp(), 'planned');
    const plan = await (await writer(SHOP_SP)).rescale(5).plan(out, { mode: 'relative' });
    expect(existsSync(out)).toBe(false);
    expect(Object.isFrozen(plan)).toBe(true);
    expect(plan.operators.find((o) => o.id === 'windows')).toMatchObject({ action: 'rescale', tasksIn: 2, tasksOut: 5, routing: 'window' });
    expect(plan.operators.find((o) => o.id === 'sink')).toMatchObject({ action: 'copy' });
    expect(plan.files.filter((f) => f.action === 'write')).toHaveLength(15);
  });

  it('unchanged state files are byte-identical copies', async () => {
    const out = join(tmp(), 'copy');
    await (await writer(SHOP_SP)).removeOperator('fraud').write(out, { mode: 'relative' });
    for (const rel of ['orders-agg/task-0/state.bin', 'windows/task-1/state.bin', 'sink/task-0/state.bin']) {
      expect(readFileSync(join(out, rel)).equals(readFileSync(join(SHOP_SP, rel)))).toBe(true);
    }
    expect(existsSync(join(out, 'fraud'))).toBe(false);
    const md = JSON.parse(readFileSync(join(out, 'metadata.json'), 'utf8'));
    expect(md.operator_snapshots.map((s: { operator_id: string }) => s.operator_id)).not.toContain('fraud');
    expect(Object.keys(JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8')).operator_versions)).toEqual(['orders-agg', 'windows', 'sink']);
  });
});

describe('rescale', () => {
  it('every routed entry lands on the task owning its key group; broadcast watermarks merged to the minimum', async () => {
    const out = join(tmp(), 'r');
    // Window routing (the engine's) for the window operator, state-key routing for the keyed ones.
    const r = await (await writer(SHOP_SP)).rescale(3, { operators: ['windows'] }).rescale(3, { operators: ['orders-agg', 'fraud'], routing: 'state-key' }).write(out, { mode: 'relative' });
    const got = await rows(out);
    const src = await rows(SHOP_SP);
    const strip = (x: typeof got): string[] => multiset(x.filter((e) => e.key !== Buffer.from('wm:').toString('hex')));
    expect(strip(got)).toEqual(strip(src));
    for (const e of got) {
      const routing = e.operator === 'windows' ? 'window' : 'state-key';
      const rk = routingKey(Buffer.from(e.key, 'hex'), routing);
      if (rk === null) continue;
      expect(e.task).toBe(`task-${taskForKeyGroup(keyGroup(rk), 3)}`);
    }
    const wm = got.filter((e) => e.key === Buffer.from('wm:').toString('hex'));
    expect(wm.map((e) => e.task).sort()).toEqual(['task-0', 'task-1', 'task-2']);
    const min = Buffer.alloc(8);
    min.writeBigInt64LE(1760000000000n - 7000n);
    for (const e of wm) expect(e.value).toBe(min.toString('hex'));
    expect(r.rescale.find((x) => x.operator === 'windows')).toMatchObject({ broadcast: 1, mergedDuplicates: 1 });
  });

  it('empty new tasks get the empty state.bin; new ids follow --task-ids', async () => {
    const out = join(tmp(), 'wide');
    await (await writer(SHOP_SP)).rescale(64, { operators: ['fraud'], taskIds: 'part-{i}', routing: 'state-key' }).write(out, { mode: 'relative' });
    const md = JSON.parse(readFileSync(join(out, 'metadata.json'), 'utf8'));
    const fraud = md.operator_snapshots.filter((s: { operator_id: string }) => s.operator_id === 'fraud');
    expect(fraud.map((s: { task_id: string }) => s.task_id)).toEqual(Array.from({ length: 64 }, (_, i) => `part-${i}`));
    const sizes = fraud.map((s: { snapshot_path: string }) => readFileSync(join(out, s.snapshot_path)).length);
    expect(sizes.filter((n: number) => n === 12).length).toBeGreaterThan(30); // 26 entries over 64 tasks: the rest hold the 12-byte empty snapshot
    expect(sizes.filter((n: number) => n < 12)).toEqual([]);
  });

  it('conflicting broadcast entries are an error naming the key', async () => {
    const { encodeStateBinToBuffer } = await import('../../src/formats/state-bin/encoder.js');
    const src = join(tmp(), 'src');
    cpSync(join(FIXTURES, 'relative-savepoint'), src, { recursive: true });
    writeFileSync(join(src, 'windows/task-0/state.bin'), await encodeStateBinToBuffer([{ operatorId: 'windows', stateName: 's', key: Buffer.from('odd-key'), value: Buffer.from('a') }]));
    writeFileSync(join(src, 'windows/task-1/state.bin'), await encodeStateBinToBuffer([{ operatorId: 'windows', stateName: 's', key: Buffer.from('odd-key'), value: Buffer.from('bb') }]));
    const e = await (await writer(src)).rescale(2, { operators: ['windows'], routing: 'window' }).plan(join(tmp(), 'o'));
    expect(e.operators.find((o) => o.id === 'windows')?.routing).toBe('window');
    // The state files were replaced without a new manifest: trusted here, to reach the conflict.
    await expect((await writer(src)).rescale(2, { operators: ['windows'], routing: 'window' }).write(join(tmp(), 'o'), { trustSource: true })).rejects.toMatchObject({ code: 'RESCALE_BROADCAST_CONFLICT' });
  });

  it.skipIf(!HAS_SHARED)('the engine fixture: 1 → 3 → 1 keeps its entries, each step verifies', async () => {
    const a = join(tmp(), 'a');
    const b = join(tmp(), 'b');
    const ra = await (await writer(ENGINE_SP)).rescale(3).write(a, { mode: 'relative' });
    // Its key "tw:key-a" is not in the tw: window layout (no length prefix): window routing, the
    // engine's, broadcasts it with the watermark to all three tasks, and 3 → 1 merges them again.
    expect(ra.plan.operators[0]).toMatchObject({ routing: 'window', tasksOut: 3 });
    const rb = await (await writer(a)).rescale(1).write(b, { mode: 'relative' });
    expect(rb.verify.ok).toBe(true);
    expect(multiset(await rows(b))).toEqual(multiset(await rows(ENGINE_SP)));
    // And back into the engine's own layout.
    const base = tmp();
    const rc = await (await writer(b)).relocate().write(base, { mode: 'engine' });
    expect(rc.target).toBe(join(base, 'fixture-job', 'savepoints', '00000000000000000001'));
    expect(multiset(await rows(rc.target))).toEqual(multiset(await rows(ENGINE_SP)));
  });
});

describe('edit', () => {
  it.skipIf(!HAS_SHARED)('renames the metadata id and the (different) entry id of the engine fixture consistently', async () => {
    const out = join(tmp(), 'e');
    await (await writer(ENGINE_SP)).renameOperator('op-0', 'windows-v2').renameOperator('continuous-window', 'cw').write(out, { mode: 'relative' });
    const r = await rows(out);
    expect(r.map((x) => [x.operator, x.entryOperator])).toEqual([['windows-v2', 'cw'], ['windows-v2', 'cw']]);
    expect(existsSync(join(out, 'windows-v2/task-0/state.bin'))).toBe(true);
  });

  it('renames across metadata, entries and operator_versions; unknown ids and existing targets are errors', async () => {
    const out = join(tmp(), 'e');
    const rep = await (await writer(SHOP_SP)).renameOperator('orders-agg', 'orders').write(out, { mode: 'relative' });
    expect(rep.verify.ok).toBe(true);
    const r = await rows(out);
    expect(new Set(r.filter((x) => x.operator === 'orders').map((x) => x.entryOperator))).toEqual(new Set(['orders']));
    expect(Object.keys(JSON.parse(readFileSync(join(out, 'meta.json'), 'utf8')).operator_versions)).toContain('orders');
    // Files of operators not renamed are copied, not rewritten.
    expect(readFileSync(join(out, 'windows/task-0/state.bin')).equals(readFileSync(join(SHOP_SP, 'windows/task-0/state.bin')))).toBe(true);
    await expect((await writer(SHOP_SP)).renameOperator('nope', 'x').plan(join(tmp(), 'x'))).rejects.toMatchObject({ code: 'OPERATOR_UNKNOWN' });
    await expect((await writer(SHOP_SP)).renameOperator('orders-agg', 'windows').plan(join(tmp(), 'x'))).rejects.toMatchObject({ code: 'OPERATOR_EXISTS' });
    await expect((await writer(SHOP_SP)).removeOperator('nope').plan(join(tmp(), 'x'))).rejects.toMatchObject({ code: 'OPERATOR_UNKNOWN' });
  });

  it('operations chain in order: rename, then rescale by the new id', async () => {
    const out = join(tmp(), 'chain');
    const r = await (await writer(SHOP_SP)).renameOperator('windows', 'win').rescale(3, { operators: ['win'] }).write(out, { mode: 'relative' });
    expect(r.plan.operators.find((o) => o.id === 'win')).toMatchObject({ sourceId: 'windows', action: 'rescale', tasksOut: 3 });
    expect(new Set((await rows(out)).filter((x) => x.operator === 'win').map((x) => x.entryOperator))).toEqual(new Set(['win']));
  });
});

/** Local disk whose Nth write fails after part of its data has gone through. */
class FailingStorage extends LocalStorage {
  writes = 0;
  constructor(private readonly failAt: number) { super(); }
  override async write(key: string, data: ByteSource): Promise<void> {
    if (++this.writes !== this.failAt) return super.write(key, data);
    const self = this;
    async function* half(): AsyncGenerator<Uint8Array> {
      const it = (data instanceof Uint8Array ? [data] : data) as AsyncIterable<Uint8Array>;
      for await (const c of it) {
        yield c.subarray(0, Math.max(1, c.length >> 1));
        throw new KspError('STORAGE_IO', `injected failure on write ${self.writes}`);
      }
      throw new KspError('STORAGE_IO', `injected failure on write ${self.writes}`);
    }
    return super.write(key, half());
  }
  override async copy(fromKey: string, toKey: string): Promise<void> {
    if (++this.writes !== this.failAt) return super.copy(fromKey, toKey);
    throw new KspError('STORAGE_IO', `injected failure on copy ${this.writes}`);
  }
}

describe('failure injection', () => {
  // 5 copies, 2 rescaled tasks, metadata.json, meta.json, manifest.sha256
  for (const failAt of [1, 3, 5, 6, 7, 8, 9, 10]) {
    it(`a write failing midway (write #${failAt}) leaves nothing that verifies and the source unchanged`, async () => {
      const out = join(tmp(), 'out');
      const before = treeHashes(SHOP_SP);
      const storage = new FailingStorage(failAt);
      const target: Location = { storage, key: locate(out).key };
      const w = (await writer(SHOP_SP)).rescale(2, { operators: ['orders-agg'] });
      await expect(w.write(target, { mode: 'relative' })).rejects.toMatchObject({ code: 'STORAGE_IO' });
      expect(treeHashes(SHOP_SP)).toEqual(before);
      expect(existsSync(join(out, 'manifest.sha256'))).toBe(false);
      if (existsSync(out)) {
        expect(files(out)).toEqual([]);
        await expect(verifySavepoint(out).then((r) => r.ok)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      }
    });
  }
});
