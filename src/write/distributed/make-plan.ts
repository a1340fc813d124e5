import { readFile } from 'node:fs/promises';
import { KspError } from '../../errors.js';
import { rangeOwnersByName } from '../../model/task-ranges.js';
import { child, locate, uriOf } from '../../storage/uri.js';
import { VERSION } from '../../version.js';
import type { RunJob } from '../jobs.js';
import { eachJob } from '../each-job.js';
import type { NativeFileRef } from '../../model/native-read.js';
import { TargetLock } from '../lock.js';
import { encodePointer } from '../../formats/pointer/pointer.js';
import { SourceGuard, checkTargetEmpty } from '../target-files.js';
import type { Savepoint } from '../../model/savepoint.js';
import type { Location } from '../../storage/uri.js';
import { within, type StoredFile } from '../target.js';
import type { PreparedWrite } from '../writer.js';
import { epochDirName } from '../../formats/metadata/metadata.js';
import { nextTableNumber } from '../native-names.js';
import {
  engineIncr, PLAN_FORMAT, PLAN_VERSION, RESERVED, createExclusive, encodeJson, planLocation, runLocation, sha256Hex, sourceManifestHash, unitBytes,
  type DistUnit, type DistributedPlan, type SourceSpec,
} from './plan-file.js';

/**
 * Turns a prepared write (the same planner a one-process write uses, so the
 * same jobs, metadata and meta.json) into a distributed plan of plain-data
 * units, and stores it at the target as `_ksp/plan.json`, created only if
 * absent and only into an empty target. Jobs that cannot run as plain data
 * yet are refused here, before anything is written.
 */

/** The first table number of an empty folder (write/native-names.ts `nextTableNumber`); engine mode's is set by writeDistributedPlan. */
const FIRST_TABLE = 2;

export interface PlanOptions {
  command: string;
  options?: Record<string, unknown>;
  /** Shares of the output's verification (default: one per 512 MiB read, 1 to 64). */
  verifyUnits?: number;
}

