import * as fsp from 'node:fs/promises';
import { KspError } from '../../errors.js';
import { MANIFEST_NAME, buildManifest, type ManifestEntry } from '../../formats/manifest/manifest.js';
import { verifySavepoint, type Finding } from '../../model/verify.js';
import { LocalStorage } from '../../storage/local.js';
import { S3Storage } from '../../storage/s3.js';
import { child, locate, uriOf, type Location } from '../../storage/uri.js';
import { writeHashed } from '../copy.js';
import { TargetLock } from '../lock.js';
import { onInterrupt } from '../interrupt.js';
import { TEMP_MARK, targetEntries } from '../target-files.js';
import { toAsyncChunks } from '../../storage/storage.js';
import { RESERVED, checkSourcePinned, readPlan, type DistributedPlan } from './plan-file.js';
import { checkReserved, sourceGuard } from './shard.js';
import { unitStates, type UnitStatus } from './status.js';

/**
 * Seals a distributed run: every unit's completion record first (refused,
 * listing them, while any is missing or failed), then metadata.json and
 * meta.json from the plan's bytes, then the full verify pass against the
 * manifest held in memory, and only then manifest.sha256, read back, and the
 * reserved folder removed. Until the manifest is written nothing at the
 * target verifies; a failed verify removes metadata.json and meta.json
 * again, so it still does not.
 */

export interface CommitOptions {
  threads?: number;
  forceUnlock?: boolean;
  onPhase?: (phase: 'check' | 'verify' | 'seal') => void;
}

export interface CommitReport {
  ok: true;
  target: string;
  /** The target was already committed: only the reserved folder was cleaned up. */
  alreadyCommitted: boolean;
  units: number;
  files: number;
  bytes: number;
  tasks: Array<{ operator: string; task: string; entries: number }>;
  verify: { ok: boolean; files: number; bytes: number; entries: number; warnings: Finding[] };
  seconds: number;
}

