import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as nodePath from 'node:path';
import { KspError } from '../../errors.js';
import { MANIFEST_NAME } from '../../formats/manifest/manifest.js';
import type { Routing } from '../../model/routing.js';
import { LocalStorage } from '../../storage/local.js';
import { S3Storage } from '../../storage/s3.js';
import { parentKey } from '../../storage/paths.js';
import { child, locate, uriOf, type Location } from '../../storage/uri.js';
import type { WritePlan } from '../plan.js';
import type { MigrationSpec } from '../units.js';
import type { NativeWriteOptions } from '../native-output.js';
import type { NativeFileRef } from '../../model/native-read.js';
import type { Finding } from '../../model/verify.js';
import type { CollisionPolicy } from '../spill.js';
import { within } from '../target.js';

/**
 * The on-target files of a distributed run (FORMAT.md beside this file):
 * the plan, the per-unit records and the run files, all under `_ksp/`, as
 * plain JSON and bytes. Everything here is read back from storage a shard
 * does not trust blindly: the plan is shape-checked, and every location it
 * names for writing must lie inside the target directory.
 */

export const RESERVED = '_ksp';
export const PLAN_FORMAT = 'ksp-distributed-plan';
export const PLAN_VERSION = 1;

export interface SourceSpec {
  uri: string;
  operatorId: string;
  taskId: string;
  sha256?: string;
  size?: number;
  /** A native task: its RocksDB files, resolved at plan time (each SST checked against its sst_manifest.json as read). */
  native?: NativeFileRef[];
  ttlPrefix?: 'strip' | 'keep';
}

/**
 * A job's entry map as plain data (write/jobs.ts `RewriteSpec` without its
 * counters): the migrations, loaded again on each shard from their modules
 * (pinned by `modules`), then the renames (entry-map.ts `loadEntryMap`).
 */
export interface MapSpec {
  migrations: MigrationSpec[];
  renames: Array<[string, string]>;
}

/**
 * How a task's rewrite treats keys, as the one-process job says
 * (write/jobs.ts, `rewrite`): `keyChange`, new keys may collide (a spill
 * tracks them and `onCollision` decides); `keysKept`, every key stays as it
 * was (a native source then streams into tables in key order).
 */
export interface KeyRules {
  keyChange?: boolean;
  keysKept?: boolean;
  onCollision?: CollisionPolicy;
}

/** Native output: the options and the output epoch (decimal), which names the epoch folder and goes into sst_manifest.json. */
export interface NativeOut {
  options: NativeWriteOptions;
  epoch: string;
  /** Engine mode (see `NativeUnitSpec.firstTable`). */
  firstTable?: number;
}

/**
 * Engine mode's folder of one task's native files, shared by every epoch
 * of the job (write/target.ts `nativeFile`): `{base}/{job}/incr/{op}/{task}`,
 * derived from the target directory `{base}/{job}/savepoints/{id}` alone,
 * never named by the plan; `stored` is its path as sst_manifest.json and
 * the pointer name it (`{job}/incr/{op}/{task}`). Null when the target is
 * not in the engine's layout.
 */
export function engineIncr(dir: Location, op: string, task: string): { location: Location; stored: string } | null {
  const savepoints = parentKey(dir.key);
  if (savepoints.slice(savepoints.lastIndexOf('/') + 1) !== 'savepoints' || !savepoints.includes('/')) return null;
  const jobKey = parentKey(savepoints);
  const job = jobKey.slice(jobKey.lastIndexOf('/') + 1);
  if (!job || [job, op, task].some((c) => c === '.' || c === '..' || c.includes('/'))) return null;
  const base = { storage: dir.storage, key: parentKey(jobKey) };
  const stored = `${job}/incr/${op}/${task}`;
  return { location: child(base, stored), stored };
}

interface UnitBase {
  id: string;
  /** 0: runs at once; 1: once the units it reads are done; 2: once every unit of phases 0 and 1 is done. */
  phase: 0 | 1 | 2;
}

export interface CopyUnit extends UnitBase {
  kind: 'copy';
  from: string;
  to: string;
  /** Manifest path (relative to the target directory), or null for a file outside it. */
  rel: string | null;
  sha256?: string;
  size?: number;
}

