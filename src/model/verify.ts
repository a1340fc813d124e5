import { KspError, isKspError } from '../errors.js';
import { optionName } from '../option-names.js';
import { MANIFEST_NAME, ManifestIndex, parseManifestIndex } from '../formats/manifest/manifest.js';
import { epochDirName } from '../formats/metadata/metadata.js';
import { child, locate, uriOf, type Location } from '../storage/uri.js';
import { Savepoint, type TaskRef } from './savepoint.js';
import { attachNative, type NativeInfo } from './native-state.js';
import { estimateTotal, taskReadBytes } from './read-bytes.js';
import { placementPlan, type PlacementPlan } from './placement.js';
import { rangeOwnersByName } from './task-ranges.js';
import { scanFiles } from './scan-pool.js';
import { strayTempFiles } from '../write/target-files.js';
import type { PlacementProof, ScanRequest, ScanResult, StateCount } from './scan-file.js';
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
  /** On the closing finding of a code raised more than FINDINGS_PER_CODE times: how many were counted, not listed. */
  omitted?: number;
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
  /** Empty when records were not kept (VerifyOptions.records). */
  files: FileCheck[];
  /** Empty when records were not kept (VerifyOptions.records). */
  tasks: TaskCheck[];
  totals: { files: number; bytes: number; tasks: number; entries: number; nativeTasks: number };
  findings: Finding[];
}

export interface VerifyOptions {
  onBytes?: (n: number) => void;
  /**
   * The bytes the current phase reads: files are sized chunk by chunk
   * (SCAN_CHUNK), so until `exact` (the call that sized the phase's last
   * chunk) it is an estimate from the files sized so far (read-bytes.ts).
   */
  onTotal?: (bytes: number, exact: boolean) => void;
  /** Each phase as it starts: 'state' reads every task's state (and a native task's tables), 'files' hashes the other listed files. */
  onPhase?: (phase: 'state' | 'files') => void;
  threads?: number;
  /**
   * Check against these manifest bytes instead of the stored manifest.sha256:
   * a writer verifies its output before it seals it with the manifest. A
   * writer may hand its index itself, sorted (ManifestIndex.sort), when it
   * encodes the manifest from that same index afterwards.
   */
  manifest?: Uint8Array | ManifestIndex;
  /** More folders the savepoint may read from (`--allow-root`). */
  allowRoots?: readonly string[];
  /**
   * Keep a record per file and per task in `files` and `tasks` (default
   * true); a number keeps them only when the savepoint has at most that many
   * tasks. Without them a report's size is bounded by its findings: at
   * 200,000 tasks the records alone take ~90 MB.
   */
  records?: boolean | number;
  /** Each task's check as it is made, kept in `tasks` or not. */
  onTask?: (t: TaskCheck) => void;
  /** Each listed file's check as it is made, kept in `files` or not. */
  onFile?: (f: FileCheck) => void;
  /**
   * Manifest paths whose hash a writer takes from this read-back instead of
   * hashing the file twice: `manifest` lists them with any valid hash, and
   * each one's FileCheck reports the hash of the bytes read here, which were
   * decoded and checked in the same pass (write/execute.ts seals that hash).
   */
  adopt?: ReadonlySet<string>;
  /** Manifest paths of outputs a rescale just routed, with what its routing pass saw (scan-file.ts PlacementProof). */
  placementProofs?: ReadonlyMap<string, PlacementProof>;
  /**
   * Read only the files this accepts (a manifest path, or an unlisted task's
   * state file URI): one shard of a distributed run's verification
   * (write/distributed/). The metadata-level checks still run in full.
   */
  select?: (file: string) => boolean;
}

/** Findings listed per code; the rest of that code are counted (see `add` in verifySavepoint). */
export const FINDINGS_PER_CODE = 100;

/** Errors in a report, the counted-not-listed ones included. */
export function errorCount(report: VerifyReport): number {
  return report.findings.reduce((n, f) => n + (f.severity === 'error' ? 1 + (f.omitted ?? 0) : 0), 0);
}

function finding(severity: Severity, code: string, message: string, file?: string, data?: Record<string, unknown>): Finding {
  return { severity, code, message, ...(file ? { file } : {}), ...(data ? { data } : {}) };
}