export function distributedPlan(p: PreparedWrite, o: PlanOptions): DistributedPlan {
  const dir = p.target.dir;
  const units: DistUnit[] = [];
  const unsupported = (why: string): KspError => new KspError('DISTRIBUTED_UNSUPPORTED', `--distributed: ${why}; run it as one process (without --distributed)`, { found: why });
  const rel = (f: StoredFile): string | null => (f.relPath !== null && within(f.location, dir) ? f.relPath : null);
  const id = (k: string): string => `${k}-${String(units.length).padStart(4, '0')}`;
  const spec = (s: { location: import('../../storage/uri.js').Location; operatorId: string; taskId: string; sha256?: string; native?: NativeFileRef[]; ttlPrefix?: 'strip' | 'keep' }, size?: number, nativeOk = false): SourceSpec => {
    if (s.native && !nativeOk) throw unsupported(`${s.operatorId}/${s.taskId} is native (RocksDB) state, which this kind of distributed unit does not read yet`);
    return {
      uri: uriOf(s.location), operatorId: s.operatorId, taskId: s.taskId, ...(s.sha256 ? { sha256: s.sha256 } : {}), ...(size !== undefined ? { size } : {}),
      ...(s.native ? { native: s.native.map((f) => ({ ...f })) } : {}), ...(s.ttlPrefix ? { ttlPrefix: s.ttlPrefix } : {}),
    };
  };
  const routed: string[] = [];
  const sizes = new Map(p.plan.files.filter((f) => f.from && f.bytes !== undefined).map((f) => [f.from!, f.bytes!]));
  // Engine mode's native files lie in the job's shared incr/ folder, outside the target: a unit derives
  // that folder from the target alone (plan-file.ts engineIncr), which must give the one-process layout.
  const shared = (out: StoredFile, op: string, task: string): boolean => {
    if (p.target.mode !== 'engine') return false;
    const incr = engineIncr(dir, op, task);
    if (!incr || !within(out.location, incr.location)) return false;
    const sub = out.location.key.slice(incr.location.key.length + 1);
    return out.stored === `${incr.stored}/${sub}` && uriOf(p.target.nativeFile(op, task, sub).location) === uriOf(out.location);
  };
  const engine = p.target.mode === 'engine';
  // A task's native output in engine mode: the layout its unit derives must be the one-process write's.
  const checkEngineLayout = (op: string, task: string): void => {
    for (const sub of ['sst/000002.sst', `epochs/${epochDirName(p.target.epoch)}/sst_manifest.json`]) {
      if (!shared(p.target.nativeFile(op, task, sub), op, task)) throw unsupported(`${op}/${task}: the target ${uriOf(dir)} is not a savepoint directory in the engine's layout ({base}/{job}/savepoints/{id}) whose job folder holds the shared incr/`);
    }
  };
  for (const j of eachJob(p.jobs, p.target)) {
    for (const [out, op, task] of outputsOf(j)) {
      if (!within(out.location, dir) && !shared(out, op, task)) throw unsupported(`${uriOf(out.location)} lies outside the target directory, and not in the shared incr/ folder of its task`);
      if (out.relPath !== null && out.relPath.split('/')[0] === RESERVED) throw unsupported(`output ${out.relPath} would lie in the reserved folder ${RESERVED}/ (an operator named ${RESERVED})`);
    }
    switch (j.kind) {
      case 'copy': {
        // The source manifest's hash, checked as the unit copies (looked up here: copy jobs carry none).
        const sha256 = j.sha256 ?? p.sourceHash(j.from);
        units.push({ id: id('c'), phase: 0, kind: 'copy', from: uriOf(j.from), to: uriOf(j.out.location), rel: rel(j.out), ...(sha256 ? { sha256 } : {}), ...(j.size !== undefined ? { size: j.size } : {}) });
        break;
      }
      case 'rewrite': {
        // The map as plain data (writer.ts gives it whenever every step can be loaded again from its module file, TypeScript too).
        if (j.map !== null && !j.dist) throw unsupported(codeSteps(j.out.operatorId));
        const mapSpec = j.dist ? { migrations: j.dist.migrations, renames: j.dist.renames } : undefined;
        const rules = { keyChange: j.keyChange, keysKept: j.keysKept, onCollision: j.onCollision };
        if (j.native) {
          if (engine) checkEngineLayout(j.out.operatorId, j.out.taskId);
          units.push({
            id: id('n'), phase: 0, kind: 'native', source: spec(j.source, sizes.get(uriOf(j.source.location)), true), to: uriOf(j.out.file.location), rel: j.out.file.relPath!,
            outOperator: j.out.operatorId, outTask: j.out.taskId, epoch: p.target.epoch.toString(), options: j.native, ...(j.map !== null ? { map: mapSpec } : {}), ...rules,
            // Engine mode: fresh table numbers in the shared folder, chosen once (writeDistributedPlan) for every run of the unit.
            ...(engine ? { firstTable: FIRST_TABLE } : {}),
          });
          break;
        }
        if (j.source.native && j.map === null) {
          units.push({ id: id('k'), phase: 0, kind: 'canonical', source: spec(j.source, undefined, true), to: uriOf(j.out.file.location), rel: rel(j.out.file), outOperator: j.out.operatorId, outTask: j.out.taskId });
          break;
        }
        const m = j.map !== null ? mapSpec! : { migrations: [], renames: [] };
        units.push({
          id: id('w'), phase: 0, kind: 'rewrite', source: spec(j.source, sizes.get(uriOf(j.source.location)), true), to: uriOf(j.out.file.location), rel: rel(j.out.file),
          outOperator: j.out.operatorId, outTask: j.out.taskId, migrations: m.migrations, renames: m.renames, ...rules,
        });
        break;
      }
      case 'repartition': {
        // Its rows are spilled on this machine by the plan: a shard elsewhere could not read them.
        if (j.import) throw new KspError('USAGE', `import ${j.operator}: an import runs in one process (its rows are routed and spilled where it is planned); it has no distributed form`);
        if (j.map !== null && !j.dist) throw unsupported(codeSteps(j.operator));
        if (j.native && engine) for (const x of j.outs) checkEngineLayout(x.operatorId, x.taskId);
        const owners = rangeOwnersByName(j.outs.map((x) => x.taskId));
        const map = j.map !== null && j.dist ? { map: { migrations: j.dist.migrations, renames: j.dist.renames } } : {};
        const routes = j.sources.map((s, index) => {
          const u = { id: id('r'), phase: 0 as const, kind: 'route' as const, operator: j.operator, index, source: spec(s, undefined, true), routing: j.routing, owners, run: '', ...map, ...(j.keyChange ? { keyChange: true } : {}) };
          u.run = uriOf(runLocation(dir, u.id));
          units.push(u);
          return u.id;
        });
        j.outs.forEach((x, output) => {
          units.push({
            id: id('m'), phase: 1, kind: 'merge', operator: j.operator, output, outOperator: x.operatorId, outTask: x.taskId, to: uriOf(x.file.location), rel: rel(x.file), routes, sourceTasks: j.sources.map((s) => s.taskId),
            ...(j.keyChange ? { keyChange: true, onCollision: j.onCollision } : {}), ...(j.native ? { native: { options: j.native, epoch: p.target.epoch.toString(), ...(engine ? { firstTable: FIRST_TABLE } : {}) } } : {}),
          });
          // A key migration's in-place moves keep the source's placement otherwise (execute.ts routedHere).
          if (j.routing !== 'moved') routed.push(`${x.operatorId}/${x.taskId}`);
        });
        break;
      }
      case 'native': {
        // Engine mode: the files go to the shared {base}/{job}/incr/ folder under the source's names, each written only under a free name or kept when the same bytes are there.
        // The two small files as the one-process copy writes them (write/execute.ts `copyNative`), made here once.
        const byName = new Map(j.files.map((f) => [f.filename, f.out.stored]));
        const manifest = j.manifest.withPaths((name) => byName.get(name)!, j.manifestOut.stored).encode();
        const pointer = encodePointer({ manifestPath: j.manifestOut.stored });
        const relOf = (f: StoredFile): string | null => {
          const r = rel(f);
          if (r === null && !shared(f, j.out.operatorId, j.out.taskId)) throw unsupported(`${uriOf(f.location)} has no path in the target's manifest`);
          return r;
        };
        units.push({
          id: id('s'), phase: 0, kind: 'native-copy', outOperator: j.out.operatorId, outTask: j.out.taskId, to: uriOf(j.out.file.location), rel: rel(j.out.file)!,
          files: j.files.map((f) => ({
            filename: f.filename, from: uriOf(f.location), to: uriOf(f.out.location), rel: relOf(f.out),
            ...(f.sha256 ? { sha256: f.sha256 } : {}), ...(f.size !== undefined ? { size: f.size } : {}),
            // MANIFEST, WAL, OPTIONS: sst_manifest.json gives no hash, so the source manifest's is checked (as execute.ts `copyNative` does).
            ...(!f.sha256 && p.sourceHash(f.location) ? { listed: p.sourceHash(f.location) } : {}),
          })),
          manifest: { to: uriOf(j.manifestOut.location), rel: relOf(j.manifestOut), bytes: Buffer.from(manifest).toString('base64') },
          pointer: Buffer.from(pointer).toString('base64'),
        });
        break;
      }
    }
  }
  const metaRel = within(p.target.metaLocation, dir) ? p.target.metaLocation.key.slice(dir.key.length + 1) : null;
  return {
    format: PLAN_FORMAT, version: PLAN_VERSION, ksp: VERSION, created: new Date().toISOString(),
    command: o.command, options: o.options ?? {},
    source: { uri: p.source.uri, manifestSha256: null, roots: p.source.roots.roots.map(uriOf) },
    target: { uri: p.target.uri, mode: p.target.mode },
    metadata: Buffer.from(p.metadata.encode()).toString('utf8'),
    meta: { uri: uriOf(p.target.metaLocation), rel: metaRel, text: Buffer.from(p.meta.encode()).toString('utf8') },
    routedTasks: routed, units, plan: p.plan,
  };
}

