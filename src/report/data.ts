import { preview } from '../errors.js';
import { inspectSavepoint, type InspectSummary } from '../model/inspect.js';
import { RepeatDetector, MAX_CHECKED } from '../model/repeated-keys.js';
import type { Savepoint } from '../model/savepoint.js';
import type { HashLookup } from '../model/source-integrity.js';
import { verifySavepoint, type Finding } from '../model/verify.js';

/**
 * What `ksp report` draws, gathered by streaming: the numbers are inspect's
 * own summary (so the page agrees with `ksp inspect --json`), the findings
 * verify's, and one more pass over the entries keeps only the largest values
 * and the keys repeated within a task, each list capped. Memory grows with
 * operators (a 128 KiB key-group table each) and the capped lists, not with
 * entries.
 */

export interface ValueRecord {
  operator: string;
  task: string;
  state: string;
  /** The key as `preview` shows it: text in quotes when printable, else 0x hex; cut at KEY_SHOWN bytes. */
  key: string;
  keyBytes: number;
  valueBytes: number;
}

export interface RepeatRecord {
  operator: string;
  task: string;
  state: string;
  key: string;
  /** Entries of this key after its first in the task (the engine keeps the last). */
  repeats: number;
}

export interface ReportData {
  summary: InspectSummary;
  /** Each operator's entries per key group (32,768), from the same scan as `summary`. */
  keyGroups: Map<string, Uint32Array>;
  /** Null when verify was not run (--no-verify). */
  verify: { ok: boolean; findings: Finding[] } | null;
  largest: ValueRecord[];
  repeated: RepeatRecord[];
  /** Distinct repeated keys found beyond those listed. */
  repeatedNotListed: number;
  /** The source's integrity warnings (--trust-source), shown on the page. */
  warnings: string[];
  whatIfParallelism?: number;
  /** Tasks summarised per operator in metadata order (GatherOptions.tasks): the bars drawn. */
  tasksKept: number;
  generatedAt: string;
}

export interface GatherOptions {
  hashes?: HashLookup;
  threads?: number;
  allowRoots?: readonly string[];
  verify?: boolean;
  /** Task summaries kept per operator (inspect's `records`): the bars drawn. */
  tasks?: number;
  onBytes?: (n: number) => void;
  onTotal?: (n: number) => void;
}

/** Largest values listed. */
export const LARGEST_SHOWN = 10;
/** Repeated keys listed in all; distinct ones remembered per task while counting. */
export const REPEATS_SHOWN = 25;
const REPEATS_PER_TASK = 64;
/** Key bytes shown (and kept) per listed key. */
const KEY_SHOWN = 48;

export async function gatherReport(sp: Savepoint, options: GatherOptions = {}): Promise<Omit<ReportData, 'warnings' | 'whatIfParallelism'>> {
  const keyGroups = new Map<string, Uint32Array>();
  const tasksKept = options.tasks ?? Infinity;
  const summary = await inspectSavepoint(sp, {
    hashes: options.hashes, threads: options.threads, onBytes: options.onBytes, onTotal: options.onTotal,
    records: tasksKept,
    onKeyGroups: (op, groups) => keyGroups.set(op, groups),
  });
  const verify = options.verify === false ? null : await verifySavepoint(sp.dir, { records: false, threads: options.threads, allowRoots: options.allowRoots })
    .then((r) => ({ ok: r.ok, findings: r.findings }));
  const { largest, repeated, repeatedNotListed } = await entryPass(sp, summary);
  return { summary, keyGroups, verify, largest, repeated, repeatedNotListed, tasksKept, generatedAt: new Date().toISOString() };
}

/**
 * One read of every task that holds entries: the LARGEST_SHOWN largest values
 * (a small sorted list, entered only past its smallest), and in the tasks
 * inspect found repeating keys, which keys they are (RepeatDetector's
 * fingerprints, the same check as KEY_REPEATED). A task that fails to read
 * is skipped: inspect and verify already report it.
 */
async function entryPass(sp: Savepoint, summary: InspectSummary): Promise<{ largest: ValueRecord[]; repeated: RepeatRecord[]; repeatedNotListed: number }> {
  const withEntries = new Set<string>();
  const withRepeats = new Set<string>();
  for (const o of summary.operators) {
    for (const t of o.tasks) {
      if (t.entries > 0) withEntries.add(`${o.id}\u0000${t.id}`);
      if (t.notes?.some((n) => n.code === 'KEY_REPEATED')) withRepeats.add(`${o.id}\u0000${t.id}`);
    }
  }
  // Tasks not kept in the summary (beyond options.tasks) are read too: the largest value may be anywhere.
  const kept = new Set(summary.operators.filter((o) => o.tasks.length >= o.taskCount).map((o) => o.id));
  const largest: ValueRecord[] = [];
  let repeated: RepeatRecord[] = [];
  let notListed = 0;
  for (const task of sp.tasks) {
    const id = `${task.operatorId}\u0000${task.taskId}`;
    if (kept.has(task.operatorId) && !withEntries.has(id)) continue;
    const pairs = new Map<string, number>();
    const names: Array<[string, string]> = [];
    const found = new Map<string, RepeatRecord>();
    let extra = 0;
    const detector = withRepeats.has(id)
      ? new RepeatDetector(MAX_CHECKED, (buf, start, len, pair) => {
        const key = buf.subarray(start, start + len);
        const k = `${pair}:${Buffer.from(key).toString('hex')}`;
        const have = found.get(k);
        if (have) have.repeats++;
        else if (found.size < REPEATS_PER_TASK) found.set(k, { operator: names[pair]![0], task: task.taskId, state: names[pair]![1], key: preview(key, KEY_SHOWN), repeats: 1 });
        else extra++;
      })
      : null;
    try {
      for await (const batch of sp.taskBatches(task)) {
        for (const e of batch) {
          const v = e.value.length;
          if (largest.length < LARGEST_SHOWN || v > largest[largest.length - 1]!.valueBytes) {
            const r: ValueRecord = { operator: e.operatorId, task: task.taskId, state: e.stateName, key: preview(e.key, KEY_SHOWN), keyBytes: e.key.length, valueBytes: v };
            let at = largest.length;
            while (at > 0 && largest[at - 1]!.valueBytes < v) at--;
            largest.splice(at, 0, r);
            if (largest.length > LARGEST_SHOWN) largest.pop();
          }
          if (detector) {
            const pk = `${e.operatorId}\u0000${e.stateName}`;
            let pair = pairs.get(pk);
            if (pair === undefined) {
              pairs.set(pk, (pair = names.length));
              names.push([e.operatorId, e.stateName]);
            }
            detector.add(e.key, pair);
          }
        }
      }
    } catch {
      continue;
    }
    if (found.size) {
      repeated = [...repeated, ...found.values()].sort((a, b) => b.repeats - a.repeats);
      notListed += extra + Math.max(0, repeated.length - REPEATS_SHOWN);
      repeated.length = Math.min(repeated.length, REPEATS_SHOWN);
    }
  }
  return { largest, repeated, repeatedNotListed: notListed };
}
