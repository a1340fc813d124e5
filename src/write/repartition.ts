import { createHash } from 'node:crypto';
import { KspError, preview } from '../errors.js';
import { optionName } from '../option-names.js';
import type { StateEntry } from '../formats/state-bin/decoder.js';
import { openBody, type TaskReader } from '../formats/task-format/index.js';
import { stripTtlPrefix } from '../formats/task-format/ttl.js';
import { keyGroup, taskForKeyGroup } from '../model/key-group.js';
import { routingKey, type Routing } from '../model/routing.js';
import { movedEntryKey, rangeOwnersByName } from '../model/task-ranges.js';
import type { TaskRef } from '../model/savepoint.js';
import { uriOf, type Location } from '../storage/uri.js';
import type { Job, SourceTask } from './jobs.js';
import { BROADCAST_LIMIT_BYTES } from './route-pass.js';
import { Spill, spillBufferSize, type CollisionReport } from './spill.js';
import { makeTempDir, removeTempDir } from './temp-dir.js';
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { dirname } from 'node:path';
import { STATE_BIN_VERSION } from '../formats/state-bin/decoder.js';
import type { StoredFile } from './target.js';
import type { PlacementProof } from '../model/scan-file.js';
import type { UnitPool } from './unit-pool.js';
import { unitPathOf, type RouteResult } from './units.js';

/**
 * Rescaling one operator as the engine does (../model/FORMAT.md §9;
 * engine: `crates/krishiv-state/src/checkpoint/rescaling.rs`,
 * `redistribute_snapshots`): every source task is read once, in metadata
 * order, each entry routed to the new task owning its routing key's key
 * group and appended to that task's spill file; broadcast entries (the
 * watermark, keys outside the window layouts) are merged across source
 * tasks in first-seen order and appended to every new task after its routed
 * entries. Range i goes to the i-th new task id in string order
 * (`rangeOwnersByName`). Each new task's `state.bin` is then its header and
 * its spill, so memory holds one buffer per new task and the broadcast set,
 * never the operator's entries.
 *
 * Routing `moved` serves key migrations at an unchanged parallelism: the
 * output tasks are the source tasks, an entry whose key the map left alone
 * stays on its task, and one whose key changed goes to the owner of its new
 * key (`movedEntryKey`), so the output passes verify's placement check (../model/FORMAT.md §9.6).
 */

export interface RepartitionResult {
  /** Entries per new task, as written. */
  counts: number[];
  routed: number;
  /** Routing `moved`: entries that left their task for the owner of their new key. */
  moved: number;
  broadcast: { distinct: number; merged: number };
  collisions: CollisionReport;
}

/** Broadcast entries kept in memory at most (they are normally a few watermarks): BROADCAST_LIMIT_BYTES, route-pass.ts. */

