import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { KspError, preview } from '../errors.js';
import { StateBinDecoder, type StateEntry } from '../formats/state-bin/decoder.js';
import { keyGroup, taskForKeyGroup } from '../model/key-group.js';
import { routingKey } from '../model/routing.js';
import type { TaskRef } from '../model/savepoint.js';
import { nativeEntries, openImage } from '../model/native-state.js';
import { RocksDb } from '../rocksdb/db.js';
import { uriOf, type Location } from '../storage/uri.js';
import type { Job, SourceTask } from './jobs.js';
import { Spill, spillBufferSize, type CollisionReport } from './spill.js';
import { makeTempDir } from './temp-dir.js';

/**
 * Rescaling one operator (krishiv-formats.md §7): every source task is read
 * once, each entry routed to the new task owning its routing key's key group
 * and appended to that task's spill file; broadcast entries (the watermark,
 * keys outside the window layouts) are merged across source tasks and copied
 * to every new task. Each new task's `state.bin` is then its header and its
 * spill, so memory holds one buffer per new task and the broadcast set, never
 * the operator's entries.
 */

export interface RepartitionResult {
  /** Entries per new task, as written. */
  counts: number[];
  routed: number;
  broadcast: { distinct: number; merged: number };
  collisions: CollisionReport;
}

/** Broadcast entries kept in memory at most (they are normally a few watermarks). */
const BROADCAST_LIMIT_BYTES = 64 * 1024 * 1024;

export async function repartition(
  job: Extract<Job, { kind: 'repartition' }>,
  tempDir: string,
  write: (to: Location, data: AsyncIterable<Uint8Array>) => Promise<void>,
  onBytes?: (n: number) => void,
  /** Instead of state.bin bytes, hand each new task's entries over (native output); resolves to the entries written. */
  writeEntries?: (task: number, entries: AsyncIterable<StateEntry[]>) => Promise<number>,
): Promise<RepartitionResult> {
  const m = job.outs.length;
  const dir = makeTempDir(tempDir, 'ksp-rescale-');
  const spills = job.outs.map((_, i) => new Spill(dir, `task-${i}`, spillBufferSize(m), job.keyChange));
  const broadcast = new Map<string, { e: StateEntry; task: number }>();
  let broadcastBytes = 0;
  let merged = 0;
  let routed = 0;
  try {
    for (let si = 0; si < job.sources.length; si++) {
      const src = job.sources[si]!;
      let index = 0;
      for await (const batch of taskEntries(src, onBytes)) {
        for (const raw of batch) {
          const i = index++;
          const e = job.map ? job.map(raw, { operator: src.operatorId, task: src.taskId, index: i }) : raw;
          const rk = routingKey(e.key, job.routing);
          if (rk === null) {
            const id = `${e.operatorId}\u0000${e.stateName}\u0000${Buffer.from(e.key).toString('hex')}`;
            const prev = broadcast.get(id);
            if (!prev) {
              broadcastBytes += id.length + e.value.length + 64;
              if (broadcastBytes > BROADCAST_LIMIT_BYTES) {
                throw new KspError('RESCALE_BROADCAST_LIMIT', `rescale ${job.operator}: more than ${BROADCAST_LIMIT_BYTES >> 20} MiB of broadcast entries (keys that do not follow the window layouts are copied to every task); use --routing state-key for this operator`, { operator: job.operator });
              }
              broadcast.set(id, { e: { operatorId: e.operatorId, stateName: e.stateName, key: Buffer.from(e.key), value: Buffer.from(e.value) }, task: si });
            } else {
              merged++;
              prev.e = mergeBroadcast(prev.e, e, job, job.sources[prev.task]!, src);
            }
            continue;
          }
          spills[taskForKeyGroup(keyGroup(rk), m)]!.append(e, { task: si, index: i });
          routed++;
        }
      }
    }
    const spilled = spills.reduce((s, x) => s + x.count, 0);
    if (spilled !== routed) {
      throw new KspError('RESCALE_COUNT_MISMATCH', `rescale ${job.operator}: routed ${routed} entries but ${spilled} reached the new tasks`, { operator: job.operator, expected: routed, found: spilled });
    }
    let b = 0;
    for (const { e } of broadcast.values()) {
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
    return { counts, routed, broadcast: { distinct: broadcast.size, merged }, collisions };
  } finally {
    for (const s of spills) s.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Same broadcast key from two source tasks: equal values are one entry, 8-byte values keep the minimum i64 (a watermark), anything else is a conflict. */
function mergeBroadcast(a: StateEntry, b: StateEntry, job: { operator: string }, ta: TaskRef, tb: TaskRef): StateEntry {
  if (Buffer.from(a.value).equals(Buffer.from(b.value))) return a;
  if (a.value.length === 8 && b.value.length === 8) {
    const va = Buffer.from(a.value).readBigInt64LE(0);
    const vb = Buffer.from(b.value).readBigInt64LE(0);
    return vb < va ? { ...a, value: Buffer.from(b.value) } : a;
  }
  throw new KspError('RESCALE_BROADCAST_CONFLICT', `rescale ${job.operator}: broadcast entry ${b.stateName} key ${preview(b.key)} differs between ${ta.taskId} and ${tb.taskId} (values ${preview(a.value)} vs ${preview(b.value)}) and is not an 8-byte watermark; cannot merge`, {
    operator: job.operator, state: b.stateName, key: preview(b.key), tasks: [ta.taskId, tb.taskId],
  });
}

/** A source task's entries in batches, counting bytes read. */
export async function* taskEntries(task: SourceTask, onBytes?: (n: number) => void): AsyncGenerator<StateEntry[]> {
  const r = await openTask(task, onBytes);
  if (r) yield* r.batches();
}

export interface TaskReader {
  /** Entries, when the source states it up front (canonical files); null for native tasks. */
  count: number | null;
  batches(): AsyncGenerator<StateEntry[]>;
}

/** Opens a source task for reading: canonical state.bin, or native RocksDB files. Null for a stateless task. */
export async function openTask(task: SourceTask, onBytes?: (n: number) => void): Promise<TaskReader | null> {
  const file = uriOf(task.location);
  if (task.native) {
    const image = await openImage(`${file} (${task.operatorId}/${task.taskId})`, task.native, { onBytes });
    const db = await RocksDb.open(image);
    return { count: null, batches: () => nativeEntries(db, file) };
  }
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
      throw new KspError('HASH_MISMATCH', `${file}: SHA-256 ${found} differs from ${task.sha256} in the source's manifest.sha256 (pass --trust-source to use it anyway)`, { file, expected: task.sha256, found });
    }
  }
  const dec = new StateBinDecoder(counted(), { size: st.size, file });
  const h = await dec.header();
  return { count: h.entryCount, batches: () => dec.batches() };
}
