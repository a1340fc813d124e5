import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { KspError, isKspError } from '../errors.js';
import { optionName } from '../option-names.js';
import { isPointerBlob, POINTER_MAX_SIZE } from '../formats/pointer/pointer.js';
import { STATE_BIN_VERSION, type StateEntry } from '../formats/state-bin/decoder.js';
import { encodeStateBin } from '../formats/state-bin/encoder.js';
import { stripTtlPrefix, type TtlPrefixMode } from '../formats/task-format/ttl.js';
import { liveBlocks, nativeEntries, openImage, type NativeFileRef } from '../model/native-read.js';
import { RocksDb } from '../rocksdb/db.js';
import type { Table } from '../rocksdb/table.js';
import { locate } from '../storage/uri.js';
import { writeHashed } from './copy.js';
import { interrupted } from './interrupt.js';

/**
 * A native task converted to a canonical state.bin as one unit of work
 * (issue 13: "units are plain data: URIs and specs"), so several run at once
 * on worker threads: `convert --to canonical` of a native savepoint uses
 * every core, one task per worker.
 *
 * The unit reads the task's pointer (checked against the source manifest's
 * hash, as repartition.openTask does), opens its RocksDB files (each SST's
 * SHA-256 checked against its sst_manifest.json), and, when the tables state
 * the live count up front (RocksDb.knownCount), streams the entries into
 * the state.bin at the target in one pass, hashing it as it is written.
 * Otherwise it reports `fallback` and the executor converts the task the
 * usual way (entries through a spill, since the count is known only at the
 * end). The bytes written are the same either way: encodeStateBin of the
 * live entries in RocksDB key order.
 */

export interface NativeCanonicalUnit {
  /** The task's state.bin (a pointer blob). */
  source: string;
  /** Its hash in the source manifest, checked as it is read. */
  sourceSha256?: string;
  /** The task's RocksDB files, resolved at plan time. */
  native: NativeFileRef[];
  ttlPrefix?: TtlPrefixMode;
  /** Names the task in errors. */
  task: string;
  /** Where the state.bin goes. */
  out: string;
}

export type NativeCanonicalResult = { fallback: true } | { fallback: false; entries: number; sha256: string; size: number };

/** Runs one unit in this thread. */
export async function convertNativeTask(u: NativeCanonicalUnit, onBytes?: (n: number) => void): Promise<NativeCanonicalResult> {
  const src = locate(u.source);
  const st = await src.storage.stat(src.key);
  if (!st || st.size === 0 || st.size > POINTER_MAX_SIZE) return { fallback: true };
  const blob = Buffer.from(await src.storage.readSmall(src.key, POINTER_MAX_SIZE));
  if (u.sourceSha256 !== undefined) {
    const found = createHash('sha256').update(blob).digest('hex');
    if (found !== u.sourceSha256) {
      throw new KspError('HASH_MISMATCH', `${u.source}: SHA-256 ${found} differs from ${u.sourceSha256} in the source's manifest.sha256 (pass ${optionName('trustSource')} to use it anyway)`, { file: u.source, expected: u.sourceSha256, found });
    }
  }
  if (!isPointerBlob(blob)) return { fallback: true };
  onBytes?.(blob.length);
  const db = await RocksDb.open(await openImage(u.source, u.native, { onBytes }));
  const count = await db.knownCount();
  if (count === null) return { fallback: true };
  const run = await db.singleRun();
  if (run && u.ttlPrefix !== 'strip') {
    const r = await writeHashed(locate(u.out), stateBinOf(run, u.source, count, u.out));
    return { fallback: false, entries: count, ...r };
  }
  let entries: AsyncIterable<StateEntry[]> = nativeEntries(db, u.source);
  if (u.ttlPrefix === 'strip') {
    const name = `${u.source} (${u.task})`;
    const raw = entries;
    entries = (async function* () {
      for await (const b of raw) yield b.map((e) => stripTtlPrefix(e, name));
    })();
  }
  const r = await writeHashed(locate(u.out), encodeStateBin(count, entries, u.out));
  return { fallback: false, entries: count, ...r };
}

const CHUNK = 1024 * 1024;

/**
 * The state.bin of a one-run database (the format encodeStateBin writes,
 * ../formats/state-bin/FORMAT.md: version, count, then per entry operator,
 * state, key and value, each as u64 LE length ‖ bytes), encoded straight
 * from the blocks' views into ~1 MiB chunks: no StateEntry, no view per
 * key or value. The count must match the entries, as encodeStateBin checks.
 */