export async function repartition(
  job: Extract<Job, { kind: 'repartition' }>,
  tempDir: string,
  write: (to: Location, data: AsyncIterable<Uint8Array>) => Promise<void>,
  onBytes?: (n: number) => void,
  /** Instead of state.bin bytes, hand each new task's entries over (native output); resolves to the entries written. */
  writeEntries?: (task: number, entries: AsyncIterable<StateEntry[]>) => Promise<number>,
): Promise<RepartitionResult> {
  const m = job.outs.length;
  const owners = rangeOwnersByName(job.outs.map((o) => o.taskId));
  const routing: Routing | null = job.routing === 'moved' ? null : job.routing;
  const moved = routing === null;
  const ownerOf = (k: Uint8Array): number => owners[taskForKeyGroup(keyGroup(k), m)]!;
  // An entry follows its key only when it sat on its old key's owner: data
  // not placed by key (hand-made, or by another rule) stays where it was.
  const movedTo = (oldKey: Uint8Array, newKey: Uint8Array, si: number): number => {
    if (oldKey === newKey || Buffer.from(oldKey).equals(Buffer.from(newKey))) return si;
    const from = movedEntryKey(oldKey);
    const to = movedEntryKey(newKey);
    return from !== null && to !== null && ownerOf(from) === si ? ownerOf(to) : si;
  };
  if (moved && job.sources.length !== m) throw new KspError('INTERNAL', `re-routing ${job.operator}: ${job.sources.length} source tasks but ${m} outputs`);
  const dir = makeTempDir(tempDir, 'ksp-rescale-');
  const spills = job.outs.map((_, i) => new Spill(dir, `task-${i}`, spillBufferSize(m), job.keyChange));
  const broadcast = new BroadcastSet(job);
  let routed = 0;
  let movedCount = 0;
  try {
    for (let si = 0; si < job.sources.length; si++) {
      const src = job.sources[si]!;
      let index = 0;
      for await (const batch of taskEntries(src, onBytes)) {
        for (const raw of batch) {
          const i = index++;
          const e = job.map ? job.map(raw, { operator: src.operatorId, task: src.taskId, index: i }) : raw;
          if (moved) {
            const to = movedTo(raw.key, e.key, si);
            if (to !== si) movedCount++;
            spills[to]!.append(e, { task: si, index: i });
            routed++;
            continue;
          }
          const rk = routingKey(e.key, routing!);
          if (rk === null) {
            broadcast.add({ operatorId: e.operatorId, stateName: e.stateName, key: Buffer.from(e.key), value: Buffer.from(e.value) }, si);
            continue;
          }
          spills[owners[taskForKeyGroup(keyGroup(rk), m)]!]!.append(e, { task: si, index: i });
          routed++;
        }
      }
    }
    const spilled = spills.reduce((s, x) => s + x.count, 0);
    if (spilled !== routed) {
      throw new KspError('RESCALE_COUNT_MISMATCH', `rescale ${job.operator}: routed ${routed} entries but ${spilled} reached the new tasks`, { operator: job.operator, expected: routed, found: spilled });
    }
    let b = 0;
    for (const { e } of broadcast.entries.values()) {
      for (const s of spills) s.append(e, { task: 0xffffffff, index: b });
      b++;
    }
    for (const s of spills) s.close();
    const counts: number[] = [];
    const collisions: CollisionReport = { dropped: 0, keys: 0, examples: [] };
    const describe = (x: { task: number; index: number }): string => x.task === 0xffffffff ? 'a broadcast entry' : `${job.sources[x.task]!.taskId} entry #${x.index}`;
    for (let i = 0; i < m; i++) {
      const s = spills[i]!;
      const { drop, report } = s.collisions(job.onCollision, describe);
      collisions.dropped += report.dropped;
      collisions.keys += report.keys;
      collisions.examples.push(...report.examples.slice(0, 3 - collisions.examples.length));
      if (writeEntries) {
        counts.push(await writeEntries(i, s.entries(drop)));
      } else {
        await write(job.outs[i]!.file.location, s.stateBin(drop));
        counts.push(s.count - drop.size);
      }
      s.remove();
    }
    return { counts, routed, moved: movedCount, broadcast: { distinct: broadcast.entries.size, merged: broadcast.merged }, collisions };
  } finally {
    // Neither throws: a cleanup that fails again (ENOSPC) must not hide the first error.
    for (const s of spills) s.remove();
    removeTempDir(dir);
  }
}

/** What the placed rescale needs from the executor: its pool, and the executor's bookkeeping of outputs. */
export interface PlacedWrites {
  pool: UnitPool;
  /** Before an output file is made: refuses a source file and a signal, and puts the file on the rollback list. */
  begin(out: StoredFile): void;
  /** A finished output, for the manifest. */
  commit(out: StoredFile, sha256: string, size: number): void;
  /**
   * A finished output whose SHA-256 the caller takes from its own read-back
   * of the stored file (the executor's re-verify, which hashes and decodes it
   * in one pass), so it is not read and hashed here first; `size` is the
   * planned size, for the caller to hold the read-back to. False to have it
   * hashed here and committed.
   */
  adopt?(out: StoredFile, size: number): boolean;
  /**
   * What the route pass saw of the entries it sent to this output, for the
   * re-verify's placement check (model/scan-file.ts PlacementProof): the
   * output's keys are then matched against it instead of hashed again.
   */
  prove?(out: StoredFile, proof: PlacementProof): void;
  onBytes?: (n: number) => void;
}