export async function verifySavepoint(target: string | Location, options: VerifyOptions = {}): Promise<VerifyReport> {
  const report: VerifyReport = {
    ok: false, uri: typeof target === 'string' ? target : uriOf(target), files: [], tasks: [],
    totals: { files: 0, bytes: 0, tasks: 0, entries: 0, nativeTasks: 0 }, findings: [],
  };
  // A savepoint of 200,000 tasks can raise the same finding 200,000 times:
  // the first FINDINGS_PER_CODE of each code are listed, the rest counted
  // into one closing finding of that code (data.omitted), so memory and
  // output stay bounded and the error count stays exact.
  const perCode = new Map<string, { shown: number; omitted: number; severity: Severity }>();
  const add = (f: Finding): void => {
    let c = perCode.get(f.code);
    if (!c) perCode.set(f.code, (c = { shown: 0, omitted: 0, severity: f.severity }));
    if (c.severity !== f.severity || c.shown < FINDINGS_PER_CODE) {
      c.shown++;
      report.findings.push(f);
    } else c.omitted++;
  };
  const closeFindings = (): void => {
    for (const [code, c] of perCode) {
      if (c.omitted) report.findings.push({ ...finding(c.severity, code, `${c.omitted} more ${code} finding(s) like the ${FINDINGS_PER_CODE} above, not listed`), omitted: c.omitted });
    }
  };
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
  let manifest: ManifestIndex | null = null;
  if (!options.manifest && !(await sp.dir.storage.stat(manifestLoc.key))) {
    add(finding('error', 'MANIFEST_MISSING', `${manifestUri}: no manifest; the directory is incomplete (the engine writes the manifest last)`, manifestUri));
  } else {
    try {
      if (options.manifest instanceof ManifestIndex) manifest = options.manifest;
      else {
        const parsed = parseManifestIndex(options.manifest ?? (await sp.dir.storage.readSmall(manifestLoc.key)), manifestUri);
        manifest = parsed.index;
        for (const n of parsed.notes) add(finding('warning', 'MANIFEST_LAYOUT', `${manifestUri}: line ${n.line}: ${n.message}`, manifestUri, { line: n.line }));
      }
    } catch (e) {
      if (!isKspError(e)) throw e;
      add(finding('error', e.code, e.message, manifestUri, e.data));
    }
  }
  const listed = manifest ?? new ManifestIndex();

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
    add(finding('warning', 'STRAY_TEMP_FILE', `${u}: a temporary file of an interrupted ksp write; the savepoint does not need it (delete it, or re-run the write with ${optionName('overwrite')})`, u));
  }
  checkOtherPaths(sp, add);

  // 4. One pass over every file: hashes of listed files, full decode of state
  // files, and (5) key-group placement, checked in the same pass. In chunks
  // of SCAN_CHUNK files, each folded into the report before the next is
  // planned: requests and results of 200,000 files at once cost gigabytes.
  const taskByRel = new Map<string, number>();
  for (const t of sp.tasks) if (t.relPath) taskByRel.set(t.relPath, t.index);
  const placement = placementPlan(sp);
  const keep = options.records === undefined || options.records === true || (typeof options.records === 'number' && sp.tasks.length <= options.records);
  const fold = new ScanFold(sp, report, listed, placement, add, keep, options);
  const scanOptions = { onBytes: options.onBytes, threads: options.threads };
  // How many tasks the loops below queue, so the progress total is known to be whole at the last chunk.
  let toQueue = 0;
  if (options.onTotal) {
    for (const [rel] of taskByRel) if (listed.has(rel) && (!options.select || options.select(rel))) toQueue++;
    for (const t of sp.tasks) if (!(t.relPath && listed.has(t.relPath)) && (!options.select || options.select(uriOf(t.location)))) toQueue++;
  }
  let queued = 0;
  let queue: Pending[] = [];
  const flush = async (): Promise<void> => {
    const chunk = queue;
    queue = [];
    queued += chunk.length;
    await fold.tasks(chunk, scanOptions, options.onTotal && ((n: number) => options.onTotal!(estimateTotal(n, queued, toQueue), queued >= toQueue)));
  };
  options.onPhase?.('state');
  // Listed files that are not state files (SSTs, meta.json, …) wait for
  // every native task: an SST its task already hashed is not read again.
  const others: Array<{ slot: number; path: string }> = [];
  let slot = 0;
  for (const path of listed.paths()) {
    if (options.select && !options.select(path)) {
      slot++;
      continue;
    }
    const t = taskByRel.get(path);
    if (t === undefined) others.push({ slot, path });
    else {
      queue.push({ task: sp.tasks[t]!, slot, path });
      if (queue.length >= SCAN_CHUNK) await flush();
    }
    slot++;
  }
  for (const t of sp.tasks) {
    if (t.relPath && listed.has(t.relPath)) continue;
    if (options.select && !options.select(uriOf(t.location))) continue;
    queue.push({ task: t });
    if (queue.length >= SCAN_CHUNK) await flush();
  }
  await flush();
  taskByRel.clear();
  if (others.length) {
    options.onPhase?.('files');
    fold.newPhase();
  }
  for (let i = 0; i < others.length; i += SCAN_CHUNK) {
    const sized = Math.min(i + SCAN_CHUNK, others.length);
    await fold.others(others.slice(i, i + SCAN_CHUNK), scanOptions, options.onTotal && ((n: number) => options.onTotal!(estimateTotal(n, sized, others.length), sized >= others.length)));
  }
  fold.finish();
  report.totals.tasks = sp.tasks.length;
  closeFindings();
  report.ok = !report.findings.some((f) => f.severity === 'error');
  return report;
}

