import { KspError, isKspError } from '../errors.js';
import { MANIFEST_NAME, parseManifest, type ParsedManifest } from '../formats/manifest/manifest.js';
import { epochDirName } from '../formats/metadata/metadata.js';
import { child, locate, uriOf, type Location } from '../storage/uri.js';
import { Savepoint, type TaskRef } from './savepoint.js';
import { attachNative, type NativeInfo } from './native-state.js';
import { placementPlan, type PlacementPlan } from './placement.js';
import { rangeOwnersByName } from './task-ranges.js';
import { scanFiles } from './scan-pool.js';
import { strayTempFiles } from '../write/target-files.js';
import type { ScanRequest, ScanResult, StateCount } from './scan-file.js';
import type { WindowJoinSummary } from '../formats/task-format/index.js';

/**
 * `ksp verify`: every check the engine makes before it trusts an epoch, plus
 * a full decode of every state file. Each problem is a finding naming its
 * file; the savepoint verifies when no finding is an error.
 */

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  severity: Severity;
  code: string;
  file?: string;
  message: string;
  data?: Record<string, unknown>;
}

export interface FileCheck {
  path: string;
  size: number;
  expected: string;
  found: string | null;
  ok: boolean;
}

export interface TaskCheck {
  operator: string;
  task: string;
  file: string;
  format: ScanResult['kind'];
  entries: number;
  states: StateCount[];
  pointer?: string;
  native?: NativeInfo;
  /** state.bin header version (canonical tasks). */
  version?: 1 | 2;
  /** Window-join tasks: watermark and buffered rows (task-format/window-join.ts). */
  windowJoin?: WindowJoinSummary;
}

export interface VerifyReport {
  ok: boolean;
  uri: string;
  jobId?: string;
  epoch?: string;
  kind?: 'checkpoint' | 'savepoint';
  label?: string | null;
  files: FileCheck[];
  tasks: TaskCheck[];
  totals: { files: number; bytes: number; tasks: number; entries: number; nativeTasks: number };
  findings: Finding[];
}

export interface VerifyOptions {
  onBytes?: (n: number) => void;
  /** Called once the total size to read is known. */
  onTotal?: (bytes: number) => void;
  threads?: number;
  /**
   * Check against these manifest bytes instead of the stored manifest.sha256:
   * a writer verifies its output before it seals it with the manifest.
   */
  manifest?: Uint8Array;
  /** More folders the savepoint may read from (`--allow-root`). */
  allowRoots?: readonly string[];
}

function finding(severity: Severity, code: string, message: string, file?: string, data?: Record<string, unknown>): Finding {
  return { severity, code, message, ...(file ? { file } : {}), ...(data ? { data } : {}) };
}

