import { tmpdir } from 'node:os';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { KspError } from '../errors.js';
import { optionName } from '../option-names.js';
import { MANIFEST_NAME, ManifestIndex } from '../formats/manifest/manifest.js';
import { encodePointer } from '../formats/pointer/pointer.js';
import { encodeStateBin } from '../formats/state-bin/encoder.js';
import type { StateEntry } from '../formats/state-bin/decoder.js';
import type { PlacementProof } from '../model/scan-file.js';
import { verifySavepoint, type Finding } from '../model/verify.js';
import { child, parent, uriOf, type Location } from '../storage/uri.js';
import { copyFile, hashOf, writeHashed } from './copy.js';
import type { Job, OutputTask } from './jobs.js';
import { REWRITE_BATCH, mapBatches, type StepCount } from './entry-maps.js';
import type { NativeWriteOptions } from './native-output.js';
import { toAsyncChunks } from '../storage/storage.js';
import type { WritePlan } from './plan.js';
import { openTask, repartition, repartitionPlaced } from './repartition.js';
import { UnitPool } from './unit-pool.js';
import { pool } from './pool.js';
import { bytesToRead } from './read-total.js';
import type { TaskRef } from '../model/savepoint.js';
import { eachJob } from './each-job.js';
import { unitPathOf, type RewriteUnit } from './units.js';
import { Spill, type CollisionReport } from './spill.js';
import { nativeLayout, writeNativeTask, type NativeTaskResult } from './native-output.js';
import { releaseSortMemory } from './key-sorter.js';
import { runNativeCanonical } from './native-canonical.js';
import { makeTempDir, removeTempDir, sweepStaleTempDirs } from './temp-dir.js';
import { checkInterrupted, onInterrupt, sealedAt } from './interrupt.js';
import { TargetLock } from './lock.js';
import { SourceGuard, checkTargetEmpty, clearFiles, filesToClear, ownTempFiles } from './target-files.js';
import { S3Storage } from '../storage/s3.js';
import { LocalStorage } from '../storage/local.js';
import * as fsp from 'node:fs/promises';
import * as nodePath from 'node:path';
import type { StoredFile } from './target.js';
import { within } from './target.js';
import type { PreparedWrite } from './writer.js';
import { importOperator } from '../import/apply.js';

/**
 * Carries out a plan under the target's lock: state files first, then
 * metadata.json and meta.json, then a full `ksp verify` of the output
 * against the manifest held in memory and a check that every task holds the
 * entries the plan expects, and only then manifest.sha256, so nothing is
 * sealed before it verified. On any failure or signal the manifest is
 * removed first (so nothing at the target verifies) and then everything this
 * run wrote, as far as storage lets it.
 */

export interface ExecuteOptions {
  /** Where rescale and key-migration spill files go (default: the OS temp dir, or KSP_TMPDIR). */
  tempDir?: string;
  /** Hard-link unchanged local files instead of copying them (same file system). */
  link?: boolean;
  /** Files copied at once (default 8). */
  concurrency?: number;
  threads?: number;
  /** Bytes read in the current phase (the source's in 'write', the output's in the re-verify). */
  onBytes?: (n: number) => void;
  /** The current phase's bytes, once known; `exact` false while it is an estimate (the re-verify sizes its files chunk by chunk). */
  onTotal?: (n: number, exact: boolean) => void;
  /** Called as each phase starts (for progress): the write, the re-verify ('verify'), then the re-verify's own phases (model/verify.ts). */
  onPhase?: (phase: 'write' | 'verify' | 'verify state' | 'verify files') => void;
  /** Things the user should hear about (stale temporary folders removed). */
  onNote?: (message: string) => void;
  /**
   * Keep the per-file and per-task records in the report (`plan.files`,
   * `tasks`; default true). Without them the plan's jobs go before the
   * re-verify, which a write of 200,000 tasks needs to stay within its
   * memory budget; the CLI keeps them for `--json` and `--verbose`.
   */
  records?: boolean;
}

export interface TaskCount {
  operator: string;
  task: string;
  entries: number;
}