/** The map side of a rescale's shuffle: one source task routed into one run file of segments. */
export interface RouteUnitSpec extends UnitBase {
  kind: 'route';
  operator: string;
  /** Position of this source in the operator's source order (metadata order). */
  index: number;
  source: SourceSpec;
  /**
   * `moved`: a key migration at unchanged parallelism (write/repartition.ts):
   * the outputs are the source tasks, and an entry moves only when its key
   * changed, from its old key's owner to its new key's owner.
   */
  routing: Routing | 'moved';
  /** Output index of each key-group range (`rangeOwnersByName` of the new task ids). */
  owners: number[];
  run: string;
  /** Entries are mapped before they are routed (by their new key), as `repartition` maps them. */
  map?: MapSpec;
  /** Keys change: each segment's entries' indices in the source go to the run too (index segments), for collision messages. */
  keyChange?: boolean;
}

/** The reduce side: one new task from segment `output` of every route unit of its operator. */
export interface MergeUnitSpec extends UnitBase {
  kind: 'merge';
  operator: string;
  output: number;
  outOperator: string;
  outTask: string;
  to: string;
  rel: string | null;
  /** Route unit ids, in source order. */
  routes: string[];
  /** Source task ids, in the same order (for messages). */
  sourceTasks: string[];
  /** Keys changed: the task's entries go through a spill that finds collisions, resolved by `onCollision`. */
  keyChange?: boolean;
  onCollision?: CollisionPolicy;
  /** Written as a RocksDB database (relative mode): the pointer at `to`, its files under `incr/{op}/{task}/`. */
  native?: NativeOut;
}

/**
 * One task through its entry map into a state.bin. With a native source,
 * or keys that change, it runs as the one-process write's `rewriteTask`
 * (write/execute.ts) runs it: through a spill.
 */
export interface RewriteUnitSpec extends UnitBase, KeyRules {
  kind: 'rewrite';
  source: SourceSpec;
  to: string;
  rel: string | null;
  outOperator: string;
  outTask: string;
  migrations: MigrationSpec[];
  renames: Array<[string, string]>;
}

/**
 * One canonical task written as a RocksDB database in the engine's
 * incremental layout (write/native-output.ts `writeNativeTask`), relative
 * mode: the pointer at `to`, the tables, MANIFEST, CURRENT and
 * sst_manifest.json under `incr/{op}/{task}/` of the target.
 */
export interface NativeUnitSpec extends UnitBase, KeyRules {
  kind: 'native';
  /** The entries' map (a migration or rename), if any; the source may be native. */
  map?: MapSpec;
  source: SourceSpec;
  to: string;
  rel: string;
  outOperator: string;
  outTask: string;
  /** The output epoch (decimal), which names the epoch folder and goes into sst_manifest.json. */
  epoch: string;
  options: NativeWriteOptions;
  /**
   * Engine mode: the tables and the epoch's files go to the job's shared
   * folder (`engineIncr`), outside the target, the tables numbered from
   * `firstTable`, chosen at plan time above every table already there
   * (write/native-names.ts), so every run of the unit writes the same names.
   */
  firstTable?: number;
}

/**
 * One native (RocksDB) task kept native, in relative mode (relocate, and
 * edit renames/removes that leave it as it is), as the one-process write
 * copies it (write/execute.ts `copyNative`): each table and meta file
 * copied byte for byte, each SST checked against the SHA-256 its source
 * sst_manifest.json records, then the rewritten sst_manifest.json and the
 * INCR-SST-V1 pointer, whose bytes were computed at plan time (they are
 * small, and the same on every shard). The pointer is `to`.
 */
export interface NativeCopyUnitSpec extends UnitBase {
  kind: 'native-copy';
  outOperator: string;
  outTask: string;
  /** The pointer (the output task's file) and its manifest path. */
  to: string;
  rel: string;
  /** The files of the task's RocksDB directory, copied in this order. */
  files: NativeCopyFile[];
  /** The rewritten sst_manifest.json: where, and its bytes (base64). */
  manifest: { to: string; rel: string | null; bytes: string };
  /** The pointer's bytes (base64). */
  pointer: string;
}