/** Outputs at most, for the placed path: each place unit holds a file and a buffer per output. */
const PLACED_MAX_OUTPUTS = 256;

/**
 * The same rescale as `repartition`, byte for byte, for canonical sources
 * and a target on local disk, in two passes run as plain-data units on the
 * pool's threads (write/route-pass.ts): route every source (its output task
 * per entry, so each output's entry count and size are known), then write
 * every source's entries at their final offsets in the outputs, which are
 * created at their full size with header and broadcast tail in place. Each
 * output is written once, with no spill, and its SHA-256 taken from the
 * written file: here, or (`adopt`) by the caller's own read-back. Null, with nothing written, when the job or a source does
 * not fit (a key map, native files, another storage, a file the route pass
 * does not accept): the caller then streams as before, and that path
 * reports the exact error.
 */
export async function repartitionPlaced(job: Extract<Job, { kind: 'repartition' }>, w: PlacedWrites): Promise<RepartitionResult | null> {
  if (job.routing === 'moved' || job.map !== null || job.keyChange || job.native || job.outs.length > PLACED_MAX_OUTPUTS) return null;
  const localPath = (l: Location): string | null => unitPathOf(l.storage, l.key);
  const srcPaths = job.sources.map((s) => (s.native ? null : localPath(s.location)));
  const outPaths = job.outs.map((o) => localPath(o.file.location));
  if (srcPaths.some((x) => x === null) || outPaths.some((x) => x === null)) return null;
  const m = job.outs.length;
  const owners = rangeOwnersByName(job.outs.map((o) => o.taskId));
  const routing = job.routing;
  const stats = await Promise.all(job.sources.map((s) => s.location.storage.stat(s.location.key)));
  if (stats.some((st) => st === null)) return null;
  const sizes = stats.map((st) => st!.size);
  const routes: RouteResult[] = await Promise.all(job.sources.map((s, i) => w.pool.run({ kind: 'route', path: srcPaths[i]!, size: sizes[i]!, ...(s.sha256 ? { sha256: s.sha256 } : {}), routing, owners })));
  if (routes.some((r) => r.fallback !== undefined)) return null;
  // Progress in source bytes, though this path reads every source twice and
  // (unless adopted) hashes every output: a third of them as each pass ends,
  // reaching exactly the source bytes the write's total counts (read-total.ts).
  const sourceBytes = sizes.reduce((a, b) => a + b, 0);
  let reported = 0;
  const report = (n: number): void => {
    reported += n;
    w.onBytes?.(n);
  };
  report(Math.floor(sourceBytes / 3));

  // Broadcast entries merged across sources in first-seen order, exactly as `repartition` does.
  const broadcast = new BroadcastSet(job);
  for (let si = 0; si < routes.length; si++) for (const b of routes[si]!.broadcast) broadcast.add(entryOf(b.raw), si);
  const tail = Buffer.concat([...broadcast.entries.values()].map(({ e }) => encodeEntry(e)));
  const nb = broadcast.entries.size;
  const counts = new Array<number>(m).fill(nb);
  const sizesOut = new Array<number>(m).fill(12 + tail.length);
  // starts[si][i]: where source si's entries begin in output i.
  const starts = routes.map(() => new Array<number>(m).fill(0));
  const at = new Array<number>(m).fill(12);
  let routed = 0;
  routes.forEach((r, si) => {
    for (let i = 0; i < m; i++) {
      starts[si]![i] = at[i]!;
      at[i]! += r.bytes[i] ?? 0;
      counts[i]! += r.counts[i] ?? 0;
      sizesOut[i]! += r.bytes[i] ?? 0;
      routed += r.counts[i] ?? 0;
    }
  });

  const temps: string[] = [];
  try {
    for (let i = 0; i < m; i++) {
      w.begin(job.outs[i]!.file);
      const tmp = `${outPaths[i]!}.ksp-tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
      await fsp.mkdir(dirname(tmp), { recursive: true });
      temps.push(tmp);
      const fh = await fsp.open(tmp, 'w');
      try {
        const header = Buffer.alloc(12);
        header.writeUInt32LE(STATE_BIN_VERSION, 0);
        header.writeBigUInt64LE(BigInt(counts[i]!), 4);
        await fh.write(header, 0, 12, 0);
        if (tail.length) await fh.write(tail, 0, tail.length, sizesOut[i]! - tail.length);
        await fh.truncate(sizesOut[i]!);
      } finally {
        await fh.close();
      }
    }
    await Promise.all(routes.map(async (r, si) => {
      if (r.entries !== 0) {
        await w.pool.run({
          kind: 'place', path: srcPaths[si]!, size: sizes[si]!, routes: r.routes,
          outs: job.outs.map((_, i) => ({ path: temps[i]!, offset: starts[si]![i]!, bytes: r.bytes[i] ?? 0 })),
        }, [r.routes.buffer as ArrayBuffer]);
      }
      report(Math.floor(sizes[si]! / 3));
    }));
    for (let i = 0; i < m; i++) {
      w.begin(job.outs[i]!.file);
      await fsp.rename(temps[i]!, outPaths[i]!);
      temps[i] = '';
    }
    if (w.prove) {
      for (let i = 0; i < m; i++) {
        // Sums mod 2^32 and bitmaps add up across sources: the proof of all the entries output i received.
        const groups = new Uint32Array(1024);
        const sums: [number, number] = [0, 0];
        let n = 0;
        for (const r of routes) {
          n += r.counts[i] ?? 0;
          sums[0] = (sums[0] + r.sums[2 * i]!) | 0;
          sums[1] = (sums[1] + r.sums[2 * i + 1]!) | 0;
          for (let k = 0; k < 1024; k++) groups[k]! |= r.groups[(i << 10) | k]!;
        }
        w.prove(job.outs[i]!.file, { routed: n, sums, groups });
      }
    }
    const hashHere = job.outs.map((o, i) => !(w.adopt?.(o.file, sizesOut[i]!) ?? false));
    const outBytes = sizesOut.reduce((a, b) => a + b, 0);
    const hashes = await Promise.all(outPaths.map(async (path, i) => {
      const h = hashHere[i] ? await w.pool.run({ kind: 'hash', path: path! }) : null;
      report(Math.floor((sourceBytes / 3) * (sizesOut[i]! / outBytes)));
      return h;
    }));
    report(sourceBytes - reported);
    hashes.forEach((h, i) => {
      if (h === null) return;
      if (h.size !== sizesOut[i]) throw new KspError('OUTPUT_VERIFY_FAILED', `${outPaths[i]}: ${h.size} bytes written, ${sizesOut[i]} planned`, { file: outPaths[i]! });
      w.commit(job.outs[i]!.file, h.sha256, h.size);
    });
  } catch (e) {
    for (const t of temps) if (t) await fsp.rm(t, { force: true }).catch(() => undefined);
    throw e;
  }
  return { counts, routed, moved: 0, broadcast: { distinct: nb, merged: broadcast.merged }, collisions: { dropped: 0, keys: 0, examples: [] } };
}

/** An entry from its encoded bytes (four u64-length-prefixed fields, already checked by the route pass). */
function entryOf(raw: Uint8Array): StateEntry {
  const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const f: Buffer[] = [];
  let p = 0;
  for (let k = 0; k < 4; k++) {
    const n = b.readUInt32LE(p);
    f.push(b.subarray(p + 8, p + 8 + n));
    p += 8 + n;
  }
  return { operatorId: f[0]!.toString('utf8'), stateName: f[1]!.toString('utf8'), key: f[2]!, value: f[3]! };
}

export function encodeEntry(e: StateEntry): Buffer {
  const parts: Buffer[] = [];
  for (const x of [Buffer.from(e.operatorId, 'utf8'), Buffer.from(e.stateName, 'utf8'), e.key, e.value]) {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(x.length));
    parts.push(len, Buffer.from(x.buffer, x.byteOffset, x.byteLength));
  }
  return Buffer.concat(parts);
}

/**
 * Broadcast entries merged across source tasks by (operator, state, key), in
 * first-seen order, within BROADCAST_LIMIT_BYTES: both rescale paths (the
 * streaming one and the placed one) keep them so, and must agree.
 */
export class BroadcastSet {
  readonly entries = new Map<string, { e: StateEntry; task: number }>();
  merged = 0;
  private bytes = 0;
  constructor(private readonly job: Extract<Job, { kind: 'repartition' }>) {}

  /** `e` must be the caller's own copy: it is kept. */
  add(e: StateEntry, task: number): void {
    const id = `${e.operatorId}\u0000${e.stateName}\u0000${Buffer.from(e.key).toString('hex')}`;
    const prev = this.entries.get(id);
    if (!prev) {
      this.bytes += id.length + e.value.length + 64;
      if (this.bytes > BROADCAST_LIMIT_BYTES) {
        throw new KspError('RESCALE_BROADCAST_LIMIT', `rescale ${this.job.operator}: more than ${BROADCAST_LIMIT_BYTES >> 20} MiB of broadcast entries (keys that do not follow the window layouts are copied to every task); use --routing state-key for this operator`, { operator: this.job.operator });
      }
      this.entries.set(id, { e, task });
    } else {
      this.merged++;
      prev.e = mergeBroadcast(prev.e, e, this.job, this.job.sources[prev.task]!, this.job.sources[task]!);
    }
  }
}

/** Same broadcast key from two source tasks: equal values are one entry, 8-byte values keep the minimum i64 (a watermark), anything else is a conflict. */
function mergeBroadcast(a: StateEntry, b: StateEntry, job: { operator: string }, ta: TaskRef, tb: TaskRef): StateEntry {
  const v = mergedBroadcastValue(a.value, b.value);
  if (v === a.value) return a;
  if (v !== null) return { ...a, value: Buffer.from(v) };
  throw new KspError('RESCALE_BROADCAST_CONFLICT', `rescale ${job.operator}: broadcast entry ${b.stateName} key ${preview(b.key)} differs between ${ta.taskId} and ${tb.taskId} (values ${preview(a.value)} vs ${preview(b.value)}) and is not an 8-byte watermark; cannot merge`, {
    operator: job.operator, state: b.stateName, key: preview(b.key), tasks: [ta.taskId, tb.taskId],
  });
}

/**
 * The value a broadcast key keeps when two source tasks hold it: `a` when
 * they are equal, the smaller i64 when both are 8 bytes (a watermark), null
 * when they conflict. `ksp diff` merges a key's copies across tasks the same way.
 */
export function mergedBroadcastValue(a: Uint8Array, b: Uint8Array): Uint8Array | null {
  if (Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)) return a;
  if (a.length === 8 && b.length === 8) {
    const va = Buffer.from(a.buffer, a.byteOffset, 8).readBigInt64LE(0);
    const vb = Buffer.from(b.buffer, b.byteOffset, 8).readBigInt64LE(0);
    return vb < va ? b : a;
  }
  return null;
}

/** A source task's entries in batches, counting bytes read. */
export async function* taskEntries(task: SourceTask, onBytes?: (n: number) => void): AsyncGenerator<StateEntry[]> {
  const r = await openTask(task, onBytes, 'rescale');
  if (r) yield* r.batches();
}

export type { TaskReader };

/**
 * Opens a source task for reading through its body's format (task-format/):
 * state.bin v1/v2 with the count from its header, native RocksDB (files
 * resolved at plan time) with no count. Null for a 0-byte file. A body with
 * no entries to route or rewrite (a window join) is refused: rewriting it
 * from "its entries" would drop its state.
 */
export async function openTask(task: SourceTask, onBytes?: (n: number) => void, purpose: 'rescale' | 'rewrite' = 'rewrite', batchSize?: number): Promise<TaskReader | null> {
  const file = uriOf(task.location);
  const st = await task.location.storage.stat(task.location.key);
  if (!st) throw new KspError('NOT_FOUND', `${file}: state file of ${task.operatorId}/${task.taskId} does not exist`, { file });
  if (st.size === 0) return null;
  // Verify-on-read: the source manifest's hash is checked when the last
  // byte has been read, before anything the run wrote is sealed.
  const hasher = task.sha256 ? createHash('sha256') : null;
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const c of task.location.storage.read(task.location.key)) {
      hasher?.update(c);
      onBytes?.(c.length);
      yield c;
    }
    const found = hasher?.digest('hex');
    if (found !== undefined && found !== task.sha256) {
      throw new KspError('HASH_MISMATCH', `${file}: SHA-256 ${found} differs from ${task.sha256} in the source's manifest.sha256 (pass ${optionName('trustSource')} to use it anyway)`, { file, expected: task.sha256, found });
    }
  }
  const native = task.native;
  const r = await openBody(counted(), st.size, file, { onBytes, ...(native ? { native: () => native } : {}), ...(batchSize ? { batchSize } : {}) });
  if (r.opaque) throw refuseOpaque(task, file, purpose);
  if (r.body === 'native' && task.ttlPrefix === 'strip') return { ...r, batches: () => stripped(r.batches(), `${file} (${task.operatorId}/${task.taskId})`) };
  return r;
}

