import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { KspError } from '../../errors.js';
import { optionName } from '../../option-names.js';
import type { StateEntry } from '../../formats/state-bin/decoder.js';
import { STATE_BIN_VERSION, StateBinDecoder } from '../../formats/state-bin/decoder.js';
import { movedEntryKey } from '../../model/task-ranges.js';
import type { Routing } from '../../model/routing.js';
import { keyGroup, taskForKeyGroup } from '../../model/key-group.js';
import { routingKey } from '../../model/routing.js';
import { locate, uriOf, type Location } from '../../storage/uri.js';
import { copyFile, writeHashed } from '../copy.js';
import type { SourceTask } from '../jobs.js';
import { BroadcastSet, encodeEntry, openTask } from '../repartition.js';
import { BROADCAST_LIMIT_BYTES } from '../route-pass.js';
import { runRewrite } from '../rewrite-unit.js';
import { rewriteTask, type WriteReport } from '../execute.js';
import { loadEntryMap } from './entry-map.js';
import type { NativeWriteOptions } from '../native-output.js';
import { makeTempDir, removeTempDir } from '../temp-dir.js';
import { engineIncr, type CanonicalUnitSpec, type CopyUnit, type DistUnit, type DoneRecord, type MapSpec, type MergeUnitSpec, type NativeCopyUnitSpec, type NativeUnitSpec, type OutputRecord, type RewriteUnitSpec, type RouteUnitSpec, type Segment, type SourceSpec } from './plan-file.js';
import { convertNativeTask } from '../native-canonical.js';
import { Spill } from '../spill.js';
import { epochDirName } from '../../formats/metadata/metadata.js';
import { encodeStateBin } from '../../formats/state-bin/encoder.js';
import { child, parent } from '../../storage/uri.js';
import { writeNativeTask, type NativeLayout } from '../native-output.js';
import { within, type StoredFile } from '../target.js';
import { writeShared } from './shared-write.js';
import { toAsyncChunks } from '../../storage/storage.js';
import { runExportUnit } from './export-unit.js';

/**
 * One distributed unit where it runs: its outputs written whole (storage
 * writes are atomic: a temporary name then a rename, or one S3 upload), and
 * the fields of its completion record returned. Deterministic: the same
 * unit gives the same bytes on any shard, any number of times, which is
 * what makes a duplicate or re-run shard harmless.
 */

export interface UnitContext {
  /** Local folder for a route unit's spill files. */
  tempDir: string;
  /** Refuses a write into the source (real path, local disk); called before every write. */
  assertWritable(loc: Location): void;
  /** The completion record of another unit (a merge reads its route units' records). */
  record(id: string): Promise<DoneRecord | null>;
  /** The run file the plan gives a route unit (never the one a record names: records are not trusted for places). */
  runOf(id: string): string;
  onBytes?: (n: number) => void;
}

export type UnitOutcome = Omit<DoneRecord, 'unit' | 'kind' | 'shard' | 'host' | 'pid' | 'seconds' | 'finished'>;

export async function runDistUnit(u: DistUnit, ctx: UnitContext): Promise<UnitOutcome> {
  switch (u.kind) {
    case 'copy':
      return runCopy(u, ctx);
    case 'route':
      return runRoute(u, ctx);
    case 'merge':
      return runMerge(u, ctx);
    case 'rewrite':
      return runRewriteUnit(u, ctx);
    case 'native':
      return runNativeUnit(u, ctx);
    case 'native-copy':
      return runNativeCopy(u, ctx);
    case 'canonical':
      return runCanonicalUnit(u, ctx);
    case 'export':
      return runExportUnit(u, ctx);
    case 'verify':
    case 'check':
      throw new KspError('INTERNAL', `unit ${u.id} runs in its shard (shard.ts), which holds the plan and the records`);
  }
}

async function runCopy(u: CopyUnit, ctx: UnitContext): Promise<UnitOutcome> {
  const to = locate(u.to);
  ctx.assertWritable(to);
  const r = await copyFile(locate(u.from), to, { ...(u.sha256 ? { knownSha256: u.sha256 } : {}), onBytes: ctx.onBytes });
  return { outputs: [{ uri: u.to, rel: u.rel, sha256: r.sha256, size: r.size }], read: r.size };
}

