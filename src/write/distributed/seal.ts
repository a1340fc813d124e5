import { KspError } from '../../errors.js';
import { buildManifest, type ManifestEntry } from '../../formats/manifest/manifest.js';
import { verifySavepoint, type Finding } from '../../model/verify.js';
import { toAsyncChunks } from '../../storage/storage.js';
import { child, locate, uriOf, type Location } from '../../storage/uri.js';
import { writeHashed } from '../copy.js';
import { RESERVED, engineIncr, type DistributedPlan, type DoneRecord } from './plan-file.js';
import { within } from '../target.js';

/**
 * What commit and the verify units share: the manifest a run's records add
 * up to, metadata.json and meta.json from the plan's bytes, and the verify
 * pass with the one-process write's rules (write/execute.ts).
 */

export interface RecordedOutputs {
  hashes: ManifestEntry[];
  /** Entries per written task, `op/task`. */
  expected: Map<string, number>;
  files: number;
  bytes: number;
}

/**
 * The outputs of every written unit, from their completion records: each
 * record must name the unit's own outputs (a record copied from elsewhere is
 * refused), and each output must be stored at the size its record gives.
 */
export async function recordedOutputs(plan: DistributedPlan, done: Map<string, DoneRecord>, dir: Location): Promise<RecordedOutputs> {
  const r0: RecordedOutputs = { hashes: [], expected: new Map(), files: 0, bytes: 0 };
  for (const u of plan.units) {
    if (u.kind === 'verify' || u.kind === 'check') continue;
    const r = done.get(u.id);
    if (!r) throw new KspError('DISTRIBUTED_INCOMPLETE', `${uriOf(dir)}: unit ${u.id} has no completion record`, { unit: u.id, missing: [u.id] });
    const want = u.kind === 'route' ? u.run : u.to;
    const first = r.outputs[0];
    // Its one file, or for a native unit the pointer and the files of its own incr/{op}/{task}/ folder.
    // A native copy: exactly the pointer, the manifest and the files its plan names (checkPlan holds each rel to its uri).
    const planned = u.kind === 'native-copy' ? new Map([[u.to, u.rel], [u.manifest.to, u.manifest.rel], ...u.files.map((f) => [f.to, f.rel] as const)]) : null;
    // Native output (a native unit, or a merge written as native state): the pointer and files of its own incr/{op}/{task}/ folder.
    const native = u.kind === 'native' || (u.kind === 'merge' && u.native !== undefined);
    const own = (o: { uri: string; rel: string | null }): boolean => (u.kind === 'native' || u.kind === 'merge') && native
      ? o.uri === u.to || (o.rel !== null && o.rel.startsWith(`incr/${u.outOperator}/${u.outTask}/`) && o.uri === uriOf(child(dir, o.rel)))
        || (o.rel === null && plan.target.mode === 'engine' && sharedOf(dir, u.outOperator, u.outTask, o.uri))
      : planned ? planned.get(o.uri) === o.rel : o.uri === want && (u.kind === 'route' || o.rel === u.rel);
    const count = planned ? planned.size : native ? null : 1;
    if (!first || first.uri !== want || (count !== null && (r.outputs.length !== count || new Set(r.outputs.map((o) => o.uri)).size !== count)) || !r.outputs.every(own)) {
      throw new KspError('DISTRIBUTED_PLAN_INVALID', `${uriOf(dir)}/${RESERVED}/units/${u.id}.done.json: names ${first?.uri ?? 'no output'}, but unit ${u.id} writes ${want}`, { unit: u.id });
    }
    if (u.kind === 'route') continue;
    for (const out of r.outputs) {
      const loc = locate(out.uri);
      const st = await loc.storage.stat(loc.key);
      if (!st || st.size !== out.size) {
        throw new KspError('DISTRIBUTED_INCOMPLETE', `${out.uri}: ${st ? `${st.size} bytes` : 'missing'}, but the completion record of ${u.id} says ${out.size} bytes; run the unit again (delete ${RESERVED}/units/${u.id}.done.json, then ksp work)`, { file: out.uri, unit: u.id });
      }
      if (out.rel !== null) r0.hashes.push({ path: out.rel, sha256: out.sha256 });
      r0.files++;
      r0.bytes += out.size;
    }
    if (u.kind !== 'copy' && u.kind !== 'export' && r.entries !== undefined) r0.expected.set(`${u.outOperator}/${u.outTask}`, r.entries);
  }
  return r0;
}