export interface WriteReport {
  ok: true;
  plan: WritePlan;
  target: string;
  written: { files: number; bytes: number; copied: number; rewritten: number };
  /** Entries of every task whose file was (re)written, as written and as verified. */
  tasks: TaskCount[];
  rescale: Array<{ operator: string; routed: number; broadcast: number; mergedDuplicates: number; counts: number[] }>;
  /** Operators a key migration re-partitioned in place: entries moved to the owner of their new key. */
  moved: Array<{ operator: string; moved: number; counts: number[] }>;
  collisions: Array<{ operator: string; task?: string } & CollisionReport>;
  /** Per registered migration step: entries transformed, and entries of its operator passed through (another state). */
  migrations: StepCount[];
  /** Operators written from import rows: rows applied, entries they replaced or removed, entries per task. */
  imported: Array<{ operator: string; upserts: number; deletes: number; replaced: number; counts: number[] }>;
  /** Tasks written as native state: tables written, and entries dropped because a later entry had the same key. */
  native: Array<{ operator: string; task: string } & NativeTaskResult>;
  verify: { ok: boolean; files: number; bytes: number; entries: number; warnings: Finding[] };
  /** Spill folders of dead runs removed from the temp dir at the start. */
  tempCleanup: { dir: string; folders: number; bytes: number };
  seconds: number;
}

