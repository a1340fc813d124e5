import { pool } from '../pool.js';
import { lstat, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { KspError } from '../../errors.js';
import { child, locate, uriOf, type Location } from '../../storage/uri.js';
import { HOST, sweepStaleTempDirs } from '../temp-dir.js';
import { SourceGuard, realPathOf } from '../target-files.js';
import { LocalStorage } from '../../storage/local.js';
import { unitError } from '../unit-run.js';
import {
  RESERVED, checkSourcePinned, dependencies, unitReads, describeUnit, encodeJson, readJson, readPlan, recordLocation, sha256Hex, unitBytes,
  type CheckUnitSpec, type DistUnit, type DistributedPlan, type DoneRecord, type FailedRecord, type StartedRecord, type VerifyUnitSpec,
} from './plan-file.js';
import { runDistUnit, type UnitOutcome } from './run-unit.js';
import { isSealed } from './export-plan.js';
import { verifySavepoint } from '../../model/verify.js';
import { recordedOutputs, verifyOutput, verifyShardOf, writeMetadata } from './seal.js';

/**
 * One shard of a distributed run: the units the plan assigns to shard i of
 * N, phase by phase. A unit already done (its completion record exists) is
 * skipped, so a shard started again after a crash finishes only what is
 * left; a unit is started, its outputs written, and its record written
 * last. A phase-1 unit (a rescale's merge) waits for the route units it
 * reads; one of those that no shard has started, or whose shard stopped
 * beating, is run here instead (units are idempotent, so running one twice
 * is only wasted work).
 */

export interface ShardOptions {
  index: number;
  count: number;
  tempDir?: string;
  /** Units run at once in this shard (default 2: overlaps one unit's I/O with another's CPU). */
  concurrency?: number;
  /** Poll interval while waiting for another shard's units (default 2 s, KSP_WORK_POLL_MS). */
  pollMs?: number;
  /** Give up waiting after this long (default 6 h, KSP_WORK_TIMEOUT_S). */
  timeoutMs?: number;
  /** Heartbeat of a started record (default 30 s, KSP_WORK_HEARTBEAT_MS); three missed beats make it stale. */
  heartbeatMs?: number;
  onBytes?: (n: number) => void;
  onUnit?: (u: DistUnit, what: 'start' | 'done' | 'skip' | 'fail', detail?: string) => void;
}

export interface ShardReport {
  target: string;
  shard: string;
  /** The units assigned to this shard. */
  assigned: number;
  ran: string[];
  skipped: string[];
  /** Units of other shards this one ran because a unit of its own needed them. */
  helped: string[];
  bytes: number;
  seconds: number;
  committed: boolean;
}

/** Parses `i/N`; the index may also come from the environment (see `shardFromEnv`). */
export function parseShard(text: string, env: NodeJS.ProcessEnv = process.env): { index: number; count: number } {
  const m = /^(?:(\d+)\/)?(\d+)$/.exec(text.trim());
  if (!m) throw new KspError('SHARD_INVALID', `--shard ${JSON.stringify(text)}: give i/N (shard i of N, from 0), or N with the index in JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX`, { found: text });
  const count = Number(m[2]);
  let index: number;
  if (m[1] !== undefined) index = Number(m[1]);
  else {
    const fromEnv = env.JOB_COMPLETION_INDEX ?? env.AWS_BATCH_JOB_ARRAY_INDEX;
    if (fromEnv === undefined || !/^\d+$/.test(fromEnv)) {
      throw new KspError('SHARD_INVALID', `--shard ${text}: no shard index: set JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX (AWS Batch array job), or give --shard i/${count}`, { found: fromEnv ?? null });
    }
    index = Number(fromEnv);
  }
  if (!Number.isSafeInteger(count) || count < 1 || count > 100000) throw new KspError('SHARD_INVALID', `--shard: the shard count must be from 1 to 100000, got ${m[2]}`, { found: text });
  if (index >= count) throw new KspError('SHARD_INVALID', `--shard: index ${index} is not below the shard count ${count} (indexes run from 0)`, { found: text });
  return { index, count };
}

/**
 * The units of shard `index` of `count`, per phase: largest first, each to
 * the least-loaded shard (ties to the lowest index). Deterministic: the same
 * plan and count give every shard the same split, with no coordination.
 */
export function assign(units: readonly DistUnit[], count: number): DistUnit[][] {
  const shards: DistUnit[][] = Array.from({ length: count }, () => []);
  // A merge writes about its operator's bytes divided by its outputs.
  const byId = new Map(units.map((u) => [u.id, u]));
  const weight = (u: DistUnit): number => {
    if (u.kind !== 'merge') return Math.max(1, unitBytes(u));
    const outputs = units.filter((x) => x.kind === 'merge' && x.operator === u.operator).length;
    return Math.max(1, Math.round(u.routes.reduce((n, id) => n + unitBytes(byId.get(id)!), 0) / Math.max(1, outputs)));
  };
  for (const phase of [0, 1, 2] as const) {
    const list = units.filter((u) => u.phase === phase);
    const order = list.map((u, i) => ({ u, i, w: weight(u) })).sort((a, b) => b.w - a.w || a.i - b.i);
    const load = new Array<number>(count).fill(0);
    for (const { u, w } of order) {
      let best = 0;
      for (let s = 1; s < count; s++) if (load[s]! < load[best]!) best = s;
      load[best]! += w;
      shards[best]!.push(u);
    }
  }
  // Within a shard, units in plan order (phase 0 first).
  const pos = new Map(units.map((u, i) => [u.id, i]));
  for (const s of shards) s.sort((a, b) => a.phase - b.phase || pos.get(a.id)! - pos.get(b.id)!);
  return shards;
}

const envMs = (name: string, dflt: number): number => {
  const n = Number(process.env[name]);
  return Number.isFinite(n) && n > 0 ? n : dflt;
};

export async function runShard(target: string | Location, o: ShardOptions): Promise<ShardReport> {
  const started = Date.now();
  const dir = typeof target === 'string' ? locate(target) : target;
  const shard = `${o.index}/${o.count}`;
  const report: ShardReport = { target: uriOf(dir), shard, assigned: 0, ran: [], skipped: [], helped: [], bytes: 0, seconds: 0, committed: false };
  // A pod retried after the commit (or during its cleanup): nothing left to do.
  if (await isSealed(dir)) {
    report.committed = true;
    report.seconds = (Date.now() - started) / 1000;
    return report;
  }
  const plan = await readPlan(dir);
  await checkSourcePinned(plan);
  const guard = sourceGuard(plan);
  guard.assertTargetApart(dir);
  checkReadsByRealPath(plan);
  await checkReserved(dir, guard);
  const mine = assign(plan.units, o.count)[o.index]!;
  await checkModules(plan);
  report.assigned = mine.length;
  const byId = new Map(plan.units.map((u) => [u.id, u]));
  const pollMs = o.pollMs ?? envMs('KSP_WORK_POLL_MS', 2000);
  const timeoutMs = o.timeoutMs ?? envMs('KSP_WORK_TIMEOUT_S', 6 * 3600) * 1000;
  const heartbeatMs = o.heartbeatMs ?? envMs('KSP_WORK_HEARTBEAT_MS', 30_000);
  const tempDir = o.tempDir ?? process.env.KSP_TMPDIR ?? tmpdir();
  // Spill folders of shards killed on this machine before (SIGKILL leaves them).
  sweepStaleTempDirs(tempDir);
  const done = new Map<string, DoneRecord>();
  const record = async (id: string): Promise<DoneRecord | null> => {
    const have = done.get(id);
    if (have) return have;
    const r = await readJson<DoneRecord>(recordLocation(dir, id, 'done'));
    if (r && r.unit === id) done.set(id, r);
    return r && r.unit === id ? r : null;
  };
  const ctx = {
    tempDir,
    assertWritable: (loc: Location): void => guard.assertNotSource(loc, 'write'),
    record,
    runOf: (id: string): string => {
      const r = byId.get(id);
      if (r?.kind !== 'route') throw new KspError('DISTRIBUTED_PLAN_INVALID', `unit ${id} is not a route unit of the plan`, { unit: id });
      return r.run;
    },
    onBytes: (n: number): void => {
      report.bytes += n;
      o.onBytes?.(n);
    },
  };
  // Units being run by this process (another shard of the same process, in tests, is another runShard).
  const running = new Map<string, Promise<void>>();
  const run = (u: DistUnit, helped: boolean): Promise<void> => {
    let p = running.get(u.id);
    if (!p) {
      p = runOne(u, helped).finally(() => running.delete(u.id));
      running.set(u.id, p);
    }
    return p;
  };
  const runOne = async (u: DistUnit, helped: boolean): Promise<void> => {
    if (await record(u.id)) {
      report.skipped.push(u.id);
      o.onUnit?.(u, 'skip');
      return;
    }
    for (const d of dependencies(u, plan.units)) await waitFor(d);
    await assertNotCommitted();
    const t0 = Date.now();
    const startedRec: StartedRecord = { unit: u.id, shard, host: HOST, pid: process.pid, started: new Date(t0).toISOString(), heartbeat: new Date(t0).toISOString() };
    const startedLoc = recordLocation(dir, u.id, 'started');
    await dir.storage.write(startedLoc.key, encodeJson(startedRec));
    const beat = setInterval(() => {
      void dir.storage.write(startedLoc.key, encodeJson({ ...startedRec, heartbeat: new Date().toISOString() })).catch(() => undefined);
    }, heartbeatMs);
    beat.unref();
    o.onUnit?.(u, 'start');
    try {
      const r = u.kind === 'verify' ? await runVerifyUnit(u) : u.kind === 'check' ? await runCheckUnit(u) : await runDistUnit(u, ctx);
      const rec: DoneRecord = { unit: u.id, kind: u.kind, ...r, shard, host: HOST, pid: process.pid, seconds: (Date.now() - t0) / 1000, finished: new Date().toISOString() };
      // The completion record last: the unit counts only from here.
      const loc = recordLocation(dir, u.id, 'done');
      await dir.storage.write(loc.key, encodeJson(rec));
      done.set(u.id, rec);
      (helped ? report.helped : report.ran).push(u.id);
      o.onUnit?.(u, 'done');
    } catch (e) {
      const err = unitError(e);
      const failed: FailedRecord = { unit: u.id, shard, host: HOST, pid: process.pid, failed: new Date().toISOString(), error: { code: err.code, message: err.message } };
      await dir.storage.write(recordLocation(dir, u.id, 'failed').key, encodeJson(failed)).catch(() => undefined);
      o.onUnit?.(u, 'fail', err.message);
      throw err;
    } finally {
      clearInterval(beat);
    }
  };
  /** A share of the verification: metadata from the plan, then verify's pass over this share's files. */
  const runVerifyUnit = async (u: VerifyUnitSpec): Promise<UnitOutcome> => {
    const done = new Map<string, DoneRecord>();
    for (const x of plan.units) {
      if (x.kind === 'verify') continue;
      const r = await record(x.id);
      if (r) done.set(x.id, r);
    }
    const outs = await recordedOutputs(plan, done, dir);
    const md = await writeMetadata(plan, dir, outs.hashes, ctx.assertWritable);
    const v = await verifyOutput(dir, plan, md.manifest, outs.expected, { select: (f) => verifyShardOf(f, u.count) === u.index });
    return { outputs: [], verified: { files: v.files, bytes: v.bytes, entries: v.entries, warnings: v.warnings.map((w) => ({ code: w.code, message: w.message })) }, read: v.bytes };
  };
  /** A share of a distributed `ksp verify` of the source: its findings are its result. */
  const runCheckUnit = async (u: CheckUnitSpec): Promise<UnitOutcome> => {
    const v = await verifySavepoint(plan.source.uri, { allowRoots: plan.source.roots, select: (f) => verifyShardOf(f, u.count) === u.index, onBytes: ctx.onBytes });
    return { outputs: [], verified: { files: v.totals.files, bytes: v.totals.bytes, entries: v.totals.entries, warnings: [] }, findings: v.findings, read: v.totals.bytes };
  };
  const assertNotCommitted = async (): Promise<void> => {
    if (await isSealed(dir)) {
      throw new KspError('DISTRIBUTED_PLAN_INVALID', `${uriOf(dir)}: was committed while this shard ran; nothing more is written`, { file: uriOf(dir) });
    }
  };
  /**
   * Waits for another unit's record. Run here when no shard has started it,
   * or its shard's heartbeat stopped; refused when it failed and no shard is
   * running it again.
   */
  const waitFor = async (id: string): Promise<void> => {
    const u = byId.get(id)!;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await record(id)) return;
      const s = await readJson<StartedRecord>(recordLocation(dir, id, 'started'));
      const f = await readJson<FailedRecord>(recordLocation(dir, id, 'failed'));
      const beat = s ? Date.parse(s.heartbeat) : NaN;
      const fresh = s !== null && Number.isFinite(beat) && Date.now() - beat < 3 * heartbeatMs;
      const failedLast = f !== null && (!s || Date.parse(f.failed) >= Date.parse(s.started));
      if (failedLast && f) {
        throw new KspError('DISTRIBUTED_UNIT_FAILED', `${describeUnit(u)} (${id}), which this shard's units need, failed on shard ${f.shard}: [${f.error.code}] ${f.error.message}`, { unit: id, error: f.error });
      }
      if (!fresh) {
        await run(u, true);
        return;
      }
      if (Date.now() > deadline) throw new KspError('DISTRIBUTED_TIMEOUT', `${describeUnit(u)} (${id}): still running on shard ${s?.shard} after ${Math.round(timeoutMs / 1000)} s of waiting`, { unit: id });
      await new Promise((r) => setTimeout(r, pollMs));
    }
  };
  const concurrency = Math.max(1, o.concurrency ?? 2);
  for (const phase of [0, 1, 2] as const) {
    // The units of one phase, a few at a time; a later phase waits for this one.
    await pool(mine.filter((u) => u.phase === phase), concurrency, (u) => run(u, false));
  }
  report.seconds = (Date.now() - started) / 1000;
  return report;
}

