import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { KspError } from '../errors.js';
import { MANIFEST_NAME, buildManifest, type ManifestEntry } from '../formats/manifest/manifest.js';
import { encodePointer } from '../formats/pointer/pointer.js';
import { encodeStateBin } from '../formats/state-bin/encoder.js';
import type { StateEntry } from '../formats/state-bin/decoder.js';
import { verifySavepoint, type Finding } from '../model/verify.js';
import { child, uriOf, type Location } from '../storage/uri.js';
import { copyFile, writeHashed } from './copy.js';
import type { Job, OutputTask } from './jobs.js';
import type { NativeWriteOptions } from './native-output.js';
import { toAsyncChunks } from '../storage/storage.js';
import type { WritePlan } from './plan.js';
import { openTask, repartition } from './repartition.js';
import { Spill, type CollisionReport } from './spill.js';
import { nativeLayout, writeNativeTask, type NativeTaskResult } from './native-output.js';
import { releaseSortMemory } from './key-sorter.js';
import { makeTempDir } from './temp-dir.js';
import type { StoredFile } from './target.js';
import { within } from './target.js';
import type { PreparedWrite } from './writer.js';

/**
 * Carries out a plan: state files first, then metadata.json and meta.json,
 * then manifest.sha256 last, then a full `ksp verify` of the output and a
 * check that every task holds the entries the plan expects. On any failure
 * the manifest is removed first (so nothing at the target verifies) and then
 * everything this run wrote, as far as storage lets it.
 */

export interface ExecuteOptions {
  /** Where rescale and key-migration spill files go (default: the OS temp dir, or KSP_TMPDIR). */
  tempDir?: string;
  /** Hard-link unchanged local files instead of copying them (same file system). */
  link?: boolean;
  /** Files copied at once (default 8). */
  concurrency?: number;
  threads?: number;
  onBytes?: (n: number) => void;
  onTotal?: (n: number) => void;
  /** Called as each phase starts (for progress labels). */
  onPhase?: (phase: 'write' | 'verify') => void;
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
  collisions: Array<{ operator: string; task?: string } & CollisionReport>;
  /** Tasks written as native state: tables written, and entries dropped because a later entry had the same key. */
  native: Array<{ operator: string; task: string } & NativeTaskResult>;
  verify: { ok: boolean; files: number; bytes: number; entries: number; warnings: Finding[] };
  seconds: number;
}

