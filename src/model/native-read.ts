import { createHash, type Hash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { KspError, preview } from '../errors.js';
import { NativeKeyDecoder } from '../formats/native-key/native-key.js';
import type { StateEntry } from '../formats/state-bin/decoder.js';
import { BlockViews } from '../rocksdb/block.js';
import { corrupt } from '../rocksdb/coding.js';
import type { DbImage, DbSummary, RocksDb } from '../rocksdb/db.js';
import { fileAt, type RandomAccessFile } from '../rocksdb/file.js';
import { ValueType } from '../rocksdb/internal-key.js';
import type { Table } from '../rocksdb/table.js';
import { LocalStorage } from '../storage/local.js';
import { locate } from '../storage/uri.js';

/**
 * Reading a native task's RocksDB files, from their plain-data list
 * (`NativeFileRef`) to state entries: what a worker thread needs and no
 * more (no savepoint model, no JSON schemas), so it starts fast. Resolving
 * the list from a savepoint is native-state.ts.
 */

export interface NativeFileRef {
  filename: string;
  uri: string;
  sha256?: string;
  size?: number;
}

export interface NativeInfo {
  sstFiles: number;
  sstBytes: number;
  formatVersions: number[];
  compressions: string[];
  checksums: string[];
  levels: DbSummary['levels'];
  wals: number;
  otherColumnFamilies: string[];
  /** Meta blocks (filters, …) whose checksums verify checked beyond the scan. */
  metaBlocksChecked?: number;
}

export interface ImageOptions {
  /** Check each SST's SHA-256 against the manifest (default true). */
  checkHashes?: boolean;
  onBytes?: (n: number) => void;
}

/** Stats every file, checks SST hashes, and makes the directory image RocksDB would see. */
export async function openImage(name: string, refs: NativeFileRef[], options: ImageOptions = {}): Promise<DbImage> {
  const files = new Map<string, RandomAccessFile>();
  const missing: string[] = [];
  let i = 0;
  const worker = async (): Promise<void> => {
    while (i < refs.length) {
      const ref = refs[i++]!;
      const loc = locate(ref.uri);
      const st = await loc.storage.stat(loc.key);
      if (!st) {
        missing.push(ref.uri);
        continue;
      }
      if (ref.size !== undefined && st.size !== ref.size) {
        throw new KspError('NATIVE_SST_HASH', `${ref.uri}: ${st.size} bytes, but its sst_manifest.json records ${ref.size}`, { file: ref.uri, expected: ref.size, found: st.size });
      }
      if (ref.sha256 && options.checkHashes !== false) {
        const h = createHash('sha256');
        if (loc.storage instanceof LocalStorage) {
          // One reused buffer: a stream's fresh chunk per read is garbage the
          // size of the SST, which lifts a worker's RSS by tens of MB.
          await hashLocal(loc.storage.pathOf(loc.key), h, options.onBytes);
        } else {
          for await (const c of loc.storage.read(loc.key)) {
            h.update(c);
            options.onBytes?.(c.length);
          }
        }
        const found = h.digest('hex');
        if (found !== ref.sha256) {
          throw new KspError('NATIVE_SST_HASH', `${ref.uri}: SHA-256 ${found} differs from ${ref.sha256} recorded in its sst_manifest.json`, { file: ref.uri, expected: ref.sha256, found });
        }
      }
      files.set(ref.filename, fileAt(loc, st.size));
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, refs.length) }, worker));
  if (missing.length > 0) {
    throw new KspError('FILES_MISSING', `${name}: ${missing.length} file(s) of its RocksDB state are missing: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`, { file: missing[0], missing });
  }
  return { name, files };
}

const HASH_CHUNK = 1 << 20;
let hashBuffer: Buffer | null = null;