export interface NativeCopyFile {
  filename: string;
  from: string;
  to: string;
  /** Null for a file outside the target (engine mode's shared incr/ folder). */
  rel: string | null;
  /** From the source sst_manifest.json (SST files only): checked as the file is copied. */
  sha256?: string;
  /** The source manifest.sha256's hash, for files sst_manifest.json gives none (MANIFEST, WAL, OPTIONS): checked as the file is copied. */
  listed?: string;
  size?: number;
}

/**
 * One native task as a canonical state.bin (convert --to canonical), as the
 * one-process convert writes it: `write/native-canonical.ts
 * convertNativeTask` when the tables state the live count, else the
 * entries through a local spill (the count is known only at the end).
 */
export interface CanonicalUnitSpec extends UnitBase {
  kind: 'canonical';
  source: SourceSpec;
  to: string;
  rel: string | null;
  outOperator: string;
  outTask: string;
}

/**
 * Share `index` of `count` of the output's verification (phase 2): once
 * every output is written, metadata.json and meta.json from the plan, then
 * `ksp verify`'s pass over the files whose path hashes to this share
 * (seal.ts `verifyShardOf`), against the manifest the records add up to. The
 * commit then checks only what is left (metadata, coverage, identity).
 */
export interface VerifyUnitSpec extends UnitBase {
  kind: 'verify';
  index: number;
  count: number;
}

/**
 * A distributed `ksp verify` of the source itself (a plan whose command is
 * `verify`, in a work folder): verify's pass over the share `index` of
 * `count` of the source's files; its findings go into its record, and
 * commit merges them.
 */
export interface CheckUnitSpec extends UnitBase {
  kind: 'check';
  index: number;
  count: number;
}

/**
 * One part of a sharded `inspect --out` (a plan whose command is `inspect`):
 * the entries of `tasks` (a contiguous run of the source's tasks in
 * metadata order) exported to one part file, `to`, with the export options
 * of `spec` (export-plan.ts, FORMAT.md).
 */
export interface ExportUnitSpec extends UnitBase {
  kind: 'export';
  part: number;
  parts: number;
  to: string;
  rel: string;
  tasks: ExportTaskSpec[];
  spec: ExportSpec;
}

export interface ExportTaskSpec {
  /** Position in metadata.operator_snapshots (TaskRef.index). */
  index: number;
  operatorId: string;
  taskId: string;
  uri: string;
  size?: number;
}

/** What every part is exported with: the one-process `inspect --out` options. */
export interface ExportSpec {
  /** The plan's source directory and read roots (checkPlan holds them equal to the plan's). */
  savepoint: string;
  roots: string[];
  /** The source's metadata.json SHA-256: a unit refuses a source whose metadata differs. */
  metadataSha256: string;
  trustSource: boolean;
  format: 'parquet' | 'arrow' | 'arrows' | 'jsonl';
  compression: 'zstd' | 'snappy' | 'gzip' | 'lz4' | 'none';
  keyCodec?: string;
  valueCodec?: string;
  operator?: string;
  state?: string;
  keyHex?: string;
  keyPrefixHex?: string;
}

export type DistUnit = CopyUnit | RouteUnitSpec | MergeUnitSpec | RewriteUnitSpec | NativeUnitSpec | NativeCopyUnitSpec | CanonicalUnitSpec | VerifyUnitSpec | CheckUnitSpec | ExportUnitSpec;

/** Every file a unit reads from the source. */
export function unitReads(u: DistUnit): string[] {
  if (u.kind === 'copy') return [u.from];
  if (u.kind === 'native-copy') return u.files.map((f) => f.from);
  if (u.kind === 'merge' || u.kind === 'verify' || u.kind === 'check') return [];
  if (u.kind === 'export') return u.tasks.map((t) => t.uri);
  return [u.source.uri, ...(u.source.native?.map((f) => f.uri) ?? [])];
}

