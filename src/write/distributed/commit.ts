import * as fsp from 'node:fs/promises';
import { KspError } from '../../errors.js';
import { MANIFEST_NAME } from '../../formats/manifest/manifest.js';
import { verifySavepoint, type Finding, type VerifyReport } from '../../model/verify.js';
import type { DoneRecord, DistributedPlan } from './plan-file.js';
import { LocalStorage } from '../../storage/local.js';
import { S3Storage } from '../../storage/s3.js';
import { child, locate, uriOf, type Location } from '../../storage/uri.js';
import { TargetLock } from '../lock.js';
import { onInterrupt } from '../interrupt.js';
import { TEMP_MARK, targetEntries } from '../target-files.js';
import { RESERVED, checkSourcePinned, readPlan } from './plan-file.js';
import { recordedOutputs, verifyOutput, writeMetadata } from './seal.js';
import { checkReserved, sourceGuard } from './shard.js';
import { unitStates, type UnitStatus } from './status.js';
import { isSealed } from './export-plan.js';
import { sealExport, type ExportCommit } from './export-seal.js';

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
  /** Read every file again here, even when the shards verified the output in shares. */
  fullVerify?: boolean;
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
  /** `sharded`: the files were read by the shards' verify units; the commit checked metadata, coverage and identity. */
  verify: { ok: boolean; files: number; bytes: number; entries: number; warnings: Finding[]; sharded?: boolean };
  /** A distributed `ksp verify` (plan command `verify`): the merged report of its shares. */
  verifyReport?: VerifyReport;
  /** A sharded `inspect --out` (plan command `inspect`): its parts and row totals. */
  export?: ExportCommit;
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
    if (await isSealed(dir)) {
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
    if (plan.command === 'verify') {
      report.verifyReport = await mergeChecks(plan, done);
      report.verify = { ok: report.verifyReport.ok, files: report.verifyReport.totals.files, bytes: report.verifyReport.totals.bytes, entries: report.verifyReport.totals.entries, warnings: report.verifyReport.findings.filter((f) => f.severity === 'warning'), sharded: true };
      unregister();
      await removeReserved(dir);
      report.seconds = (Date.now() - started) / 1000;
      return report;
    }
    if (plan.command === 'inspect') {
      await lock.assertHeld();
      report.export = await sealExport(plan, dir, done, { fullVerify: o.fullVerify, assertWritable: (l) => guard.assertNotSource(l, 'write') });
      report.files = report.export.parts;
      report.bytes = report.export.bytes;
      unregister();
      await removeReserved(dir);
      report.seconds = (Date.now() - started) / 1000;
      return report;
    }

    const outs = await recordedOutputs(plan, done, dir);
    report.files = outs.files;
    report.bytes = outs.bytes;

    // Leftovers of shards killed mid-write (local disk; S3 uploads are atomic and aborted below).
    await removeTempFiles(dir);
    if (dir.storage instanceof S3Storage) await dir.storage.abortUploads(dir.key).catch(() => undefined);

    wroteMeta = [child(dir, 'metadata.json'), locate(plan.meta.uri)];
    const md = await writeMetadata(plan, dir, outs.hashes, (l) => guard.assertNotSource(l, 'write'));
    report.files += 2;
    report.bytes += md.bytes;
    const manifestBytes = md.manifest;

    o.onPhase?.('verify');
    // The shards verified the files in shares (verify units); what is left is the metadata-level
    // pass (coverage, identity, paths), unless the whole pass is asked for or the plan has no shares.
    const shares = plan.units.filter((u) => u.kind === 'verify');
    const full = o.fullVerify === true || shares.length === 0;
    try {
      const v = await verifyOutput(dir, plan, manifestBytes, outs.expected, { threads: o.threads, ...(full ? {} : { select: () => false }) });
      report.tasks = v.tasks;
      report.verify = { ok: true, files: v.files, bytes: v.bytes, entries: v.entries, warnings: v.warnings, sharded: !full };
      if (!full) {
        for (const u of shares) {
          const r = done.get(u.id)!.verified;
          if (!r) throw new KspError('DISTRIBUTED_PLAN_INVALID', `${uriOf(dir)}/${RESERVED}/units/${u.id}.done.json: a verify share's record says nothing about what it verified`, { unit: u.id });
          report.verify.files += r.files;
          report.verify.bytes += r.bytes;
          report.verify.entries += r.entries;
          // Each share also ran the metadata-level checks: the same warning once.
          for (const w of r.warnings) {
            if (!report.verify.warnings.some((x) => x.code === w.code && x.message === w.message)) report.verify.warnings.push({ severity: 'warning', code: w.code, message: w.message });
          }
        }
      }
    } catch (e) {
      if (e instanceof KspError && e.code === 'OUTPUT_VERIFY_FAILED') throw new KspError('OUTPUT_VERIFY_FAILED', `${e.message} (metadata removed; unit outputs kept)`, e.data);
      throw e;
    }

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

/**
 * The report of a distributed `ksp verify`: the metadata-level checks run
 * here (no file read), then every share's findings and totals, each finding
 * once (every share also ran the metadata-level checks).
 */
async function mergeChecks(plan: DistributedPlan, done: Map<string, DoneRecord>): Promise<VerifyReport> {
  const base = await verifySavepoint(plan.source.uri, { allowRoots: plan.source.roots, select: () => false });
  const seen = new Set(base.findings.map((f) => `${f.code}\u0000${f.file ?? ''}\u0000${f.message}`));
  for (const u of plan.units) {
    if (u.kind !== 'check') continue;
    const r = done.get(u.id)!;
    if (!r.verified || !Array.isArray(r.findings)) throw new KspError('DISTRIBUTED_PLAN_INVALID', `unit ${u.id}: its record holds no findings`, { unit: u.id });
    base.totals.files += r.verified.files;
    base.totals.bytes += r.verified.bytes;
    base.totals.entries += r.verified.entries;
    for (const f of r.findings) {
      const k = `${f.code}\u0000${f.file ?? ''}\u0000${f.message}`;
      if (!seen.has(k)) {
        seen.add(k);
        base.findings.push(f);
      }
    }
  }
  base.ok = !base.findings.some((f) => f.severity === 'error');
  return base;
}