/**
 * A native task kept native, as the one-process write copies it
 * (write/execute.ts `copyNative`): each file streamed and hashed as it is
 * copied (never a server-side copy: the SST's hash is checked against the
 * one its sst_manifest.json records, NATIVE_SST_HASH naming the source file
 * otherwise), then the rewritten sst_manifest.json and the pointer from the
 * plan's bytes. The pointer first in the record: it is the unit's `to`.
 */
async function runNativeCopy(u: NativeCopyUnitSpec, ctx: UnitContext): Promise<UnitOutcome> {
  const outputs: OutputRecord[] = [];
  let read = 0;
  const dir = targetDirOf(u.to, u.rel);
  for (const f of u.files) {
    const to = locate(f.to);
    const from = locate(f.from);
    // Engine mode: the job's shared incr/ folder, outside the target. The very
    // file the source uses (same base) is only hashed; any other is written
    // there only under a name still free, or kept when the same bytes are
    // already there (write/execute.ts `copyNative`).
    const outside = !within(to, dir);
    if (!(outside && from.storage === to.storage && from.key === to.key)) ctx.assertWritable(to);
    const r = !outside ? await copyFile(from, to, { onBytes: ctx.onBytes })
      : from.storage === to.storage && from.key === to.key ? await copyFile(from, to)
        : await writeShared(to, (async function* () {
          for await (const c of from.storage.read(from.key)) {
            ctx.onBytes?.(c.length);
            yield c;
          }
        })());
    if (f.sha256 && r.sha256 !== f.sha256) {
      throw new KspError('NATIVE_SST_HASH', `${f.from}: SHA-256 ${r.sha256} differs from ${f.sha256} recorded in its sst_manifest.json`, { file: f.from, expected: f.sha256, found: r.sha256 });
    }
    if (f.listed && r.sha256 !== f.listed) {
      throw new KspError('HASH_MISMATCH', `${f.from}: SHA-256 ${r.sha256} differs from ${f.listed} in the source's manifest.sha256 (pass ${optionName('trustSource')} to use it anyway)`, { file: f.from, expected: f.listed, found: r.sha256 });
    }
    read += r.size;
    outputs.push({ uri: f.to, rel: f.rel, sha256: r.sha256, size: r.size });
  }
  for (const [uri, rel, b64] of [[u.manifest.to, u.manifest.rel, u.manifest.bytes], [u.to, u.rel, u.pointer]] as const) {
    const to = locate(uri);
    ctx.assertWritable(to);
    const bytes = toAsyncChunks(Buffer.from(b64, 'base64'));
    const w = within(to, dir) ? await writeHashed(to, bytes) : await writeShared(to, bytes);
    outputs.push({ uri, rel, sha256: w.sha256, size: w.size });
  }
  outputs.unshift(outputs.pop()!);
  return { outputs, read };
}

function sourceTask(s: SourceSpec): SourceTask {
  return {
    operatorId: s.operatorId, taskId: s.taskId, location: locate(s.uri), ...(s.sha256 ? { sha256: s.sha256 } : {}),
    ...(s.native ? { native: s.native } : {}), ...(s.ttlPrefix ? { ttlPrefix: s.ttlPrefix } : {}),
  } as SourceTask;
}

async function runRewriteUnit(u: RewriteUnitSpec, ctx: UnitContext): Promise<UnitOutcome> {
  const to = locate(u.to);
  ctx.assertWritable(to);
  if (u.source.native || u.keyChange) {
    // Count known only at the end, or keys that may collide: the one-process job's spill path.
    const file: StoredFile = { stored: u.rel ?? u.to, location: to, relPath: u.rel };
    return rewriteAsOneProcess(u, { migrations: u.migrations, renames: u.renames }, file, null, ctx);
  }
  // The same streaming rewrite the one-process write runs on its threads (write/rewrite-unit.ts), by URI.
  const r = await runRewrite({
    kind: 'rewrite', source: { path: u.source.uri, operatorId: u.source.operatorId, taskId: u.source.taskId, ...(u.source.sha256 ? { sha256: u.source.sha256 } : {}) },
    out: u.to, migrations: u.migrations, renames: u.renames,
  });
  ctx.onBytes?.(r.read);
  return { outputs: [{ uri: u.to, rel: u.rel, sha256: r.sha256, size: r.size }], entries: r.entries, steps: r.steps, read: r.read };
}

