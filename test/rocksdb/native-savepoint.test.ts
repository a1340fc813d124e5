import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { codecs } from '../../src/migrate/codecs.js';
import { defineMigrations } from '../../src/migrate/registry.js';
import { inspectSavepoint } from '../../src/model/inspect.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { ksp } from '../support/cli.js';
import { entry, multiset, rows, useTempDirs } from '../write/support.js';
import { nativeScan, nativeWrite } from './native-lib.js';
import { engineKey, entryOfScanLine, nativeSavepoint } from './native-savepoint.js';
import { createDb, ldb, loadPairs, requireLdb, scanHex } from './support.js';

/**
 * Whole native savepoints in the engine's layout, their tasks made by real
 * RocksDB (ldb 7.8 at format_version 5 with Snappy, and RocksDB 10.5 at
 * format_version 6 with XXH3, as the engine writes): inspect, verify,
 * convert, rescale and migrate them. Expected entries come from RocksDB's
 * own scans of the task databases.
 */

const tmp = useTempDirs();
let root: string;
let sp: string;
let expected: string[];
let base: string;

const windowKey = (i: number): Buffer => Buffer.from(`tw:user-${i % 37}:${1000 * (i % 5)}`);

afterAll(() => rmSync(root, { recursive: true, force: true }));
beforeAll(async () => {
  requireLdb();
  base = root = mkdtempSync(join(tmpdir(), 'ksp-native-sp-'));
  // Task 0: ldb, format_version 5, Snappy, two files plus WAL-only writes and deletes.
  const db0 = join(base, 'db0');
  createDb(db0, { formatVersion: 5, checksum: 'kXXH3', blockSize: 1024 });
  const p0: Array<[Buffer, Buffer]> = [];
  for (let i = 0; i < 400; i++) p0.push([engineKey('windows', 'tumbling', windowKey(i * 3 + 1)), Buffer.from(`count-${i}`)]);
  p0.push([engineKey('windows', 'tumbling', Buffer.from('wm:')), Buffer.from('2823000000000000', 'hex')]);
  loadPairs(db0, p0, { compression: 'snappy' });
  loadPairs(db0, p0.slice(0, 50).map(([k]) => [k, Buffer.from('overwritten')]), { compression: 'snappy' });
  ldb(db0, ['--hex', 'delete', `0x${p0[60]![0].toString('hex')}`]);
  ldb(db0, ['--hex', 'put', `0x${engineKey('windows', 'session', Buffer.from('ses:u1:5')).toString('hex')}`, '0x01']);
  ldb(db0, ['--hex', 'get', `0x${engineKey('windows', 'session', Buffer.from('ses:u1:5')).toString('hex')}`]);
  // Task 1: RocksDB 10.5, format_version 6 with XXH3; part of it only in the WAL.
  const db1 = join(base, 'db1');
  const ops = [];
  for (let i = 0; i < 500; i++) ops.push({ put: [engineKey('windows', 'tumbling', windowKey(i * 3 + 2)).toString('hex'), Buffer.from(`n-${i}`).toString('hex')] as [string, string] });
  ops.push({ flush: true as const });
  ops.push({ put: [engineKey('windows', 'tumbling', Buffer.from('wm:')).toString('hex'), '1027000000000000'] as [string, string] });
  nativeWrite(db1, ops, { tableFormatVersion: 6, tableBlockSize: 2048 });

  sp = await nativeSavepoint(join(base, 'store'), 'shop', 9, [
    { op: 'windows', task: 'task-0', db: db0 },
    { op: 'windows', task: 'task-1', db: db1 },
    { op: 'orders', task: 'task-0', entries: [entry('orders', 'count', 'k1', 'v1'), entry('orders', 'count', 'k2', 'v2')] },
  ]);
  expected = [...scanHex(db0), ...nativeScan(db1)].map((l) => {
    const e = entryOfScanLine(l);
    return `windows|${e.operatorId}|${e.stateName}|${e.key}|${e.value}`;
  });
});