async function hashLocal(path: string, h: Hash, onBytes?: (n: number) => void): Promise<void> {
  // Shared by the files hashed at once (openImage hashes up to four): each takes its own while one is in use.
  const buf = hashBuffer ?? Buffer.allocUnsafe(HASH_CHUNK);
  hashBuffer = null;
  let fh: fsp.FileHandle | undefined;
  try {
    // O_NONBLOCK as LocalStorage.read: a FIFO swapped in after the stat must not block the open.
    fh = await fsp.open(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    if (!(await fh.stat()).isFile()) throw new Error('not a regular file');
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      onBytes?.(bytesRead);
    }
  } catch (e) {
    throw new KspError('STORAGE_IO', `${path}: cannot read to hash it: ${(e as Error).message}`, { file: path }, { cause: e });
  } finally {
    await fh?.close();
    hashBuffer = buf;
  }
}

/** Live entries of a native task as state entries, in RocksDB key order. */
export async function* nativeEntries(db: RocksDb, file: string): AsyncGenerator<StateEntry[]> {
  const run = await db.singleRun();
  if (run) {
    yield* runEntries(run, file);
    return;
  }
  const keys = new NativeKeyDecoder(file);
  let index = 0;
  for await (const batch of db.entries()) {
    const out: StateEntry[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) {
      const kv = batch[i]!;
      const k = keys.decode(kv.key, index++);
      out[i] = { operatorId: k.operatorId, stateName: k.stateName, key: k.key, value: kv.value };
    }
    yield out;
  }
}

const BATCH = 4096;

/**
 * The live entries of one data block, as indices into its BlockViews:
 * entry k is views entry `at[k]`, its user key (without the engine prefix)
 * keys[keyStart[at[k]] + plen[k], keyEnd[k]), its value buf[valStart[at[k]],
 * valEnd[k]), its names ops[k] and states[k]. Reused from block to block.
 */
export class LiveBlock {
  n = 0;
  readonly v = new BlockViews();
  at = new Int32Array(1024);
  plen = new Int32Array(1024);
  keyEnd = new Int32Array(1024);
  valEnd = new Int32Array(1024);
  ops: string[] = [];
  states: string[] = [];

  push(i: number, plen: number, keyEnd: number, valEnd: number, op: string, state: string): void {
    if (this.n === this.at.length) {
      const g = (a: Int32Array): Int32Array<ArrayBuffer> => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.at = g(this.at);
      this.plen = g(this.plen);
      this.keyEnd = g(this.keyEnd);
      this.valEnd = g(this.valEnd);
    }
    const k = this.n++;
    this.at[k] = i;
    this.plen[k] = plen;
    this.keyEnd[k] = keyEnd;
    this.valEnd[k] = valEnd;
    this.ops[k] = op;
    this.states[k] = state;
  }
}

/**
 * The live entries of a database that is one sorted run (RocksDb.singleRun),
 * block by block, with no object per entry: data blocks decoded through
 * BlockViews, the (operator, state) prefix re-read only when a key does not
 * share it with the one before. The same rules as the merge path
 * (RocksDb.entries): versions of a key after its newest are shadowed,
 * deletions hide the key, keys must ascend (within and across tables), and
 * entry types beyond put and delete are handled by Table.special. `index`
 * counts live entries, for errors.
 */