export async function executePlan(p: PreparedWrite, options: ExecuteOptions = {}): Promise<WriteReport> {
  const started = Date.now();
  const { target } = p;
  const written: Location[] = [];
  // Each written file's hash, compact (32 bytes a file; see ManifestIndex).
  const hashes = new ManifestIndex();
  const expected = new Map<string, number>();
  // Files this run wrote that the manifest index lists, by its position, once
  // taken out of `written` (keepOutsideOnly): one byte a file, not a Location.
  let ownInManifest: Uint8Array = new Uint8Array(0);
  // Outputs copied under the source manifest's hash (manifest path → source file).
  // A copied task's own record (the source savepoint holds it anyway), not a Location made for it.
  // Held by manifest position from the re-verify on (trustedAt): a Map of 200,000 paths was ~9 MB at its peak.
  const trusted = new Map<string, Location | TaskRef>();
  let trustedAt: Array<Location | TaskRef | undefined> = [];
  const tempDir = options.tempDir ?? process.env.KSP_TMPDIR ?? tmpdir();
  // Spill folders of dead runs go first: a run killed with SIGKILL cannot clean up after itself.
  const swept = sweepStaleTempDirs(tempDir);
  const report: WriteReport = {
    ok: true, plan: p.plan, target: target.uri, written: { files: 0, bytes: 0, copied: 0, rewritten: 0 }, tasks: [], rescale: [], moved: [], imported: [], collisions: [], migrations: p.stepCounts, native: [],
    verify: { ok: false, files: 0, bytes: 0, entries: 0, warnings: [] }, seconds: 0,
    tempCleanup: { dir: swept.dir, folders: swept.folders, bytes: swept.bytes },
  };
  if (swept.folders) options.onNote?.(`removed ${swept.folders} temporary folder(s) left by dead runs in ${swept.dir}, freeing ${swept.bytes} bytes`);
  // Writes and copies in flight, so that a signal's rollback can wait for them to stop.
  const inflight = new Set<Promise<unknown>>();
  const track = <T>(work: Promise<T>): Promise<T> => {
    inflight.add(work);
    const done = (): void => void inflight.delete(work);
    work.then(done, done);
    return work;
  };
  // Outputs whose hash comes from the re-verify's read-back (rescale's placed
  // path): manifest path → its entry (a placeholder hash until then) and planned size.
  const adopted = new Map<string, { size: number; uri: string }>();
  // Rescaled outputs: what the routing pass saw, held against the read-back (scan-file.ts PlacementProof).
  const proofs = new Map<string, PlacementProof>();
  const record = (out: StoredFile, sha256: string, size: number, wrote = true): void => {
    if (wrote) written.push(out.location);
    if (out.relPath !== null && within(out.location, target.dir)) {
      if (hashes.has(out.relPath)) throw new KspError('INTERNAL', `manifest lists ${out.relPath} twice`);
      if (!/^[0-9a-f]{64}$/.test(sha256)) throw new KspError('INTERNAL', `bad sha256 for ${out.relPath}: ${sha256}`);
      hashes.add(out.relPath, sha256);
    }
    report.written.files++;
    report.written.bytes += size;
  };
  const write = async (out: StoredFile, data: AsyncIterable<Uint8Array> | Uint8Array): Promise<{ sha256: string; size: number }> => {
    checkInterrupted();
    p.guard.assertNotSource(out.location, 'write');
    written.push(out.location);
    const r = await track(writeHashed(out.location, stopOnSignal(data instanceof Uint8Array ? toAsyncChunks(data) : data)));
    record(out, r.sha256, r.size, false);
    return r;
  };
  const writeNative = async (out: OutputTask, options: NativeWriteOptions, entries: AsyncIterable<StateEntry[]>, sorted: boolean): Promise<number> => {
    const r = await writeNativeTask(entries, nativeLayout(target, out), target.epoch, options, write, { sorted, tempDir, shared: target.mode === 'engine' });
    report.native.push({ operator: out.operatorId, task: out.taskId, ...r });
    return r.entries;
  };

  // One writer per target: held from before the target is checked or cleared until sealed or rolled back.
  // The folders this run makes (the target, its missing parents, the savepoint
  // record's folder) are removed again when it fails, so it leaves no empty tree.
  const madeFolders = await missingFolders([target.dir, parent(target.metaLocation)]);
  let sealed = false;
  const lock = await TargetLock.acquire(target.dir, { forceUnlock: p.forceUnlock, command: p.plan.operations.map((o) => o.op).join('+') || 'write' });
  // One rollback, whoever asks first (the failing write or the signal handler); both wait for all of it.
  let rolledBack: Promise<number> | null = null;
  // After a failure (and the lock's release), the folders this run made go too, deepest first; rmdir removes only empty ones.
  const dropFolder = async (): Promise<void> => {
    if (sealed) return;
    for (const f of madeFolders) await fsp.rmdir(f).catch(() => undefined);
  };
  // Until the target is cleared or written, a failure leaves it exactly as it was (a refused --overwrite included).
  let touched = false;
  const undo = (): Promise<number> => {
    if (!touched) return Promise.resolve(0);
    rolledBack ??= rollback(target.dir, [...hashes.paths().filter((_, i) => ownInManifest[i] === 1).map((r) => child(target.dir, r)), ...written]);
    return rolledBack;
  };
  // Threads for the write units (rescale's route and place passes), sized like the re-verify's.
  const units = new UnitPool(options.threads);
  const unregister = onInterrupt(async () => {
    // Write threads stop now (their temporary files go with the rollback).
    await units.close();
    // New writes refuse to start (checkInterrupted) and streams stop at their next chunk; wait for them.
    await Promise.race([Promise.allSettled([...inflight]), sleep(5000)]);
    const n = await undo();
    await lock.release();
    await dropFolder();
    return `rolled back: ${n} file(s) written to ${target.uri} removed, temporary files and uploads cleaned up`;
  });
  try {
    if (p.overwrite) {
      const old = await filesToClear(target.dir, p.guard);
      touched = true;
      await clearFiles(target.dir, old, target.metaLocation, p.guard);
    } else {
      // Checked again under the lock: another run may have written here since the plan.
      await checkTargetEmpty(target.dir, target.metaLocation, { ownToken: lock.info.token });
    }
    touched = true;
    options.onPhase?.('write');
    if (options.onTotal) options.onTotal(await bytesToRead(p.jobs), true);
    const copies = p.jobs.filter((j) => j.kind === 'copy' || j.kind === 'copies' || j.kind === 'native');
    const rewrites = p.jobs.filter((j) => j.kind === 'rewrite' || j.kind === 'repartition');
    // Batches of copied tasks become their copies one at a time, as the pool takes them.
    await pool(eachJob(copies, target), options.concurrency ?? 8, async (j) => {
      checkInterrupted();
      if (j.kind === 'copy') {
        p.guard.assertNotSource(j.out.location, 'write');
        written.push(j.out.location);
        const known = j.sha256 ?? p.sourceHash(j.from);
        const r = await track(copyFile(j.from, j.out.location, { knownSha256: known, link: options.link, onBytes: options.onBytes }));
        if (!r.wrote) forget(written, j.out.location);
        record(j.out, r.sha256, r.size, false);
        // Copied on the storage without reading, under the source manifest's
        // hash: the re-verify is the first to hash it (see the check after it).
        if (r.wrote && known !== undefined && j.from.storage === j.out.location.storage && j.out.relPath !== null) trusted.set(j.out.relPath, j.task ?? j.from);
        report.written.copied++;
      } else if (j.kind === 'native') {
        await copyNative(j, options, p.guard, written, record, write, track, p.sourceHash);
        report.written.copied += j.files.length;
      }
    });
    // Native tasks converted to canonical as they are: units on worker threads, one task per core (native-canonical.ts).
    const nativeUnits = rewrites.filter((j): j is Extract<Job, { kind: 'rewrite' }> => j.kind === 'rewrite' && !j.native && j.map === null && !j.keyChange && j.source.native !== undefined);
    const nativeDone = new Set<Job>();
    if (nativeUnits.length) {
      checkInterrupted();
      for (const j of nativeUnits) {
        p.guard.assertNotSource(j.out.file.location, 'write');
        written.push(j.out.file.location);
      }
      const res = await track(runNativeCanonical(nativeUnits.map((j) => ({
        source: uriOf(j.source.location), ...(j.source.sha256 ? { sourceSha256: j.source.sha256 } : {}), native: j.source.native!,
        ...(j.source.ttlPrefix ? { ttlPrefix: j.source.ttlPrefix } : {}), task: `${j.source.operatorId}/${j.source.taskId}`, out: uriOf(j.out.file.location),
      })), options.threads, options.onBytes));
      nativeUnits.forEach((j, i) => {
        const r = res[i]!;
        // Count not stated by the tables: converted in the loop below (whose write records the file again).
        if (r.fallback) return forget(written, j.out.file.location);
        record(j.out.file, r.sha256, r.size, false);
        expected.set(`${j.out.operatorId}/${j.out.taskId}`, r.entries);
        report.written.rewritten++;
        nativeDone.add(j);
      });
    }
    // Tasks rewritten by plain-data units run at once on the pool's threads,
    // the rest one after another here; all have settled before anything
    // further happens (a rollback must not race a thread still writing).
    // A bounded number of units in flight (a few per thread): 200,000 tiny
    // tasks queued at once held a spec and a promise each, hundreds of MB.
    const unitJobs = rewrites.filter((j): j is Extract<Job, { kind: 'rewrite' }> => j.kind === 'rewrite' && rewriteUnitOf(j) !== null);
    const unitsDone = pool(unitJobs, units.threads * 4, async (j) => {
      checkInterrupted();
      p.guard.assertNotSource(j.out.file.location, 'write');
      written.push(j.out.file.location);
      const r = await track(units.run(rewriteUnitOf(j)!));
      options.onBytes?.(r.read);
      r.steps.forEach((c, i) => {
        j.unit!.counts[i]!.transformed += c.transformed;
        j.unit!.counts[i]!.passed += c.passed;
      });
      record(j.out.file, r.sha256, r.size, false);
      expected.set(`${j.out.operatorId}/${j.out.taskId}`, r.entries);
      report.written.rewritten++;
    }).then(() => ({ failed: null as unknown }), (e: unknown) => ({ failed: e }));
    for (const j of rewrites) {
      if (nativeDone.has(j)) continue;
      checkInterrupted();
      if (j.kind === 'rewrite' && rewriteUnitOf(j)) continue;
      if (j.kind === 'rewrite') {
        const n = await rewriteTask(j, tempDir, write, writeNative, options.onBytes, report);
        expected.set(`${j.out.operatorId}/${j.out.taskId}`, n);
      } else if (j.kind === 'repartition' && j.import) {
        const native = j.native;
        const r = await track(importOperator(j.operator, j.import, j.sources, j.outs, tempDir, (o, data) => write(o.file, data).then(() => undefined),
          native ? (o, entries) => writeNative(o, native, entries, false) : undefined, options.onBytes));
        j.outs.forEach((o, i) => expected.set(`${o.operatorId}/${o.taskId}`, r.counts[i]!));
        report.imported.push({ operator: j.operator, ...r });
      } else if (j.kind === 'repartition') {
        const native = j.native;
        const placed = await track(repartitionPlaced(j, {
          pool: units,
          begin: (out) => {
            checkInterrupted();
            p.guard.assertNotSource(out.location, 'write');
            if (!written.includes(out.location)) written.push(out.location);
          },
          commit: (out, sha256, size) => record(out, sha256, size, false),
          adopt: (out, size) => {
            if (out.relPath === null || !within(out.location, target.dir)) return false;
            record(out, PLACEHOLDER_SHA256, size, false);
            adopted.set(out.relPath, { size, uri: uriOf(out.location) });
            return true;
          },
          prove: (out, proof) => {
            if (out.relPath !== null && within(out.location, target.dir)) proofs.set(out.relPath, proof);
          },
          onBytes: options.onBytes,
        }));
        const r = placed ?? await repartition(j, tempDir, (to, data) => write(j.outs.find((o) => o.file.location === to)!.file, data).then(() => undefined), options.onBytes,
          native ? (i, entries) => writeNative(j.outs[i]!, native, entries, false) : undefined);
        j.outs.forEach((o, i) => expected.set(`${o.operatorId}/${o.taskId}`, r.counts[i]!));
        if (j.routing === 'moved') report.moved.push({ operator: j.operator, moved: r.moved, counts: r.counts });
        else report.rescale.push({ operator: j.operator, routed: r.routed, broadcast: r.broadcast.distinct, mergedDuplicates: r.broadcast.merged, counts: r.counts });
        if (r.collisions.keys) report.collisions.push({ operator: j.operator, ...r.collisions });
      }
      report.written.rewritten++;
    }
    const { failed } = await unitsDone;
    if (failed !== null) throw failed;

    // The write threads end before the re-verify takes its own.
    await units.close();
    // This frame's own lists of the jobs go too, or they would keep every
    // job through the re-verify whatever the plan lets go (p.release).
    for (const l of [copies, rewrites, nativeUnits, unitJobs]) l.length = 0;
    nativeDone.clear();

    // Metadata and the record; the manifest only once the output verified.
    const mdFile: StoredFile = { stored: 'metadata.json', location: child(target.dir, 'metadata.json'), relPath: 'metadata.json' };
    // Streamed a megabyte at a time (MetadataDoc.chunks): 200,000 snapshots are ~30 MB of text.
    await write(mdFile, (async function* () {
      yield* p.metadata.chunks();
    })());
    const metaRel = within(target.metaLocation, target.dir) ? target.metaLocation.key.slice(target.dir.key.length + 1) : null;
    await write({ stored: 'meta.json', location: target.metaLocation, relPath: metaRel }, p.meta.encode());
    // The re-verify reads the index itself, in manifest order; the bytes are
    // encoded from it once the re-verify has passed (and supplied any hash).
    hashes.sort();
    trustedAt = new Array<Location | TaskRef | undefined>(hashes.size);
    for (const [rel, from] of trusted) {
      const i = hashes.indexOf(rel);
      if (i >= 0) trustedAt[i] = from;
    }
    trusted.clear();
    const routedHere = new Set(p.jobs.flatMap((j) => (j.kind === 'repartition' && j.routing !== 'moved' ? j.outs.map((o) => `${o.operatorId}/${o.taskId}`) : [])));
    if (options.records === false) {
      // What the re-verify and a rollback need is in the manifest index, the
      // counts and the list of files written outside it: the jobs, the
      // output task list and the planned file list go (200,000 tasks' worth).
      p.release();
      ownInManifest = keepOutsideOnly(written, hashes, target.dir);
    }

    // Re-verify exactly as `ksp verify` does, against the manifest still in
    // memory: nothing at the target verifies until this has passed.
    options.onPhase?.('verify');
    releaseSortMemory();
    collectGarbage();
    checkInterrupted();
    // Each task's count, and each adopted output's hash, checked as its
    // check arrives: no record per task or file is kept (200,000 of them in
    // a large job).
    const lateErrors: Finding[] = [];
    const v = await verifySavepoint(target.dir, {
      threads: options.threads, manifest: hashes, records: false, adopt: new Set(adopted.keys()), placementProofs: proofs,
      onBytes: options.onBytes, onTotal: options.onTotal, onPhase: options.onPhase && ((ph) => options.onPhase!(`verify ${ph}`)),
      onTask: (t) => {
        const want = expected.get(`${t.operator}/${t.task}`);
        if (want === undefined) return;
        if (options.records !== false) report.tasks.push({ operator: t.operator, task: t.task, entries: t.entries });
        if (t.entries !== want) lateErrors.push({ severity: 'error', code: 'RESCALE_COUNT_MISMATCH', file: t.file, message: `${t.file}: ${t.entries} entries verified, ${want} written` });
      },
      // Adopted outputs: the hash the re-verify found while it decoded and
      // checked the file is the one sealed, held to the planned size.
      onFile: (fc) => {
        const a = adopted.get(fc.path);
        if (!a || fc.found === null) return;
        if (fc.size !== a.size) lateErrors.push({ severity: 'error', code: 'OUTPUT_VERIFY_FAILED', file: a.uri, message: `${a.uri}: ${fc.size} bytes read back, ${a.size} planned` });
        hashes.setHash(fc.path, fc.found);
        adopted.delete(fc.path);
      },
    });
    // Entries a task held outside its key-group ranges in the source stay so
    // when the task is copied or rewritten in place: that is the source's
    // state, reported as a warning; so do entries a key migration left in
    // place because they did not sit on their old key's owner. Tasks this run
    // rescaled must be placed right.
    for (const f of v.findings) {
      const d = f.data as { operator?: string; task?: string } | undefined;
      if (f.code === 'KEY_GROUP_MISPLACED' && !routedHere.has(`${d?.operator}/${d?.task}`)) {
        f.severity = 'warning';
        f.message = `as in the source: ${f.message}`;
      }
    }
    const errors = [...v.findings.filter((f) => f.severity === 'error'), ...lateErrors];
    for (const a of adopted.values()) errors.push({ severity: 'error', code: 'OUTPUT_VERIFY_FAILED', file: a.uri, message: `${a.uri}: not read back by the re-verify` });
    const manifestBytes = hashes.encode();
    report.verify = { ok: errors.length === 0, files: v.totals.files, bytes: v.totals.bytes, entries: v.totals.entries, warnings: v.findings.filter((f) => f.severity === 'warning') };
    if (errors.length) {
      // A file copied unchanged under its source manifest's hash that does
      // not match it: when the source file itself differs from its manifest
      // (hashed again here, on this rare path), the source is corrupt and the
      // error names it; otherwise the copy was damaged at the target.
      const dirUri = uriOf(target.dir) + '/';
      for (const f of errors) {
        const rel = f.code === 'HASH_MISMATCH' && f.file?.startsWith(dirUri) ? f.file.slice(dirUri.length) : undefined;
        const t = rel === undefined ? undefined : trustedAt[hashes.indexOf(rel)];
        const from = t !== undefined && 'snapshotPath' in t ? t.location : t;
        const claimed = rel === undefined ? undefined : hashes.get(rel);
        if (from && claimed && (await hashOf(from).catch(() => null)) !== claimed) {
          const src = uriOf(from);
          throw new KspError('HASH_MISMATCH', `${src}: SHA-256 differs from ${claimed} in the source's manifest.sha256 (found on its copy ${f.file}, which was removed; pass ${optionName('trustSource')} to use it anyway)`, { file: src, expected: claimed, copy: f.file });
        }
      }
      throw new KspError('OUTPUT_VERIFY_FAILED', `the written savepoint does not verify, so it was removed: ${errors.slice(0, 3).map((f) => `[${f.code}] ${f.message}`).join('; ')}`, { file: target.uri, findings: errors });
    }

    // Seal: the lock must still be ours, then the manifest, then a cheap
    // check that what is stored under its name is what was verified.
    checkInterrupted();
    await lock.assertHeld();
    const manifest = child(target.dir, MANIFEST_NAME);
    written.push(manifest);
    // Checked again in the same tick as the write starts: a signal's rollback
    // may have run while the lock was checked, and must never be followed by
    // a manifest over what it removed.
    checkInterrupted();
    await track(target.dir.storage.write(manifest.key, manifestBytes));
    const back = await target.dir.storage.readSmall(manifest.key);
    if (Buffer.compare(Buffer.from(back), Buffer.from(manifestBytes)) !== 0) {
      throw new KspError('OUTPUT_VERIFY_FAILED', `${uriOf(manifest)}: reads back different from what was written and verified, so the output was removed`, { file: uriOf(manifest) });
    }
    // From here a signal keeps the sealed output, and still releases the lock.
    sealedAt(target.uri, () => lock.release());
    sealed = true;
  } catch (e) {
    // Cleanup errors never replace the error that led here. Write threads stop first.
    await units.close().catch(() => undefined);
    await undo().catch(() => undefined);
    throw e;
  } finally {
    await units.close();
    unregister();
    await lock.release();
    await dropFolder();
  }
  report.seconds = (Date.now() - started) / 1000;
  return report;
}