export interface DistributedPlan {
  format: typeof PLAN_FORMAT;
  version: typeof PLAN_VERSION;
  ksp: string;
  created: string;
  command: string;
  options: Record<string, unknown>;
  /** `roots`: where the source may be read from (its directory, its storage base, --allow-root): every unit's reads must lie under one. */
  source: { uri: string; manifestSha256: string | null; roots: string[] };
  target: { uri: string; mode: string };
  metadata: string;
  meta: { uri: string; rel: string | null; text: string };
  /** SHA-256 of each migrations module rewrite units load (every shard must load the same code). */
  modules?: Record<string, string>;
  /** Units whose output tasks are routed here (their placement must verify). */
  routedTasks: string[];
  units: DistUnit[];
  plan: WritePlan;
}

export interface OutputRecord {
  uri: string;
  rel: string | null;
  sha256: string;
  size: number;
}

export interface Segment {
  offset: number;
  bytes: number;
  count: number;
  sha256: string;
}

/** The completion record: written last, after every output of the unit is stored. */
export interface DoneRecord {
  unit: string;
  kind: DistUnit['kind'];
  outputs: OutputRecord[];
  /** Entries of the written task (merge, rewrite). */
  entries?: number;
  /** Route units: one segment per new task, then the broadcast one. */
  segments?: Segment[];
  broadcast?: Segment;
  /** Route units whose keys change: per new task, its entries' indices in the source (u32 LE each). */
  indices?: Segment[];
  /** Merge units: broadcast entries appended, and duplicates merged. */
  broadcastDistinct?: number;
  broadcastMerged?: number;
  steps?: Array<{ transformed: number; passed: number }>;
  /** Entries dropped by the collision rule (`--on-collision`), and the keys that had more than one. */
  collisions?: { dropped: number; keys: number };
  /** Verify units: what their share of the verification read, and its warnings. */
  verified?: { files: number; bytes: number; entries: number; warnings: Array<{ code: string; message: string }> };
  /** Check units: every finding of their share (errors included: finding them is the unit's work). */
  findings?: Finding[];
  /** Export units: the rows of the part, and the values its codecs could not decode (null in the part). */
  exported?: { format: string; rows: number; keyFailures: number; valueFailures: number };
  read: number;
  shard: string;
  host: string;
  pid: number;
  seconds: number;
  finished: string;
}

export interface StartedRecord {
  unit: string;
  shard: string;
  host: string;
  pid: number;
  started: string;
  /** Rewritten while the unit runs; a record older than a few heartbeats is stale. */
  heartbeat: string;
}

export interface FailedRecord {
  unit: string;
  shard: string;
  host: string;
  pid: number;
  failed: string;
  error: { code: string; message: string };
}

export const planLocation = (dir: Location): Location => child(dir, RESERVED, 'plan.json');
export const unitsFolder = (dir: Location): Location => child(dir, RESERVED, 'units');
export const recordLocation = (dir: Location, id: string, what: 'started' | 'done' | 'failed'): Location => child(dir, RESERVED, 'units', `${id}.${what}.json`);
export const runLocation = (dir: Location, id: string): Location => child(dir, RESERVED, 'runs', `${id}.bin`);

export function encodeJson(v: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(v, null, 2) + '\n', 'utf8');
}

export function sha256Hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/**
 * The SHA-256 of the source's manifest.sha256 bytes, or null when it has
 * none (a source used with --trust-source): what the plan pins.
 */
export async function sourceManifestHash(sourceDir: Location): Promise<string | null> {
  const m = child(sourceDir, MANIFEST_NAME);
  if (!(await m.storage.stat(m.key))) return null;
  return sha256Hex(await m.storage.readSmall(m.key));
}

export async function checkSourcePinned(plan: DistributedPlan): Promise<void> {
  const found = await sourceManifestHash(locate(plan.source.uri));
  if (found !== plan.source.manifestSha256) {
    throw new KspError('DISTRIBUTED_SOURCE_CHANGED', `${plan.source.uri}: its manifest.sha256 ${found === null ? 'is gone' : `hashes to ${found}`}, but the distributed plan pinned ${plan.source.manifestSha256 ?? 'no manifest'}; the source changed since the plan was made, so nothing more is written from it (plan again into an empty target)`, {
      file: plan.source.uri, expected: plan.source.manifestSha256, found,
    });
  }
}