export async function* liveBlocks(tables: Table[], file: string): AsyncGenerator<LiveBlock> {
  const names = new NativeKeyDecoder(file);
  const live = new LiveBlock();
  const v = live.v;
  let index = 0;
  // The previous internal key (its arena, start, user-key length, trailer), for order and shadowing.
  let prevArena: Buffer | null = null;
  let prevStart = 0;
  let prevLen = 0;
  let prevHi = 0;
  let prevLo = 0;
  for (const table of tables) {
    const global = table.globalSeqno;
    for await (const b of table.dataBlocks()) {
      v.decode(b.buf, b.origin);
      live.n = 0;
      const keys = v.keys;
      // Prefix length of the previous entry of this block, or -1 (unknown).
      let plen = -1;
      for (let i = 0; i < v.n; i++) {
        const ks = v.keyStart[i]!;
        const ulen = v.keyStart[i + 1]! - ks - 8;
        if (ulen < 0) throw corrupt(b.origin, 0, `entry ${i}: internal key of ${ulen + 8} bytes is shorter than its 8-byte trailer`);
        let lo = keys.readUInt32LE(ks + ulen);
        let hi = keys.readUInt32LE(ks + ulen + 4);
        const type = lo & 0xff;
        if (global) {
          hi = global.hi;
          lo = (global.lo | type) >>> 0;
        }
        let cmp = 1;
        if (prevArena !== null) {
          const sh = i > 0 ? v.shared[i]! : 0;
          // Within a block the first byte after the shared prefix usually decides.
          if (i > 0 && sh < ulen && sh < prevLen && keys[ks + sh] !== keys[prevStart + sh]) cmp = keys[ks + sh]! - keys[prevStart + sh]!;
          else cmp = keys.compare(prevArena, prevStart, prevStart + prevLen, ks, ks + ulen);
          // Equal user keys: the newer version (larger trailer) comes first.
          if (cmp < 0 || (cmp === 0 && (hi > prevHi || (hi === prevHi && lo >= prevLo)))) {
            throw new KspError('ROCKSDB_CORRUPT', `${table.file.name}: ${b.what} at offset ${b.offset}, entry ${i}: key ${preview(keys.subarray(ks, ks + ulen))} is out of order`, { file: table.file.name, offset: b.offset, entry: i });
          }
        }
        prevArena = keys;
        prevStart = ks;
        prevLen = ulen;
        prevHi = hi;
        prevLo = lo;
        // An older version of the key before: shadowed (whatever its type).
        if (cmp === 0) {
          plen = -1;
          continue;
        }
        let valEnd = v.valEnd[i]!;
        if (type !== ValueType.Value) {
          if (type === ValueType.Deletion || type === ValueType.SingleDeletion) {
            plen = -1;
            continue;
          }
          const value = v.buf.subarray(v.valStart[i]!, valEnd);
          const e = { userKey: keys.subarray(ks, ks + ulen), hi, lo, value };
          table.special(e, type, { offset: b.offset, size: b.buf.length }, b.what, i);
          if ((e.lo & 0xff) !== ValueType.Value) {
            plen = -1;
            continue; // a deletion with a timestamp
          }
          // The value, trimmed (a TimedPut's trailing write time): a prefix of the stored one.
          valEnd = v.valStart[i]! + e.value.length;
        }
        if (!(plen >= 0 && v.shared[i]! >= plen && ulen >= plen)) plen = names.prefixAt(keys, ks, ks + ulen, index);
        live.push(i, plen, ks + ulen, valEnd, names.operator, names.state);
        index++;
      }
      if (live.n > 0) yield live;
    }
  }
}

/**
 * `nativeEntries` over `liveBlocks`: an entry costs its StateEntry and two
 * views, plain Uint8Arrays (StateEntry's type), which cost half of what a
 * Buffer view does.
 */
async function* runEntries(tables: Table[], file: string): AsyncGenerator<StateEntry[]> {
  let out: StateEntry[] = [];
  for await (const live of liveBlocks(tables, file)) {
    const v = live.v;
    const keys = v.keys.buffer;
    const keysAt = v.keys.byteOffset;
    const block = v.buf.buffer;
    const blockAt = v.buf.byteOffset;
    for (let k = 0; k < live.n; k++) {
      const i = live.at[k]!;
      const ks = v.keyStart[i]! + live.plen[k]!;
      const vs = v.valStart[i]!;
      out.push({
        operatorId: live.ops[k]!, stateName: live.states[k]!,
        key: new Uint8Array(keys, keysAt + ks, live.keyEnd[k]! - ks),
        value: new Uint8Array(block, blockAt + vs, live.valEnd[k]! - vs),
      });
    }
    if (out.length >= BATCH) {
      yield out;
      out = [];
    }
  }
  if (out.length > 0) yield out;
}

export function nativeInfo(db: RocksDb): NativeInfo {
  const s = db.summary;
  const uniq = <T>(xs: T[]): T[] => [...new Set(xs)].sort();
  return {
    sstFiles: s.tables.length,
    sstBytes: s.tables.reduce((n, t) => n + t.size, 0),
    formatVersions: uniq(s.tables.map((t) => t.formatVersion)),
    compressions: uniq(s.tables.map((t) => t.compression)),
    checksums: uniq(s.tables.map((t) => t.checksum)),
    levels: s.levels,
    wals: s.wals.filter((w) => w.bytes > 0).length,
    otherColumnFamilies: s.otherColumnFamilies,
  };
}