export async function executePlan(p: PreparedWrite, options: ExecuteOptions = {}): Promise<WriteReport> {
  const started = Date.now();
  const { target } = p;
  const written: Location[] = [];
  const hashes: ManifestEntry[] = [];
  const expected = new Map<string, number>();
  const report: WriteReport = {
    ok: true, plan: p.plan, target: target.uri, written: { files: 0, bytes: 0, copied: 0, rewritten: 0 }, tasks: [], rescale: [], collisions: [], native: [],
    verify: { ok: false, files: 0, bytes: 0, entries: 0, warnings: [] }, seconds: 0,
  };
  const tempDir = options.tempDir ?? process.env.KSP_TMPDIR ?? tmpdir();
  const record = (out: StoredFile, sha256: string, size: number, wrote = true): void => {
    if (wrote) written.push(out.location);
    if (out.relPath !== null && within(out.location, target.dir)) hashes.push({ path: out.relPath, sha256 });
    report.written.files++;
    report.written.bytes += size;
  };
  const write = async (out: StoredFile, data: AsyncIterable<Uint8Array> | Uint8Array): Promise<{ sha256: string; size: number }> => {
    written.push(out.location);
    const r = await writeHashed(out.location, data instanceof Uint8Array ? toAsyncChunks(data) : data);
    record(out, r.sha256, r.size, false);
    return r;
  };
  const writeNative = async (out: OutputTask, options: NativeWriteOptions, entries: AsyncIterable<StateEntry[]>, sorted: boolean): Promise<number> => {
    const r = await writeNativeTask(entries, nativeLayout(target, out), target.epoch, options, write, { sorted, tempDir });
    report.native.push({ operator: out.operatorId, task: out.taskId, ...r });
    return r.entries;
  };
  options.onTotal?.(p.plan.files.reduce((s, f) => s + (f.bytes ?? 0), 0));

  try {
    if (p.overwrite) await clearTarget(p);
    options.onPhase?.('write');
    const copies = p.jobs.filter((j) => j.kind === 'copy' || j.kind === 'native');
    const rewrites = p.jobs.filter((j) => j.kind === 'rewrite' || j.kind === 'repartition');
    await pool(copies, options.concurrency ?? 8, async (j) => {
      if (j.kind === 'copy') {
        const r = await copyFile(j.from, j.out.location, { knownSha256: j.sha256, link: options.link, onBytes: options.onBytes });
        record(j.out, r.sha256, r.size, r.wrote);
        report.written.copied++;
      } else if (j.kind === 'native') {
        await copyNative(j, options, record, write);
        report.written.copied += j.files.length;
      }
    });
    for (const j of rewrites) {
      if (j.kind === 'rewrite') {
        const n = await rewriteTask(j, tempDir, write, writeNative, options.onBytes, report);
        expected.set(`${j.out.operatorId}/${j.out.taskId}`, n);
      } else if (j.kind === 'repartition') {
        const native = j.native;
        const r = await repartition(j, tempDir, (to, data) => write(j.outs.find((o) => o.file.location === to)!.file, data).then(() => undefined), options.onBytes,
          native ? (i, entries) => writeNative(j.outs[i]!, native, entries, false) : undefined);
        j.outs.forEach((o, i) => expected.set(`${o.operatorId}/${o.taskId}`, r.counts[i]!));
        report.rescale.push({ operator: j.operator, routed: r.routed, broadcast: r.broadcast.distinct, mergedDuplicates: r.broadcast.merged, counts: r.counts });
        if (r.collisions.keys) report.collisions.push({ operator: j.operator, ...r.collisions });
      }
      report.written.rewritten++;
    }

    // Metadata, the record, and the manifest last.
    const mdFile: StoredFile = { stored: 'metadata.json', location: child(target.dir, 'metadata.json'), relPath: 'metadata.json' };
    await write(mdFile, p.metadata.encode());
    const metaRel = within(target.metaLocation, target.dir) ? target.metaLocation.key.slice(target.dir.key.length + 1) : null;
    await write({ stored: 'meta.json', location: target.metaLocation, relPath: metaRel }, p.meta.encode());
    const manifest: StoredFile = { stored: MANIFEST_NAME, location: child(target.dir, MANIFEST_NAME), relPath: null };
    written.push(manifest.location);
    await target.dir.storage.write(manifest.location.key, buildManifest(hashes));

    // Re-verify exactly as `ksp verify` does, and check the entry counts.
    options.onPhase?.('verify');
    releaseSortMemory();
    collectGarbage();
    const v = await verifySavepoint(target.dir, { threads: options.threads });
    const errors = v.findings.filter((f) => f.severity === 'error');
    for (const t of v.tasks) {
      const want = expected.get(`${t.operator}/${t.task}`);
      if (want !== undefined) report.tasks.push({ operator: t.operator, task: t.task, entries: t.entries });
      if (want !== undefined && t.entries !== want) {
        errors.push({ severity: 'error', code: 'RESCALE_COUNT_MISMATCH', file: t.file, message: `${t.file}: ${t.entries} entries verified, ${want} written` });
      }
    }
    report.verify = { ok: errors.length === 0, files: v.totals.files, bytes: v.totals.bytes, entries: v.totals.entries, warnings: v.findings.filter((f) => f.severity === 'warning') };
    if (errors.length) {
      // A file copied unchanged under its source manifest's hash that does
      // not match it: the source file is corrupt, and the error names it.
      for (const f of errors) {
        const j = f.code === 'HASH_MISMATCH' ? p.jobs.find((x) => x.kind === 'copy' && x.sha256 !== undefined && uriOf(x.out.location) === f.file) : undefined;
        if (j?.kind === 'copy') {
          const src = uriOf(j.from);
          throw new KspError('HASH_MISMATCH', `${src}: SHA-256 differs from ${j.sha256} in the source's manifest.sha256 (found on its copy ${f.file}, which was removed; pass --trust-source to use it anyway)`, { file: src, expected: j.sha256, copy: f.file });
        }
      }
      throw new KspError('OUTPUT_VERIFY_FAILED', `the written savepoint does not verify, so it was removed: ${errors.slice(0, 3).map((f) => `[${f.code}] ${f.message}`).join('; ')}`, { file: target.uri, findings: errors });
    }
  } catch (e) {
    await rollback(target.dir, written);
    throw e;
  }
  report.seconds = (Date.now() - started) / 1000;
  return report;
}