/** Why a job whose steps are not in a module every shard can load is refused. */
function codeSteps(operator: string): string {
  return `the migration steps for ${operator} are defined in the program (a registry made with defineMigrations and passed in, not loaded from a module file), which only the planning process holds; load them from a module with loadMigrations(file) (its default export defineMigrations(...) or a function (m, codecs) => { m.value(...) }, JavaScript or TypeScript), so every shard loads the same steps from it`;
}

/** Every file a job writes, with the output task it belongs to. */
function outputsOf(j: RunJob): Array<[StoredFile, string, string]> {
  switch (j.kind) {
    case 'copy':
      return [[j.out, '', '']];
    case 'rewrite':
      return [[j.out.file, j.out.operatorId, j.out.taskId]];
    case 'repartition':
      return j.outs.map((o) => [o.file, o.operatorId, o.taskId]);
    case 'native':
      return [j.out.file, j.manifestOut, ...j.files.map((f) => f.out)].map((f) => [f, j.out.operatorId, j.out.taskId]);
  }
}

/**
 * Plans and stores: the target must be empty (checked under its lock, as a
 * one-process write checks it), and the plan is created only if absent, so
 * two planners racing on one target cannot both succeed.
 */
export async function writeDistributedPlan(p: PreparedWrite, o: PlanOptions): Promise<DistributedPlan> {
  const plan = distributedPlan(p, o);
  plan.source.manifestSha256 = await sourceManifestHash(p.source.dir);
  // The migrations modules are pinned too: a shard whose copy differs is refused (shard.ts).
  for (const u of plan.units) {
    const migrations = u.kind === 'rewrite' ? u.migrations : u.kind === 'route' || u.kind === 'native' ? u.map?.migrations ?? [] : [];
    for (const m of migrations) (plan.modules ??= {})[m.module] ??= sha256Hex(await readFile(m.module));
  }
  // Engine mode: each task's tables are numbered above every table already in
  // its shared sst/ folder, as the one-process write numbers them when it
  // writes (write/native-names.ts), chosen here once so that every run of the
  // unit (a re-run after a crash, a duplicate shard) writes the same names.
  if (plan.target.mode === 'engine') {
    for (const u of plan.units) {
      const out = u.kind === 'native' ? u : u.kind === 'merge' && u.native ? u.native : null;
      if (!out || (u.kind !== 'native' && u.kind !== 'merge')) continue;
      const incr = engineIncr(p.target.dir, u.outOperator, u.outTask)!;
      out.firstTable = await nextTableNumber(child(incr.location, 'sst'));
    }
  }
  // Sizes of the sources read, for balancing the shards and for status.
  await Promise.all(plan.units.map(async (u) => {
    if (u.kind === 'native-copy') {
      // Meta files (MANIFEST, CURRENT, OPTIONS) have no size in sst_manifest.json.
      await Promise.all(u.files.filter((f) => f.size === undefined).map(async (f) => {
        const l = locate(f.from);
        const st = await l.storage.stat(l.key);
        if (st) f.size = st.size;
      }));
    } else if (u.kind !== 'copy' && u.kind !== 'merge' && u.kind !== 'verify' && u.kind !== 'check' && u.kind !== 'export' && u.source.size === undefined) {
      const l = locate(u.source.uri);
      const st = await l.storage.stat(l.key);
      if (st) u.source.size = st.size;
    } else if (u.kind === 'copy' && u.size === undefined) {
      const l = locate(u.from);
      const st = await l.storage.stat(l.key);
      if (st) u.size = st.size;
    }
  }));
  // The output's verification in shares, run by the shards once everything is written.
  const read = plan.units.reduce((n, u) => n + unitBytes(u), 0);
  const v = Math.max(1, Math.min(64, o.verifyUnits ?? Math.ceil(read / (512 * 1024 * 1024))));
  for (let index = 0; index < v; index++) plan.units.push({ id: `v-${String(plan.units.length).padStart(4, '0')}`, phase: 2, kind: 'verify', index, count: v });
  const dir = p.target.dir;
  p.guard.assertNotSource(planLocation(dir), 'write');
  p.guard.assertNotSource(child(dir, RESERVED, 'runs', 'x'), 'write');
  if (p.overwrite) throw new KspError('USAGE', '--distributed writes only into an empty target; --overwrite is not supported with it (empty the target first)');
  await publishPlan(dir, plan, { command: `${o.command} --distributed`, forceUnlock: p.forceUnlock, metaLocation: p.target.metaLocation });
  return plan;
}

