import { createHash } from 'node:crypto';
import { KspError, isKspError } from '../errors.js';
import type { StateEntry } from '../formats/state-bin/decoder.js';
import { StateBinWalker, WalkBail } from '../formats/state-bin/walker.js';
import type { TtlSniffer, WindowJoinSummary } from '../formats/task-format/index.js';
import type { NativeFileRef, NativeInfo } from './native-read.js';
import { locate } from '../storage/uri.js';
import { KEY_GROUPS, keyGroup, keyGroupAt } from './key-group.js';
import { SEED_A, SEED_B, murmur32At } from '../bytes/key-multiset.js';
import { isWatermarkKey, routingKey, windowGroupKey, windowGroupKeyAt } from './routing.js';
import { taskForKeyGroup } from './key-group.js';
import type { PlacementRule } from './placement.js';
import { MAX_CHECKED, RepeatDetector } from './repeated-keys.js';

/**
 * One pass over one file: SHA-256 of its bytes and, for state files, a full
 * decode with per-state counts and key-group counts. It runs inline or in a
 * worker thread (scan-pool.ts), so its request and result are plain data.
 *
 * A canonical body (most of the bytes of most savepoints) is counted by the
 * allocation-free walker; the task-format readers, RocksDB and Arrow are
 * loaded only when a file needs them, so a worker that scans canonical
 * files starts in milliseconds.
 */

export interface ScanRequest {
  uri: string;
  /** Known size (saves a stat); the scan still checks the file exists. */
  size?: number;
  /**
   * A stat just found no file: the scan reports it missing without asking
   * storage again (a savepoint of 200,000 missing files cost four system
   * calls and an error object each).
   */
  missing?: boolean;
  hash: boolean;
  /** Decode as state.bin (canonical), or recognise a pointer blob. */
  decode: boolean;
  keyGroups: boolean;
  /** A native task's RocksDB files, resolved by the caller: its entries are read too. */
  native?: NativeFileRef[];
  /** With `native`: also check SST hashes and the checksums of blocks a scan does not read. */
  verifyNative?: boolean;
  /** Bytes this request will read, when more than its own file (native tasks): for scheduling. */
  work?: number;
  /** Check each routed entry's key group against the ranges this task may hold (verify). */
  placement?: PlacementRule;
  /** A file ksp just wrote by state-key routing: what its routing pass saw, so the keys need not be hashed again (PlacementProof). */
  proof?: PlacementProof;
  /**
   * Decode with the full task-format reader even where the counting walker
   * could: set when the walker found the body unclean, so the exact error
   * (field, offset, entry) comes from the one decoder that words it.
   */
  exact?: boolean;
  /** Look for a key repeated within the task (repeated-keys.ts): a KEY_REPEATED note. */
  repeats?: boolean;
}

/**
 * What a rescale's routing pass (write/route-pass.ts) saw of the entries it
 * sent to one output: how many, the multiset sums of their routing keys
 * (bytes/key-multiset.ts) and a bitmap of their key groups (bit kg & 31 of
 * word kg >>> 5). The placement check of that output, read back from disk,
 * then hashes no key again: every key it decodes goes into the same sums,
 * which must match (so the output holds exactly the keys that were routed
 * to it, byte for byte), and every key group in the bitmap must lie in this
 * task's ranges under verify's own ownership rule (placement.ts, from the
 * written metadata). A key's group is computed once, by the same function
 * (key-group.ts) the per-key check would call; what the proof trusts is
 * that one SHA-256 per key. Any mismatch makes the scan check every key
 * the usual way, whose findings are reported.
 */
export interface PlacementProof {
  routed: number;
  sums: [number, number];
  groups: Uint32Array;
}

export interface PlacementCount {
  /** Entries routed under the rule's routing (the rest are broadcast). */
  routed: number;
  /** Watermark keys (`wm:`): each task keeps its own, so they are never misplaced. */
  watermarks: number;
  misplaced: number;
  /** The first misplaced entry: its state, key (hex) and the range its key group falls in. */
  example?: { state: string; key: string; range: number };
}

export interface StateCount {
  operator: string;
  state: string;
  entries: number;
  keyBytes: number;
  valueBytes: number;
}