/** Removes the manifest first, so a half-removed target never verifies, then the rest. */
async function rollback(dir: Location, written: Location[]): Promise<void> {
  const manifest = child(dir, MANIFEST_NAME);
  await manifest.storage.delete(manifest.key).catch(() => undefined);
  for (const loc of written.reverse()) await loc.storage.delete(loc.key).catch(() => undefined);
}

/** --overwrite: the old manifest goes first, then every file under the target directory and the old record. */
async function clearTarget(p: PreparedWrite): Promise<void> {
  const { dir, metaLocation } = p.target;
  await dir.storage.delete(child(dir, MANIFEST_NAME).key);
  const keys: string[] = [];
  for await (const e of dir.storage.list(dir.key)) keys.push(e.key);
  await pool(keys, 16, (k) => dir.storage.delete(k));
  if (!within(metaLocation, dir)) await metaLocation.storage.delete(metaLocation.key);
}

async function rewriteTask(
  j: Extract<Job, { kind: 'rewrite' }>, tempDir: string,
  write: (out: StoredFile, data: AsyncIterable<Uint8Array>) => Promise<unknown>,
  writeNative: (out: OutputTask, options: NativeWriteOptions, entries: AsyncIterable<StateEntry[]>, sorted: boolean) => Promise<number>,
  onBytes: ((n: number) => void) | undefined, report: WriteReport,
): Promise<number> {
  const src = await openTask(j.source, onBytes);
  if (!src) {
    await write(j.out.file, toAsyncChunks(new Uint8Array(0)));
    return 0;
  }
  const ctx = { operator: j.source.operatorId, task: j.source.taskId, index: 0 };
  async function* mapped(): AsyncGenerator<StateEntry[]> {
    if (!j.map) {
      let n = 0;
      for await (const batch of src!.batches()) {
        n += batch.length;
        ctx.index = n - 1;
        yield batch;
      }
      return;
    }
    let index = 0;
    for await (const batch of src!.batches()) {
      const out = new Array<StateEntry>(batch.length);
      for (let i = 0; i < batch.length; i++) {
        ctx.index = index++;
        out[i] = j.map(batch[i]!, ctx);
      }
      yield out;
    }
  }
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
    rmSync(dir, { recursive: true, force: true });
  }
}

async function copyNative(
  j: Extract<Job, { kind: 'native' }>, options: ExecuteOptions,
  record: (out: StoredFile, sha256: string, size: number, wrote?: boolean) => void,
  write: (out: StoredFile, data: Uint8Array) => Promise<unknown>,
): Promise<void> {
  for (const f of j.files) {
    const r = await copyFile(f.location, f.out.location, { knownSha256: undefined, link: options.link, onBytes: options.onBytes });
    if (f.sha256 && r.sha256 !== f.sha256) {
      throw new KspError('NATIVE_SST_HASH', `${uriOf(f.location)}: SHA-256 ${r.sha256} differs from ${f.sha256} recorded in its sst_manifest.json`, { file: uriOf(f.location), expected: f.sha256, found: r.sha256 });
    }
    record(f.out, r.sha256, r.size, r.wrote);
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

async function pool<T>(items: readonly T[], n: number, run: (item: T) => Promise<void>): Promise<void> {
  let i = 0;
  let failed: unknown = null;
  const worker = async (): Promise<void> => {
    while (i < items.length && failed === null) {
      const item = items[i++]!;
      try {
        await run(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed !== null) throw failed;
}
