/**
 * The bench's inputs: the canonical savepoint (src/tools/synthetic.ts: one
 * operator, 16-byte keys, ~100-byte msgpack values over `tasks` tasks) and
 * the same entries as native state, one RocksDB database per task made by
 * real RocksDB (`ldb load`) with the engine's table settings. Kept between
 * runs with `--keep`, so `--only row` runs start measuring at once.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { copyFileSync, cpSync, createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { buildManifest } from '../formats/manifest/manifest.js';
import { MetadataDoc, epochDirName } from '../formats/metadata/metadata.js';
import { fromPlain } from '../formats/json/json-text.js';
import { encodeNativeKey } from '../formats/native-key/native-key.js';
import { encodePointer } from '../formats/pointer/pointer.js';
import { decodeStateBin } from '../formats/state-bin/decoder.js';
import { writeSyntheticSavepoint } from './synthetic.js';

export const OPERATOR = 'op-bench';
const EPOCH = epochDirName(1n);

export interface CanonicalInput {
  /** The savepoint directory. */
  sp: string;
  /** Its state.bin files, task order. */
  stateFiles: string[];
  /** Every file of the savepoint (what `openssl dgst` hashes). */
  files: string[];
  bytes: number;
}

export interface NativeInput {
  sp: string;
  /** One RocksDB database per task, as ldb made it (what `ldb dump` reads, on copies). */
  dbs: string[];
  sstBytes: number;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** The canonical savepoint under `dir`, made now or reused from a finished earlier run (a `.done` stamp). */
export async function canonicalInput(dir: string, entries: number, tasks: number, log: (s: string) => void): Promise<CanonicalInput> {
  const sp = join(dir, 'bench', 'savepoints', EPOCH);
  const stamp = join(dir, 'canonical.done');
  if (!existsSync(stamp)) {
    rmSync(join(dir, 'bench'), { recursive: true, force: true });
    const t0 = Date.now();
    const r = await writeSyntheticSavepoint(dir, { job: 'bench', operator: OPERATOR, entries, tasks, fill: (pool) => void randomFillSync(pool) });
    log(`generated the canonical savepoint: ${(r.bytes / 1e6).toFixed(0)} MB of state.bin in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    writeFileSync(stamp, '');
  } else {
    log('reusing the canonical savepoint of an earlier --keep run');
  }
  const stateFiles = Array.from({ length: tasks }, (_, t) => join(sp, OPERATOR, `task-${t}`, 'state.bin'));
  const bytes = stateFiles.reduce((n, f) => n + statSync(f).size, 0);
  return { sp, stateFiles, files: filesUnder(sp), bytes };
}

/** ldb's command line for a database with the engine's table settings (rocksdb_backend.rs, production_options: 16 KiB blocks, Bloom 10; RocksDB's default fv5 + Snappy). */
const LDB_TABLE = ['--compression_type=snappy', '--block_size=16384', '--bloom_bits=10'];

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** Loads one task's canonical entries into a new database through `ldb load` (hex text on stdin). */
async function loadTask(db: string, stateFile: string): Promise<void> {
  rmSync(db, { recursive: true, force: true });
  mkdirSync(dirname(db), { recursive: true });
  const created = spawnSync('ldb', [`--db=${db}`, '--create_if_missing', 'load', '--disable_wal'], { input: '' });
  if (created.error || created.status !== 0) throw new Error(`ldb could not create ${db} (is rocksdb-tools installed?): ${created.stderr?.toString() ?? created.error}`);
  // format_version lives only in the OPTIONS file (ldb has no flag); pin it to 5.
  const opts = readdirSync(db).filter((f) => f.startsWith('OPTIONS-')).sort().at(-1);
  if (opts) {
    const p = join(db, opts);
    writeFileSync(p, readFileSync(p, 'utf8').replace(/^(\s*)format_version=\d+$/m, '$1format_version=5'));
  }
  const ldb = spawn('ldb', [`--db=${db}`, '--hex', ...LDB_TABLE, 'load', '--disable_wal', '--bulk_load', '--compact'], { stdio: ['pipe', 'ignore', 'inherit'] });
  const done = new Promise<number>((res) => ldb.on('close', (code) => res(code ?? 1)));
  const prefixes = new Map<string, string>();
  const d = decodeStateBin(createReadStream(stateFile, { highWaterMark: 1 << 20 }), { size: statSync(stateFile).size, file: stateFile });
  for await (const batch of d.batches()) {
    let text = '';
    for (const e of batch) {
      const id = `${e.operatorId}\0${e.stateName}`;
      let prefix = prefixes.get(id);
      if (prefix === undefined) {
        prefix = encodeNativeKey(e.operatorId, e.stateName, Buffer.alloc(0)).toString('hex');
        prefixes.set(id, prefix);
      }
      text += `0x${prefix}${hex(e.key)} ==> 0x${hex(e.value)}\n`;
    }
    if (!ldb.stdin.write(text)) await new Promise((r) => ldb.stdin.once('drain', r));
  }
  ldb.stdin.end();
  if ((await done) !== 0) throw new Error(`ldb load into ${db} failed`);
}

/**
 * The canonical savepoint's entries as a native savepoint in the engine's
 * layout: one database per task loaded by RocksDB itself, its SSTs and
 * meta files under `{job}/incr/{op}/task-N`, a pointer state.bin per task.
 */
export async function nativeInput(dir: string, canonical: CanonicalInput, log: (s: string) => void): Promise<NativeInput> {
  const job = 'native';
  const tasks = canonical.stateFiles.length;
  const dbs = Array.from({ length: tasks }, (_, t) => join(dir, 'rocksdb', `task-${t}`));
  const sp = join(dir, job, 'savepoints', EPOCH);
  const stamp = join(dir, 'native.done');
  if (existsSync(stamp)) {
    log('reusing the native savepoint of an earlier --keep run');
  } else {
    rmSync(join(dir, 'rocksdb'), { recursive: true, force: true });
    rmSync(join(dir, job), { recursive: true, force: true });
    const t0 = Date.now();
    // Two loads at a time: ldb load is single-threaded and this machine kind has 2 cores.
    for (let t = 0; t < tasks; t += 2) await Promise.all(dbs.slice(t, t + 2).map((db, i) => loadTask(db, canonical.stateFiles[t + i]!)));
    const snaps = [];
    const manifest = [];
    for (let t = 0; t < tasks; t++) {
      const incr = `${job}/incr/${OPERATOR}/task-${t}`;
      mkdirSync(join(dir, incr, 'sst'), { recursive: true });
      mkdirSync(join(dir, incr, 'epochs', EPOCH), { recursive: true });
      const sst = [];
      const meta = [];
      for (const f of readdirSync(dbs[t]!).sort()) {
        const from = join(dbs[t]!, f);
        if (f.endsWith('.sst')) {
          const to = `${incr}/sst/${f}`;
          copyFileSync(from, join(dir, to));
          const hash = createHash('sha256');
          for await (const c of createReadStream(from)) hash.update(c as Buffer);
          sst.push({ filename: f, size_bytes: statSync(from).size, sha256_hex: hash.digest('hex'), storage_path: to });
        } else if (/^(CURRENT|MANIFEST-\d+|\d+\.log)$/.test(f)) {
          const to = `${incr}/epochs/${EPOCH}/${f}`;
          copyFileSync(from, join(dir, to));
          meta.push({ filename: f, storage_path: to });
        }
      }
      const manifestPath = `${incr}/epochs/${EPOCH}/sst_manifest.json`;
      writeFileSync(join(dir, manifestPath), JSON.stringify({ epoch: 1, sst_files: sst, meta_files: meta, manifest_storage_path: manifestPath }));
      const pointer = encodePointer({ manifestPath });
      const rel = `${OPERATOR}/task-${t}/state.bin`;
      mkdirSync(join(sp, OPERATOR, `task-${t}`), { recursive: true });
      writeFileSync(join(sp, rel), pointer);
      manifest.push({ path: rel, sha256: createHash('sha256').update(pointer).digest('hex') });
      snaps.push({ operator_id: OPERATOR, task_id: `task-${t}`, snapshot_path: `${job}/checkpoints/${EPOCH}/${rel}` });
    }
    const md = MetadataDoc.fromJson(fromPlain({
      version: 3, epoch: 1, job_id: job, fencing_token: 1, timestamp_ms: 1760000000000, source_offsets: [],
      operator_snapshots: snaps, is_savepoint: true, savepoint_label: 'bench-native',
    })).encode();
    writeFileSync(join(sp, 'metadata.json'), md);
    manifest.push({ path: 'metadata.json', sha256: createHash('sha256').update(md).digest('hex') });
    writeFileSync(join(sp, 'manifest.sha256'), buildManifest(manifest));
    log(`generated the native savepoint: ${tasks} databases by ldb load (format_version 5, Snappy, 16 KiB blocks, Bloom 10, compacted) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    writeFileSync(stamp, '');
  }
  const sstBytes = dbs.reduce((n, db) => n + readdirSync(db).filter((f) => f.endsWith('.sst')).reduce((m, f) => m + statSync(join(db, f)).size, 0), 0);
  return { sp, dbs, sstBytes };
}

/** Copies of the databases for `ldb dump` (opening a database writes to it; the originals stay as the savepoint's source). */
export function ldbCopies(dir: string, dbs: string[]): string[] {
  return dbs.map((db, t) => {
    const copy = join(dir, 'rocksdb-copy', `task-${t}`);
    rmSync(copy, { recursive: true, force: true });
    cpSync(db, copy, { recursive: true });
    return copy;
  });
}
