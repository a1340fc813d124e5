import { KspError } from '../errors.js';
import { epochDirName } from '../formats/metadata/metadata.js';
import { NativeKeyEncoder } from '../formats/native-key/native-key.js';
import { encodePointer } from '../formats/pointer/pointer.js';
import { SstManifestDoc } from '../formats/sst-manifest/sst-manifest.js';
import type { StateEntry } from '../formats/state-bin/decoder.js';
import { ChecksumType } from '../rocksdb/checksum.js';
import { writeDb, type KeyValue } from '../rocksdb/db-writer.js';
import type { WritableCompression } from '../rocksdb/compression.js';
import type { WritableFormatVersion } from '../rocksdb/table-writer.js';
import { KeySorter } from './key-sorter.js';
import { nextTableNumber } from './native-names.js';
import { parent } from '../storage/uri.js';
import type { OutputTask } from './jobs.js';
import type { StoredFile, Target } from './target.js';

/**
 * One task written as native state, in the engine's incremental layout
 * (../formats/pointer/FORMAT.md, ../formats/sst-manifest/FORMAT.md):
 *
 *   {op}/{task}/state.bin                         INCR-SST-V1| pointer blob
 *   incr/{op}/{task}/sst/000002.sst …             the tables (engine mode: numbered
 *                                                 above every table already in the
 *                                                 shared folder, see native-names.ts)
 *   incr/{op}/{task}/epochs/{epoch:020}/MANIFEST-…, CURRENT, sst_manifest.json
 *
 * (in engine mode under `{base}/{job}/incr/…`). Entries become RocksDB keys
 * by the engine's layout, are sorted (unless the source is already in key
 * order) and written as one database; the SST manifest records every
 * table's size and SHA-256, and the pointer is written last of the three.
 */

export interface NativeWriteOptions {
  formatVersion: WritableFormatVersion;
  compression: WritableCompression;
  checksum: 'crc32c' | 'xxh3';
  blockSize: number;
  /** Bloom filter bits per key; 0 for none. */
  bloomBits: number;
  /** Target size of each SST file. */
  sstSize: number;
}

/**
 * What the engine's RocksDB writes (16 KiB blocks, Snappy, XXH3, 10-bit
 * Bloom), except format_version 5, which RocksDB 7.x and newer all read
 * (the engine's own is 6; pass it to match exactly). 64 MiB tables are
 * RocksDB's default target file size.
 */
export const NATIVE_DEFAULTS: NativeWriteOptions = {
  formatVersion: 5,
  compression: 'snappy',
  checksum: 'xxh3',
  blockSize: 16 * 1024,
  bloomBits: 10,
  sstSize: 64 * 1024 * 1024,
};

