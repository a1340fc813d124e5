/**
 * Generates the bundled fixtures under `fixtures/` (npm run fixtures).
 * Deterministic: fixed clock, seeded PRNG, so a rerun reproduces the same
 * bytes (a test checks that). Everything is written through ksp's own
 * codecs, so these fixtures test reading against writing; the engine's own
 * fixture in ../shared tests against the real engine.
 */
import { loadChecksums } from '../rocksdb/checksum.js';
import { encodeManifest, tableBytes } from '../rocksdb/db-writer.js';
import { ChecksumType } from '../rocksdb/checksum.js';
import { encodeNativeKey } from '../formats/native-key/native-key.js';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Packr } from 'msgpackr';
import { encodeStateBinToBuffer } from '../formats/state-bin/encoder.js';
import type { StateEntry } from '../formats/state-bin/decoder.js';
import { buildManifest } from '../formats/manifest/manifest.js';
import { MetadataDoc, epochDirName } from '../formats/metadata/metadata.js';
import { MetaDoc } from '../formats/meta/meta.js';
import { fromPlain } from '../formats/json/json-text.js';
import { encodePointer } from '../formats/pointer/pointer.js';
import { keyGroup, taskForKeyGroup } from '../model/key-group.js';
import { buildWindowJoinFixture } from './window-join-fixture.js';
import { prng } from './synthetic.js';

export const FIXTURE_JOB = 'shop';
export const FIXTURE_BUCKET = 'ksp-fixtures';
const T0 = 1760000000000n;


function i64(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(v);
  return b;
}