export async function verifySavepoint(target: string | Location, options: VerifyOptions = {}): Promise<VerifyReport> {
  const report: VerifyReport = {
    ok: false, uri: typeof target === 'string' ? target : uriOf(target), files: [], tasks: [],
    totals: { files: 0, bytes: 0, tasks: 0, entries: 0, nativeTasks: 0 }, findings: [],
  };
  const add = (f: Finding): void => void report.findings.push(f);
  let sp: Savepoint;
  try {
    sp = await Savepoint.open(target, { allowRoots: options.allowRoots });
  } catch (e) {
    if (!isKspError(e) || e.code === 'NOT_FOUND' || e.family === 'storage' || e.family === 'usage') throw e;
    add(finding('error', e.code, e.message, e.data.file as string | undefined, e.data));
    return report;
  }
  const md = sp.metadata.value;
  Object.assign(report, { uri: sp.uri, jobId: md.job_id, epoch: md.epoch.toString(), kind: sp.kind, label: sp.label });
  const manifestLoc = child(sp.dir, MANIFEST_NAME);
  const manifestUri = uriOf(manifestLoc);

  // 1. The manifest: present, well-formed.
  let manifest: ParsedManifest | null = null;
  if (!options.manifest && !(await sp.dir.storage.stat(manifestLoc.key))) {
    add(finding('error', 'MANIFEST_MISSING', `${manifestUri}: no manifest; the directory is incomplete (the engine writes the manifest last)`, manifestUri));
  } else {
    try {
      manifest = parseManifest(options.manifest ?? (await sp.dir.storage.readSmall(manifestLoc.key)), manifestUri);
      for (const n of manifest.notes) add(finding('warning', 'MANIFEST_LAYOUT', `${manifestUri}: line ${n.line}: ${n.message}`, manifestUri, { line: n.line }));
    } catch (e) {
      if (!isKspError(e)) throw e;
      add(finding('error', e.code, e.message, manifestUri, e.data));
    }
  }
  const listed = new Map(manifest?.entries.map((e) => [e.path, e.sha256]) ?? []);
  // Only the map is used from here on: the entry list goes (200,000 objects for a large job).
  if (manifest) manifest = { entries: [], notes: manifest.notes };

  // 2. Coverage: metadata.json and every snapshot inside the directory.
  if (manifest && !listed.has('metadata.json')) add(finding('error', 'MANIFEST_INCOMPLETE', `${manifestUri}: does not list metadata.json`, manifestUri));
  checkTasks(sp, manifest ? listed : null, manifestUri, add);
  if (sp.meta && sp.metaLocation && manifest) {
    const rel = sp.metaLocation.key === child(sp.dir, 'meta.json').key ? 'meta.json' : null;
    if (rel && !listed.has(rel)) add(finding('warning', 'MANIFEST_INCOMPLETE', `${manifestUri}: does not list meta.json`, manifestUri));
  }

  // 3. Identity and stored paths; temporary files of an interrupted write left inside.
  checkIdentity(sp, add);
  for (const rel of await strayTempFiles(sp.dir)) {
    const u = uriOf(child(sp.dir, rel));
    add(finding('warning', 'STRAY_TEMP_FILE', `${u}: a temporary file of an interrupted ksp write; the savepoint does not need it (delete it, or re-run the write with --overwrite)`, u));
  }
  checkOtherPaths(sp, add);

  // 4. One pass over every file: hashes of listed files, full decode of state files.
  const taskByRel = new Map<string, TaskRef>();
  for (const t of sp.tasks) if (t.relPath) taskByRel.set(t.relPath, t);
  const reqs: ScanRequest[] = [];
  const what: Array<{ listed?: string; task?: TaskRef }> = [];
  for (const [path] of listed) {
    const task = taskByRel.get(path);
    reqs.push({ uri: uriOf(child(sp.dir, path)), hash: true, decode: task !== undefined, keyGroups: false });
    what.push({ listed: path, task });
  }
  for (const t of sp.tasks) {
    if (t.relPath && listed.has(t.relPath)) continue;
    reqs.push({ uri: uriOf(t.location), hash: false, decode: true, keyGroups: false });
    what.push({ task: t });
  }
  // 5. Key-group placement, checked in the same pass.
  const placement = placementPlan(sp);
  reqs.forEach((r, i) => {
    const t = what[i]!.task;
    const rule = t && r.decode ? placement.rules.get(t.index) : undefined;
    if (rule) r.placement = rule;
  });
  const nativeErrors = await attachNative(sp, reqs.map((req, i) => ({ req, task: what[i]!.task })), true);
  // An SST inside the directory is listed in manifest.sha256 and also hashed
  // by its native task against sst_manifest.json. When both record the same
  // hash, the task's check stands for both: the file is read once.
  const covered = new Map<number, number>(); // listed request → native task request
  const byUri = new Map<string, { task: number; sha256?: string }>();
  reqs.forEach((r, i) => r.native?.forEach((f) => byUri.set(f.uri, { task: i, sha256: f.sha256 })));
  reqs.forEach((r, i) => {
    const path = what[i]!.listed;
    // Without native tasks there is nothing to look up (and hashing every uri would copy it).
    const n = byUri.size ? byUri.get(r.uri) : undefined;
    if (path !== undefined && !r.decode && n?.sha256 !== undefined && n.sha256 === listed.get(path)) covered.set(i, n.task);
  });
  const scanned = reqs.map((_, i) => i).filter((i) => !covered.has(i));
  await statAll(reqs);
  options.onTotal?.(scanned.reduce((s, i) => s + (reqs[i]!.size ?? 0), 0));
  const results = new Array<ScanResult>(reqs.length);
  (await scanFiles(scanned.map((i) => reqs[i]!), { onBytes: options.onBytes, threads: options.threads })).forEach((r, k) => (results[scanned[k]!] = r));
  // A task that failed may not have hashed all its files: those are hashed on their own.
  const recheck = [...covered].filter(([, t]) => results[t]!.error || nativeErrors.has(t)).map(([i]) => i);
  (await scanFiles(recheck.map((i) => reqs[i]!), { onBytes: options.onBytes, threads: options.threads })).forEach((r, k) => {
    results[recheck[k]!] = r;
    covered.delete(recheck[k]!);
  });
  for (const [i] of covered) {
    results[i] = { uri: reqs[i]!.uri, kind: 'file', size: reqs[i]!.size ?? 0, sha256: listed.get(what[i]!.listed!)!, entryCount: 0, states: [], windowKeys: 0, watermarkKeys: 0 };
  }

  const seenTask = new Set<number>();
  const taskIndex: number[] = [];
  results.forEach((r, i) => {
    const { listed: path, task } = what[i]!;
    const pre = nativeErrors.get(i);
    if (pre && !r.error) r.error = { code: pre.code, message: pre.message, data: pre.data };
    if (path !== undefined) {
      const expected = listed.get(path)!;
      let found = r.kind === 'missing' ? null : r.sha256 ?? null;
      if (found === expected) found = expected; // one string, not two equal ones
      report.files.push({ path, size: r.size, expected, found, ok: found === expected });
      report.totals.files++;
      report.totals.bytes += r.size;
      if (r.kind === 'missing') add(finding('error', 'FILE_MISSING', `${r.uri}: listed in the manifest but missing`, r.uri));
      else if (found !== expected) add(finding('error', 'HASH_MISMATCH', `${r.uri}: SHA-256 mismatch: expected ${expected}, found ${found}`, r.uri, { expected, found }));
    }
    if (task && !seenTask.has(task.index)) {
      seenTask.add(task.index);
      taskIndex.push(task.index);
      taskResult(task, r, path !== undefined, report, add);
    }
  });
  placementFindings(sp, placement, results, what, add);
  // In metadata order: each check sits at its task's index.
  const byIndex = new Array<TaskCheck | undefined>(sp.tasks.length);
  report.tasks.forEach((t, i) => (byIndex[taskIndex[i]!] = t));
  report.tasks = byIndex.filter((t): t is TaskCheck => t !== undefined);
  report.totals.tasks = sp.tasks.length;
  report.ok = !report.findings.some((f) => f.severity === 'error');
  return report;
}

