import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  detectTaskBody, openBody, EMPTY_V1_SNAPSHOT, stateBinV1Format, stateBinV2Format, nativeFormat, windowJoinFormat, emptyFormat,
  likelyTtlPrefixed, stripTtlPrefix,
} from '../../src/formats/task-format/index.js';
import { encodePointer } from '../../src/formats/pointer/pointer.js';
import { encodeStateBinToBuffer } from '../../src/formats/state-bin/encoder.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { inspectSavepoint } from '../../src/model/inspect.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { defineMigrations } from '../../src/migrate/registry.js';
import { codecs } from '../../src/migrate/codecs.js';
import { SHOP_SP } from '../support/env.js';
import { ksp } from '../support/cli.js';
import { entry, multiset, rows, useTempDirs } from '../write/support.js';
import { nativeSavepoint } from '../rocksdb/native-savepoint.js';

const tmp = useTempDirs();

async function* chunks(b: Buffer, size = 5): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function all(b: Buffer): Promise<{ body: string; count: number | null; entries: StateEntry[] }> {
  const r = await openBody(chunks(b), b.length, 'test.bin');
  const entries: StateEntry[] = [];
  for await (const batch of r.batches()) for (const e of batch) entries.push({ ...e, key: Buffer.from(e.key), value: Buffer.from(e.value) });
  return { body: r.body, count: r.count, entries };
}