/**
 * Creates `loc` only if nothing is there: a hard link of a complete
 * temporary file locally, PutObject with If-None-Match on S3. False when
 * something already is.
 */
export async function createExclusive(loc: Location, bytes: Uint8Array): Promise<boolean> {
  if (loc.storage instanceof LocalStorage) {
    const p = loc.storage.pathOf(loc.key);
    await fsp.mkdir(nodePath.dirname(p), { recursive: true });
    const tmp = `${p}.ksp-tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await fsp.writeFile(tmp, bytes, { flag: 'wx' });
      await fsp.link(tmp, p);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw new KspError('STORAGE_IO', `${p}: cannot create it (${(e as Error).message})`, { file: p });
    } finally {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
    }
  }
  if (loc.storage instanceof S3Storage) return loc.storage.putIfAbsent(loc.key, bytes);
  throw new KspError('INTERNAL', `no exclusive create for storage ${loc.storage.root}`);
}

export async function readJson<T>(loc: Location): Promise<T | null> {
  if (!(await loc.storage.stat(loc.key))) return null;
  let bytes: Uint8Array;
  try {
    bytes = await loc.storage.readSmall(loc.key, 64 * 1024 * 1024);
  } catch (e) {
    if ((e as KspError).code === 'NOT_FOUND') return null;
    throw e;
  }
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
  } catch (e) {
    throw new KspError('DISTRIBUTED_PLAN_INVALID', `${uriOf(loc)}: not valid JSON (${(e as Error).message})`, { file: uriOf(loc) });
  }
}

/** The plan at a target, shape-checked; DISTRIBUTED_PLAN_MISSING when there is none. */
export async function readPlan(dir: Location): Promise<DistributedPlan> {
  const loc = planLocation(dir);
  const plan = await readJson<DistributedPlan>(loc);
  if (!plan) {
    throw new KspError('DISTRIBUTED_PLAN_MISSING', `${uriOf(loc)}: no distributed plan at ${uriOf(dir)} (make one with ksp rescale <src> <dst> --distributed; a committed target has none)`, { file: uriOf(loc) });
  }
  checkPlan(plan, dir, uriOf(loc));
  return plan;
}

/**
 * Shape and safety: every unit's id is safe as a file name and unique, and
 * everything a unit writes lies inside the target directory (a plan edited
 * to write elsewhere is refused before anything is written).
 */
export function checkPlan(plan: DistributedPlan, dir: Location, file: string): void {
  const bad = (why: string, field?: string): KspError => new KspError('DISTRIBUTED_PLAN_INVALID', `${file}: ${field ? `${field}: ` : ''}${why}`, { file, ...(field ? { field } : {}) });
  if (plan?.format !== PLAN_FORMAT || plan.version !== PLAN_VERSION) throw bad(`not a ${PLAN_FORMAT} version ${PLAN_VERSION} (found ${JSON.stringify(plan?.format)} ${JSON.stringify(plan?.version)})`);
  if (typeof plan.source?.uri !== 'string' || typeof plan.target?.uri !== 'string' || !Array.isArray(plan.units) || typeof plan.metadata !== 'string' || typeof plan.meta?.text !== 'string') throw bad('missing source, target, units, metadata or meta');
  const t = locate(plan.target.uri);
  if (t.storage !== dir.storage || t.key !== dir.key) throw bad(`was made for ${plan.target.uri}, not ${uriOf(dir)}`, 'target.uri');
  const inside = (uri: unknown, field: string): void => {
    if (typeof uri !== 'string') throw bad('not a string', field);
    const l = locate(uri);
    if (!within(l, dir) || l.key === dir.key || within(l, child(dir, RESERVED)) !== field.endsWith('.run')) throw bad(`${uri} is not a place this run may write (inside ${uriOf(dir)}${field.endsWith('.run') ? `/${RESERVED}` : `, outside ${RESERVED}/`})`, field);
  };
  if (!Array.isArray(plan.source.roots) || !plan.source.roots.length || plan.source.roots.some((r) => typeof r !== 'string')) throw bad('no list of the roots the source may be read from', 'source.roots');
  const roots = plan.source.roots.map((r) => locate(r));
  const readable = (uri: unknown, field: string): void => {
    if (typeof uri !== 'string') throw bad('not a string', field);
    const l = locate(uri);
    if (!roots.some((r) => within(l, r))) throw bad(`${uri} lies outside the source's roots (${plan.source.roots.join(', ')}); a plan may read only the source`, field);
  };
  const ids = new Set<string>();
  plan.units.forEach((u, i) => {
    const f = `units[${i}]`;
    if (typeof u?.id !== 'string' || !/^[a-z]-\d{1,7}$/.test(u.id) || ids.has(u.id)) throw bad(`unit id ${JSON.stringify(u?.id)} is not a unique id like r-0001`, f);
    ids.add(u.id);
    switch (u.kind) {
      case 'copy':
      case 'merge':
      case 'rewrite':
      case 'native':
      case 'canonical':
      case 'export':
        inside(u.to, `${f}.to`);
        // Native output lays its files out from the pointer's manifest path (run-unit.ts relativeNativeLayout): it must name the pointer's place.
        // Tables in engine mode's shared folder: only for a plan in engine mode whose target is in the engine's layout.
        if (u.kind === 'native' || u.kind === 'merge') {
          const first = u.kind === 'native' ? u.firstTable : u.native?.firstTable;
          if (first !== undefined && (plan.target.mode !== 'engine' || !engineIncr(dir, u.outOperator, u.outTask))) throw bad('tables in the shared incr/ folder for a target that is not in engine mode', `${f}.firstTable`);
          if (first !== undefined && (!Number.isSafeInteger(first) || first < 1 || first > 0x7fffffff)) throw bad(`${JSON.stringify(first)} is not a table number`, `${f}.firstTable`);
        }
        if ((u.kind === 'native' || (u.kind === 'merge' && u.native !== undefined)) && (typeof u.rel !== 'string' || u.rel.split('/').some((c) => c === '' || c === '.' || c === '..') || uriOf(child(dir, u.rel)) !== uriOf(locate(u.to)))) {
          throw bad(`${JSON.stringify(u.rel)} is not the path of ${u.to} in the target`, `${f}.rel`);
        }
        break;
      case 'native-copy': {
        inside(u.to, `${f}.to`);
        if (!Array.isArray(u.files) || typeof u.pointer !== 'string' || typeof u.manifest?.bytes !== 'string') throw bad('no files, manifest bytes or pointer bytes', f);
        // Engine mode: files with no manifest path lie in the task's folder of the job's shared incr/ (derived from the target, never from the plan).
        const incr = plan.target.mode === 'engine' ? engineIncr(dir, String(u.outOperator), String(u.outTask)) : null;
        const place = (uri: unknown, r: unknown, field: string): void => {
          if (r === null && incr && typeof uri === 'string' && within(locate(uri), incr.location) && !locate(uri).key.split('/').some((c) => c === '.' || c === '..')) return;
          inside(uri, field.replace(/rel$/, 'to'));
          // Each output's manifest path must name the place it is written (seal.ts trusts the pair).
          if (typeof r !== 'string' || uriOf(child(dir, r)) !== uriOf(locate(String(uri)))) throw bad(`${JSON.stringify(r)} is not the path of ${uri} in the target`, field);
        };
        place(u.to, u.rel, `${f}.rel`);
        place(u.manifest.to, u.manifest.rel, `${f}.manifest.rel`);
        u.files.forEach((x, k) => {
          place(x?.to, x?.rel, `${f}.files[${k}].rel`);
          for (const h of ['sha256', 'listed'] as const) {
            if (x[h] !== undefined && !/^[0-9a-f]{64}$/.test(x[h])) throw bad(`${JSON.stringify(x[h])} is not a SHA-256`, `${f}.files[${k}].${h}`);
          }
        });
        break;
      }
      case 'route':
        inside(u.run, `${f}.run`);
        break;
      case 'verify':
      case 'check':
        if (!Number.isSafeInteger(u.index) || !Number.isSafeInteger(u.count) || u.index < 0 || u.index >= u.count) throw bad(`verify share ${u.index} of ${u.count}`, f);
        break;
      default:
        throw bad(`unknown unit kind ${JSON.stringify((u as { kind?: unknown }).kind)}`, f);
    }
  });
  plan.units.forEach((u, i) => {
    if (u.kind === 'export' && (!Array.isArray(u.tasks) || u.spec?.savepoint !== plan.source.uri || JSON.stringify(u.spec.roots) !== JSON.stringify(plan.source.roots))) throw bad('no tasks, or a source other than the plan\'s', `units[${i}]`);
    if (u.kind !== 'copy' && u.kind !== 'native-copy' && u.kind !== 'merge' && u.kind !== 'verify' && u.kind !== 'check' && u.kind !== 'export' && (typeof u.source !== 'object' || u.source === null || (u.source.native !== undefined && !Array.isArray(u.source.native)))) throw bad('no source', `units[${i}].source`);
    unitReads(u).forEach((r, k) => readable(r, `units[${i}].${u.kind === 'export' ? `tasks[${k}].uri` : u.kind === 'native-copy' ? `files[${k}].from` : k === 0 ? (u.kind === 'copy' ? 'from' : 'source.uri') : `source.native[${k - 1}].uri`}`));
  });
  for (const u of plan.units) if (u.kind === 'merge') for (const r of u.routes) if (!ids.has(r)) throw bad(`merge ${u.id} depends on unknown unit ${r}`);
  // meta.json: in the target directory, or (engine mode) the savepoint record beside it in the same job's savepoints/ (target.ts).
  const m = locate(String(plan.meta.uri));
  const beside = m.storage === dir.storage && parentKey(parentKey(m.key)) === parentKey(dir.key) && !within(m, child(dir, RESERVED));
  if (!beside || !m.key.endsWith('/meta.json') || m.key.split('/').some((c) => c === '..' || c === '.')) throw bad(`${plan.meta.uri} is not meta.json in the target or its savepoint record beside it`, 'meta.uri');
}