/**
 * The source by real path (local disk): its directory and every file a unit
 * reads. No write of a shard may resolve into them, whatever symlinks the
 * target holds.
 */
export function sourceGuard(plan: DistributedPlan): SourceGuard {
  return new SourceGuard(locate(plan.source.uri), plan.units.flatMap((u) => unitReads(u).map((r) => locate(r))));
}

/** Every migrations module the plan pinned must be, on this machine, the file the plan hashed. */
async function checkModules(plan: DistributedPlan): Promise<void> {
  for (const [file, want] of Object.entries(plan.modules ?? {})) {
    const found = await readFile(file).then((b) => sha256Hex(b), () => null);
    if (found !== want) {
      throw new KspError('DISTRIBUTED_SOURCE_CHANGED', `${file}: the migrations module ${found === null ? 'is missing on this machine' : `hashes to ${found}`}, but the distributed plan pinned ${want}; every shard must run the same steps (ship the same file at the same path)`, { file, expected: want, found });
    }
  }
}

/**
 * On local disk, every file a unit reads must resolve (symlinks followed)
 * under one of the source's roots, as the planner's reads did
 * (model/read-roots.ts): a link planted in the source after the plan cannot
 * make a shard read, and copy into the target, a file elsewhere.
 */
function checkReadsByRealPath(plan: DistributedPlan): void {
  const roots = plan.source.roots.map((r) => locate(r)).filter((r) => r.storage instanceof LocalStorage).map((r) => realPathOf((r.storage as LocalStorage).pathOf(r.key)));
  for (const uri of plan.units.flatMap(unitReads)) {
    const l = locate(uri);
    if (!(l.storage instanceof LocalStorage)) continue;
    const real = realPathOf(l.storage.pathOf(l.key));
    if (!roots.some((r) => real === r || r === '/' || real.startsWith(r + '/'))) {
      throw new KspError('PATH_UNSAFE', `${uri}: resolves to ${real}, outside the source's roots (${plan.source.roots.join(', ')}); refused`, { file: uri, found: real });
    }
  }
}

/**
 * The reserved folder, where shards write their records and runs: on local
 * disk a real folder (a `_ksp`, `units` or `runs` that is a link is refused:
 * it could lead the records into the source or anywhere else), and never
 * inside the source by real path.
 */
export async function checkReserved(dir: Location, guard: SourceGuard): Promise<void> {
  for (const sub of ['', 'units', 'runs']) {
    const loc = sub ? child(dir, RESERVED, sub) : child(dir, RESERVED);
    guard.assertNotSource(child(loc, 'x'), 'write');
    if (!(loc.storage instanceof LocalStorage)) continue;
    const p = loc.storage.pathOf(loc.key);
    const st = await lstat(p).catch(() => null);
    if (st && !st.isDirectory()) throw new KspError('TARGET_FOREIGN_FILE', `${p}: the reserved folder of distributed runs is ${st.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}; refused (remove it yourself)`, { file: p });
  }
}