function windowKey(tag: 'tw:' | 'sw:' | 'ses:', group: string, tail: Buffer): Buffer {
  const g = Buffer.from(group, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(g.length);
  return Buffer.concat([Buffer.from(tag, 'latin1'), len, g, tail]);
}

interface OperatorSpec {
  id: string;
  tasks: StateEntry[][] | null[]; // null: a stateless task
}

/** Operators and their tasks; keyed state is placed on the task owning its key group, as the engine does. */
export function fixtureOperators(): OperatorSpec[] {
  const pack = new Packr({ useRecords: false });
  const rnd = prng(42);

  const orders: StateEntry[][] = [[], [], []];
  for (let i = 0; i < 60; i++) {
    const key = Buffer.from(`customer-${i}`, 'utf8');
    const value = pack.pack({ count: i + 1, sum: Math.round(rnd() * 100000) / 100, currency: 'EUR' });
    orders[taskForKeyGroup(keyGroup(key), 3)]!.push({ operatorId: 'orders-agg', stateName: 'totals', key, value });
  }
  for (let i = 0; i < 10; i++) {
    const key = Buffer.from(`customer-${i}`, 'utf8');
    orders[taskForKeyGroup(keyGroup(key), 3)]!.push({ operatorId: 'orders-agg', stateName: 'last-seen', key, value: i64(T0 - BigInt(i * 1000)) });
  }

  const windows: StateEntry[][] = [[], []];
  for (let u = 0; u < 20; u++) {
    const group = `user-${u}`;
    const t = windows[taskForKeyGroup(keyGroup(Buffer.from(group)), 2)]!;
    const start = i64(T0 - 60000n);
    t.push({ operatorId: 'windows', stateName: 'tumbling', key: windowKey('tw:', group, start), value: i64(BigInt(u * 3)) });
    t.push({ operatorId: 'windows', stateName: 'sliding', key: windowKey('sw:', group, start), value: i64(BigInt(u * 5)) });
    t.push({ operatorId: 'windows', stateName: 'session', key: windowKey('ses:', group, Buffer.concat([start, i64(T0)])), value: Buffer.from(JSON.stringify({ events: u + 1 })) });
  }
  // The watermark is broadcast: every task has its own.
  windows[0]!.push({ operatorId: 'windows', stateName: 'tumbling', key: Buffer.from('wm:'), value: i64(T0 - 5000n) });
  windows[1]!.push({ operatorId: 'windows', stateName: 'tumbling', key: Buffer.from('wm:'), value: i64(T0 - 7000n) });

  const binary: StateEntry[] = [];
  for (let i = 0; i < 24; i++) {
    const key = Buffer.from(Array.from({ length: 16 }, () => Math.floor(rnd() * 256)));
    const v = Buffer.alloc(8);
    if (i % 2 === 0) v.writeBigUInt64LE(BigInt(Math.floor(rnd() * 2 ** 32)) * 4294967296n);
    else v.writeDoubleLE(rnd() * 1000);
    binary.push({ operatorId: 'fraud-model', stateName: i % 2 === 0 ? 'bitmap' : 'score', key, value: v });
  }
  // Binary keys that are not UTF-8 at all, and an empty key and value.
  binary.push({ operatorId: 'fraud-model', stateName: 'bitmap', key: Buffer.from([0xff, 0xfe, 0x00, 0x01]), value: Buffer.alloc(0) });
  binary.push({ operatorId: 'fraud-model', stateName: 'bitmap', key: Buffer.alloc(0), value: Buffer.from([0x00]) });

  return [
    { id: 'orders-agg', tasks: orders },
    { id: 'windows', tasks: windows },
    { id: 'fraud', tasks: [binary] },
    { id: 'sink', tasks: [null, null] },
  ];
}

class Out {
  readonly files = new Map<string, Buffer>();
  put(rel: string, data: Buffer | Uint8Array): void {
    this.files.set(rel, Buffer.from(data));
  }
  /** Seals a directory: manifest over every file under it (not in sub-savepoints). */
  seal(dir: string, only?: (rel: string) => boolean): void {
    const entries = [];
    for (const [k, v] of this.files) {
      if (!k.startsWith(dir + '/')) continue;
      const rel = k.slice(dir.length + 1);
      if (only && !only(rel)) continue;
      entries.push({ path: rel, sha256: createHash('sha256').update(v).digest('hex') });
    }
    this.put(`${dir}/manifest.sha256`, buildManifest(entries));
  }
}

function metadata(epoch: bigint, snapshots: Array<{ operator_id: string; task_id: string; snapshot_path: string }>, savepoint: string | null): MetadataDoc {
  return MetadataDoc.fromJson(fromPlain({
    version: 3,
    epoch,
    job_id: FIXTURE_JOB,
    fencing_token: 3,
    coordinator_id: 'coordinator-a',
    timestamp_ms: T0 + epoch * 1000n,
    source_offsets: [
      { partition_id: 'orders-0', offset: 1234, encoded_offset: [210, 4, 0, 0, 0, 0, 0, 0] },
      { partition_id: 'orders-1', offset: -1 },
    ],
    operator_snapshots: snapshots,
    is_savepoint: savepoint !== null,
    savepoint_label: savepoint,
    // u64 above 2^53: must survive a read -> write round trip exactly.
    iceberg_snapshot_id: 18446744073709551557n,
    kafka_offsets: new Map([['orders-1', 99], ['orders-0', 1234]]),
    streaming_profile: 'low-latency',
    x_engine_build: 'fixture',
  }));
}

async function writeTasks(out: Out, dir: string, ops: OperatorSpec[], pathOf: (op: string, task: string) => string): Promise<Array<{ operator_id: string; task_id: string; snapshot_path: string }>> {
  const snaps = [];
  for (const op of ops) {
    for (let i = 0; i < op.tasks.length; i++) {
      const task = `task-${i}`;
      out.put(`${dir}/${op.id}/${task}/state.bin`, await encodeStateBinToBuffer(op.tasks[i] ?? null));
      snaps.push({ operator_id: op.id, task_id: task, snapshot_path: pathOf(op.id, task) });
    }
  }
  return snaps;
}

export async function buildFixtures(): Promise<Map<string, Buffer>> {
  const out = new Out();
  const ops = fixtureOperators();
  const job = FIXTURE_JOB;

  // 1. A storage base in the engine's layout: checkpoint 7, savepoint 7 with
  //    its engine record, checkpoint 8 without a manifest (incomplete).
  const e7 = 7n;
  const cp7 = `base/${job}/checkpoints/${epochDirName(e7)}`;
  const basePath = (epoch: bigint) => (op: string, task: string) => `${job}/checkpoints/${epochDirName(epoch)}/${op}/${task}/state.bin`;
  const snaps7 = await writeTasks(out, cp7, ops, basePath(e7));
  out.put(`${cp7}/metadata.json`, metadata(e7, snaps7, null).encode());
  out.seal(cp7);

  const sp7 = `base/${job}/savepoints/${epochDirName(e7)}`;
  await writeTasks(out, sp7, ops, basePath(e7));
  out.put(`${sp7}/metadata.json`, metadata(e7, snaps7, 'before-v2').encode());
  out.seal(sp7);
  const record = MetaDoc.fromJson(fromPlain({
    format_version: 1, savepoint_id: '5b1f3c7e-2d4a-4e8b-9c61-0a7d2e4f8b13', label: 'before-v2', job_id: job, epoch: e7,
    operator_versions: new Map([['orders-agg', 1], ['windows', 2], ['fraud', 1], ['sink', 1]]), created_at_secs: 1760000007,
  }));
  out.put(`base/${job}/savepoints/5b1f3c7e-2d4a-4e8b-9c61-0a7d2e4f8b13/meta.json`, record.encode());

  const cp8 = `base/${job}/checkpoints/${epochDirName(8n)}`;
  const snaps8 = await writeTasks(out, cp8, ops.slice(0, 1), basePath(8n));
  out.put(`${cp8}/metadata.json`, metadata(8n, snaps8, null).encode());

  // 2. Savepoint 9 reuses checkpoint 7's unchanged orders-agg files through
  //    base-relative paths outside its own directory (not self-contained).
  const sp9 = `base/${job}/savepoints/${epochDirName(9n)}`;
  const snaps9 = await writeTasks(out, sp9, ops.slice(1), basePath(9n));
  const reused = snaps7.filter((s) => s.operator_id === 'orders-agg');
  out.put(`${sp9}/metadata.json`, metadata(9n, [...reused, ...snaps9], 'reuses-epoch-7').encode());
  out.seal(sp9);

  // 3. ksp's relative mode: self-contained, paths relative to the directory.
  const rel = 'relative-savepoint';
  const snapsRel = await writeTasks(out, rel, ops, (op, task) => `${op}/${task}/state.bin`);
  out.put(`${rel}/metadata.json`, metadata(e7, snapsRel, 'portable').encode());
  out.put(`${rel}/meta.json`, MetaDoc.fromJson(fromPlain({
    format_version: 1, savepoint_id: '7', label: 'portable', job_id: job, epoch: e7,
    operator_versions: new Map([['orders-agg', 1], ['windows', 2], ['fraud', 1], ['sink', 1]]), created_at_secs: 1760000007,
    ksp: { version: 'fixture', mode: 'relative', source: 'fixtures/base', operations: [] },
  })).encode());
  out.seal(rel);

  // 4. Absolute paths: state files named by s3:// URIs in the fixture bucket
  //    (the tests upload fixtures/base there).
  const abs = 'absolute-paths';
  const snapsAbs = snaps7.map((s) => ({ ...s, snapshot_path: `s3://${FIXTURE_BUCKET}/${s.snapshot_path}` }));
  out.put(`${abs}/metadata.json`, metadata(e7, snapsAbs, 'absolute').encode());
  out.seal(abs);

  // 5. A task holding native RocksDB state: a pointer blob at its state.bin path.
  const nat = `native/${job}/savepoints/${epochDirName(e7)}`;
  const natSnaps = await writeTasks(out, nat, ops.slice(0, 1), basePath(e7));
  out.put(`${nat}/windows/task-0/state.bin`, encodePointer({ manifestPath: `${job}/incr/windows/task-0/epochs/${epochDirName(e7)}/sst_manifest.json` }));
  natSnaps.push({ operator_id: 'windows', task_id: 'task-0', snapshot_path: basePath(e7)('windows', 'task-0') });
  out.put(`${nat}/metadata.json`, metadata(e7, natSnaps, 'native').encode());
  out.seal(nat);
  // The files behind that pointer, in the engine's shared incr/ layout: a
  // RocksDB database (one table at the bottom level, CURRENT, MANIFEST) made
  // by ksp's table writer, which real RocksDB opens (the tests
  // check it with ldb); larger and stranger databases are made at test time
  // by RocksDB itself.
  const incr = `native/${job}/incr/windows/task-0`;
  await loadChecksums();
  const nativeEntries: Array<[Uint8Array, Uint8Array]> = [
    ...['key-a', 'key-b', 'key-c', 'key-d'].map((k, i): [Uint8Array, Uint8Array] => [encodeNativeKey('windows', 'tumbling', Buffer.from(`tw:${k}:${60_000 * (i + 1)}`)), Buffer.from([i + 1])]),
    [encodeNativeKey('windows', 'tumbling', Buffer.from('wm:')), i64(9000n)],
  ];
  nativeEntries.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
  // Tiny blocks, so even five entries span several data blocks; format_version
  // 5 and CRC32C so that RocksDB 7.8 (ldb) reads it; no compression and no
  // filter, so the bytes are the same on every run.
  const table = await tableBytes(nativeEntries, { formatVersion: 5, compression: 'none', checksum: ChecksumType.CRC32c, blockSize: 64, bloomBitsPerKey: 0, fileNumber: 12 });
  const sst = table.bytes;
  out.put(`${incr}/sst/000012.sst`, sst);
  out.put(`${incr}/epochs/${epochDirName(e7)}/CURRENT`, Buffer.from('MANIFEST-000005\n'));
  out.put(`${incr}/epochs/${epochDirName(e7)}/MANIFEST-000005`, encodeManifest([{ level: 6, number: 12, size: sst.length, smallest: table.info.smallest, largest: table.info.largest, smallestSeqno: 0n, largestSeqno: 0n }], 13));
  const stored = (rel: string) => `${job}/incr/windows/task-0/${rel}`;
  out.put(`${incr}/epochs/${epochDirName(e7)}/sst_manifest.json`, Buffer.from(JSON.stringify({
    epoch: 7,
    sst_files: [{ filename: '000012.sst', size_bytes: sst.length, sha256_hex: createHash('sha256').update(sst).digest('hex'), storage_path: stored('sst/000012.sst') }],
    meta_files: [
      { filename: 'CURRENT', storage_path: stored(`epochs/${epochDirName(e7)}/CURRENT`) },
      { filename: 'MANIFEST-000005', storage_path: stored(`epochs/${epochDirName(e7)}/MANIFEST-000005`) },
    ],
    manifest_storage_path: stored(`epochs/${epochDirName(e7)}/sst_manifest.json`),
  }, null, 2)));

  // 6. Window-join state (a JSON body), in its own folder: window-join-fixture.ts.
  for (const [k, v] of await buildWindowJoinFixture()) out.put(k, v);

  return out.files;
}

export async function writeFixtures(dir: string): Promise<number> {
  const files = await buildFixtures();
  for (const [rel, data] of files) {
    const p = path.join(dir, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, data);
  }
  return files.size;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2] ?? 'fixtures';
  for (const sub of ['base', 'relative-savepoint', 'absolute-paths', 'native', 'window-join']) fs.rmSync(path.join(dir, sub), { recursive: true, force: true });
  const n = await writeFixtures(dir);
  process.stdout.write(`wrote ${n} fixture files under ${dir}/\n`);
}