/** Operator ids and state names as UTF-8, encoded once (a task holds a handful). */
const texts = new Map<string, Buffer>();
function text(s: string): Buffer {
  let b = texts.get(s);
  if (!b) {
    if (texts.size > 1024) texts.clear();
    texts.set(s, (b = Buffer.from(s, 'utf8')));
  }
  return b;
}

/**
 * A local spill file written through one buffer, hashing what it writes: the
 * segment and index files of a route unit. `discard` closes without writing
 * and never throws (the way out of a failure).
 */
class HashedSpillFile {
  private fd: number;
  protected readonly buf: Buffer;
  protected used = 0;
  readonly hash = createHash('sha256');
  bytes = 0;
  count = 0;
  constructor(readonly path: string, size: number) {
    this.fd = fs.openSync(path, 'w');
    this.buf = Buffer.allocUnsafe(size);
  }

  /** Writes `b` at once, past the buffer (what is buffered must be flushed first). */
  protected writeThrough(b: Uint8Array): void {
    this.hash.update(b);
    for (let off = 0; off < b.length; ) off += fs.writeSync(this.fd, b, off, b.length - off);
  }

  flush(): void {
    if (this.used === 0) return;
    this.writeThrough(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  close(): void {
    this.flush();
    this.discard();
  }

  discard(): void {
    if (this.fd < 0) return;
    try {
      fs.closeSync(this.fd);
    } catch {
      // Already closed.
    }
    this.fd = -1;
  }
}

/** Appends encoded entries to a segment file. */
class SegmentFile extends HashedSpillFile {
  append(e: StateEntry): number {
    const op = text(e.operatorId);
    const st = text(e.stateName);
    const n = 32 + op.length + st.length + e.key.length + e.value.length;
    if (this.used + n > this.buf.length) this.flush();
    if (n > this.buf.length) {
      this.writeThrough(encodeEntry(e));
    } else {
      // Lengths as two u32 halves (fields ksp handles are below 2^31): no BigInt per field.
      const b = this.buf;
      let p = this.used;
      for (const f of [op, st, e.key, e.value]) {
        b.writeUInt32LE(f.length, p);
        b.writeUInt32LE(0, p + 4);
        b.set(f, p + 8);
        p += 8 + f.length;
      }
      this.used = p;
    }
    this.bytes += n;
    this.count++;
    return n;
  }

}

async function* fileChunks(path: string): AsyncGenerator<Uint8Array> {
  const s = fs.createReadStream(path, { highWaterMark: 1024 * 1024 });
  for await (const c of s) yield c as Buffer;
}

/**
 * The map side of the shuffle: every entry of one source task to the new
 * task owning its routing key's key group, as `repartition` routes it
 * (krishiv-state/src/checkpoint/rescaling.rs, `redistribute_snapshots`:
 * window layouts by their group key, the watermark and other keys
 * broadcast). Entries go to one local spill file per new task, in source
 * order; the run file is those spills one after another, then the
 * broadcast entries, so one sequential upload writes it and a merge reads
 * its part with one ranged read.
 */
async function runRoute(u: RouteUnitSpec, ctx: UnitContext): Promise<UnitOutcome> {
  const m = Math.max(...u.owners) + 1;
  const run = locate(u.run);
  ctx.assertWritable(run);
  const { map } = await loadEntryMap(u.map);
  const moved = u.routing === 'moved';
  const routing = moved ? null : (u.routing as Routing);
  const ownerOf = (k: Uint8Array): number => u.owners[taskForKeyGroup(keyGroup(k), m)]!;
  const si = u.index;
  // Routing `moved`, as `repartition` moves an entry: only when its key
  // changed and it sat on its old key's owner (data not placed by key stays).
  const movedTo = (oldKey: Uint8Array, newKey: Uint8Array): number => {
    if (oldKey === newKey || Buffer.from(oldKey).equals(Buffer.from(newKey))) return si;
    const from = movedEntryKey(oldKey);
    const to = movedEntryKey(newKey);
    return from !== null && to !== null && ownerOf(from) === si ? ownerOf(to) : si;
  };
  const dir = makeTempDir(ctx.tempDir, 'ksp-rescale-');
  const bufSize = Math.max(64 * 1024, Math.min(1024 * 1024, Math.floor((32 * 1024 * 1024) / (m + 1))));
  const segs: SegmentFile[] = [];
  const idx: IndexFile[] = [];
  try {
    for (let i = 0; i <= m; i++) segs.push(new SegmentFile(join(dir, `seg-${i}`), bufSize));
    if (u.keyChange) for (let i = 0; i < m; i++) idx.push(new IndexFile(join(dir, `idx-${i}`)));
    const bc = segs[m]!;
    let read = 0;
    const r = await openTask(sourceTask(u.source), (n) => {
      read += n;
      ctx.onBytes?.(n);
    }, 'rescale');
    if (r) {
      let index = 0;
      for await (const batch of r.batches()) {
        for (const raw of batch) {
          const i = index++;
          const e = map ? map(raw, { operator: u.source.operatorId, task: u.source.taskId, index: i }) : raw;
          let to: number;
          if (moved) {
            to = movedTo(raw.key, e.key);
          } else {
            const rk = routingKey(e.key, routing!);
            if (rk === null) {
              bc.append(e);
              if (bc.bytes > BROADCAST_LIMIT_BYTES) {
                throw new KspError('RESCALE_BROADCAST_LIMIT', `rescale ${u.operator}: more than ${BROADCAST_LIMIT_BYTES >> 20} MiB of broadcast entries in ${u.source.uri} (keys that do not follow the window layouts are copied to every task); use --routing state-key for this operator`, { operator: u.operator });
              }
              continue;
            }
            to = ownerOf(rk);
          }
          segs[to]!.append(e);
          idx[to]?.append(i);
        }
      }
    }
    for (const s of segs) s.close();
    for (const x of idx) x.close();
    const segments: Segment[] = [];
    let offset = 0;
    for (const s of [...segs, ...idx]) {
      segments.push({ offset, bytes: s.bytes, count: s.count, sha256: s.hash.digest('hex') });
      offset += s.bytes;
    }
    async function* all(): AsyncGenerator<Uint8Array> {
      for (const s of [...segs, ...idx]) if (s.bytes) yield* fileChunks(s.path);
    }
    const w = await writeHashed(run, all());
    if (w.size !== offset) throw new KspError('INTERNAL', `${u.run}: ${w.size} bytes written, ${offset} spilled`, { file: u.run });
    const indices = segments.splice(m + 1);
    const broadcast = segments.pop()!;
    return { outputs: [{ uri: u.run, rel: null, sha256: w.sha256, size: w.size }], segments, broadcast, ...(u.keyChange ? { indices } : {}), read };
  } finally {
    for (const x of [...segs, ...idx]) x.discard();
    removeTempDir(dir);
  }
}

/** Appends u32 LE values (a segment's entries' indices in their source task) to a local file, hashing them. */
class IndexFile extends HashedSpillFile {
  constructor(path: string) {
    super(path, 64 * 1024);
  }

  append(v: number): void {
    if (this.used + 4 > this.buf.length) this.flush();
    this.buf.writeUInt32LE(v >>> 0, this.used);
    this.used += 4;
    this.bytes += 4;
    this.count++;
  }
}

/** A part of a run file, checked against the hash its route record gives. */
async function* segmentBytes(run: Location, seg: Segment, what: string): AsyncGenerator<Uint8Array> {
  if (seg.bytes === 0) return;
  const h = createHash('sha256');
  let n = 0;
  for await (const c of run.storage.read(run.key, { offset: seg.offset, length: seg.bytes })) {
    h.update(c);
    n += c.length;
    yield c;
  }
  const found = h.digest('hex');
  if (n !== seg.bytes || found !== seg.sha256) {
    throw new KspError('HASH_MISMATCH', `${uriOf(run)}: ${what}: ${n} bytes with SHA-256 ${found}, but its completion record says ${seg.bytes} bytes with ${seg.sha256}; the run file changed or is damaged (run its route unit again)`, { file: uriOf(run), expected: seg.sha256, found });
  }
}

function decodeEntries(b: Buffer, file: string): StateEntry[] {
  const out: StateEntry[] = [];
  let p = 0;
  while (p < b.length) {
    const f: Buffer[] = [];
    for (let k = 0; k < 4; k++) {
      if (p + 8 > b.length) throw new KspError('HASH_MISMATCH', `${file}: a broadcast segment ends inside an entry`, { file });
      const n = Number(b.readBigUInt64LE(p));
      if (p + 8 + n > b.length) throw new KspError('HASH_MISMATCH', `${file}: a broadcast segment ends inside an entry`, { file });
      f.push(b.subarray(p + 8, p + 8 + n));
      p += 8 + n;
    }
    out.push({ operatorId: f[0]!.toString('utf8'), stateName: f[1]!.toString('utf8'), key: f[2]!, value: f[3]! });
  }
  return out;
}

/**
 * The reduce side: one new task as `repartition` writes it, byte for byte:
 * its header (the entry count), its routed entries source by source in
 * source order, then the broadcast entries of every source merged in
 * first-seen order (`BroadcastSet`, shared with the one-process paths).
 */
async function runMerge(u: MergeUnitSpec, ctx: UnitContext): Promise<UnitOutcome> {
  const to = locate(u.to);
  ctx.assertWritable(to);
  const records: DoneRecord[] = [];
  for (const id of u.routes) {
    const r = await ctx.record(id);
    if (!r?.segments || !r.broadcast || !r.outputs[0]) throw new KspError('DISTRIBUTED_INCOMPLETE', `merge ${u.outOperator}/${u.outTask}: route unit ${id} has no completion record`, { unit: u.id, missing: [id] });
    if (r.segments.length <= u.output) throw new KspError('DISTRIBUTED_PLAN_INVALID', `route unit ${id}: its record has ${r.segments.length} segments, output ${u.output} needs more`, { unit: id });
    if (r.outputs[0].uri !== ctx.runOf(id)) throw new KspError('DISTRIBUTED_PLAN_INVALID', `route unit ${id}: its record names ${r.outputs[0].uri}, the plan ${ctx.runOf(id)}`, { unit: id });
    records.push(r);
  }
  if (u.keyChange || u.native) return mergeThroughSpill(u, records, ctx);
  const job = { operator: u.operator, sources: u.sourceTasks.map((taskId) => ({ taskId })) };
  const broadcast = new BroadcastSet(job as never);
  for (let si = 0; si < records.length; si++) {
    const r = records[si]!;
    const run = locate(r.outputs[0]!.uri);
    const parts: Uint8Array[] = [];
    for await (const c of segmentBytes(run, r.broadcast!, 'broadcast segment')) parts.push(c);
    for (const e of decodeEntries(Buffer.concat(parts), uriOf(run))) broadcast.add(e, si);
  }
  const tail = Buffer.concat([...broadcast.entries.values()].map(({ e }) => encodeEntry(e)));
  let count = broadcast.entries.size;
  let read = 0;
  for (const r of records) count += r.segments![u.output]!.count;
  async function* body(): AsyncGenerator<Uint8Array> {
    const header = Buffer.alloc(12);
    header.writeUInt32LE(STATE_BIN_VERSION, 0);
    header.writeBigUInt64LE(BigInt(count), 4);
    yield header;
    for (let si = 0; si < records.length; si++) {
      const r = records[si]!;
      for await (const c of segmentBytes(locate(r.outputs[0]!.uri), r.segments![u.output]!, `segment ${u.output} (${u.outTask}) of source ${u.sourceTasks[si]}`)) {
        read += c.length;
        ctx.onBytes?.(c.length);
        yield c;
      }
    }
    if (tail.length) yield tail;
  }
  const w = await writeHashed(to, body());
  const out: OutputRecord = { uri: u.to, rel: u.rel, sha256: w.sha256, size: w.size };
  return { outputs: [out], entries: count, broadcastDistinct: broadcast.entries.size, broadcastMerged: broadcast.merged, read };
}

/**
 * The reduce side when keys changed, or for native output: the task's
 * entries as `repartition` gathers them in its spill (every source's
 * routed entries in source order, then the merged broadcast entries), its
 * collisions found and resolved by the same rule (`Spill.collisions`, keep
 * the first or the last seen, or fail naming the entries), then written as
 * `repartition` writes them: `Spill.stateBin`, or the entries into a RocksDB
 * database (`writeNativeTask`, key-sorted, as `writeEntries` does).
 */
async function mergeThroughSpill(u: MergeUnitSpec, records: DoneRecord[], ctx: UnitContext): Promise<UnitOutcome> {
  const to = locate(u.to);
  const job = { operator: u.operator, sources: u.sourceTasks.map((taskId) => ({ taskId })) };
  const broadcast = new BroadcastSet(job as never);
  for (let si = 0; si < records.length; si++) {
    const run = locate(records[si]!.outputs[0]!.uri);
    const parts: Uint8Array[] = [];
    for await (const c of segmentBytes(run, records[si]!.broadcast!, 'broadcast segment')) parts.push(c);
    for (const e of decodeEntries(Buffer.concat(parts), uriOf(run))) broadcast.add(e, si);
  }
  const dir = makeTempDir(ctx.tempDir, 'ksp-rescale-');
  const spill = new Spill(dir, 'task', 1024 * 1024, u.keyChange ?? false);
  let read = 0;
  try {
    for (let si = 0; si < records.length; si++) {
      const r = records[si]!;
      const run = locate(r.outputs[0]!.uri);
      const seg = r.segments![u.output]!;
      const what = `segment ${u.output} (${u.outTask}) of source ${u.sourceTasks[si]}`;
      // Each entry's index in its source, for the collision messages (route units of a key change write them).
      let indices: Buffer | null = null;
      if (u.keyChange) {
        const is = r.indices?.[u.output];
        if (!is || is.count !== seg.count) throw new KspError('DISTRIBUTED_PLAN_INVALID', `route unit ${u.routes[si]}: its record has no entry indices for output ${u.output}`, { unit: u.routes[si] });
        const parts: Uint8Array[] = [];
        for await (const c of segmentBytes(run, is, `entry indices of ${what}`)) parts.push(c);
        indices = Buffer.concat(parts);
      }
      const header = Buffer.alloc(12);
      header.writeUInt32LE(STATE_BIN_VERSION, 0);
      header.writeBigUInt64LE(BigInt(seg.count), 4);
      const body = (async function* () {
        yield header;
        for await (const c of segmentBytes(run, seg, what)) {
          read += c.length;
          ctx.onBytes?.(c.length);
          yield c;
        }
      })();
      let k = 0;
      for await (const batch of new StateBinDecoder(body, { size: 12 + seg.bytes, file: `${uriOf(run)} (${what})` }).batches()) {
        for (const e of batch) {
          spill.append(e, { task: si, index: indices ? indices.readUInt32LE(4 * k) : k });
          k++;
        }
      }
    }
    let b = 0;
    for (const { e } of broadcast.entries.values()) spill.append(e, { task: 0xffffffff, index: b++ });
    spill.close();
    const describe = (x: { task: number; index: number }): string => x.task === 0xffffffff ? 'a broadcast entry' : `${u.sourceTasks[x.task]} entry #${x.index}`;
    const { drop, report } = spill.collisions(u.onCollision ?? 'fail', describe);
    const base = { broadcastDistinct: broadcast.entries.size, broadcastMerged: broadcast.merged, read, ...(report.keys ? { collisions: { dropped: report.dropped, keys: report.keys } } : {}) };
    if (u.native) {
      const layout = nativeLayoutOf(u.to, u.rel!, u.outOperator, u.outTask, u.native.epoch, u.native.firstTable !== undefined);
      const outputs: OutputRecord[] = [];
      const store = storeInto(targetDirOf(u.to, u.rel!), outputs, ctx);
      const first = u.native.firstTable;
      const n = await writeNativeTask(spill.entries(drop), layout, BigInt(u.native.epoch), u.native.options, store, { sorted: false, tempDir: ctx.tempDir, shared: false, ...(first !== undefined ? { firstFileNumber: first } : {}) });
      outputs.sort((a, b) => Number(b.uri === u.to) - Number(a.uri === u.to));
      return { outputs, entries: n.entries, ...base };
    }
    ctx.assertWritable(to);
    const w = await writeHashed(to, spill.stateBin(drop));
    return { outputs: [{ uri: u.to, rel: u.rel, sha256: w.sha256, size: w.size }], entries: spill.count - drop.size, ...base };
  } finally {
    spill.remove();
    removeTempDir(dir);
  }
}

/**
 * A canonical task as a RocksDB database in relative mode, as the
 * one-process convert writes it (write/execute.ts `rewriteTask`, native
 * branch): the entries key-sorted (they are not in RocksDB key order),
 * tables, MANIFEST and CURRENT, then sst_manifest.json, then the pointer.
 * The layout is `Target.nativeFile` of relative mode, rebuilt from plain
 * data: `incr/{op}/{task}/sst/…` and `incr/{op}/{task}/epochs/{epoch:020}/…`.
 */
async function runNativeUnit(u: NativeUnitSpec, ctx: UnitContext): Promise<UnitOutcome> {
  const layout = nativeLayoutOf(u.to, u.rel, u.outOperator, u.outTask, u.epoch, u.firstTable !== undefined);
  const r = await rewriteAsOneProcess(u, u.map, layout.pointer, { layout, options: u.options, epoch: u.epoch, firstTable: u.firstTable }, ctx);
  // The pointer first in the record: it is the unit's `to`.
  r.outputs.sort((a, b) => Number(b.uri === u.to) - Number(a.uri === u.to));
  return r;
}

/**
 * Relative mode's native layout (`Target.nativeFile`, write/native-output.ts
 * `nativeLayout`), rebuilt from plain data: the pointer at `{dir}/{rel}`,
 * tables in `incr/{op}/{task}/sst/`, the epoch's files in
 * `incr/{op}/{task}/epochs/{epoch:020}/`.
 */
function nativeLayoutOf(to: string, rel: string, op: string, task: string, epoch: string, engine: boolean): NativeLayout {
  const pointer = locate(to);
  const dir = targetDirOf(to, rel);
  let file = (r: string): StoredFile => ({ stored: r, location: child(dir, r), relPath: r });
  if (engine) {
    // Engine mode: `{base}/{job}/incr/{op}/{task}/…`, outside the target, stored as `{job}/incr/…` (write/target.ts `nativeFile`).
    const incr = engineIncr(dir, op, task);
    if (!incr) throw new KspError('DISTRIBUTED_PLAN_INVALID', `${uriOf(dir)}: not a savepoint directory in the engine's layout ({base}/{job}/savepoints/{id}), so it has no shared incr/ folder`, { file: uriOf(dir) });
    const prefix = `incr/${op}/${task}/`;
    file = (r: string): StoredFile => ({ stored: `${incr.stored}/${r.slice(prefix.length)}`, location: child(incr.location, r.slice(prefix.length)), relPath: null });
  }
  const base = `incr/${op}/${task}`;
  const epochDir = `${base}/epochs/${epochDirName(BigInt(epoch))}`;
  return {
    sst: (name) => file(`${base}/sst/${name}`),
    meta: (name) => file(`${epochDir}/${name}`),
    manifest: file(`${epochDir}/sst_manifest.json`),
    pointer: { stored: rel, location: pointer, relPath: rel },
  };
}

/** The target directory: the unit's output `to` is `{dir}/{rel}` (checkPlan holds the pair to it). */
function targetDirOf(to: string, rel: string): Location {
  let dir = locate(to);
  for (let i = rel.split('/').length; i > 0; i--) dir = parent(dir);
  return dir;
}

/**
 * Stores one output of a unit and records it: inside the target as every
 * output (atomic, replaced by an identical re-run), outside it (engine
 * mode's shared incr/ folder) never over a file already there (writeShared).
 */
function storeInto(dir: Location, outputs: OutputRecord[], ctx: UnitContext) {
  return async (out: StoredFile, data: AsyncIterable<Uint8Array> | Uint8Array): Promise<{ sha256: string; size: number }> => {
    ctx.assertWritable(out.location);
    const chunks = data instanceof Uint8Array ? toAsyncChunks(data) : data;
    const r = within(out.location, dir) ? await writeHashed(out.location, chunks) : await writeShared(out.location, chunks);
    outputs.push({ uri: uriOf(out.location), rel: out.relPath, sha256: r.sha256, size: r.size });
    return r;
  };
}

/**
 * One task rewritten by the one-process write's own code
 * (write/execute.ts `rewriteTask`): the same job (its map rebuilt from the
 * plan, entry-map.ts), so the same path for each case (streamed when the
 * count is known and keys stay, a spill finding collisions otherwise, native
 * tables key-sorted unless a native source keeps its keys) and the same
 * bytes. Every file it writes is recorded.
 */
async function rewriteAsOneProcess(
  u: (RewriteUnitSpec | NativeUnitSpec), spec: MapSpec | undefined, file: StoredFile,
  native: { layout: NativeLayout; options: NativeWriteOptions; epoch: string; firstTable?: number } | null, ctx: UnitContext,
): Promise<UnitOutcome> {
  const loaded = await loadEntryMap(spec);
  const outputs: OutputRecord[] = [];
  const store = storeInto(targetDirOf(u.to, file.relPath ?? u.rel ?? ''), outputs, ctx);
  const job = {
    kind: 'rewrite' as const, source: sourceTask(u.source), out: { operatorId: u.outOperator, taskId: u.outTask, file },
    map: loaded.map, keyChange: u.keyChange ?? false, keysKept: u.keysKept ?? (loaded.map === null), onCollision: u.onCollision ?? 'fail',
    ...(native ? { native: native.options } : {}),
  };
  let read = 0;
  const onBytes = (n: number): void => {
    read += n;
    ctx.onBytes?.(n);
  };
  const collisions = { collisions: [] as unknown[] } as unknown as WriteReport;
  const entries = await rewriteTask(job, ctx.tempDir, store, async (_out, options, batches, sorted) => {
    const r = await writeNativeTask(batches, native!.layout, BigInt(native!.epoch), options, store, { sorted, tempDir: ctx.tempDir, shared: false, ...(native!.firstTable !== undefined ? { firstFileNumber: native!.firstTable } : {}) });
    return r.entries;
  }, onBytes, collisions);
  const c = collisions.collisions[0];
  return { outputs, entries, steps: loaded.steps(), read, ...(c ? { collisions: { dropped: c.dropped, keys: c.keys } } : {}) };
}

/**
 * A native task as a canonical state.bin, as the one-process convert writes
 * it (write/execute.ts): `convertNativeTask` in one pass when the tables
 * state the live count; otherwise the entries through a local spill (as
 * `rewriteTask` does when the count is known only at the end), then the
 * header and the entries. Either way: encodeStateBin of the live entries in
 * RocksDB key order.
 */
async function runCanonicalUnit(u: CanonicalUnitSpec, ctx: UnitContext): Promise<UnitOutcome> {
  const to = locate(u.to);
  ctx.assertWritable(to);
  let read = 0;
  const onBytes = (n: number): void => {
    read += n;
    ctx.onBytes?.(n);
  };
  const fast = await convertNativeTask({
    source: u.source.uri, ...(u.source.sha256 ? { sourceSha256: u.source.sha256 } : {}), native: u.source.native ?? [],
    ...(u.source.ttlPrefix ? { ttlPrefix: u.source.ttlPrefix } : {}), task: `${u.source.operatorId}/${u.source.taskId}`, out: u.to,
  }, onBytes);
  if (!fast.fallback) return { outputs: [{ uri: u.to, rel: u.rel, sha256: fast.sha256, size: fast.size }], entries: fast.entries, read };
  const src = await openTask(sourceTask(u.source), onBytes);
  if (!src) {
    const w = await writeHashed(to, encodeStateBin(0, []));
    return { outputs: [{ uri: u.to, rel: u.rel, sha256: w.sha256, size: w.size }], entries: 0, read };
  }
  if (src.count !== null) {
    const w = await writeHashed(to, encodeStateBin(src.count, src.batches(), u.to));
    return { outputs: [{ uri: u.to, rel: u.rel, sha256: w.sha256, size: w.size }], entries: src.count, read };
  }
  const dir = makeTempDir(ctx.tempDir, 'ksp-rewrite-');
  const spill = new Spill(dir, 'task', 1024 * 1024, false);
  try {
    let index = 0;
    for await (const batch of src.batches()) for (const e of batch) spill.append(e, { task: 0, index: index++ });
    spill.close();
    const { drop } = spill.collisions('fail', (x) => `${u.source.taskId} entry #${x.index}`);
    const w = await writeHashed(to, spill.stateBin(drop));
    return { outputs: [{ uri: u.to, rel: u.rel, sha256: w.sha256, size: w.size }], entries: spill.count - drop.size, read };
  } finally {
    spill.remove();
    removeTempDir(dir);
  }
}
