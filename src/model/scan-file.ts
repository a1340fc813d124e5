import { createHash } from 'node:crypto';
import { KspError, isKspError } from '../errors.js';
import { isPointerBlob, parsePointer, POINTER_MAX_SIZE } from '../formats/pointer/pointer.js';
import { StateBinDecoder, type StateEntry } from '../formats/state-bin/decoder.js';
import { RocksDb } from '../rocksdb/db.js';
import { nativeEntries, nativeInfo, openImage, type NativeFileRef, type NativeInfo } from './native-state.js';
import { locate } from '../storage/uri.js';
import { KEY_GROUPS, keyGroup } from './key-group.js';
import { isWatermarkKey, windowGroupKey } from './routing.js';

/**
 * One pass over one file: SHA-256 of its bytes and, for state files, a full
 * decode with per-state counts and key-group counts. It runs inline or in a
 * worker thread (scan-pool.ts), so its request and result are plain data.
 */

export interface ScanRequest {
  uri: string;
  /** Known size (saves a stat); the scan still checks the file exists. */
  size?: number;
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
  kind: 'canonical' | 'stateless' | 'native' | 'missing' | 'file';
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
}

const EMPTY_SHA256 = createHash('sha256').digest('hex');
const NO_STATES: StateCount[] = [];

export async function scanFile(req: ScanRequest, onBytes?: (n: number) => void): Promise<ScanResult> {
  const loc = locate(req.uri);
  // `states` is replaced, never appended to: files without entries share one empty list.
  const res: ScanResult = { uri: req.uri, size: 0, kind: 'file', entryCount: 0, states: NO_STATES, windowKeys: 0, watermarkKeys: 0 };
  const size = req.size ?? (await loc.storage.stat(loc.key))?.size;
  if (size === undefined) return { ...res, kind: 'missing' };
  res.size = size;
  if (size === 0) {
    // Nothing to read (most tasks of a large job are stateless): no open, no read.
    if (req.hash) res.sha256 = EMPTY_SHA256;
    if (req.decode) res.kind = 'stateless';
    return res;
  }
  const hasher = req.hash ? createHash('sha256') : null;

  let done = 0;
  async function* tap(): AsyncGenerator<Uint8Array> {
    for await (const c of loc.storage.read(loc.key)) {
      hasher?.update(c);
      done += c.length;
      onBytes?.(c.length);
      yield c;
    }
  }
  const stream = tap();
  try {
    if (req.decode && size === 0) res.kind = 'stateless';
    else if (req.decode) await decodeInto(res, stream, size, req);
  } catch (e) {
    if (!isKspError(e)) throw e;
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

async function decodeInto(res: ScanResult, stream: AsyncGenerator<Uint8Array>, size: number, req: ScanRequest): Promise<void> {
  if (size <= POINTER_MAX_SIZE) {
    // Small files may be pointer blobs: look at the whole thing first.
    const parts: Buffer[] = [];
    for (let r = await stream.next(); !r.done; r = await stream.next()) parts.push(Buffer.from(r.value));
    const bytes = Buffer.concat(parts);
    if (isPointerBlob(bytes)) {
      res.kind = 'native';
      res.pointer = parsePointer(bytes, req.uri).manifestPath;
      if (req.native) await scanNative(res, req, req.native);
      return;
    }
    await countEntries(res, (async function* () { yield bytes; })(), size, req);
    return;
  }
  await countEntries(res, stream, size, req);
}

async function scanNative(res: ScanResult, req: ScanRequest, refs: NativeFileRef[]): Promise<void> {
  const image = await openImage(req.uri, refs, { checkHashes: req.verifyNative === true });
  const db = await RocksDb.open(image);
  res.native = nativeInfo(db);
  await countBatches(res, nativeEntries(db, req.uri), req);
  if (req.verifyNative) res.native.metaBlocksChecked = await db.verifyMetaBlocks();
}

async function countEntries(res: ScanResult, chunks: AsyncIterable<Uint8Array>, size: number, req: ScanRequest): Promise<void> {
  res.kind = 'canonical';
  await countBatches(res, new StateBinDecoder(chunks, { size, file: req.uri }).batches(), req);
}

/** Per-state and per-key-group counts of a task's entries, canonical or native. */
async function countBatches(res: ScanResult, batches: AsyncIterable<StateEntry[]>, req: ScanRequest): Promise<void> {
  const counts = new Map<string, StateCount>();
  const kg = req.keyGroups ? new Uint32Array(KEY_GROUPS) : undefined;
  let last: StateCount | undefined;
  for await (const batch of batches) {
    for (const e of batch) {
      if (!last || last.operator !== e.operatorId || last.state !== e.stateName) {
        const id = `${e.operatorId}\u0000${e.stateName}`;
        last = counts.get(id);
        if (!last) counts.set(id, (last = { operator: e.operatorId, state: e.stateName, entries: 0, keyBytes: 0, valueBytes: 0 }));
      }
      last.entries++;
      last.keyBytes += e.key.length;
      last.valueBytes += e.value.length;
      if (kg) {
        const group = windowGroupKey(e.key);
        if (group) res.windowKeys++;
        else if (isWatermarkKey(e.key)) res.watermarkKeys++;
        kg[keyGroup(group ?? e.key)]!++;
      }
    }
    res.entryCount += batch.length;
  }
  res.states = [...counts.values()];
  if (kg) res.keyGroups = kg;
}

export function scanError(e: unknown): ScanResult['error'] {
  if (e instanceof KspError) return { code: e.code, message: e.message, data: e.data };
  return { code: 'INTERNAL', message: String((e as Error)?.stack ?? e), data: {} };
}