/** Files scanned, and results folded, per chunk (see step 4 of verifySavepoint). */
const SCAN_CHUNK = 2048;

interface Pending {
  task: TaskRef;
  /** Position in manifest.sha256, when the manifest lists the task's file. */
  slot?: number;
  path?: string;
}

type ScanOpts = { onBytes?: (n: number) => void; threads?: number };

/**
 * The report as chunks of scans arrive: files in manifest order (each at its
 * slot), tasks in metadata order, and what must outlive a chunk (the hashes
 * native tasks checked, per-operator placement totals) kept small.
 */
class ScanFold {
  /** Null when records are not kept. */
  private readonly files: Array<FileCheck | undefined> | null;
  private readonly tasksAt: Array<TaskCheck | undefined> | null;
  private readonly seen: Uint8Array;
  /** SST uri → the hash its native task checked it against, and whether that task's check held. */
  private readonly nativeHashed = new Map<string, { sha256?: string; ok: boolean }>();
  private readonly unrouted = new Map<string, number>();
  private readonly idsByOp = new Map<string, string[]>();
  private total = 0;

  constructor(
    private readonly sp: Savepoint,
    private readonly report: VerifyReport,
    private readonly listed: ManifestIndex,
    private readonly plan: PlacementPlan,
    private readonly add: (f: Finding) => void,
    keep: boolean,
    private readonly hooks: Pick<VerifyOptions, 'onTask' | 'onFile' | 'adopt' | 'placementProofs'> = {},
  ) {
    this.files = keep ? new Array(listed.size) : null;
    this.tasksAt = keep ? new Array(sp.tasks.length) : null;
    this.seen = new Uint8Array(sp.tasks.length);
    for (const n of plan.notes) add(finding('info', 'PLACEMENT_UNKNOWN', n.message));
  }

  async tasks(chunk: Pending[], opts: ScanOpts, onTotal?: (n: number) => void): Promise<void> {
    if (chunk.length === 0) return;
    const reqs: ScanRequest[] = chunk.map(({ task, path }) => {
      const r: ScanRequest = { uri: uriOf(path !== undefined ? child(this.sp.dir, path) : task.location), hash: path !== undefined, decode: true, keyGroups: false, repeats: true };
      const rule = this.plan.ruleFor(task.index);
      if (rule) r.placement = rule;
      const proof = rule && path !== undefined ? this.hooks.placementProofs?.get(path) : undefined;
      if (proof) r.proof = proof;
      return r;
    });
    const nativeErrors = await attachNative(this.sp, reqs.map((req, i) => ({ req, task: chunk[i]!.task })), true);
    await statAll(reqs);
    this.addTotal(reqs, onTotal);
    const results = await scanFiles(reqs, opts);
    results.forEach((r, i) => {
      const { task, slot, path } = chunk[i]!;
      const pre = nativeErrors.get(i);
      if (pre && !r.error) r.error = { code: pre.code, message: pre.message, data: pre.data };
      for (const f of reqs[i]!.native ?? []) this.nativeHashed.set(f.uri, { sha256: f.sha256, ok: !r.error });
      if (slot !== undefined) this.file(slot, path!, r);
      if (!this.seen[task.index]) {
        this.seen[task.index] = 1;
        const check = taskResult(task, r, slot !== undefined, this.report, this.add);
        this.hooks.onTask?.(check);
        if (this.tasksAt) this.tasksAt[task.index] = check;
      }
      this.placement(task, r);
    });
  }