/**
 * A rewrite as a plain-data unit for the pool's threads, or null when it must
 * run here: steps defined in code (no module), keys that change (collisions
 * need the spill), native input or output, or storage other than local disk.
 */
function rewriteUnitOf(j: Extract<Job, { kind: 'rewrite' }>): RewriteUnit | null {
  if (!j.unit || j.keyChange || j.native || j.source.native) return null;
  const src = unitPathOf(j.source.location.storage, j.source.location.key);
  const out = unitPathOf(j.out.file.location.storage, j.out.file.location.key);
  if (src === null || out === null) return null;
  return {
    kind: 'rewrite',
    source: { path: src, operatorId: j.source.operatorId, taskId: j.source.taskId, ...(j.source.sha256 ? { sha256: j.source.sha256 } : {}) },
    out,
    migrations: j.unit.migrations,
    renames: j.unit.renames,
  };
}

/**
 * Removes the manifest first, so a half-removed target never verifies, then
 * the rest, then this process's own temporary files in the target (a write
 * cut short by a signal), as far as storage lets it. Never throws: a
 * cleanup error must not hide the error that led to the rollback.
 */
async function rollback(dir: Location, written: Location[]): Promise<number> {
  const manifest = child(dir, MANIFEST_NAME);
  await manifest.storage.delete(manifest.key).catch(() => undefined);
  let n = 0;
  for (const loc of [...written].reverse()) {
    await loc.storage.delete(loc.key).then(() => n++, () => undefined);
  }
  for (const loc of await ownTempFiles(dir).catch(() => [])) await loc.storage.delete(loc.key).catch(() => undefined);
  if (dir.storage instanceof S3Storage) await dir.storage.abortUploads(dir.key).catch(() => undefined);
  await removeEmptyFolders(dir, written);
  return n;
}