export interface ScanResult {
  uri: string;
  size: number;
  kind: 'canonical' | 'stateless' | 'native' | 'window-join' | 'missing' | 'file';
  /** Canonical tasks: the state.bin header's version (2: the disaggregated backend's). */
  version?: 1 | 2;
  /** Window-join tasks: spec, watermark, buffered events and their Arrow rows. */
  windowJoin?: WindowJoinSummary;
  /** What the task's body implies beyond errors (a 0-byte file, v2, likely TTL prefixes): verify turns these into findings. */
  notes?: ScanNote[];
  sha256?: string;
  pointer?: string;
  entryCount: number;
  states: StateCount[];
  /** Entries per key group of their routing key (window group key when the key is in window layout). */
  keyGroups?: Uint32Array;
  windowKeys: number;
  watermarkKeys: number;
  error?: { code: string; message: string; data: Record<string, unknown> };
  native?: NativeInfo;
  placement?: PlacementCount;
  /** With ScanRequest.repeats: entries whose (operator, state, key) came earlier in the task (the engine keeps the last). */
  repeatedKeys?: number;
}

export interface ScanNote {
  severity: 'warning' | 'info';
  code: string;
  /** Without the file's name (the result names it): verify prefixes it. */
  message: string;
  data?: Record<string, unknown>;
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');
const NO_STATES: StateCount[] = [];

export async function scanFile(req: ScanRequest, onBytes?: (n: number) => void): Promise<ScanResult> {
  const loc = locate(req.uri);
  // `states` is replaced, never appended to: files without entries share one empty list.
  const res: ScanResult = { uri: req.uri, size: 0, kind: 'file', entryCount: 0, states: NO_STATES, windowKeys: 0, watermarkKeys: 0 };
  const size = req.missing ? undefined : req.size ?? (await loc.storage.stat(loc.key))?.size;
  if (size === undefined) return { ...res, kind: 'missing' };
  res.size = size;
  if (size === 0) {
    // Nothing to read (most tasks of a large job are stateless): no open, no read.
    if (req.hash) res.sha256 = EMPTY_SHA256;
    if (req.decode) {
      res.kind = 'stateless';
      emptyFileNote(res);
    }
    return res;
  }
  const hasher = req.hash ? createHash('sha256') : null;

  let done = 0;
  async function* tap(): AsyncGenerator<Uint8Array> {
    for await (const c of loc.storage.read(loc.key, { size })) {
      hasher?.update(c);
      done += c.length;
      onBytes?.(c.length);
      yield c;
    }
  }
  const stream = tap();
  try {
    if (req.decode && !req.exact && size >= 12 && !req.native) {
      const walked = await walkCanonical(res, stream, size, req);
      if (walked !== true) {
        await stream.return(undefined);
        // Unclean: the exact decoder words the error. A proof that does not hold: every key is checked again, one by one.
        const { proof: _, ...rest } = req;
        return scanFile(walked === 'reprove' ? rest : { ...req, exact: true });
      }
    } else if (req.decode) await decodeInto(res, stream, size, req, onBytes);
  } catch (e) {
    if (!isKspError(e)) throw e;
    if (e.code === 'WINDOW_JOIN_INVALID' && res.kind === 'file') res.kind = 'window-join';
    res.error = { code: e.code, message: e.message, data: e.data };
  } finally {
    // Hash the rest even when decoding stopped early, so a hash mismatch is
    // still reported next to the decode error.
    if (hasher) for (let r = await stream.next(); !r.done; r = await stream.next());
    else await stream.return(undefined);
  }
  if (hasher) res.sha256 = hasher.digest('hex');
  if (!res.error && done !== size) {
    res.error = { code: 'STORAGE_IO', message: `${req.uri}: read ${done} bytes but the file's size is ${size}`, data: { file: req.uri } };
  }
  return res;
}

/**
 * A canonical v1/v2 body counted by the walker (formats/state-bin/walker.ts).
 * Any other body goes to the task-format reader with the chunks read so far;
 * false means the walker found the body unclean and the caller scans again
 * with `exact`, whose decoder words the error.
 */
async function walkCanonical(res: ScanResult, stream: AsyncGenerator<Uint8Array>, size: number, req: ScanRequest): Promise<boolean | 'reprove'> {
  const first = await stream.next();
  const head = first.done ? null : asBuffer(first.value);
  const version = head && head.length >= 4 ? head.readUInt32LE(0) : 0;
  if (!head || (version !== 1 && version !== 2)) {
    await decodeInto(res, prepend(head, stream), size, req);
    return true;
  }
  const counter = keyCounter(res, req, () => walker.states);
  const repeats = req.repeats ? new RepeatDetector() : null;
  // Under window routing only keys starting "tw:", "sw:", "ses:" or "wm:"
  // are routed or counted: the rest need no view at all.
  const windowOnly = !req.keyGroups && req.placement?.routing === 'window';
  const onKey = counter || repeats
    ? (buf: Buffer, start: number, len: number, pair: number): void => {
      repeats?.addAt(buf, start, len, pair);
      if (!counter) return;
      const b = buf[start];
      if (windowOnly && b !== 0x74 && b !== 0x73 && b !== 0x77) return;
      // State-key placement alone hashes the key where it lies: a view per
      // key was 2M allocations (and their collection) in a 2M-entry re-verify.
      if (counter.addAt) counter.addAt(buf, start, len, pair);
      else counter.add(buf.subarray(start, start + len), walker.states[pair]!.state);
    }
    : undefined;
  const walker = new StateBinWalker(size, version, onKey);
  try {
    walker.push(head);
    for (let r = await stream.next(); !r.done; r = await stream.next()) walker.push(asBuffer(r.value));
    walker.end();
  } catch (e) {
    if (e instanceof WalkBail) return false;
    throw e;
  }
  res.kind = 'canonical';
  res.version = version;
  if (version === 2) v2Note(res);
  res.entryCount = walker.entryCount;
  if (walker.states.length) res.states = walker.states;
  counter?.finish();
  if (repeats) repeatNote(res, repeats, walker.states);
  if (counter?.proofHolds && !counter.proofHolds()) return 'reprove';
  if (size === 12 && res.entryCount === 0 && version === 1) res.kind = 'stateless';
  return true;
}

function asBuffer(c: Uint8Array): Buffer {
  return Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
}

async function* prepend(head: Uint8Array | null, rest: AsyncGenerator<Uint8Array>): AsyncGenerator<Uint8Array> {
  if (head) yield head;
  yield* rest;
}

/** Detects the task's body from its first bytes and reads it through its format (task-format/). */
async function decodeInto(res: ScanResult, stream: AsyncIterable<Uint8Array>, size: number, req: ScanRequest, onBytes?: (n: number) => void): Promise<void> {
  const { openBody } = await import('../formats/task-format/index.js');
  const body = await openBody(stream, size, req.uri, { checkContent: true });
  switch (body.body) {
    case 'empty':
      res.kind = 'stateless';
      emptyFileNote(res);
      return;
    case 'native':
      res.kind = 'native';
      res.pointer = body.pointer!.manifestPath;
      if (req.native) await scanNative(res, req, req.native, onBytes);
      return;
    case 'window-join': {
      res.kind = 'window-join';
      res.windowJoin = body.windowJoin!;
      return;
    }
    default:
      res.kind = 'canonical';
      res.version = body.version;
      if (body.version === 2) v2Note(res);
      await countBatches(res, body.batches(), req);
      // The 12-byte empty snapshot is how an empty task is written (model/FORMAT.md §4, "Empty tasks").
      if (size === 12 && res.entryCount === 0 && body.version === 1) res.kind = 'stateless';
  }
}

function v2Note(res: ScanResult): void {
  note(res, 'warning', 'STATE_BIN_V2', `state.bin version 2 (the disaggregated backend's snapshot, DisaggregatedStateBackend::snapshot in krishiv-state/src/dfs_backend.rs); the engine's restore decodes snapshots with decode_snapshot_entries, which accepts version 1 only. ksp writes v1 whenever it rewrites this task`);
}

function note(res: ScanResult, severity: ScanNote['severity'], code: string, message: string, data?: Record<string, unknown>): void {
  (res.notes ??= []).push({ severity, code, message, ...(data ? { data } : {}) });
}

/** `onBytes`: the tables' bytes (those with a size in sst_manifest.json, as read-bytes.ts counts them), as hashed or, unhashed, once read. */
async function scanNative(res: ScanResult, req: ScanRequest, refs: NativeFileRef[], onBytes?: (n: number) => void): Promise<void> {
  const [{ RocksDb }, { nativeEntries, nativeInfo, openImage }, { TtlSniffer }] = await Promise.all([
    import('../rocksdb/db.js'), import('./native-read.js'), import('../formats/task-format/index.js'),
  ]);
  const hashed = req.verifyNative === true;
  const image = await openImage(req.uri, refs, { checkHashes: hashed, ...(hashed && onBytes ? { onBytes } : {}) });
  const db = await RocksDb.open(image);
  res.native = nativeInfo(db);
  await countBatches(res, nativeEntries(db, req.uri), req, new TtlSniffer());
  if (req.verifyNative) res.native.metaBlocksChecked = await db.verifyMetaBlocks();
  if (!hashed) onBytes?.(refs.reduce((n, r) => n + (r.size ?? 0), 0));
}

/** Per-state and per-key-group counts of a task's entries, canonical or native. */
async function countBatches(res: ScanResult, batches: AsyncIterable<StateEntry[]>, req: ScanRequest, ttl?: TtlSniffer): Promise<void> {
  const counts = new Map<string, StateCount>();
  const counter = keyCounter(res, req);
  const repeats = req.repeats ? new RepeatDetector() : null;
  let last: StateCount | undefined;
  let pair = 0;
  const pairs = new Map<StateCount, number>();
  for await (const batch of batches) {
    for (const e of batch) {
      if (!last || last.operator !== e.operatorId || last.state !== e.stateName) {
        const id = `${e.operatorId}\u0000${e.stateName}`;
        last = counts.get(id);
        if (!last) {
          counts.set(id, (last = { operator: e.operatorId, state: e.stateName, entries: 0, keyBytes: 0, valueBytes: 0 }));
          pairs.set(last, pairs.size);
        }
        pair = pairs.get(last)!;
      }
      repeats?.add(e.key, pair);
      last.entries++;
      ttl?.add(e);
      last.keyBytes += e.key.length;
      last.valueBytes += e.value.length;
      counter?.add(e.key, e.stateName);
    }
    res.entryCount += batch.length;
  }
  res.states = [...counts.values()];
  counter?.finish();
  if (repeats) repeatNote(res, repeats, res.states);
  for (const s of ttl?.likely() ?? []) {
    note(res, 'warning', 'TTL_PREFIX_LIKELY', `every value of ${s.operator}/${s.state} (${s.entries} entries) starts with what looks like an i64 expiry time in ms: likely native state of an operator with a state TTL, stored as [i64 LE expires_at_ms][value] (TtlStateBackend, krishiv-state/src/ttl.rs). The engine's portable snapshot strips that prefix; ksp convert --to canonical keeps it unless given --ttl-prefix strip`, { operator: s.operator, state: s.state, entries: s.entries });
  }
}

/**
 * What a scan does with each key, when asked: key-group counts (inspect) and
 * the placement check (verify). Null when neither is asked, so the walk
 * never makes a view of a key.
 */
interface KeyCounter {
  add(key: Uint8Array, state: string): void;
  /** The same as `add` for a key at buf[start, start + len) of the walker's state pair `pair`, when it can be done without a view. */
  addAt?: (buf: Uint8Array, start: number, len: number, pair: number) => void;
  finish(): void;
  /** False when the keys seen do not match the request's PlacementProof. */
  proofHolds?: () => boolean;
}

function keyCounter(res: ScanResult, req: ScanRequest, statesOf: () => StateCount[] = () => res.states): KeyCounter | null {
  // The 128 KiB table is made at the first key: most tasks of a large job
  // hold none, and a table per file in flight (freed only when V8 next
  // collects) took inspect of 200,000 tasks 40 MB over its budget.
  let kg: Uint32Array | undefined;
  const rule = req.placement;
  if (!req.keyGroups && !rule) return null;
  const place: PlacementCount | undefined = rule ? { routed: 0, watermarks: 0, misplaced: 0 } : undefined;
  // A proof stands in for hashing where keys are read in place (placement alone, no key-group counts).
  const proof = req.proof && !req.keyGroups && rule ? req.proof : undefined;
  const group = { off: 0, len: 0 };
  let sumA = 0;
  let sumB = 0;
  return {
    add(key, state) {
      if (req.keyGroups) {
        kg ??= new Uint32Array(KEY_GROUPS);
        const group = windowGroupKey(key);
        if (group) res.windowKeys++;
        else if (isWatermarkKey(key)) res.watermarkKeys++;
        kg[keyGroup(group ?? key)]!++;
      }
      if (rule) {
        const rk = routingKey(key, rule.routing);
        if (rk === null && isWatermarkKey(key)) place!.watermarks++;
        if (rk !== null) {
          place!.routed++;
          const range = taskForKeyGroup(keyGroup(rk), rule.parallelism);
          if (!rule.ranges.includes(range)) {
            if (place!.misplaced++ === 0) place!.example = { state, key: Buffer.from(key).toString('hex'), range };
          }
        }
      }
    },
    // Only the state-key placement check asked for (no key-group counts): each key is read in
    // place, into the proof's sums when there is one (checked by proofHolds), else hashed.
    addAt: proof
      ? (buf, start, len) => {
        // The routing key as `add` finds it (routingKey): the key, or its window group key; "wm:" and other keys are not routed.
        if (rule!.routing === 'window') {
          if (!windowGroupKeyAt(buf, start, len, group)) {
            if (len === 3 && buf[start] === 0x77 && buf[start + 1] === 0x6d && buf[start + 2] === 0x3a) place!.watermarks++;
            return;
          }
          start = group.off;
          len = group.len;
        }
        place!.routed++;
        sumA = (sumA + murmur32At(buf, start, len, SEED_A)) | 0;
        sumB = (sumB + murmur32At(buf, start, len, SEED_B)) | 0;
      }
      : !req.keyGroups && rule?.routing === 'state-key'
      ? (buf, start, len, pair) => {
        place!.routed++;
        const range = taskForKeyGroup(keyGroupAt(buf, start, len), rule.parallelism);
        if (!rule.ranges.includes(range) && place!.misplaced++ === 0) {
          place!.example = { state: statesOf()[pair]!.state, key: Buffer.from(buf.subarray(start, start + len)).toString('hex'), range };
        }
      }
      : undefined,
    finish() {
      if (kg) res.keyGroups = kg;
      if (place) res.placement = place;
    },
    proofHolds: () => {
      if (!proof || !rule || !place) return true;
      if (place.routed !== proof.routed || sumA !== proof.sums[0] || sumB !== proof.sums[1]) return false;
      for (let w = 0; w < proof.groups.length; w++) {
        for (let bits = proof.groups[w]!; bits !== 0; bits &= bits - 1) {
          const g = (w << 5) | (31 - Math.clz32(bits & -bits));
          if (!rule.ranges.includes(taskForKeyGroup(g, rule.parallelism))) return false;
        }
      }
      return true;
    },
  };
}

/** KEY_REPEATED when a key came twice in the task; a note too when the check stopped at its cap. */
function repeatNote(res: ScanResult, d: RepeatDetector, states: StateCount[]): void {
  const r = d.result;
  res.repeatedKeys = r.repeats;
  if (r.repeats) {
    const s = states[r.example!.pair]!;
    note(res, 'warning', 'KEY_REPEATED', `${r.repeats} entr${r.repeats === 1 ? 'y repeats a key' : 'ies repeat keys'} stored earlier in this task (first: ${s.operator}/${s.state} key ${r.example!.key.length > 64 ? r.example!.key.slice(0, 64) + '…' : r.example!.key}); the engine's load keeps the last entry of each key (load_snapshot in krishiv-state/src/backend.rs inserts into a map), so ${r.repeats === 1 ? 'it replaces' : 'they replace'} the earlier one(s), and ksp convert --to native keeps only the last`, { repeats: r.repeats, operator: s.operator, state: s.state, key: r.example!.key });
  }
  if (r.unchecked) note(res, 'info', 'KEY_REPEATS_UNCHECKED', `repeated keys not checked beyond the first ${MAX_CHECKED} entries of this task (${r.unchecked} more), to keep memory bounded`, { checked: MAX_CHECKED, unchecked: r.unchecked });
}

/**
 * snapshot.rs decode_snapshot_entries: "too short" below 12 bytes; the
 * executor's restore decodes every referenced snapshot.
 */
function emptyFileNote(res: ScanResult): void {
  note(res, 'warning', 'STATE_BIN_EMPTY_FILE', `0-byte state.bin, read as a task with no entries; the engine's generic restore would refuse it (restore_job_from_checkpoint decodes every referenced snapshot; decode_snapshot_entries in krishiv-state/src/snapshot.rs rejects fewer than 12 bytes: "snapshot corrupt: too short"). Omit the task, or write the 12-byte empty snapshot 01000000 0000000000000000`);
}

export function scanError(e: unknown): ScanResult['error'] {
  if (e instanceof KspError) return { code: e.code, message: e.message, data: e.data };
  return { code: 'INTERNAL', message: String((e as Error)?.stack ?? e), data: {} };
}