/** Engine mode: a file in the task's folder of the job's shared incr/ (plan-file.ts engineIncr). */
function sharedOf(dir: Location, op: string, task: string, uri: string): boolean {
  const incr = engineIncr(dir, op, task);
  const l = locate(uri);
  return incr !== null && within(l, incr.location) && !l.key.split('/').some((c) => c === '.' || c === '..');
}

/** Writes metadata.json and meta.json from the plan (the same bytes whoever writes them), and returns the manifest bytes. */
export async function writeMetadata(plan: DistributedPlan, dir: Location, hashes: ManifestEntry[], assertWritable: (l: Location) => void): Promise<{ manifest: Uint8Array; written: Location[]; bytes: number }> {
  const md = child(dir, 'metadata.json');
  const meta = locate(plan.meta.uri);
  for (const l of [md, meta]) assertWritable(l);
  const a = await writeHashed(md, toAsyncChunks(Buffer.from(plan.metadata, 'utf8')));
  const b = await writeHashed(meta, toAsyncChunks(Buffer.from(plan.meta.text, 'utf8')));
  const all = [...hashes, { path: 'metadata.json', sha256: a.sha256 }, ...(plan.meta.rel !== null ? [{ path: plan.meta.rel, sha256: b.sha256 }] : [])];
  return { manifest: buildManifest(all), written: [md, meta], bytes: a.size + b.size };
}

export interface VerifySummary {
  ok: boolean;
  files: number;
  bytes: number;
  entries: number;
  warnings: Finding[];
  tasks: Array<{ operator: string; task: string; entries: number }>;
}

/**
 * The one-process write's re-verify (write/execute.ts), with the manifest
 * still in memory: KEY_GROUP_MISPLACED in a task this run did not route is
 * the source's state (a warning), and every task's entries must be what its
 * record wrote. `select` limits the files read (a verify unit's share).
 */
export async function verifyOutput(dir: Location, plan: DistributedPlan, manifest: Uint8Array, expected: Map<string, number>, o: { threads?: number; select?: (file: string) => boolean } = {}): Promise<VerifySummary> {
  const v = await verifySavepoint(dir, { threads: o.threads, manifest, ...(o.select ? { select: o.select } : {}) });
  const routedHere = new Set(plan.routedTasks);
  for (const f of v.findings) {
    const d = f.data as { operator?: string; task?: string } | undefined;
    if (f.code === 'KEY_GROUP_MISPLACED' && !routedHere.has(`${d?.operator}/${d?.task}`)) {
      f.severity = 'warning';
      f.message = `as in the source: ${f.message}`;
    }
  }
  const errors = v.findings.filter((f) => f.severity === 'error');
  const tasks: VerifySummary['tasks'] = [];
  for (const t of v.tasks) {
    const want = expected.get(`${t.operator}/${t.task}`);
    if (want !== undefined) tasks.push({ operator: t.operator, task: t.task, entries: t.entries });
    if (want !== undefined && t.entries !== want) errors.push({ severity: 'error', code: 'RESCALE_COUNT_MISMATCH', file: t.file, message: `${t.file}: ${t.entries} entries verified, ${want} written` });
  }
  if (errors.length) {
    throw new KspError('OUTPUT_VERIFY_FAILED', `the distributed output does not verify, so it was not committed: ${errors.slice(0, 3).map((f) => `[${f.code}] ${f.message}`).join('; ')}`, { file: uriOf(dir), findings: errors });
  }
  return { ok: true, files: v.totals.files, bytes: v.totals.bytes, entries: v.totals.entries, warnings: v.findings.filter((f) => f.severity === 'warning'), tasks };
}

/** Which verify unit of `count` reads a file: a stable hash of its manifest path or URI. */
export function verifyShardOf(file: string, count: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < file.length; i++) h = Math.imul(h ^ file.charCodeAt(i), 0x01000193) >>> 0;
  return h % count;
}