/**
 * Local disk: the folders on the way to each of `dirs` that do not exist yet,
 * deepest first (object stores have no folders to leave behind).
 */
async function missingFolders(dirs: Location[]): Promise<string[]> {
  const made = new Set<string>();
  for (const d of dirs) {
    if (!(d.storage instanceof LocalStorage)) continue;
    for (let f = d.storage.pathOf(d.key); f !== nodePath.dirname(f); f = nodePath.dirname(f)) {
      if (await fsp.lstat(f).then(() => true, () => false)) break;
      made.add(f);
    }
  }
  return [...made].sort((a, b) => b.split(nodePath.sep).length - a.split(nodePath.sep).length);
}

/**
 * Local disk: the folders the written files were in, inside the target,
 * once empty (deepest first). rmdir removes only empty folders, so nothing
 * else can go.
 */
async function removeEmptyFolders(dir: Location, written: Location[]): Promise<void> {
  if (!(dir.storage instanceof LocalStorage)) return;
  const storage = dir.storage;
  const folders = new Set<string>();
  for (const w of written) {
    if (!within(w, dir)) continue;
    for (let k = w.key.slice(0, w.key.lastIndexOf('/')); k.length > dir.key.length; k = k.slice(0, k.lastIndexOf('/'))) folders.add(k);
  }
  const order = [...folders].sort((a, b) => b.split('/').length - a.split('/').length);
  for (const k of order) await fsp.rmdir(storage.pathOf(k)).catch(() => undefined);
}