/**
 * Misplaced entries are errors naming the task, the count and one example
 * with its owner; what cannot be checked is said once per operator.
 */
function placementFindings(sp: Savepoint, plan: PlacementPlan, results: ScanResult[], what: Array<{ task?: TaskRef }>, add: (f: Finding) => void): void {
  for (const n of plan.notes) add(finding('info', 'PLACEMENT_UNKNOWN', n.message));
  const unrouted = new Map<string, number>();
  results.forEach((r, i) => {
    const t = what[i]!.task;
    const rule = t ? plan.rules.get(t.index) : undefined;
    if (!t || !rule || !r.placement) return;
    const broadcast = r.entryCount - r.placement.routed - r.placement.watermarks;
    if (broadcast > 0 && rule.routing === 'window') unrouted.set(t.operatorId, (unrouted.get(t.operatorId) ?? 0) + broadcast);
    const { misplaced, routed, example } = r.placement;
    if (!misplaced || !example) return;
    const ids = sp.tasks.filter((x) => x.operatorId === t.operatorId).map((x) => x.taskId);
    const owner = ids[rangeOwnersByName(ids)[example.range]!];
    const file = uriOf(t.location);
    add(finding('error', 'KEY_GROUP_MISPLACED', `${file}: ${misplaced} of ${routed} routed entries of ${t.operatorId}/${t.taskId} lie outside the key-group ranges this task owns at ${rule.parallelism} tasks (${rule.routing} routing); e.g. state ${example.state} key ${example.key} (hex) belongs to range ${example.range}, owned by ${owner}. A restore would look for them on their owner; ksp migrate and rescale place entries as the engine routes them`, file, {
      operator: t.operatorId, task: t.taskId, misplaced, routed, example: { ...example, owner },
    }));
  });
  for (const [op, n] of unrouted) {
    add(finding('info', 'PLACEMENT_UNKNOWN', `operator ${op}: ${n} entries are not in a tw:/sw:/ses: window layout; the engine's rescale broadcasts such keys, so which task owns them cannot be known and their placement is not checked`));
  }
}

async function statAll(reqs: ScanRequest[]): Promise<void> {
  let i = 0;
  const worker = async (): Promise<void> => {
    while (i < reqs.length) {
      const r = reqs[i++]!;
      if (r.size !== undefined) continue; // known from the probe
      const loc = locate(r.uri);
      const st = await loc.storage.stat(loc.key);
      if (st) r.size = st.size;
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, reqs.length) }, worker));
}