  /**
   * Listed files that are no task's state file. An SST inside the directory
   * is listed in manifest.sha256 and also hashed by its native task against
   * sst_manifest.json: when both record the same hash and the task's check
   * held, that check stands for both and the file is read once.
   */
  async others(chunk: Array<{ slot: number; path: string }>, opts: ScanOpts, onTotal?: (n: number) => void): Promise<void> {
    const scan: Array<{ slot: number; path: string; req: ScanRequest }> = [];
    for (const { slot, path } of chunk) {
      const uri = uriOf(child(this.sp.dir, path));
      const n = this.nativeHashed.size ? this.nativeHashed.get(uri) : undefined;
      const expected = this.listed.get(path)!;
      if (n?.ok && n.sha256 === expected) {
        const loc = locate(uri);
        const size = (await loc.storage.stat(loc.key))?.size ?? 0;
        this.file(slot, path, { uri, kind: 'file', size, sha256: expected, entryCount: 0, states: [], windowKeys: 0, watermarkKeys: 0 });
      } else scan.push({ slot, path, req: { uri, hash: true, decode: false, keyGroups: false } });
    }
    await statAll(scan.map((x) => x.req));
    this.addTotal(scan.map((x) => x.req), onTotal);
    (await scanFiles(scan.map((x) => x.req), opts)).forEach((r, i) => this.file(scan[i]!.slot, scan[i]!.path, r));
  }

  finish(): void {
    for (const [op, n] of this.unrouted) {
      this.add(finding('info', 'PLACEMENT_UNKNOWN', `operator ${op}: ${n} entries are not in a tw:/sw:/ses: window layout; the engine's rescale broadcasts such keys, so which task owns them cannot be known and their placement is not checked`));
    }
    this.report.files = this.files?.filter((f): f is FileCheck => f !== undefined) ?? [];
    // In metadata order: each check sits at its task's index.
    this.report.tasks = this.tasksAt?.filter((t): t is TaskCheck => t !== undefined) ?? [];
  }

  /** The progress total counts the next phase's bytes from zero. */
  newPhase(): void {
    this.total = 0;
  }

  private addTotal(reqs: ScanRequest[], onTotal?: (n: number) => void): void {
    // Known chunk by chunk: the total grows as the scan reaches later chunks.
    // A native task reads its tables (`work`), as its scan counts them.
    for (const r of reqs) this.total += taskReadBytes(r);
    onTotal?.(this.total);
  }

  private file(slot: number, path: string, r: ScanResult): void {
    let found = r.kind === 'missing' ? null : r.sha256 ?? null;
    const expected = found !== null && this.hooks.adopt?.has(path) ? found : this.listed.get(path)!;
    if (found === expected) found = expected; // one string, not two equal ones
    const check: FileCheck = { path, size: r.size, expected, found, ok: found === expected };
    this.hooks.onFile?.(check);
    if (this.files) this.files[slot] = check;
    this.report.totals.files++;
    this.report.totals.bytes += r.size;
    if (r.kind === 'missing') this.add(finding('error', 'FILE_MISSING', `${r.uri}: listed in the manifest but missing`, r.uri));
    else if (found !== expected) this.add(finding('error', 'HASH_MISMATCH', `${r.uri}: SHA-256 mismatch: expected ${expected}, found ${found}`, r.uri, { expected, found }));
  }

