import { uriOf, type Location } from '../storage/uri.js';
import { KEY_GROUPS } from './key-group.js';
import { attachNative, type NativeInfo } from './native-state.js';
import { estimateTotal, taskReadBytes } from './read-bytes.js';
import { Savepoint } from './savepoint.js';
import { scanFiles } from './scan-pool.js';
import type { ScanRequest, ScanResult, StateCount } from './scan-file.js';
import type { WindowJoinSummary } from '../formats/task-format/index.js';
import type { HashLookup } from './source-integrity.js';

/** `ksp inspect` summary: what is in a savepoint, per operator, task and state. */

export interface StateSummary {
  name: string;
  /** Operator id stored inside the entries (may differ from the metadata's). */
  entryOperator: string;
  entries: number;
  keyBytes: number;
  valueBytes: number;
}

export interface TaskSummary {
  id: string;
  file: string;
  format: ScanResult['kind'];
  size: number;
  entries: number;
  states: StateSummary[];
  pointer?: string;
  /** Native tasks: their RocksDB files (format versions, compression, checksums, levels). */
  native?: NativeInfo;
  /** state.bin header version (canonical tasks). */
  version?: 1 | 2;
  /** Window-join tasks: spec, watermark, buffered events and rows. */
  windowJoin?: WindowJoinSummary;
  /** Warnings about the task's body (a 0-byte file, v2, likely TTL prefixes, repeated keys), as verify reports them. */
  notes?: Array<{ code: string; message: string; severity?: 'warning' | 'info' }>;
  error?: { code: string; message: string };
}

export interface KeyGroupSpread {
  /** Key groups holding at least one entry. */
  distinct: number;
  /** Fewest / most entries in one non-empty key group. */
  minPerGroup: number;
  maxPerGroup: number;
  /** Entries whose key is in window layout (counted by their group key) and watermark entries. */
  windowKeys: number;
  watermarkKeys: number;
}

export interface OperatorSummary {
  id: string;
  /** Its tasks, all of them. */
  taskCount: number;
  /** Their summaries, in metadata order: all, or as many as InspectOptions.records keeps. */
  tasks: TaskSummary[];
  /** Tasks with an error, all of them (kept in `tasks` or not). */
  errorTasks: number;
  /** Tasks with an error or a note beyond those kept (InspectOptions.records): counted, not listed. */
  omittedWithNotes: number;
  states: StateSummary[];
  entries: number;
  bytes: number;
  /** Entries repeating a key stored earlier in their task (KEY_REPEATED): the engine keeps the last. */
  repeatedKeys: number;
  keyGroups: KeyGroupSpread;
}

export interface InspectSummary {
  uri: string;
  jobId: string;
  epoch: string;
  kind: 'checkpoint' | 'savepoint';
  label: string | null;
  timestampMs: string;
  metadataVersion: number;
  layout: string;
  savepointId?: string;
  operatorVersions?: Record<string, string>;
  /** The metadata's source_offsets, in its order: where each source partition resumes. `offset` is an i64 as text, `encodedOffset` hex. */
  sourceOffsets: Array<{ partitionId: string; offset: string; encodedOffset?: string }>;
  operators: OperatorSummary[];
  totals: { operators: number; tasks: number; entries: number; bytes: number; repeatedKeys: number; nativeTasks: number; statelessTasks: number; windowJoinTasks: number };
}

/** Tasks probed, scanned and folded per chunk: requests and results of 200,000 tasks at once cost hundreds of MB. */
const SCAN_CHUNK = 2048;

/** Tasks with an error or a note listed per operator beyond InspectOptions.records (as verify's FINDINGS_PER_CODE). */
const NOTED_KEPT = 100;

export interface InspectOptions {
  onBytes?: (n: number) => void;
  /** The bytes to read, chunk by chunk: an estimate from the tasks sized so far (read-bytes.ts estimateTotal) until `exact`. */
  onTotal?: (n: number, exact: boolean) => void;
  threads?: number;
  /** SHA-256 per file URI from the source's manifest (source-integrity.ts): each state file read is checked against it. */
  hashes?: HashLookup;
  /**
   * Task summaries kept per operator (default: all). A number keeps that
   * many, plus every task with an error or a note; `taskCount` still counts
   * them all. At 200,000 tasks the summaries alone take ~40 MB.
   */
  records?: boolean | number;
  /** Each operator's entries per key group (KEY_GROUPS counts) once its tasks are read: the report's skew chart. */
  onKeyGroups?: (operatorId: string, groups: Uint32Array) => void;
}