/**
 * A distributed `ksp verify` of a savepoint: `shares` check units over its
 * files, planned into a work folder (empty, apart from the source), pinned
 * to the source's manifest. `ksp work` runs the shares, `ksp commit` merges
 * their findings into one report and removes the plan.
 */
export async function writeVerifyPlan(sp: Savepoint, work: Location, o: { shares: number; forceUnlock?: boolean }): Promise<DistributedPlan> {
  if (within(work, sp.dir) || within(sp.dir, work)) {
    throw new KspError('TARGET_OVERLAPS_SOURCE', `${uriOf(work)}: the work folder overlaps the savepoint ${sp.uri}; the savepoint is never written, so choose a folder outside it`, { file: uriOf(work) });
  }
  const guard = new SourceGuard(sp.dir, []);
  guard.assertTargetApart(work);
  const shares = Math.max(1, Math.min(4096, Math.floor(o.shares)));
  const plan: DistributedPlan = {
    format: PLAN_FORMAT, version: PLAN_VERSION, ksp: VERSION, created: new Date().toISOString(), command: 'verify', options: { shares },
    source: { uri: sp.uri, manifestSha256: await sourceManifestHash(sp.dir), roots: sp.roots.roots.map(uriOf) },
    target: { uri: uriOf(work), mode: 'relative' },
    metadata: '', meta: { uri: uriOf(child(work, 'meta.json')), rel: null, text: '' }, routedTasks: [],
    units: Array.from({ length: shares }, (_, index) => ({ id: `v-${String(index).padStart(4, '0')}`, phase: 0 as const, kind: 'check' as const, index, count: shares })),
    plan: emptyWritePlan(sp.uri, uriOf(work)),
  };
  guard.assertNotSource(planLocation(work), 'write');
  await publishPlan(work, plan, { command: 'verify --distributed', forceUnlock: o.forceUnlock });
  return plan;
}