async function* stateBinOf(run: Table[], source: string, count: number, file: string): AsyncGenerator<Buffer> {
  let buf = Buffer.allocUnsafe(CHUNK);
  buf.writeUInt32LE(STATE_BIN_VERSION, 0);
  u64(buf, 4, count);
  let n = 12;
  let written = 0;
  let lastOp = '';
  let lastState = '';
  let op: Buffer = Buffer.alloc(0);
  let state: Buffer = Buffer.alloc(0);
  const text = new Map<string, Buffer>();
  const utf8 = (s: string): Buffer => {
    let b = text.get(s);
    if (!b) {
      if (text.size > 1024) text.clear();
      text.set(s, (b = Buffer.from(s, 'utf8')));
    }
    return b;
  };
  for await (const live of liveBlocks(run, source)) {
    written += live.n;
    if (written > count) break;
    const v = live.v;
    const keys = v.keys;
    const block = v.buf;
    for (let k = 0; k < live.n; k++) {
      const o = live.ops[k]!;
      const st = live.states[k]!;
      if (o !== lastOp) op = utf8((lastOp = o));
      if (st !== lastState) state = utf8((lastState = st));
      const i = live.at[k]!;
      const ks = v.keyStart[i]! + live.plen[k]!;
      const ke = live.keyEnd[k]!;
      const vs = v.valStart[i]!;
      const ve = live.valEnd[k]!;
      const need = 32 + op.length + state.length + (ke - ks) + (ve - vs);
      if (n + need > buf.length) {
        yield buf.subarray(0, n);
        buf = Buffer.allocUnsafe(Math.max(CHUNK, need));
        n = 0;
      }
      n = field(buf, n, op, 0, op.length);
      n = field(buf, n, state, 0, state.length);
      n = field(buf, n, keys, ks, ke);
      n = field(buf, n, block, vs, ve);
    }
  }
  if (written !== count) {
    throw new KspError('STATE_BIN_COUNT', `${file}: the header declares ${count} entries but ${written > count ? 'more' : written} were given`, { file, expected: count, found: written });
  }
  yield buf.subarray(0, n);
}

function u64(buf: Buffer, at: number, v: number): void {
  buf.writeUInt32LE(v >>> 0, at);
  buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), at + 4);
}

/** u64 LE length ‖ src[start, end) at buf[at]; returns the offset after it. */
function field(buf: Buffer, at: number, src: Buffer, start: number, end: number): number {
  const len = end - start;
  buf[at] = len & 0xff;
  buf[at + 1] = (len >>> 8) & 0xff;
  buf[at + 2] = (len >>> 16) & 0xff;
  buf[at + 3] = (len >>> 24) & 0xff;
  buf.writeUInt32LE(Math.floor(len / 0x1_0000_0000), at + 4);
  at += 8;
  // Short copies by hand: Buffer.copy's call costs more than a few dozen bytes.
  if (len > 48) src.copy(buf, at, start, end);
  else for (let j = 0; j < len; j++) buf[at + j] = src[start + j]!;
  return at + len;
}

function workerUrl(): URL | null {
  const url = new URL('./native-canonical-worker.js', import.meta.url);
  // Under the TypeScript sources (tests) there is no compiled worker: units run inline.
  return url.protocol === 'file:' && existsSync(fileURLToPath(url)) ? url : null;
}

const PROGRESS_POLL_MS = 50;

/**
 * Runs units on up to `threads` worker threads (inline, one at a time, with
 * one thread or without a compiled worker). A worker loads only this
 * module's imports (RocksDB reader, state.bin encoder, storage), not the
 * CLI or the planner. A signal terminates the workers: a state.bin half
 * written is left under its temporary name, which the executor's rollback
 * removes (LocalStorage names it after this process).
 */
export async function runNativeCanonical(units: NativeCanonicalUnit[], threads: number | undefined, onBytes?: (n: number) => void): Promise<NativeCanonicalResult[]> {
  const n = Math.max(1, Math.min(threads ?? Number(process.env.KSP_THREADS || availableParallelism()), units.length));
  const url = workerUrl();
  const results = new Array<NativeCanonicalResult>(units.length);
  if (n === 1 || !url) {
    for (let i = 0; i < units.length; i++) {
      if (interrupted()) throw new KspError('INTERRUPTED', `interrupted by ${interrupted()}`, { signal: interrupted() });
      results[i] = await convertNativeTask(units[i]!, onBytes);
    }
    return results;
  }
  let next = 0;
  const workers = Array.from({ length: n }, () => new Worker(url));
  const poll = setInterval(() => {
    if (interrupted()) for (const w of workers) void w.terminate();
  }, PROGRESS_POLL_MS);
  poll.unref();
  try {
    await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
      let current = -1;
      const take = (): void => {
        if (next >= units.length) return resolve();
        current = next++;
        w.postMessage({ unit: units[current] });
      };
      w.on('message', (m: { bytes?: number; result?: NativeCanonicalResult; error?: { code: string; message: string; data: Record<string, unknown> } | { internal: string } }) => {
        if (m.bytes) onBytes?.(m.bytes);
        if (m.error) {
          const e = m.error;
          reject('code' in e ? new KspError(e.code as never, e.message, e.data) : new Error(e.internal));
        } else if (m.result) {
          results[current] = m.result;
          take();
        }
      });
      w.on('error', reject);
      w.on('exit', (code) => {
        if (interrupted()) reject(new KspError('INTERRUPTED', `interrupted by ${interrupted()}`, { signal: interrupted() }));
        else if (next < units.length || current >= 0 && results[current] === undefined || code !== 0) reject(new Error(`native convert worker exited with code ${code}`));
      });
      take();
    })));
  } finally {
    clearInterval(poll);
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return results;
}

/** The worker side: one unit at a time, progress every 16 MiB. */
export function serveNativeCanonical(port: { on(ev: 'message', fn: (m: { unit: NativeCanonicalUnit }) => void): unknown; postMessage(m: unknown): void }): void {
  const STEP = 16 * 1024 * 1024;
  port.on('message', async ({ unit }) => {
    let pending = 0;
    try {
      const result = await convertNativeTask(unit, (b) => {
        pending += b;
        if (pending >= STEP) {
          port.postMessage({ bytes: pending });
          pending = 0;
        }
      });
      port.postMessage({ bytes: pending, result });
    } catch (e) {
      port.postMessage({ error: isKspError(e) ? { code: e.code, message: e.message, data: e.data } : { internal: String((e as Error)?.stack ?? e) } });
    }
  });
}