  /**
   * Misplaced entries are errors naming the task, the count and one example
   * with its owner; what cannot be checked is said once per operator.
   */
  private placement(t: TaskRef, r: ScanResult): void {
    const rule = r.placement ? this.plan.ruleFor(t.index) : undefined;
    if (!rule || !r.placement) return;
    const broadcast = r.entryCount - r.placement.routed - r.placement.watermarks;
    if (broadcast > 0 && rule.routing === 'window') this.unrouted.set(t.operatorId, (this.unrouted.get(t.operatorId) ?? 0) + broadcast);
    const { misplaced, routed, example } = r.placement;
    if (!misplaced || !example) return;
    let ids = this.idsByOp.get(t.operatorId);
    if (!ids) this.idsByOp.set(t.operatorId, (ids = this.sp.tasks.filter((x) => x.operatorId === t.operatorId).map((x) => x.taskId)));
    const owner = ids[rangeOwnersByName(ids)[example.range]!];
    const file = uriOf(t.location);
    this.add(finding('error', 'KEY_GROUP_MISPLACED', `${file}: ${misplaced} of ${routed} routed entries of ${t.operatorId}/${t.taskId} lie outside the key-group ranges this task owns at ${rule.parallelism} tasks (${rule.routing} routing); e.g. state ${example.state} key ${example.key} (hex) belongs to range ${example.range}, owned by ${owner}. A restore would look for them on their owner; ksp migrate and rescale place entries as the engine routes them`, file, {
      operator: t.operatorId, task: t.taskId, misplaced, routed, example: { ...example, owner },
    }));
  }
}

async function statAll(reqs: ScanRequest[]): Promise<void> {
  let i = 0;
  const worker = async (): Promise<void> => {
    while (i < reqs.length) {
      const r = reqs[i++]!;
      if (r.size !== undefined || r.missing) continue; // known from the probe
      const loc = locate(r.uri);
      const st = await loc.storage.stat(loc.key);
      if (st) r.size = st.size;
      else r.missing = true;
    }
  };
  await Promise.all(Array.from({ length: Math.min(16, reqs.length) }, worker));
}

/** `listed`: the file was checked as a manifest entry, which already reported it if missing. */
function taskResult(task: TaskRef, r: ScanResult, listed: boolean, report: VerifyReport, add: (f: Finding) => void): TaskCheck {
  // The scan's string when it names the same file: one copy per task.
  const u = uriOf(task.location);
  const file = r.uri === u ? r.uri : u;
  const t: TaskCheck = { operator: task.operatorId, task: task.taskId, file, format: r.kind, entries: r.entryCount, states: r.states };
  if (r.pointer) t.pointer = r.pointer;
  if (r.version) t.version = r.version;
  if (r.windowJoin) t.windowJoin = r.windowJoin;
  report.totals.entries += r.entryCount;
  if (r.kind === 'missing') {
    if (!listed) add(finding('error', 'FILE_MISSING', `${file}: state file of ${task.operatorId}/${task.taskId} does not exist`, file));
  } else if (r.kind === 'native') {
    report.totals.nativeTasks++;
    if (r.native) t.native = r.native;
  }
  if (r.error) add(finding('error', r.error.code, r.error.message, file, r.error.data));
  for (const n of r.notes ?? []) add(finding(n.severity, n.code, `${file}: ${n.message}`, file, n.data));
  return t;
}

function checkTasks(sp: Savepoint, listed: ManifestIndex | null, manifestUri: string, add: (f: Finding) => void): void {
  // Task ids per operator id: no "operator/task" string per task (200,000
  // of them were 12 MB at the peak of a large write's re-verify).
  const ids = new Map<string, Map<string, number>>();
  const files = new Map<string, TaskRef>();
  for (const t of sp.tasks) {
    let ofOp = ids.get(t.operatorId);
    if (!ofOp) ids.set(t.operatorId, (ofOp = new Map()));
    const first = ofOp.get(t.taskId);
    const id = `${t.operatorId}/${t.taskId}`;
    if (first !== undefined) add(finding('error', 'DUPLICATE_TASK', `metadata.json: operator_snapshots[${t.index}] repeats ${id} (first at [${first}])`, uriOf(child(sp.dir, 'metadata.json'))));
    else ofOp.set(t.taskId, t.index);
    // Inside the directory the relative path names the file: no uri string per task.
    const k = t.relPath ?? uriOf(t.location);
    const other = files.get(k);
    const u = other || !t.relPath ? uriOf(t.location) : '';
    if (other) add(finding('error', 'SHARED_STATE_FILE', `${u}: used by both ${other.operatorId}/${other.taskId} and ${id}`, u));
    files.set(k, t);
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