/** Passes chunks on until a signal arrives, then fails the stream (the storage removes its partial file). */
async function* stopOnSignal(data: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  for await (const c of data) {
    checkInterrupted();
    yield c;
  }
}

/**
 * Takes the files the manifest index lists out of `written`, and returns
 * which of its paths they were (one byte each): a rollback lists them again
 * from the index. 200,000 Locations held through the re-verify were ~20 MB.
 */
function keepOutsideOnly(written: Location[], hashes: ManifestIndex, dir: Location): Uint8Array {
  const own = new Uint8Array(hashes.size);
  const outside = written.filter((l) => {
    const i = within(l, dir) ? hashes.indexOf(l.key.slice(dir.key.length + 1)) : -1;
    if (i >= 0) own[i] = 1;
    return i < 0;
  });
  written.length = 0;
  for (const l of outside) written.push(l);
  return own;
}

/** Drops a file that turned out not to be written by this run (the source's own, shared) from the rollback list. */
function forget(written: Location[], loc: Location): void {
  const i = written.lastIndexOf(loc);
  if (i >= 0) written.splice(i, 1);
}

/** Stands in the manifest handed to the re-verify for a hash the re-verify itself supplies (`adopt`). */
const PLACEHOLDER_SHA256 = '0'.repeat(64);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