async function bytesOf(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

const ENTRIES = [entry('op', 'st', 'k1', 'v1'), entry('op', 'st', 'k2', Buffer.from([0, 1, 2]))];

/** A copy of the shop savepoint with `rel` replaced by `data`, its manifest line updated. */
function withFile(rel: string, data: Buffer): string {
  const dir = join(tmp(), 'shop', 'savepoints', '00000000000000000007');
  cpSync(SHOP_SP, dir, { recursive: true });
  writeFileSync(join(dir, rel), data);
  const m = readFileSync(join(dir, 'manifest.sha256'), 'utf8').split('\n').map((l) => (l.endsWith(`  ${rel}`) ? `sha256:${createHash('sha256').update(data).digest('hex')}  ${rel}` : l));
  writeFileSync(join(dir, 'manifest.sha256'), m.join('\n'));
  return dir;
}

describe('task-format: detect by content', () => {
  it('each body is recognised from its first bytes and size; anything else is read as v1 (which names the damage)', async () => {
    expect(detectTaskBody(Buffer.alloc(0), 0)).toBe(emptyFormat);
    expect(detectTaskBody(encodePointer({ manifestPath: 'j/incr/x/sst_manifest.json' }).subarray(0, 12), 40)).toBe(nativeFormat);
    expect(detectTaskBody(Buffer.from('{"buffered_b'), 200)).toBe(windowJoinFormat);
    expect(detectTaskBody(Buffer.from('020000000000000000000000', 'hex'), 12)).toBe(stateBinV2Format);
    expect(detectTaskBody(EMPTY_V1_SNAPSHOT, 12)).toBe(stateBinV1Format);
    expect(detectTaskBody(Buffer.from('07000000', 'hex'), 4)).toBe(stateBinV1Format);
    await expect(all(Buffer.from('0700000000000000000000000000', 'hex'))).rejects.toMatchObject({ code: 'STATE_BIN_VERSION', data: { expected: 1, found: 7 } });
  });

  it('v1 and v2 hold the same entries; each writes its own header; a v2 body is read as v2', async () => {
    const v1 = await bytesOf(stateBinV1Format.write({ count: 2, entries: [ENTRIES] }));
    const v2 = await bytesOf(stateBinV2Format.write({ count: 2, entries: [ENTRIES] }));
    expect(v1.readUInt32LE(0)).toBe(1);
    expect(v2.readUInt32LE(0)).toBe(2);
    expect(v2.subarray(4)).toEqual(v1.subarray(4)); // same layout after the version (dfs_backend.rs snapshot)
    const a = await all(v1);
    const b = await all(v2);
    expect(a).toMatchObject({ body: 'state-bin-v1', count: 2 });
    expect(b).toMatchObject({ body: 'state-bin-v2', count: 2 });
    expect(b.entries).toEqual(a.entries);
    expect(v1).toEqual(await encodeStateBinToBuffer(ENTRIES));
  });

  it('the 12-byte empty v1 snapshot is a normal empty task; a 0-byte body is empty too', async () => {
    expect(await all(EMPTY_V1_SNAPSHOT)).toEqual({ body: 'state-bin-v1', count: 0, entries: [] });
    expect(await all(Buffer.alloc(0))).toEqual({ body: 'empty', count: 0, entries: [] });
    expect(EMPTY_V1_SNAPSHOT.toString('hex')).toBe('01000000' + '00'.repeat(8));
  });

  it('a native pointer opens without its files only as far as the pointer', async () => {
    const p = encodePointer({ manifestPath: 'j/incr/op/t/epochs/00000000000000000001/sst_manifest.json' });
    const r = await openBody(chunks(p), p.length, 'p.bin');
    expect(r).toMatchObject({ body: 'native', count: null, opaque: false, pointer: { manifestPath: 'j/incr/op/t/epochs/00000000000000000001/sst_manifest.json' } });
    await expect(r.batches().next()).rejects.toMatchObject({ code: 'NATIVE_UNSUPPORTED' });
    expect(await bytesOf(nativeFormat.write({ manifestPath: 'a/b' }))).toEqual(Buffer.from('INCR-SST-V1|a/b'));
  });
});

describe('0-byte state.bin', () => {
  it('reads as an empty task, with a warning that the engine would refuse it; the 12-byte empty snapshot gets none', async () => {
    const dir = withFile('sink/task-0/state.bin', Buffer.alloc(0));
    const v = await verifySavepoint(dir);
    expect(v.ok).toBe(true);
    const empty = v.findings.filter((f) => f.code === 'STATE_BIN_EMPTY_FILE');
    expect(empty).toHaveLength(1);
    expect(empty[0]).toMatchObject({ severity: 'warning', file: expect.stringContaining('sink/task-0/state.bin') });
    expect(empty[0]!.message).toContain('decode_snapshot_entries in krishiv-state/src/snapshot.rs');
    // The bundled fixture's sink/task-1 holds the 12-byte empty snapshot: no warning.
    expect(readFileSync(join(dir, 'sink/task-1/state.bin'))).toEqual(EMPTY_V1_SNAPSHOT);
    expect(v.tasks.find((t) => t.task === 'task-1' && t.operator === 'sink')).toMatchObject({ format: 'stateless', entries: 0 });
    expect(v.tasks.find((t) => t.task === 'task-0' && t.operator === 'sink')).toMatchObject({ format: 'stateless', entries: 0 });
    const sp = await Savepoint.open(dir);
    for (const t of sp.tasks.filter((x) => x.operatorId === 'sink')) {
      const n = [];
      for await (const b of sp.taskBatches(t)) n.push(...b);
      expect(n).toEqual([]);
    }
  });
});

describe('state.bin v2 is read everywhere', () => {
  async function v2Copy(): Promise<string> {
    const sp = await Savepoint.open(SHOP_SP);
    const t = sp.tasks.find((x) => x.operatorId === 'orders-agg' && x.taskId === 'task-0')!;
    const es: StateEntry[] = [];
    for await (const b of sp.taskBatches(t)) for (const e of b) es.push({ ...e, key: Buffer.from(e.key), value: Buffer.from(e.value) });
    return withFile('orders-agg/task-0/state.bin', await bytesOf(stateBinV2Format.write({ count: es.length, entries: [es] })));
  }

  it('inspect and verify read it, and verify warns that the engine restores v1 only', async () => {
    const dir = await v2Copy();
    expect(multiset(await rows(dir))).toEqual(multiset(await rows(SHOP_SP)));
    const s = await inspectSavepoint(dir);
    const task = s.operators.find((o) => o.id === 'orders-agg')!.tasks.find((t) => t.id === 'task-0')!;
    expect(task).toMatchObject({ format: 'canonical', version: 2 });
    expect(task.entries).toBeGreaterThan(0);
    const v = await verifySavepoint(dir);
    expect(v.ok).toBe(true);
    expect(v.findings.filter((f) => f.code === 'STATE_BIN_V2')).toHaveLength(1);
    const text = await ksp(['inspect', dir]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('canonical v2');
  });

  it('rescale, migrate, convert and relocate read it and write v1 (and say so in the plan)', async () => {
    const dir = await v2Copy();
    const orig = readFileSync(join(dir, 'orders-agg/task-0/state.bin'));

    const rescaled = join(tmp(), 'r');
    const r = await SavepointWriter.from(await Savepoint.open(dir)).rescale(2, { operators: ['orders-agg'], routing: 'state-key' }).write(rescaled, { mode: 'relative' });
    expect(r.verify.ok).toBe(true);
    expect(multiset(await rows(rescaled))).toEqual(multiset(await rows(SHOP_SP)));
    for (const t of ['task-0', 'task-1']) expect(readFileSync(join(rescaled, 'orders-agg', t, 'state.bin')).readUInt32LE(0)).toBe(1);

    const migrated = join(tmp(), 'm');
    const reg = defineMigrations((m) => m.value('orders-agg', 1, 2, codecs.raw, codecs.raw, (v) => v));
    await SavepointWriter.from(await Savepoint.open(dir)).migrate(reg).write(migrated, { mode: 'relative' });
    expect(readFileSync(join(migrated, 'orders-agg/task-0/state.bin')).readUInt32LE(0)).toBe(1);
    expect(multiset(await rows(migrated))).toEqual(multiset(await rows(SHOP_SP)));

    const native = join(tmp(), 'n');
    await SavepointWriter.from(await Savepoint.open(dir)).convert('native').write(native, { mode: 'relative' });
    const back = join(tmp(), 'b');
    await SavepointWriter.from(await Savepoint.open(native)).convert('canonical').write(back, { mode: 'relative' });
    expect(multiset(await rows(back))).toEqual(multiset(await rows(SHOP_SP)));

    const moved = join(tmp(), 'c');
    const w = SavepointWriter.from(await Savepoint.open(dir)).relocate();
    const plan = await w.plan(moved, { mode: 'relative' });
    expect(plan.warnings.join('\n')).toContain('state.bin version 2');
    await w.write(moved, { mode: 'relative' });
    const out = readFileSync(join(moved, 'orders-agg/task-0/state.bin'));
    expect(out.readUInt32LE(0)).toBe(1);
    expect(out.subarray(4)).toEqual(orig.subarray(4));
  });
});

describe('TTL-prefixed native values', () => {
  const T = 1_760_000_000_000n;
  const ttl = (v: Buffer, at = T): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(at);
    return Buffer.concat([b, v]);
  };

  it('a state whose every value starts with a plausible expiry is flagged; a bare 8-byte watermark is not', () => {
    expect(likelyTtlPrefixed([entry('w', 'tumbling', 'a', ttl(Buffer.from([1]))), entry('w', 'tumbling', 'b', ttl(Buffer.from([2]), 2n ** 63n - 1n))])).toEqual([{ operator: 'w', state: 'tumbling', entries: 2 }]);
    expect(likelyTtlPrefixed([entry('w', 'tumbling', 'wm:', ttl(Buffer.alloc(0)))])).toEqual([]);
    expect(likelyTtlPrefixed([entry('w', 's', 'a', ttl(Buffer.from([1]))), entry('w', 's', 'b', Buffer.from('plain'))])).toEqual([]);
    expect(stripTtlPrefix(entry('w', 's', 'a', ttl(Buffer.from('x'))), 'f').value).toEqual(Buffer.from('x'));
    expect(() => stripTtlPrefix(entry('w', 's', 'a', Buffer.from('x')), 'f')).toThrow(expect.objectContaining({ code: 'TTL_PREFIX_SHORT' }));
  });

  it('verify and inspect warn on native state that looks TTL-prefixed; convert --ttl-prefix strip removes it, keep (default) leaves it', async () => {
    const base = tmp();
    const es = [entry('win', 'tumbling', 'tw:a', ttl(Buffer.from([5]))), entry('win', 'tumbling', 'tw:b', ttl(Buffer.from([6])))];
    const canon = await nativeSavepoint(base, 'job', 3, [{ op: 'win', task: 'task-0', entries: es }]);
    const native = join(tmp(), 'n');
    await SavepointWriter.from(await Savepoint.open(canon)).convert('native').write(native, { mode: 'relative' });
    const v = await verifySavepoint(native);
    expect(v.ok).toBe(true);
    expect(v.findings.filter((f) => f.code === 'TTL_PREFIX_LIKELY')).toHaveLength(1);
    const s = await inspectSavepoint(native);
    expect(s.operators[0]!.tasks[0]!.notes?.map((n) => n.code)).toEqual(['TTL_PREFIX_LIKELY']);

    const kept = join(tmp(), 'k');
    const rk = await ksp(['convert', native, kept, '--to', 'canonical', '--mode', 'relative']);
    expect(rk.code).toBe(0);
    expect((await rows(kept)).map((r) => r.value)).toEqual(es.map((e) => Buffer.from(e.value).toString('hex')));

    const stripped = join(tmp(), 's');
    const rs = await ksp(['convert', native, stripped, '--to', 'canonical', '--ttl-prefix', 'strip', '--mode', 'relative']);
    expect(rs.code).toBe(0);
    expect((await rows(stripped)).map((r) => r.value)).toEqual(['05', '06']);
    expect((await ksp(['convert', canon, join(tmp(), 'x'), '--to', 'native', '--ttl-prefix', 'strip'])).code).toBe(2);
  });
});