export async function commitDistributed(target: string | Location, o: CommitOptions = {}): Promise<CommitReport> {
  const started = Date.now();
  const dir = typeof target === 'string' ? locate(target) : target;
  const report: CommitReport = { ok: true, target: uriOf(dir), alreadyCommitted: false, units: 0, files: 0, bytes: 0, tasks: [], verify: { ok: false, files: 0, bytes: 0, entries: 0, warnings: [] }, seconds: 0 };
  const manifest = child(dir, MANIFEST_NAME);
  const lock = await TargetLock.acquire(dir, { forceUnlock: o.forceUnlock, command: 'commit' });
  let wroteMeta: Location[] = [];
  // A signal before the seal: metadata goes again (nothing may verify unsealed), and the lock is released.
  const unregister = onInterrupt(async () => {
    for (const l of wroteMeta) await l.storage.delete(l.key).catch(() => undefined);
    await lock.release();
    return wroteMeta.length ? `metadata.json and meta.json removed; nothing at ${uriOf(dir)} was sealed (run ksp commit again)` : `nothing at ${uriOf(dir)} was sealed (run ksp commit again)`;
  });
  try {
    // Sealed already (a commit that died after the manifest): finish the cleanup only.
    if (await manifest.storage.stat(manifest.key)) {
      await removeReserved(dir);
      report.alreadyCommitted = true;
      report.seconds = (Date.now() - started) / 1000;
      return report;
    }
    o.onPhase?.('check');
    const plan = await readPlan(dir);
    await checkSourcePinned(plan);
    const guard = sourceGuard(plan);
    guard.assertTargetApart(dir);
    await checkReserved(dir, guard);
    const { statuses, done } = await unitStates(plan, dir);
    const open = statuses.filter((s) => s.state !== 'done');
    if (open.length) throw incomplete(dir, open, statuses.length);
    report.units = statuses.length;

    const hashes: ManifestEntry[] = [];
    const expected = new Map<string, number>();
    for (const u of plan.units) {
      const r = done.get(u.id)!;
      const want = u.kind === 'route' ? u.run : u.to;
      const first = r.outputs[0];
      // A record must describe the unit's own outputs (a record copied from elsewhere is refused):
      // its one file, or for a native unit the pointer and the files of its own incr/{op}/{task}/ folder.
      const own = (o: { uri: string; rel: string | null }): boolean => u.kind === 'native'
        ? o.uri === u.to || (o.rel !== null && o.rel.startsWith(`incr/${u.outOperator}/${u.outTask}/`) && o.uri === uriOf(child(dir, o.rel)))
        : o.uri === want && (u.kind === 'route' || o.rel === u.rel);
      if (!first || first.uri !== want || (u.kind !== 'native' && r.outputs.length !== 1) || !r.outputs.every(own)) {
        throw new KspError('DISTRIBUTED_PLAN_INVALID', `${uriOf(dir)}/${RESERVED}/units/${u.id}.done.json: names ${first?.uri ?? 'no output'}, but unit ${u.id} writes ${want}`, { unit: u.id });
      }
      if (u.kind === 'route') continue;
      for (const out of r.outputs) {
        const loc = locate(out.uri);
        const st = await loc.storage.stat(loc.key);
        if (!st || st.size !== out.size) {
          throw new KspError('DISTRIBUTED_INCOMPLETE', `${out.uri}: ${st ? `${st.size} bytes` : 'missing'}, but the completion record of ${u.id} says ${out.size} bytes; run the unit again (delete ${RESERVED}/units/${u.id}.done.json, then ksp work)`, { file: out.uri, unit: u.id });
        }
        if (out.rel !== null) hashes.push({ path: out.rel, sha256: out.sha256 });
        report.files++;
        report.bytes += out.size;
      }
      if (u.kind !== 'copy' && r.entries !== undefined) expected.set(`${u.outOperator}/${u.outTask}`, r.entries);
    }

    // Leftovers of shards killed mid-write (local disk; S3 uploads are atomic and aborted below).
    await removeTempFiles(dir);
    if (dir.storage instanceof S3Storage) await dir.storage.abortUploads(dir.key).catch(() => undefined);

    const md = child(dir, 'metadata.json');
    const meta = locate(plan.meta.uri);
    for (const l of [md, meta]) guard.assertNotSource(l, 'write');
    wroteMeta = [md, meta];
    const a = await writeHashed(md, toAsyncChunks(Buffer.from(plan.metadata, 'utf8')));
    hashes.push({ path: 'metadata.json', sha256: a.sha256 });
    const b = await writeHashed(meta, toAsyncChunks(Buffer.from(plan.meta.text, 'utf8')));
    if (plan.meta.rel !== null) hashes.push({ path: plan.meta.rel, sha256: b.sha256 });
    report.files += 2;
    report.bytes += a.size + b.size;
    const manifestBytes = buildManifest(hashes);

    o.onPhase?.('verify');
    await verifyOutput(dir, plan, manifestBytes, expected, report, o.threads);

    o.onPhase?.('seal');
    await lock.assertHeld();
    await dir.storage.write(manifest.key, manifestBytes);
    const back = await dir.storage.readSmall(manifest.key);
    if (Buffer.compare(Buffer.from(back), Buffer.from(manifestBytes)) !== 0) {
      await dir.storage.delete(manifest.key).catch(() => undefined);
      throw new KspError('OUTPUT_VERIFY_FAILED', `${uriOf(manifest)}: reads back different from what was written and verified, so it was removed`, { file: uriOf(manifest) });
    }
    wroteMeta = [];
    unregister();
    await removeReserved(dir);
  } catch (e) {
    // Nothing may verify after a failed commit: the manifest was never written, and metadata goes too.
    for (const l of wroteMeta) await l.storage.delete(l.key).catch(() => undefined);
    throw e;
  } finally {
    unregister();
    await lock.release();
  }
  report.seconds = (Date.now() - started) / 1000;
  return report;
}