export async function rewriteTask(
  j: Extract<Job, { kind: 'rewrite' }>, tempDir: string,
  write: (out: StoredFile, data: AsyncIterable<Uint8Array>) => Promise<unknown>,
  writeNative: (out: OutputTask, options: NativeWriteOptions, entries: AsyncIterable<StateEntry[]>, sorted: boolean) => Promise<number>,
  onBytes: ((n: number) => void) | undefined, report: WriteReport,
): Promise<number> {
  const src = await openTask(j.source, onBytes, 'rewrite', REWRITE_BATCH);
  if (!src) {
    // An empty task is the 12-byte empty snapshot, never a 0-byte file (model/FORMAT.md §4, "Empty tasks").
    await write(j.out.file, encodeStateBin(0, []));
    return 0;
  }
  const ctx = { operator: j.source.operatorId, task: j.source.taskId, index: 0 };
  const mapped = (): AsyncGenerator<StateEntry[]> => mapBatches(src.batches(), j.map, ctx);
  if (j.native) {
    // A native source read with its keys unchanged arrives in RocksDB key
    // order with no repeats, so it streams straight into tables; anything
    // else is sorted first.
    return writeNative(j.out, j.native, mapped(), j.source.native !== undefined && j.keysKept);
  }
  if (!j.keyChange && src.count !== null) {
    // Keys unchanged and the count known: entries stream straight through.
    await write(j.out.file, encodeStateBin(src.count, mapped(), uriOf(j.out.file.location)));
    return src.count;
  }
  // New keys may collide, or (native source) the count is known only at the
  // end: spill, find collisions, then write the header and what is kept.
  const dir = makeTempDir(tempDir, 'ksp-rewrite-');
  const spill = new Spill(dir, 'task', 1024 * 1024, j.keyChange);
  try {
    for await (const batch of mapped()) {
      const base = ctx.index - batch.length + 1;
      batch.forEach((e, i) => spill.append(e, { task: 0, index: base + i }));
    }
    spill.close();
    const { drop, report: c } = spill.collisions(j.onCollision, (x) => `${j.source.taskId} entry #${x.index}`);
    if (c.keys) report.collisions.push({ operator: j.out.operatorId, task: j.out.taskId, ...c });
    await write(j.out.file, spill.stateBin(drop));
    return spill.count - drop.size;
  } finally {
    spill.remove();
    removeTempDir(dir);
  }
}

