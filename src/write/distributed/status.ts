import { locate, uriOf, type Location } from '../../storage/uri.js';
import {
  describeUnit, readJson, readPlan, recordLocation, unitBytes, unitsFolder,
  type DistUnit, type DistributedPlan, type DoneRecord, type FailedRecord, type StartedRecord,
} from './plan-file.js';
import { isSealed } from './export-plan.js';

/**
 * Where a distributed run stands, from the target alone: each unit done
 * (completion record), running (a started record whose heartbeat is fresh),
 * stalled (started, heartbeat stopped: its shard died and was not restarted),
 * failed (its last attempt failed) or missing (never started).
 */

export type UnitState = 'done' | 'running' | 'stalled' | 'failed' | 'missing';

export interface UnitStatus {
  id: string;
  kind: DistUnit['kind'];
  what: string;
  state: UnitState;
  shard?: string;
  /** Bytes the unit reads (planned). */
  bytes: number;
  /** Bytes it wrote (done units). */
  written?: number;
  error?: { code: string; message: string };
}

export interface DistributedStatus {
  target: string;
  committed: boolean;
  command?: string;
  source?: string;
  created?: string;
  units: { total: number; done: number; running: number; stalled: number; failed: number; missing: number };
  bytes: { planned: number; done: number; written: number };
  /** Seconds since the first unit started, and the estimate for the rest at the rate so far (null when unknown). */
  elapsedSeconds: number | null;
  etaSeconds: number | null;
  list: UnitStatus[];
}

export interface UnitStates {
  statuses: UnitStatus[];
  done: Map<string, DoneRecord>;
  firstStart: number | null;
}

const staleMs = (): number => 3 * (Number(process.env.KSP_WORK_HEARTBEAT_MS) > 0 ? Number(process.env.KSP_WORK_HEARTBEAT_MS) : 30_000);

export async function unitStates(plan: DistributedPlan, dir: Location): Promise<UnitStates> {
  // One listing for which records exist; only those are read.
  const have = new Set<string>();
  const folder = unitsFolder(dir);
  for await (const e of dir.storage.list(folder.key)) if (!e.isPrefix) have.add(e.key.slice(folder.key.length + 1));
  const done = new Map<string, DoneRecord>();
  let firstStart: number | null = null;
  const statuses = await Promise.all(plan.units.map(async (u): Promise<UnitStatus> => {
    const base = { id: u.id, kind: u.kind, what: describeUnit(u), bytes: unitBytes(u) };
    const s = have.has(`${u.id}.started.json`) ? await readJson<StartedRecord>(recordLocation(dir, u.id, 'started')) : null;
    if (s && Number.isFinite(Date.parse(s.started))) firstStart = Math.min(firstStart ?? Infinity, Date.parse(s.started));
    if (have.has(`${u.id}.done.json`)) {
      const d = await readJson<DoneRecord>(recordLocation(dir, u.id, 'done'));
      if (d && d.unit === u.id) {
        done.set(u.id, d);
        return { ...base, state: 'done', shard: d.shard, written: d.outputs.reduce((n, o) => n + o.size, 0) };
      }
    }
    const f = have.has(`${u.id}.failed.json`) ? await readJson<FailedRecord>(recordLocation(dir, u.id, 'failed')) : null;
    if (f && (!s || Date.parse(f.failed) >= Date.parse(s.started))) return { ...base, state: 'failed', shard: f.shard, error: f.error };
    if (s) return { ...base, state: Date.now() - Date.parse(s.heartbeat) < staleMs() ? 'running' : 'stalled', shard: s.shard };
    return { ...base, state: 'missing' };
  }));
  return { statuses, done, firstStart };
}

export async function distributedStatus(target: string | Location): Promise<DistributedStatus> {
  const dir = typeof target === 'string' ? locate(target) : target;
  const empty: DistributedStatus = {
    target: uriOf(dir), committed: false, units: { total: 0, done: 0, running: 0, stalled: 0, failed: 0, missing: 0 },
    bytes: { planned: 0, done: 0, written: 0 }, elapsedSeconds: null, etaSeconds: null, list: [],
  };
  // Sealed: the manifest (or a sharded export's _SUCCESS) is written only by a commit that checked everything (its cleanup of _ksp/ may still be under way).
  if (await isSealed(dir)) return { ...empty, committed: true };
  const plan = await readPlan(dir);
  const { statuses, firstStart } = await unitStates(plan, dir);
  const units = { ...empty.units, total: statuses.length };
  const bytes = { planned: 0, done: 0, written: 0 };
  for (const s of statuses) {
    units[s.state]++;
    bytes.planned += s.bytes;
    if (s.state === 'done') {
      bytes.done += s.bytes;
      bytes.written += s.written ?? 0;
    }
  }
  const elapsed = firstStart === null ? null : Math.max(0, (Date.now() - firstStart) / 1000);
  // Bytes read so far at the rate so far; merges read no source bytes, so units stand in when nothing is known.
  let eta: number | null = null;
  if (elapsed !== null && elapsed > 0) {
    if (bytes.done > 0 && bytes.planned > 0) eta = ((bytes.planned - bytes.done) / bytes.done) * elapsed;
    else if (units.done > 0) eta = ((units.total - units.done) / units.done) * elapsed;
  }
  if (units.done === units.total) eta = 0;
  return {
    target: uriOf(dir), committed: false, command: plan.command, source: plan.source.uri, created: plan.created,
    units, bytes, elapsedSeconds: elapsed, etaSeconds: eta === null ? null : Math.round(eta), list: statuses,
  };
}
