import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';
import { encodeStateBinToBuffer } from '../../src/formats/state-bin/encoder.js';
import { inspectSavepoint } from '../../src/model/inspect.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { ksp } from '../support/cli.js';
import { buildSavepoint } from '../write/build.js';
import { entry, files, multiset, rows, useTempDirs } from '../write/support.js';
import { nativeScan, nativeWrite } from './native-lib.js';
import { engineKey, entryOfScanLine, nativeSavepoint, restoreTask } from './native-savepoint.js';
import { asScanLines, createDb, ldb, loadPairs, requireLdb, scanHex, sstVerify } from './support.js';

/**
 * `ksp convert --to native` on whole savepoints. The output is judged the
 * way the engine would use it: each task restored from its pointer and
 * sst_manifest.json into a directory (SHA-256 checked), then opened by real
 * RocksDB (ldb 7.8, or RocksDB 10.5 for format_version 6), and its scan
 * compared with the source entries in RocksDB key order.
 */

const tmp = useTempDirs();
let root: string;
let canonical: string;
let native: string;
let nativeExpected: string[];
const tasks: StateEntry[][][] = [];

afterAll(() => rmSync(root, { recursive: true, force: true }));
beforeAll(async () => {
  requireLdb();
  root = mkdtempSync(join(tmpdir(), 'ksp-convert-native-'));
  // Canonical source: entries in no particular order, several states and a
  // key that repeats only across tasks.
  const orders: StateEntry[][] = [[], []];
  for (let i = 0; i < 600; i++) {
    const t = i % 2;
    orders[t]!.push(entry('orders', i % 3 ? 'count' : 'sum', Buffer.from(`k-${(i * 7919) % 1000}`), Buffer.from(`v${i}`.repeat(1 + (i % 5)))));
  }
  const windows: StateEntry[][] = [[entry('windows', 'tumbling', 'tw:u1:1000', 'a'), entry('windows', 'tumbling', 'tw:u0:1000', 'b'), entry('windows', 'tumbling', 'wm:', Buffer.alloc(8, 1))]];
  tasks.push(orders, windows);
  canonical = join(root, 'canonical');
  await buildSavepoint(canonical, [{ id: 'orders', tasks: orders }, { id: 'windows', tasks: windows }, { id: 'sink', tasks: [[]] }]);

  // Native source made by real RocksDB: ldb (fv5, Snappy) and RocksDB 10.5 (fv6), WAL data included.
  const db0 = join(root, 'db0');
  createDb(db0, { formatVersion: 5, checksum: 'kXXH3', blockSize: 1024 });
  const p0: Array<[Buffer, Buffer]> = [];
  for (let i = 0; i < 300; i++) p0.push([engineKey('windows', 'tumbling', Buffer.from(`tw:user-${i}:60000`)), Buffer.from(`count-${i}`)]);
  loadPairs(db0, p0, { compression: 'snappy' });
  ldb(db0, ['--hex', 'delete', `0x${p0[7]![0].toString('hex')}`]);
  const db1 = join(root, 'db1');
  const ops = [];
  for (let i = 0; i < 200; i++) ops.push({ put: [engineKey('windows', 'session', Buffer.from(`ses:u${i}:5`)).toString('hex'), Buffer.from(`n-${i}`).toString('hex')] as [string, string] });
  ops.push({ flush: true as const });
  ops.push({ put: [engineKey('windows', 'session', Buffer.from('ses:late')).toString('hex'), '01'] as [string, string] });
  nativeWrite(db1, ops, { tableFormatVersion: 6 });
  native = await nativeSavepoint(join(root, 'store'), 'shop', 9, [
    { op: 'windows', task: 'task-0', db: db0 },
    { op: 'windows', task: 'task-1', db: db1 },
  ]);
  nativeExpected = [...scanHex(db0), ...nativeScan(db1)];
});

/** The source entries of a canonical task as RocksDB would list them: engine keys, ascending, last entry per key. */
function expectedScan(list: StateEntry[]): string[] {
  const m = new Map<string, { key: Buffer; value: Uint8Array }>();
  for (const e of list) {
    const key = engineKey(e.operatorId, e.stateName, e.key);
    m.set(key.toString('hex'), { key, value: e.value });
  }
  return asScanLines([...m.values()].sort((a, b) => Buffer.compare(a.key, b.key)));
}