async function copyNative(
  j: Extract<Job, { kind: 'native' }>, options: ExecuteOptions, guard: SourceGuard, written: Location[],
  record: (out: StoredFile, sha256: string, size: number, wrote?: boolean) => void,
  write: (out: StoredFile, data: Uint8Array) => Promise<unknown>,
  track: <T>(work: Promise<T>) => Promise<T>,
  sourceHash: (file: Location) => string | undefined,
): Promise<void> {
  for (const f of j.files) {
    checkInterrupted();
    const same = f.location.storage === f.out.location.storage && f.location.key === f.out.location.key;
    if (!same) {
      // Engine mode: the table folder is shared by every epoch of the task, and
      // the engine de-duplicates tables by file name only
      // (krishiv-state/src/incremental_checkpoint.rs, upload_files). A table
      // already there under this name is reused if it is the same bytes, and
      // never replaced if it is not.
      const there = await f.out.location.storage.stat(f.out.location.key);
      if (there) {
        const sha = await hashOf(f.out.location);
        const want = f.sha256 ?? (await hashOf(f.location));
        if (sha !== want) {
          throw new KspError('TARGET_FILE_EXISTS', `${uriOf(f.out.location)}: another savepoint's table has this name with different bytes; ksp never replaces a file outside the target directory (write to another base or job, or use --mode relative)`, { file: uriOf(f.out.location), expected: want, found: sha });
        }
        record(f.out, sha, there.size, false);
        // Counted as done for progress: bytesToRead counted this file.
        options.onBytes?.(f.size ?? there.size);
        continue;
      }
      guard.assertNotSource(f.out.location, 'write');
    }
    written.push(f.out.location);
    const r = await track(copyFile(f.location, f.out.location, { knownSha256: undefined, link: options.link, onBytes: options.onBytes }));
    if (!r.wrote) forget(written, f.out.location);
    if (f.sha256 && r.sha256 !== f.sha256) {
      throw new KspError('NATIVE_SST_HASH', `${uriOf(f.location)}: SHA-256 ${r.sha256} differs from ${f.sha256} recorded in its sst_manifest.json`, { file: uriOf(f.location), expected: f.sha256, found: r.sha256 });
    }
    // Files sst_manifest.json gives no hash for (MANIFEST, WAL, OPTIONS) are
    // held to the source's manifest.sha256 as they are copied, before the
    // re-verify would read them again (a 2 GiB WAL three times).
    const listed = f.sha256 ? undefined : sourceHash(f.location);
    if (listed && r.sha256 !== listed) {
      throw new KspError('HASH_MISMATCH', `${uriOf(f.location)}: SHA-256 ${r.sha256} differs from ${listed} in the source's manifest.sha256 (pass ${optionName('trustSource')} to use it anyway)`, { file: uriOf(f.location), expected: listed, found: r.sha256 });
    }
    record(f.out, r.sha256, r.size, false);
  }
  const byName = new Map(j.files.map((f) => [f.filename, f.out.stored]));
  const manifest = j.manifest.withPaths((name) => byName.get(name)!, j.manifestOut.stored);
  await write(j.manifestOut, manifest.encode());
  await write(j.out.file, encodePointer({ manifestPath: j.manifestOut.stored }));
}

/**
 * A full GC between writing and verifying: the verify workers each take their
 * own heap, and garbage left by the write phase (decoded batches, migrated
 * values) would otherwise sit beside them and lift peak RSS. V8 exposes gc()
 * only behind a flag, which can be set at run time.
 */
function collectGarbage(): void {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as (() => void) | undefined;
    gc?.();
  } catch {
    // Not available: only memory headroom is lost.
  }
}