function incomplete(dir: Location, open: UnitStatus[], total: number): KspError {
  const by = (s: UnitStatus['state']): UnitStatus[] => open.filter((x) => x.state === s);
  const failed = by('failed');
  const parts: string[] = [];
  for (const s of ['missing', 'running', 'stalled'] as const) {
    const l = by(s);
    if (l.length) parts.push(`${l.length} ${s} (${l.slice(0, 5).map((x) => `${x.id} ${x.what}`).join(', ')}${l.length > 5 ? ', …' : ''})`);
  }
  if (failed.length) parts.push(`${failed.length} failed (${failed.slice(0, 3).map((x) => `${x.id} ${x.what}: [${x.error?.code}] ${x.error?.message}`).join('; ')}${failed.length > 3 ? '; …' : ''})`);
  return new KspError('DISTRIBUTED_INCOMPLETE', `${uriOf(dir)}: ${open.length} of ${total} unit(s) not done, so nothing was committed: ${parts.join('; ')}. Run the shards again (ksp work), then commit`, {
    file: uriOf(dir),
    missing: by('missing').map((x) => x.id), running: by('running').map((x) => x.id), stalled: by('stalled').map((x) => x.id),
    failed: failed.map((x) => ({ unit: x.id, what: x.what, shard: x.shard, error: x.error })),
  });
}

/** The one-process write's re-verify (write/execute.ts), with the manifest still in memory. */
async function verifyOutput(dir: Location, plan: DistributedPlan, manifestBytes: Uint8Array, expected: Map<string, number>, report: CommitReport, threads?: number): Promise<void> {
  const v = await verifySavepoint(dir, { threads, manifest: manifestBytes });
  const routedHere = new Set(plan.routedTasks);
  for (const f of v.findings) {
    const d = f.data as { operator?: string; task?: string } | undefined;
    if (f.code === 'KEY_GROUP_MISPLACED' && !routedHere.has(`${d?.operator}/${d?.task}`)) {
      f.severity = 'warning';
      f.message = `as in the source: ${f.message}`;
    }
  }
  const errors = v.findings.filter((f) => f.severity === 'error');
  for (const t of v.tasks) {
    const want = expected.get(`${t.operator}/${t.task}`);
    if (want !== undefined) report.tasks.push({ operator: t.operator, task: t.task, entries: t.entries });
    if (want !== undefined && t.entries !== want) errors.push({ severity: 'error', code: 'RESCALE_COUNT_MISMATCH', file: t.file, message: `${t.file}: ${t.entries} entries verified, ${want} written` });
  }
  report.verify = { ok: errors.length === 0, files: v.totals.files, bytes: v.totals.bytes, entries: v.totals.entries, warnings: v.findings.filter((f) => f.severity === 'warning') };
  if (errors.length) {
    throw new KspError('OUTPUT_VERIFY_FAILED', `the distributed output does not verify, so it was not committed (metadata removed; unit outputs kept): ${errors.slice(0, 3).map((f) => `[${f.code}] ${f.message}`).join('; ')}`, { file: uriOf(dir), findings: errors });
  }
}

/** `*.ksp-tmp-*` files under the target (local disk): left by shards killed mid-write. */
async function removeTempFiles(dir: Location): Promise<void> {
  if (!(dir.storage instanceof LocalStorage)) return;
  for await (const e of targetEntries(dir)) {
    if (e.kind === 'file' && e.rel.slice(e.rel.lastIndexOf('/') + 1).includes(TEMP_MARK)) await dir.storage.delete(e.key).catch(() => undefined);
  }
}

/** Removes `_ksp/`: on local disk only a real folder (never through a symlink), on S3 every object under the prefix. */
export async function removeReserved(dir: Location): Promise<void> {
  const r = child(dir, RESERVED);
  if (r.storage instanceof LocalStorage) {
    const p = r.storage.pathOf(r.key);
    const st = await fsp.lstat(p).catch(() => null);
    if (!st) return;
    if (!st.isDirectory()) throw new KspError('TARGET_FOREIGN_FILE', `${p}: the reserved folder is not a plain folder (a link?); remove it yourself`, { file: p });
    await fsp.rm(p, { recursive: true, force: true });
    return;
  }
  const keys: string[] = [];
  for await (const e of r.storage.list(r.key)) if (!e.isPrefix) keys.push(e.key);
  // The plan last: a cleanup cut short still shows the run's records to `status`.
  keys.sort((a, b) => Number(a.endsWith('/plan.json')) - Number(b.endsWith('/plan.json')));
  for (let i = 0; i < keys.length; i += 16) await Promise.all(keys.slice(i, i + 16).filter((k) => !k.endsWith('/plan.json')).map((k) => r.storage.delete(k)));
  for (const k of keys.filter((x) => x.endsWith('/plan.json'))) await r.storage.delete(k);
}