/** Native values without their TTL expiry prefix (convert --ttl-prefix strip; task-format/ttl.ts). */
async function* stripped(batches: AsyncGenerator<StateEntry[]>, name: string): AsyncGenerator<StateEntry[]> {
  for await (const b of batches) yield b.map((e) => stripTtlPrefix(e, name));
}

/**
 * A window-join task cannot be re-partitioned: its state is one JSON document
 * with no key groups. The engine cannot either: its rescale
 * (`redistribute_snapshots`, krishiv-state/src/checkpoint/rescaling.rs)
 * decodes every old snapshot as state.bin v1 and fails on it, and its restore
 * refuses to merge two of them (`CheckpointStateHandle::merge_snapshot`,
 * WindowJoin arm, krishiv-executor/src/runner/task_output.rs).
 */
export function refuseOpaque(task: { operatorId: string; taskId: string }, file: string, purpose: 'rescale' | 'rewrite'): KspError {
  if (purpose === 'rescale') {
    return new KspError('RESCALE_WINDOW_JOIN', `rescale ${task.operatorId}: task ${task.taskId} (${file}) holds window-join state (a JSON document of buffered join events, not key/value entries), which cannot be split by key group; the engine's own rescale cannot route it either (redistribute_snapshots decodes every snapshot as state.bin v1). Keep this operator's parallelism; rescale the others by naming them with --operator`, {
      file, operator: task.operatorId, task: task.taskId,
    });
  }
  return new KspError('WINDOW_JOIN_OPAQUE', `${file}: task ${task.operatorId}/${task.taskId} holds window-join state (a JSON document, not key/value entries); it is carried through unchanged and cannot be rewritten entry by entry`, {
    file, operator: task.operatorId, task: task.taskId,
  });
}