/** Restores a written task the engine's way and lists it with ldb (format_version ≤ 5). */
function ldbScanOfTask(rootDir: string, spDir: string, op: string, task: string): string[] {
  const dir = join(tmp(), `${op}-${task}`);
  const ssts = restoreTask(rootDir, join(spDir, op, task, 'state.bin'), dir);
  expect(ldb(dir, ['--try_load_options=false', 'checkconsistency']).trim()).toBe('OK');
  for (const s of ssts) expect(sstVerify(join(dir, s))).not.toMatch(/Corruption/);
  return scanHex(dir, true);
}

describe('convert --to native', () => {
  it('canonical → native (CLI, defaults): every task a RocksDB database ldb reads back as the source entries; verify and inspect pass', async () => {
    const out = join(tmp(), 'native');
    const r = await ksp(['convert', canonical, out, '--to', 'native']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/native: 3 task\(s\) written as RocksDB/);
    for (const [op, ts] of [['orders', tasks[0]!], ['windows', tasks[1]!]] as const) {
      ts.forEach((list, i) => expect(ldbScanOfTask(out, out, op, `task-${i}`)).toEqual(expectedScan(list)));
    }
    // The pointer blob and the engine's incremental layout, relative to the savepoint.
    expect(readFileSync(join(out, 'orders', 'task-0', 'state.bin'), 'latin1')).toBe('INCR-SST-V1|incr/orders/task-0/epochs/00000000000000000005/sst_manifest.json');
    expect(files(out).filter((f) => f.startsWith('incr/orders/task-0/'))).toEqual([
      'incr/orders/task-0/epochs/00000000000000000005/CURRENT',
      'incr/orders/task-0/epochs/00000000000000000005/MANIFEST-000003',
      'incr/orders/task-0/epochs/00000000000000000005/sst_manifest.json',
      'incr/orders/task-0/sst/000002.sst',
    ]);
    // The empty (stateless) task is the 12-byte empty snapshot, never a 0-byte file.
    expect(readFileSync(join(out, 'sink', 'task-0', 'state.bin')).toString('hex')).toBe('010000000000000000000000');
    expect((await ksp(['verify', out])).code).toBe(0);
    const s = await inspectSavepoint(out);
    expect(s.operators.flatMap((o) => o.tasks.map((t) => t.format))).toEqual(['native', 'native', 'native', 'stateless']);
    expect(s.operators[0]!.tasks[0]!.native).toMatchObject({ formatVersions: [5], compressions: ['snappy'], checksums: ['xxh3'] });
    // inspect/entries list the same entries as the canonical source (order aside).
    expect(multiset(await rows(out))).toEqual(multiset(await rows(canonical)));
  });

  it('canonical → native → canonical gives state.bin files byte-identical to the source re-encoded in key order', async () => {
    const out = join(tmp(), 'n');
    await SavepointWriter.from(await Savepoint.open(canonical)).convert('native').write(out, { mode: 'relative' });
    const back = join(tmp(), 'c');
    const r = await SavepointWriter.from(await Savepoint.open(out)).convert('canonical').write(back, { mode: 'relative' });
    expect(r.verify.ok).toBe(true);
    for (const [op, ts] of [['orders', tasks[0]!], ['windows', tasks[1]!]] as const) {
      for (let i = 0; i < ts.length; i++) {
        const sorted = [...ts[i]!].sort((a, b) => Buffer.compare(engineKey(a.operatorId, a.stateName, a.key), engineKey(b.operatorId, b.stateName, b.key)));
        expect(readFileSync(join(back, op, `task-${i}`, 'state.bin'))).toEqual(await encodeStateBinToBuffer(sorted));
      }
    }
  });

  it('native made by RocksDB → canonical → native → read by RocksDB gives the original entries; native → native directly too', async () => {
    const can = join(tmp(), 'can');
    await SavepointWriter.from(await Savepoint.open(native)).convert('canonical').write(can, { mode: 'relative' });
    const again = join(tmp(), 'again');
    const r = await SavepointWriter.from(await Savepoint.open(can)).convert('native').write(again, { mode: 'relative' });
    expect(r.verify.ok).toBe(true);
    const scan = (sp: string): string[] => [...ldbScanOfTask(sp, sp, 'windows', 'task-0'), ...ldbScanOfTask(sp, sp, 'windows', 'task-1')];
    expect(scan(again)).toEqual(nativeExpected);
    // Straight from native: entries stream in key order into the tables, re-encoded at format_version 5.
    const direct = join(tmp(), 'direct');
    const d = await SavepointWriter.from(await Savepoint.open(native)).convert('native', { compression: 'zstd', checksum: 'crc32c' }).write(direct, { mode: 'relative' });
    expect(d.native.map((t) => t.entries)).toEqual([299, 201]);
    expect(scan(direct)).toEqual(nativeExpected);
  });

  it('format_version 6 (the engine\'s own) is read by RocksDB 10.5', async () => {
    const out = join(tmp(), 'fv6');
    const r = await ksp(['convert', canonical, out, '--to', 'native', '--format-version', '6', '--compression', 'none']);
    expect(r.code, r.stderr).toBe(0);
    const dir = join(tmp(), 'restored');
    restoreTask(out, join(out, 'orders', 'task-1', 'state.bin'), dir);
    expect(nativeScan(dir)).toEqual(expectedScan(tasks[0]![1]!));
    expect((await ksp(['verify', out])).code).toBe(0);
  });

  it('a task larger than --sst-size becomes several non-overlapping tables; engine mode lays them under {base}/{job}/incr', async () => {
    const base = tmp();
    const r = await ksp(['convert', canonical, '--base', base, '--mode', 'engine', '--to', 'native', '--sst-size', '2KiB', '--block-size', '512', '--compression', 'lz4', '--bloom-bits', '0']);
    expect(r.code, r.stderr).toBe(0);
    const spDir = join(base, 'prop', 'savepoints', '00000000000000000005');
    const pointer = readFileSync(join(spDir, 'orders', 'task-0', 'state.bin'), 'latin1');
    expect(pointer).toBe('INCR-SST-V1|prop/incr/orders/task-0/epochs/00000000000000000005/sst_manifest.json');
    expect(readdirSync(join(base, 'prop', 'incr', 'orders', 'task-0', 'sst')).length).toBeGreaterThan(2);
    expect(ldbScanOfTask(base, spDir, 'orders', 'task-0')).toEqual(expectedScan(tasks[0]![0]!));
    expect((await ksp(['verify', spDir])).code).toBe(0);
  });

  it('a key repeated within a task: the later entry wins, as on the engine\'s restore, and the report says so', async () => {
    const src = join(tmp(), 'dups');
    await buildSavepoint(src, [{ id: 'op', tasks: [[entry('op', 's', 'b', '1'), entry('op', 's', 'a', '2'), entry('op', 's', 'b', '3')]] }]);
    const out = join(tmp(), 'out');
    const r = await ksp(['convert', src, out, '--to', 'native']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/op\/task-0: 1 entry repeated a key; the later one was kept/);
    expect(ldbScanOfTask(out, out, 'op', 'task-0')).toEqual(asScanLines([
      { key: engineKey('op', 's', Buffer.from('a')), value: Buffer.from('2') },
      { key: engineKey('op', 's', Buffer.from('b')), value: Buffer.from('3') },
    ]));
  });

  it('--dry-run plans the native files and writes nothing; bad options are usage errors', async () => {
    const out = join(tmp(), 'dry');
    const dry = await ksp(['convert', canonical, out, '--to', 'native', '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    const { plan } = JSON.parse(dry.stdout);
    expect(plan.operations).toEqual([{ op: 'convert', to: 'native', format_version: 5, compression: 'snappy', checksum: 'xxh3', block_size: 16384, bloom_bits: 10, sst_size: 67108864 }]);
    expect(plan.files.map((f: { stored: string }) => f.stored)).toContain('incr/orders/task-0/sst/*.sst');
    expect(existsSync(out)).toBe(false);
    expect((await ksp(['convert', canonical, out, '--to', 'canonical', '--compression', 'zstd'])).code).toBe(2);
    expect((await ksp(['convert', canonical, out, '--to', 'native', '--block-size', 'big'])).code).toBe(2);
    expect((await ksp(['convert', canonical, out, '--to', 'native', '--format-version', '7'])).code).toBe(2);
    expect(existsSync(out)).toBe(false);
  });

  it('rescale then convert to native in one write (library)', async () => {
    const out = join(tmp(), 'rescaled');
    const r = await SavepointWriter.from(await Savepoint.open(native)).rescale(3, { routing: 'state-key' }).convert('native').write(out, { mode: 'relative' });
    expect(r.verify.ok).toBe(true);
    expect(r.native).toHaveLength(3);
    const lines = [0, 1, 2].flatMap((i) => ldbScanOfTask(out, out, 'windows', `task-${i}`));
    expect(lines.map((l) => entryOfScanLine(l)).map((e) => `${e.stateName}|${e.key}|${e.value}`).sort()).toEqual(nativeExpected.map((l) => entryOfScanLine(l)).map((e) => `${e.stateName}|${e.key}|${e.value}`).sort());
  });
});