export async function inspectSavepoint(target: string | Location | Savepoint, options: InspectOptions = {}): Promise<InspectSummary> {
  const sp = target instanceof Savepoint ? target : await Savepoint.open(target);
  const md = sp.metadata.value;
  const keepPerOp = options.records === undefined || options.records === true ? Infinity : options.records === false ? 0 : options.records;
  const ops = new Map<string, { summary: OperatorSummary; groups: Uint32Array }>();
  for (const t of sp.tasks) {
    if (ops.has(t.operatorId)) continue;
    ops.set(t.operatorId, {
      summary: { id: t.operatorId, taskCount: 0, tasks: [], errorTasks: 0, omittedWithNotes: 0, states: [], entries: 0, bytes: 0, repeatedKeys: 0, keyGroups: { distinct: 0, minPerGroup: 0, maxPerGroup: 0, windowKeys: 0, watermarkKeys: 0 } },
      groups: new Uint32Array(KEY_GROUPS),
    });
  }
  const kinds = { native: 0, stateless: 0, 'window-join': 0 } as Record<string, number>;
  let total = 0;
  for (let from = 0; from < sp.tasks.length; from += SCAN_CHUNK) {
    const tasks = sp.tasks.slice(from, from + SCAN_CHUNK);
    // Sizes come from the probe in attachNative (one stat per task, a bounded number at once).
    const reqs: ScanRequest[] = tasks.map((t) => {
      const uri = uriOf(t.location);
      return { uri, hash: options.hashes?.has(uri) ?? false, decode: true, keyGroups: true, repeats: true };
    });
    // With the manifest's hashes (not --trust-source), each SST is checked
    // against its sst_manifest.json hash as it is read, as every file read is.
    const nativeErrors = await attachNative(sp, reqs.map((req, i) => ({ req, task: tasks[i] })), (options.hashes?.size ?? 0) > 0);
    for (const r of reqs) total += taskReadBytes(r);
    options.onTotal?.(estimateTotal(total, from + tasks.length, sp.tasks.length), from + tasks.length >= sp.tasks.length);
    // Each task's key-group counts (128 KiB) are added to its operator's as
    // they arrive and dropped: memory grows with operators, not with tasks.
    const onResult = (i: number, r: ScanResult): void => {
      const groups = ops.get(tasks[i]!.operatorId)!.groups;
      if (r.keyGroups) for (let g = 0; g < KEY_GROUPS; g++) groups[g]! += r.keyGroups[g]!;
      delete r.keyGroups;
    };
    const results = await scanFiles(reqs, { onBytes: options.onBytes, onResult, threads: options.threads });
    tasks.forEach((t, i) => {
      const r = results[i]!;
      const pre = nativeErrors.get(i);
      if (pre) r.error = { code: pre.code, message: pre.message, data: pre.data };
      const want = options.hashes?.get(r.uri);
      if (!r.error && want !== undefined && r.sha256 !== undefined && r.sha256 !== want) {
        r.error = { code: 'HASH_MISMATCH', message: `${r.uri}: SHA-256 ${r.sha256} differs from ${want} in the savepoint's manifest.sha256`, data: { file: r.uri, expected: want, found: r.sha256 } };
      }
      // A task whose file is gone cannot be summarised: an error, as in verify
      // (FILE_MISSING) and the writers (FILES_MISSING), never a quiet "missing" row.
      if (!r.error && r.kind === 'missing') {
        r.error = { code: 'NOT_FOUND', message: `${r.uri}: state file of ${t.operatorId}/${t.taskId} does not exist`, data: { file: r.uri } };
      }
      if (r.kind in kinds) kinds[r.kind]!++;
      const op = ops.get(t.operatorId)!;
      op.summary.taskCount++;
      op.summary.entries += r.entryCount;
      op.summary.repeatedKeys += r.repeatedKeys ?? 0;
      // A native task's data is its SST files, not the pointer file its snapshot path names.
      op.summary.bytes += r.native ? r.native.sstBytes : r.size;
      mergeStates(op.summary.states, r.states);
      op.summary.keyGroups.windowKeys += r.windowKeys;
      op.summary.keyGroups.watermarkKeys += r.watermarkKeys;
      const noted = r.error !== undefined || (r.notes?.length ?? 0) > 0;
      if (r.error) op.summary.errorTasks++;
      if (op.summary.tasks.length >= keepPerOp) {
        // Beyond the plain ones kept, those with an error or a note are listed
        // up to NOTED_KEPT per operator (as verify lists a finding), then counted.
        if (!noted) return;
        if (op.summary.tasks.length >= keepPerOp + NOTED_KEPT) {
          op.summary.omittedWithNotes++;
          return;
        }
      }
      const task: TaskSummary = { id: t.taskId, file: r.uri, format: r.kind, size: r.size, entries: r.entryCount, states: r.states.map(stateOf) };
      if (r.pointer) task.pointer = r.pointer;
      if (r.native) task.native = r.native;
      if (r.version) task.version = r.version;
      if (r.windowJoin) task.windowJoin = r.windowJoin;
      if (r.notes?.length) task.notes = r.notes.map((n) => ({ code: n.code, message: n.message, ...(n.severity === 'info' ? { severity: n.severity } : {}) }));
      if (r.error) task.error = { code: r.error.code, message: r.error.message };
      op.summary.tasks.push(task);
    });
  }
  for (const { summary, groups } of ops.values()) {
    summary.keyGroups = { ...summary.keyGroups, ...spread(groups) };
    options.onKeyGroups?.(summary.id, groups);
  }

  const operators = [...ops.values()].map((o) => o.summary);
  const meta = sp.meta?.value;
  return {
    uri: sp.uri, jobId: md.job_id, epoch: md.epoch.toString(), kind: sp.kind, label: sp.label,
    timestampMs: md.timestamp_ms.toString(), metadataVersion: md.version, layout: sp.pathMode,
    sourceOffsets: md.source_offsets.map((o) => ({
      partitionId: o.partition_id, offset: o.offset.toString(),
      ...(o.encoded_offset?.length ? { encodedOffset: Buffer.from(o.encoded_offset).toString('hex') } : {}),
    })),
    ...(meta ? { savepointId: meta.savepoint_id, operatorVersions: Object.fromEntries([...sp.meta!.operatorVersions()].map(([k, v]) => [k, v.toString()])) } : {}),
    operators,
    totals: {
      operators: operators.length,
      tasks: sp.tasks.length,
      entries: operators.reduce((s, o) => s + o.entries, 0),
      bytes: operators.reduce((s, o) => s + o.bytes, 0),
      repeatedKeys: operators.reduce((s, o) => s + o.repeatedKeys, 0),
      nativeTasks: kinds.native!,
      statelessTasks: kinds.stateless!,
      windowJoinTasks: kinds['window-join']!,
    },
  };
}

function stateOf(s: StateCount): StateSummary {
  return { name: s.state, entryOperator: s.operator, entries: s.entries, keyBytes: s.keyBytes, valueBytes: s.valueBytes };
}

function mergeStates(into: StateSummary[], add: StateCount[]): void {
  for (const s of add) {
    const have = into.find((x) => x.name === s.state && x.entryOperator === s.operator);
    if (have) {
      have.entries += s.entries;
      have.keyBytes += s.keyBytes;
      have.valueBytes += s.valueBytes;
    } else into.push(stateOf(s));
  }
}

function spread(groups: Uint32Array): Pick<KeyGroupSpread, 'distinct' | 'minPerGroup' | 'maxPerGroup'> {
  let distinct = 0;
  let min = Infinity;
  let max = 0;
  for (const n of groups) {
    if (n === 0) continue;
    distinct++;
    if (n < min) min = n;
    if (n > max) max = n;
  }
  return { distinct, minPerGroup: distinct ? min : 0, maxPerGroup: max };
}