const nativeRows = async (uri: string): Promise<string[]> => multiset(await rows(uri, 'windows'));

describe('a native savepoint in the engine layout', () => {
  it('reads the same entries RocksDB lists, task by task', async () => {
    expect(await nativeRows(sp)).toEqual([...expected].sort());
    expect(expected.length).toBeGreaterThan(300);
  });

  it('inspect reports format, SSTs, format_version, compression and checksums per task', async () => {
    const s = await inspectSavepoint(sp);
    const tasks = s.operators.find((o) => o.id === 'windows')!.tasks;
    expect(tasks.map((t) => t.format)).toEqual(['native', 'native']);
    expect(tasks[0]!.native).toMatchObject({ formatVersions: [5], compressions: ['snappy'], checksums: ['xxh3'], wals: 1 });
    expect(tasks[1]!.native).toMatchObject({ formatVersions: [6], checksums: ['xxh3'] });
    expect(tasks[0]!.native!.sstFiles).toBeGreaterThan(0);
    expect(s.totals.entries).toBe(expected.length + 2);
    expect(tasks[0]!.states.map((x) => x.name).sort()).toEqual(['session', 'tumbling']);
  });

  it('verify decodes native tasks, checks SST hashes and every block checksum', async () => {
    const r = await verifySavepoint(sp);
    expect(r.findings.filter((f) => f.severity !== 'info')).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.totals.entries).toBe(expected.length + 2);
    expect(r.tasks.find((t) => t.task === 'task-1' && t.operator === 'windows')!.native!.metaBlocksChecked).toBeGreaterThan(0);
  });

  it('verify names a tampered SST (hash)', async () => {
    const copy = tmp();
    await ksp(['relocate', sp, join(copy, 'sp'), '--mode', 'relative']);
    const sstDir = join(copy, 'sp', 'incr', 'windows', 'task-0', 'sst');
    const sst = readdirSync(sstDir)[0]!;
    const f = join(sstDir, sst);
    const b = readFileSync(f);
    b[5]! ^= 1;
    writeFileSync(f, b);
    const r = await verifySavepoint(join(copy, 'sp'));
    expect(r.ok).toBe(false);
    expect(r.findings).toContainEqual(expect.objectContaining({ severity: 'error', code: 'NATIVE_SST_HASH', message: expect.stringContaining(sst) }));
    expect(r.findings).toContainEqual(expect.objectContaining({ severity: 'error', code: 'HASH_MISMATCH', file: expect.stringContaining(sst) }));
  });

  it('relocate holds a WAL, which sst_manifest.json gives no hash for, to the source manifest as it copies it', async () => {
    const copy = join(tmp(), 'sp');
    expect((await ksp(['relocate', sp, copy, '--mode', 'relative'])).code).toBe(0);
    const walDir = readdirSync(join(copy, 'incr', 'windows', 'task-0', 'epochs')).map((e) => join(copy, 'incr', 'windows', 'task-0', 'epochs', e));
    const wal = walDir.flatMap((d) => readdirSync(d).filter((n) => n.endsWith('.log')).map((n) => join(d, n)))[0];
    expect(wal, 'task 0 keeps WAL-only writes').toBeDefined();
    writeFileSync(wal!, Buffer.concat([readFileSync(wal!), Buffer.alloc(4096)]));
    const out = join(tmp(), 'out');
    const r = await ksp(['relocate', copy, out, '--mode', 'relative']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('HASH_MISMATCH');
    expect(r.stderr).toContain(wal!);
    expect(readdirSync(tmp()).includes('out') && readdirSync(out).includes('manifest.sha256')).toBe(false);
  });

  it('convert --to canonical: every task a state.bin holding the same entries, verified, self-contained', async () => {
    const out = join(tmp(), 'canonical');
    const report = await SavepointWriter.from(await Savepoint.open(sp)).convert('canonical').write(out, { mode: 'relative' });
    expect(report.verify.ok).toBe(true);
    const s = await inspectSavepoint(out);
    expect(s.operators.flatMap((o) => o.tasks.map((t) => t.format))).toEqual(['canonical', 'canonical', 'canonical']);
    expect(await nativeRows(out)).toEqual([...expected].sort());
    expect(multiset(await rows(out, 'orders'))).toEqual(multiset(await rows(sp, 'orders')));
    // Canonical tasks are copied byte for byte.
    expect(readFileSync(join(out, 'orders', 'task-0', 'state.bin'))).toEqual(readFileSync(join(sp, 'orders', 'task-0', 'state.bin')));
    // Entries keep RocksDB's key order within each task.
    const t0 = (await rows(out, 'windows')).filter((r) => r.task === 'task-0');
    const keys = t0.map((r) => Buffer.concat([engineKey(r.entryOperator, r.state, Buffer.from(r.key, 'hex'))]));
    expect(keys.every((k, i) => i === 0 || Buffer.compare(keys[i - 1]!, k) < 0)).toBe(true);
  });

  it('the CLI: convert --dry-run plans, convert writes, and the result verifies', async () => {
    const out = join(tmp(), 'cli');
    const dry = await ksp(['convert', sp, out, '--to', 'canonical', '--dry-run', '--json']);
    expect(dry.code).toBe(0);
    const { plan } = JSON.parse(dry.stdout);
    expect(plan.files.filter((f: { transform?: string }) => f.transform?.includes('native RocksDB → canonical'))).toHaveLength(2);
    const r = await ksp(['convert', sp, out, '--to', 'canonical', '--mode', 'relative']);
    expect(r.code).toBe(0);
    expect((await ksp(['verify', out])).code).toBe(0);
  });

  it('rescale and migrate accept native sources; their output is canonical', async () => {
    const rescaled = join(tmp(), 'rescaled');
    const r = await SavepointWriter.from(await Savepoint.open(sp)).rescale(3, { operators: ['windows'], routing: 'state-key' }).write(rescaled, { mode: 'relative' });
    expect(r.verify.ok).toBe(true);
    expect((await rows(rescaled, 'windows')).map((x) => x.task).filter((t, i, a) => a.indexOf(t) === i).sort()).toEqual(['task-0', 'task-1', 'task-2']);
    // Watermarks are broadcast and merged to the minimum; every other entry keeps its value.
    const withoutWm = (xs: string[]): string[] => xs.filter((x) => !x.includes(`|${Buffer.from('wm:').toString('hex')}|`));
    expect(withoutWm(await nativeRows(rescaled))).toEqual(withoutWm([...expected].sort()));

    const reg = defineMigrations((m) => m.value('windows', 1, 2, codecs.utf8, codecs.utf8, (v) => `v2:${v}`, { states: ['session'] }));
    const migrated = join(tmp(), 'migrated');
    const m = await SavepointWriter.from(await Savepoint.open(sp)).migrate(reg).write(migrated, { mode: 'relative' });
    expect(m.verify.ok).toBe(true);
    const session = (await rows(migrated, 'windows')).filter((x) => x.state === 'session');
    expect(session.map((x) => Buffer.from(x.value, 'hex').toString())).toEqual(['v2:\u0001']);
  });

  it('edit renames a native operator (output canonical) and removes one', async () => {
    const out = join(tmp(), 'renamed');
    const r = await SavepointWriter.from(await Savepoint.open(sp)).renameOperator('windows', 'win2').write(out, { mode: 'relative' });
    expect(r.verify.ok).toBe(true);
    const s = await inspectSavepoint(out);
    expect(s.operators.map((o) => o.id)).toEqual(['win2', 'orders']);
    expect(s.operators[0]!.states.every((x) => x.entryOperator === 'win2')).toBe(true);
  });
});
