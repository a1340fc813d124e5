import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildManifest } from '../../src/formats/manifest/manifest.js';
import { fromPlain } from '../../src/formats/json/json-text.js';
import { MetadataDoc } from '../../src/formats/metadata/metadata.js';
import { encodeStateBinToBuffer } from '../../src/formats/state-bin/encoder.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';
import { dbFiles } from './support.js';

/**
 * A savepoint in the engine's layout whose tasks are RocksDB databases made
 * by real RocksDB, laid out as the engine's incremental checkpointer does
 * (src/formats/pointer/FORMAT.md and src/formats/sst-manifest/FORMAT.md): a pointer blob at the task's state.bin path, SSTs
 * under the job's shared incr/{op}/{task}/sst/, the other files and
 * sst_manifest.json under incr/{op}/{task}/epochs/{epoch:020}/.
 */

export type TaskSpec = { op: string; task: string } & ({ db: string } | { entries: StateEntry[] });

const pad = (n: number): string => String(n).padStart(20, '0');
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export async function nativeSavepoint(base: string, job: string, epoch: number, tasks: TaskSpec[]): Promise<string> {
  const dir = join(base, job, 'savepoints', pad(epoch));
  mkdirSync(dir, { recursive: true });
  const snaps = [];
  const hashes = [];
  for (const t of tasks) {
    const rel = `${t.op}/${t.task}/state.bin`;
    mkdirSync(join(dir, t.op, t.task), { recursive: true });
    let bytes: Uint8Array;
    if ('db' in t) {
      const incr = `${job}/incr/${t.op}/${t.task}`;
      const epochDir = `${incr}/epochs/${pad(epoch)}`;
      mkdirSync(join(base, incr, 'sst'), { recursive: true });
      mkdirSync(join(base, epochDir), { recursive: true });
      const sst = [];
      const meta = [];
      for (const f of dbFiles(t.db)) {
        const data = readFileSync(join(t.db, f));
        if (f.endsWith('.sst')) {
          copyFileSync(join(t.db, f), join(base, incr, 'sst', f));
          sst.push({ filename: f, size_bytes: data.length, sha256_hex: sha(data), storage_path: `${incr}/sst/${f}` });
        } else {
          copyFileSync(join(t.db, f), join(base, epochDir, f));
          meta.push({ filename: f, storage_path: `${epochDir}/${f}` });
        }
      }
      const manifestPath = `${epochDir}/sst_manifest.json`;
      writeFileSync(join(base, manifestPath), JSON.stringify({ epoch, sst_files: sst, meta_files: meta, manifest_storage_path: manifestPath }, null, 2));
      bytes = Buffer.from(`INCR-SST-V1|${manifestPath}`, 'ascii');
    } else {
      bytes = await encodeStateBinToBuffer(t.entries);
    }
    writeFileSync(join(dir, rel), bytes);
    hashes.push({ path: rel, sha256: sha(bytes) });
    snaps.push({ operator_id: t.op, task_id: t.task, snapshot_path: `${job}/checkpoints/${pad(epoch)}/${rel}` });
  }
  const md = MetadataDoc.fromJson(fromPlain({
    version: 3, epoch, job_id: job, fencing_token: 1, timestamp_ms: 1_700_000_000_000, source_offsets: [],
    operator_snapshots: snaps, is_savepoint: true, savepoint_label: 'native-test',
  })).encode();
  writeFileSync(join(dir, 'metadata.json'), md);
  hashes.push({ path: 'metadata.json', sha256: sha(md) });
  writeFileSync(join(dir, 'manifest.sha256'), buildManifest(hashes));
  return dir;
}

/** The engine's RocksDB key for an entry (src/formats/native-key/FORMAT.md), written out here independently of ksp. */
export function engineKey(op: string, state: string, key: Uint8Array): Buffer {
  const len = (n: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(n, 0);
    return b;
  };
  return Buffer.concat([len(Buffer.byteLength(op)), Buffer.from(op), len(Buffer.byteLength(state)), Buffer.from(state), Buffer.from(key)]);
}

/** A scan line `0xKEY : 0xVALUE` of an engine key, split back into an entry. */
export function entryOfScanLine(line: string): { operatorId: string; stateName: string; key: string; value: string } {
  const [k, v] = line.split(' : ').map((h) => Buffer.from(h.slice(2), 'hex'));
  const opLen = Number(k!.readBigUInt64LE(0));
  const op = k!.subarray(8, 8 + opLen).toString();
  const stLen = Number(k!.readBigUInt64LE(8 + opLen));
  const st = k!.subarray(16 + opLen, 16 + opLen + stLen).toString();
  return { operatorId: op, stateName: st, key: k!.subarray(16 + opLen + stLen).toString('hex'), value: v!.toString('hex') };
}

/**
 * The engine's restore of one native task, done here without ksp: pointer →
 * sst_manifest.json → every SST (SHA-256 checked) and meta file copied into
 * one directory under its file name. `root` resolves storage paths (the
 * savepoint directory in relative mode, the storage base in engine mode).
 */
export function restoreTask(root: string, stateBin: string, into: string): string[] {
  const pointer = readFileSync(stateBin, 'latin1');
  if (!pointer.startsWith('INCR-SST-V1|')) throw new Error(`${stateBin}: not a pointer blob`);
  const manifest = JSON.parse(readFileSync(join(root, pointer.slice('INCR-SST-V1|'.length)), 'utf8')) as {
    sst_files: Array<{ filename: string; size_bytes: number; sha256_hex: string; storage_path: string }>;
    meta_files: Array<{ filename: string; storage_path: string }>;
  };
  mkdirSync(into, { recursive: true });
  for (const f of manifest.sst_files) {
    const data = readFileSync(join(root, f.storage_path));
    if (data.length !== f.size_bytes || sha(data) !== f.sha256_hex) throw new Error(`${f.storage_path}: size or SHA-256 differs from sst_manifest.json`);
    writeFileSync(join(into, f.filename), data);
  }
  for (const f of manifest.meta_files) copyFileSync(join(root, f.storage_path), join(into, f.filename));
  return manifest.sst_files.map((f) => f.filename);
}