export function nativeOptions(o: Partial<NativeWriteOptions> = {}): NativeWriteOptions {
  const r = { ...NATIVE_DEFAULTS, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as NativeWriteOptions;
  const bad = (what: string, found: unknown): never => {
    throw new KspError('USAGE', `convert --to native: ${what}`, { found: String(found) });
  };
  if (![2, 3, 4, 5, 6].includes(r.formatVersion)) bad(`format_version must be 2 to 6 (7.x readers need ≤ 5), got ${r.formatVersion}`, r.formatVersion);
  if (!['none', 'snappy', 'zlib', 'lz4', 'zstd'].includes(r.compression)) bad(`compression must be none, snappy, zlib, lz4 or zstd, got ${r.compression}`, r.compression);
  if (!['crc32c', 'xxh3'].includes(r.checksum)) bad(`checksum must be crc32c or xxh3, got ${r.checksum}`, r.checksum);
  if (!Number.isSafeInteger(r.blockSize) || r.blockSize < 256 || r.blockSize > 256 * 1024 * 1024) bad(`block size must be 256 bytes to 256 MiB, got ${r.blockSize}`, r.blockSize);
  if (!Number.isFinite(r.bloomBits) || r.bloomBits < 0 || r.bloomBits > 100) bad(`bloom bits per key must be 0 (no filter) to 100, got ${r.bloomBits}`, r.bloomBits);
  if (!Number.isSafeInteger(r.sstSize) || r.sstSize < r.blockSize) bad(`SST target size must be at least the block size, got ${r.sstSize}`, r.sstSize);
  return r;
}

export function describeNative(o: NativeWriteOptions): string {
  const size = (n: number): string => (n % (1 << 20) === 0 ? `${n >> 20} MiB` : n % 1024 === 0 ? `${n >> 10} KiB` : `${n} B`);
  return `format_version ${o.formatVersion}, ${o.compression}, ${o.checksum}, ${size(o.blockSize)} blocks, ${o.bloomBits ? `Bloom ${o.bloomBits} bits/key` : 'no filter'}, tables of ~${size(o.sstSize)}`;
}

/** Where one output task's native files go. */
export interface NativeLayout {
  sst(name: string): StoredFile;
  meta(name: string): StoredFile;
  manifest: StoredFile;
  pointer: StoredFile;
}

export function nativeLayout(target: Target, out: OutputTask): NativeLayout {
  const epochDir = `epochs/${epochDirName(target.epoch)}`;
  return {
    sst: (name) => target.nativeFile(out.operatorId, out.taskId, `sst/${name}`),
    meta: (name) => target.nativeFile(out.operatorId, out.taskId, `${epochDir}/${name}`),
    manifest: target.nativeFile(out.operatorId, out.taskId, `${epochDir}/sst_manifest.json`),
    pointer: out.file,
  };
}

export interface NativeTaskResult {
  entries: number;
  /** Entries dropped because a later one had the same key. */
  duplicates: number;
  tables: number;
}

export type StoreFile = (out: StoredFile, data: AsyncIterable<Uint8Array> | Uint8Array) => Promise<{ sha256: string; size: number }>;

/**
 * Writes one task. `sorted`: the entries are known to arrive in ascending
 * RocksDB key order with no repeats (a native source read unchanged), so
 * they stream straight into the tables; anything else goes through an
 * external sort in `tempDir`.
 */
export async function writeNativeTask(
  entries: AsyncIterable<StateEntry[]>, layout: NativeLayout, epoch: bigint, options: NativeWriteOptions,
  store: StoreFile, opts: { sorted: boolean; tempDir: string; shared?: boolean; firstFileNumber?: number },
): Promise<NativeTaskResult> {
  // A folder shared with other epochs (engine mode): fresh table numbers, never an existing name (native-names.ts);
  // or the number a distributed plan chose when it was made (the same on every shard and every re-run).
  const firstFileNumber = opts.firstFileNumber ?? (opts.shared ? await nextTableNumber(parent(layout.sst('000000.sst').location)) : undefined);
  const encoder = new NativeKeyEncoder();
  let sorter: KeySorter | null = null;
  let source: AsyncIterable<KeyValue[]>;
  if (opts.sorted) {
    source = (async function* () {
      for await (const batch of entries) yield batch.map((e) => ({ key: encoder.encode(e.operatorId, e.stateName, e.key), value: e.value }));
    })();
  } else {
    const s = (sorter = new KeySorter(opts.tempDir));
    source = (async function* () {
      for await (const batch of entries) for (const e of batch) s.add(encoder.encode(e.operatorId, e.stateName, e.key), e.value);
      yield* s.sorted();
    })();
  }
  try {
    const sst: Array<{ filename: string; size: number; sha256: string; storagePath: string }> = [];
    const meta: Array<{ filename: string; storagePath: string }> = [];
    const db = await writeDb(source, {
      formatVersion: options.formatVersion, compression: options.compression,
      checksum: options.checksum === 'xxh3' ? ChecksumType.XXH3 : ChecksumType.CRC32c,
      blockSize: options.blockSize, bloomBitsPerKey: options.bloomBits, targetFileSize: options.sstSize, firstFileNumber,
    }, async (name, kind, data) => {
      const out = kind === 'sst' ? layout.sst(name) : layout.meta(name);
      const r = await store(out, data);
      if (kind === 'sst') sst.push({ filename: name, size: r.size, sha256: r.sha256, storagePath: out.stored });
      else meta.push({ filename: name, storagePath: out.stored });
      return r;
    });
    const doc = SstManifestDoc.create({ epoch, sstFiles: sst, metaFiles: meta, manifestPath: layout.manifest.stored });
    await store(layout.manifest, doc.encode());
    await store(layout.pointer, encodePointer({ manifestPath: layout.manifest.stored }));
    return { entries: db.entries, duplicates: sorter?.duplicates ?? 0, tables: db.tables };
  } finally {
    sorter?.remove();
  }
}