/** `listed`: the file was checked as a manifest entry, which already reported it if missing. */
function taskResult(task: TaskRef, r: ScanResult, listed: boolean, report: VerifyReport, add: (f: Finding) => void): void {
  // The scan's string when it names the same file: one copy per task.
  const u = uriOf(task.location);
  const file = r.uri === u ? r.uri : u;
  const t: TaskCheck = { operator: task.operatorId, task: task.taskId, file, format: r.kind, entries: r.entryCount, states: r.states };
  if (r.pointer) t.pointer = r.pointer;
  if (r.version) t.version = r.version;
  if (r.windowJoin) t.windowJoin = r.windowJoin;
  report.tasks.push(t);
  report.totals.entries += r.entryCount;
  if (r.kind === 'missing') {
    if (!listed) add(finding('error', 'FILE_MISSING', `${file}: state file of ${task.operatorId}/${task.taskId} does not exist`, file));
  } else if (r.kind === 'native') {
    report.totals.nativeTasks++;
    if (r.native) t.native = r.native;
  }
  if (r.error) add(finding('error', r.error.code, r.error.message, file, r.error.data));
  for (const n of r.notes ?? []) add(finding(n.severity, n.code, `${file}: ${n.message}`, file, n.data));
}

function checkTasks(sp: Savepoint, listed: Map<string, string> | null, manifestUri: string, add: (f: Finding) => void): void {
  const ids = new Map<string, number>();
  const files = new Map<string, TaskRef>();
  for (const t of sp.tasks) {
    const id = `${t.operatorId}/${t.taskId}`;
    if (ids.has(id)) add(finding('error', 'DUPLICATE_TASK', `metadata.json: operator_snapshots[${t.index}] repeats ${id} (first at [${ids.get(id)}])`, uriOf(child(sp.dir, 'metadata.json'))));
    ids.set(id, t.index);
    const u = uriOf(t.location);
    const other = files.get(u);
    if (other) add(finding('error', 'SHARED_STATE_FILE', `${u}: used by both ${other.operatorId}/${other.taskId} and ${id}`, u));
    files.set(u, t);
    if (!t.relPath) {
      add(finding('warning', 'OUTSIDE_DIRECTORY', `${u}: state of ${id} lives outside the savepoint directory, so its manifest cannot cover it (ksp relocate makes the savepoint self-contained)`, u));
    } else if (listed && !listed.has(t.relPath)) {
      add(finding('error', 'MANIFEST_INCOMPLETE', `${manifestUri}: does not list ${t.relPath} (state of ${id})`, manifestUri, { path: t.relPath }));
    }
  }
}

function checkIdentity(sp: Savepoint, add: (f: Finding) => void): void {
  const md = sp.metadata.value;
  const file = uriOf(child(sp.dir, 'metadata.json'));
  const L = sp.layout;
  if (L) {
    if (L.jobId !== md.job_id) add(finding('error', 'IDENTITY_JOB', `${file}: job_id ${JSON.stringify(md.job_id)} does not match the job directory ${JSON.stringify(L.jobId)}`, file, { expected: L.jobId, found: md.job_id }));
    if (L.epoch !== md.epoch) add(finding('error', 'IDENTITY_EPOCH', `${file}: epoch ${md.epoch} does not match the directory ${epochDirName(L.epoch)}`, file, { expected: L.epoch.toString(), found: md.epoch.toString() }));
    const isSp = L.kind === 'savepoint';
    if (isSp !== md.is_savepoint) add(finding('warning', 'IDENTITY_KIND', `${file}: is_savepoint is ${md.is_savepoint} but the directory is under ${L.kind}s/`, file));
  } else {
    add(finding('info', 'NOT_ENGINE_LAYOUT', `${sp.uri}: not in the engine's {job}/{checkpoints|savepoints}/{epoch:020} layout; job and epoch identity not checked against directory names`));
  }
  if (sp.meta && sp.metaLocation) {
    const mf = uriOf(sp.metaLocation);
    const m = sp.meta.value;
    if (m.job_id !== md.job_id) add(finding('error', 'IDENTITY_JOB', `${mf}: job_id ${JSON.stringify(m.job_id)} differs from metadata.json's ${JSON.stringify(md.job_id)}`, mf));
    if (m.epoch !== md.epoch) add(finding('error', 'IDENTITY_EPOCH', `${mf}: epoch ${m.epoch} differs from metadata.json's ${md.epoch}`, mf));
  }
}

function checkOtherPaths(sp: Savepoint, add: (f: Finding) => void): void {
  const md = sp.metadata.value;
  const check = (p: string | undefined, field: string): void => {
    if (p === undefined) return;
    try {
      sp.resolve(p, field);
    } catch (e) {
      if (!(e instanceof KspError)) throw e;
      add(finding('error', e.code, e.message, e.data.file as string | undefined, e.data));
    }
  };
  md.unaligned_buffer_refs?.forEach((b, i) => check(b.buffer_path, `unaligned_buffer_refs[${i}].buffer_path`));
  // sink_transactions[].prepare_path is an executor-side name, never a storage path (metadata FORMAT.md).
}