/**
 * Writes the plan as the folder's first file, under the folder's lock and
 * only into an empty folder: two planners racing each other cannot both
 * succeed (createExclusive).
 */
export async function publishPlan(dir: Location, plan: DistributedPlan, o: { command: string; forceUnlock?: boolean; metaLocation?: Location }): Promise<void> {
  const lock = await TargetLock.acquire(dir, { forceUnlock: o.forceUnlock, command: o.command });
  try {
    await checkTargetEmpty(dir, o.metaLocation ?? child(dir, 'meta.json'), { ownToken: lock.info.token });
    if (!(await createExclusive(planLocation(dir), encodeJson(plan)))) {
      throw new KspError('TARGET_NOT_EMPTY', `${uriOf(planLocation(dir))}: another distributed plan was made here meanwhile`, { file: uriOf(planLocation(dir)) });
    }
  } finally {
    await lock.release();
  }
}

/** The `plan` member of a plan that writes no savepoint (a distributed verify or export): every field empty. */
export function emptyWritePlan(source: string, target: string): DistributedPlan['plan'] {
  return { source, target, mode: 'relative', modeReason: '', jobId: '', epoch: '', savepointId: '', meta: '', fencingToken: '', operations: [], operators: [], files: [], metadata: [], warnings: [], totals: { files: 0, copy: { files: 0, bytes: 0 }, rewrite: { files: 0, bytes: 0 }, write: { files: 0 } } };
}