/** The units a unit waits for. */
export function dependencies(u: DistUnit, units: readonly DistUnit[]): string[] {
  if (u.kind === 'verify') return units.filter((x) => x.kind !== 'verify').map((x) => x.id);
  return u.kind === 'merge' ? u.routes : [];
}

/** Bytes a unit reads, for balancing shards and for status. */
export function unitBytes(u: DistUnit): number {
  if (u.kind === 'copy') return u.size ?? 0;
  if (u.kind === 'native-copy') return u.files.reduce((n, f) => n + (f.size ?? 0), 0);
  if (u.kind === 'verify' || u.kind === 'check') return 0;
  if (u.kind === 'export') return u.tasks.reduce((n, t) => n + (t.size ?? 0), 0);
  if (u.kind !== 'merge') return (u.source.size ?? 0) + (u.source.native?.reduce((n, f) => n + (f.size ?? 0), 0) ?? 0);
  return 0;
}

/** A short description for messages and status. */
export function describeUnit(u: DistUnit): string {
  switch (u.kind) {
    case 'copy':
      return `copy ${u.rel ?? u.to}`;
    case 'route':
      return `route ${u.operator}/${u.source.taskId}`;
    case 'merge':
      return `merge ${u.outOperator}/${u.outTask}`;
    case 'rewrite':
      return `rewrite ${u.outOperator}/${u.outTask}`;
    case 'native':
      return `native ${u.outOperator}/${u.outTask}`;
    case 'native-copy':
      return `native copy ${u.outOperator}/${u.outTask} (${u.files.length} file(s))`;
    case 'canonical':
      return `canonical ${u.outOperator}/${u.outTask}`;
    case 'verify':
      return `verify share ${u.index + 1} of ${u.count}`;
    case 'check':
      return `verify the source, share ${u.index + 1} of ${u.count}`;
    case 'export':
      return `export part ${u.part + 1} of ${u.parts} (${u.tasks.length} task(s))`;
  }
}
