/**
 * Fuzz targets: each takes one input's bytes and runs one of ksp's decoders
 * over it to the end, in memory, as the reading commands would. The property
 * the fuzzer checks on every target: the call returns, or throws a KspError;
 * never another exception type, never a hang, never unbounded memory.
 *
 * Seeds are valid inputs: the bundled fixtures, and files made here with
 * ksp's own writers (state.bin, SSTs of every writable compression and
 * format version, MANIFESTs, WALs of WriteBatches).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decodeStateBin } from '../formats/state-bin/decoder.js';
import { encodeStateBinToBuffer } from '../formats/state-bin/encoder.js';
import type { StateEntry } from '../formats/state-bin/decoder.js';
import { MetadataDoc } from '../formats/metadata/metadata.js';
import { MetaDoc } from '../formats/meta/meta.js';
import { parseManifest, buildManifest } from '../formats/manifest/manifest.js';
import { parsePointer } from '../formats/pointer/pointer.js';
import { SstManifestDoc } from '../formats/sst-manifest/sst-manifest.js';
import { Table } from '../rocksdb/table.js';
import { replayManifest } from '../rocksdb/version-set.js';
import { readLog } from '../rocksdb/log-reader.js';
import { encodeLog } from '../rocksdb/log-writer.js';
import { replayBatch } from '../rocksdb/write-batch.js';
import { decodeVersionEdit } from '../rocksdb/version-edit.js';
import { decodeBlock } from '../rocksdb/block.js';
import { decompressBlock } from '../rocksdb/compression.js';
import { RocksDb, type DbImage } from '../rocksdb/db.js';
import type { RandomAccessFile } from '../rocksdb/file.js';
import { ChecksumType, loadChecksums } from '../rocksdb/checksum.js';
import { encodeManifest, tableBytes } from '../rocksdb/db-writer.js';
import { encodeNativeKey } from '../formats/native-key/native-key.js';
import { KspError } from '../errors.js';

export interface Target {
  name: string;
  seeds: Buffer[];
  /** Runs the decoder to the end; must return or throw a KspError. */
  run(input: Buffer): Promise<void> | void;
  /** Offsets of length/count fields in a seed, for boundary-value mutations (optional). */
  fields?: (seed: Buffer) => number[];
}

/** An in-memory file, as RocksDB readers see files (ranged reads). */
export function memFile(name: string, bytes: Buffer): RandomAccessFile {
  return {
    name,
    size: bytes.length,
    async read(offset: number, length: number): Promise<Buffer> {
      if (offset < 0 || length < 0 || offset + length > bytes.length) {
        throw new KspError('ROCKSDB_CORRUPT', `${name}: a read of ${length} bytes at ${offset} runs past the end of the ${bytes.length}-byte file`, { file: name, offset });
      }
      return bytes.subarray(offset, offset + length);
    },
  };
}

async function* once(b: Buffer): AsyncGenerator<Uint8Array> {
  if (b.length) yield b;
}

function filesUnder(dir: string, pred: (name: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try { names = readdirSync(d).sort(); } catch { return; }
    for (const n of names) {
      const p = join(d, n);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && pred(n)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

function entries(n: number, seed: number): StateEntry[] {
  const out: StateEntry[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      operatorId: i % 3 === 0 ? 'orders-agg' : 'windows',
      stateName: i % 2 ? 'total' : 'count',
      key: Buffer.from(`key-${seed}-${i.toString().padStart(4, '0')}`),
      value: Buffer.from(`value-${'x'.repeat((i * 7 + seed) % 40)}`),
    });
  }
  return out;
}

/** A WriteBatch payload: sequence, count, then Put/Delete/DeleteRange records of the default column family. */
function writeBatch(seq: bigint, ops: Array<[number, Buffer, Buffer?]>): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(12);
  head.writeBigUInt64LE(seq, 0);
  head.writeUInt32LE(ops.length, 8);
  parts.push(head);
  for (const [tag, k, v] of ops) {
    parts.push(Buffer.from([tag]), varint(k.length), k);
    if (v) parts.push(varint(v.length), v);
  }
  return Buffer.concat(parts);
}

export interface SeedSet {
  stateBin: Buffer[];
  metadata: Buffer[];
  meta: Buffer[];
  manifest: Buffer[];
  pointer: Buffer[];
  sstManifest: Buffer[];
  sst: Buffer[];
  /** SSTs with checksum type none: mutations reach the block, index and properties decoders. */
  sstNoChecksum: Buffer[];
  rocksManifest: Buffer[];
  wal: Buffer[];
  /** Decompressed data blocks (for the block decoder). */
  blocks: Buffer[];
  /** Compressed block payloads by type byte. */
  compressed: Array<{ type: number; stored: Buffer }>;
  /** WriteBatch and VersionEdit payloads (past the log's checksums). */
  batches: Buffer[];
  edits: Buffer[];
  /** One database the db:* targets open: an SST (file 10), its MANIFEST, a WAL. */
  db: { sst: Buffer; manifest: Buffer; wal: Buffer };
}

export async function buildSeeds(fixturesDir: string): Promise<SeedSet> {
  await loadChecksums();
  const read = (pred: (n: string) => boolean): Buffer[] => filesUnder(fixturesDir, pred).map((p) => readFileSync(p));
  const s: SeedSet = {
    stateBin: [], metadata: read((n) => n === 'metadata.json'), meta: read((n) => n === 'meta.json'), manifest: read((n) => n === 'manifest.sha256'),
    pointer: [], sstManifest: read((n) => n === 'sst_manifest.json'), sst: read((n) => n.endsWith('.sst')), sstNoChecksum: [], rocksManifest: read((n) => /^MANIFEST-\d+$/.test(n)),
    wal: [], blocks: [], compressed: [], batches: [], edits: [],
    db: { sst: Buffer.alloc(0), manifest: Buffer.alloc(0), wal: Buffer.alloc(0) },
  };
  for (const b of read((n) => n === 'state.bin')) (b.subarray(0, 12).toString('latin1') === 'INCR-SST-V1|' ? s.pointer : s.stateBin).push(b);
  // Keep seeds small and distinct: the fuzzer's speed comes from short inputs.
  s.stateBin = [...new Map(s.stateBin.filter((b) => b.length > 0 && b.length < 64 * 1024).map((b) => [b.toString('hex'), b])).values()].slice(0, 6);
  s.stateBin.push(await encodeStateBinToBuffer(entries(3, 1)), await encodeStateBinToBuffer(entries(40, 2)), await encodeStateBinToBuffer(null));
  s.pointer.push(Buffer.from('INCR-SST-V1|shop/incr/op/task-0/epochs/00000000000000000007/sst_manifest.json'));
  s.manifest.push(Buffer.from(buildManifest([{ path: 'metadata.json', sha256: 'a'.repeat(64) }, { path: 'op/task-0/state.bin', sha256: 'b'.repeat(64) }])));

  // SSTs of every writable compression and format version, and their MANIFESTs.
  const pairs: Array<[Uint8Array, Uint8Array]> = entries(300, 3)
    .map((e) => [encodeNativeKey(e.operatorId, e.stateName, e.key), Buffer.from(e.value)] as [Uint8Array, Uint8Array])
    .sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])))
    .filter((p, i, all) => i === 0 || Buffer.compare(Buffer.from(all[i - 1]![0]), Buffer.from(p[0])) !== 0);
  const compressions = ['none', 'snappy', 'zlib', 'lz4', 'zstd'] as const;
  let fileNumber = 10;
  for (const compression of compressions) {
    for (const formatVersion of [2, 5, 6] as const) {
      const { bytes, info } = await tableBytes(pairs, { formatVersion, compression, checksum: formatVersion === 2 ? ChecksumType.CRC32c : ChecksumType.XXH3, blockSize: 1024, bloomBitsPerKey: formatVersion === 5 ? 10 : 0, fileNumber });
      s.sst.push(bytes);
      const manifest = encodeManifest([{ level: 6, number: fileNumber, size: bytes.length, smallest: info.smallest, largest: info.largest, smallestSeqno: 0n, largestSeqno: 0n }], fileNumber + 1);
      if (compression === 'none' || formatVersion === 6) s.rocksManifest.push(manifest);
      if (fileNumber === 10) s.db = { sst: bytes, manifest, wal: Buffer.alloc(0) };
      fileNumber++;
    }
  }
  for (const compression of compressions) {
    const { bytes } = await tableBytes(pairs.slice(0, 120), { formatVersion: 5, compression, checksum: ChecksumType.None as never, blockSize: 512, bloomBitsPerKey: compression === 'none' ? 10 : 0, fileNumber: 30 });
    s.sstNoChecksum.push(bytes);
  }
  // Raw blocks and compressed payloads, for the block-level targets.
  for (let i = 0; i < 4; i++) {
    const { bytes } = await tableBytes(pairs.slice(i * 20, i * 20 + 30), { formatVersion: 5, compression: 'none', checksum: ChecksumType.CRC32c, blockSize: 4096, bloomBitsPerKey: 0, fileNumber: 1 });
    // The first data block starts at 0; its handle is the first index entry. Its size is
    // found by decoding: cut at each candidate and keep the first that decodes.
    for (let end = 64; end < bytes.length; end++) {
      try {
        const blk = bytes.subarray(0, end);
        const b = decodeBlock(blk, { file: 'seed', base: 0, what: 'seed' });
        if (b.keys.length >= 10) { s.blocks.push(Buffer.from(blk)); break; }
      } catch { /* not a block end */ }
    }
  }
  const { compressor } = await import('../rocksdb/compression.js');
  const raw = Buffer.concat(pairs.slice(0, 60).map(([k, v]) => Buffer.concat([k, v])));
  for (const name of ['snappy', 'zlib', 'lz4', 'zstd'] as const) {
    const c = compressor(name)!;
    s.compressed.push({ type: c.type, stored: Buffer.from(await c.compress(raw)) });
  }
  // bzip2 (type 3): RocksDB frames it like zlib (varint size, then the
  // stream). ksp has no bzip2 encoder; the bzip2 tool makes the seed if present.
  const bz = bzip2(raw);
  if (bz) s.compressed.push({ type: 3, stored: Buffer.concat([varint(raw.length), bz]) });

  // WALs: WriteBatches of Put (0x01), Delete (0x00), DeleteRange (0x0f), in log records.
  const k = (i: number): Buffer => encodeNativeKey('op', 'st', Buffer.from(`k${i}`));
  const batches = [
    writeBatch(1n, [[0x01, k(1), Buffer.from('v1')], [0x01, k(2), Buffer.from('v2')]]),
    writeBatch(3n, [[0x00, k(1)], [0x0f, k(3), k(5)], [0x01, k(4), Buffer.alloc(100, 7)]]),
    writeBatch(6n, Array.from({ length: 50 }, (_, i) => [0x01, k(100 + i), Buffer.from(`value ${i}`)] as [number, Buffer, Buffer])),
  ];
  s.batches.push(...batches);
  s.wal.push(encodeLog(batches), encodeLog([batches[2]!, writeBatch(60n, [[0x01, k(999), Buffer.alloc(40_000, 1)]])]));
  s.db.wal = s.wal[0]!;
  // VersionEdit payloads: the log records of each MANIFEST seed.
  for (const m of s.rocksManifest) {
    for await (const r of readLog(memFile('MANIFEST', m))) s.edits.push(Buffer.from(r.payload));
  }
  return s;
}

function varint(v: number): Buffer {
  const b: number[] = [];
  while (v >= 0x80) { b.push((v & 0x7f) | 0x80); v >>>= 7; }
  b.push(v);
  return Buffer.from(b);
}

function bzip2(data: Buffer): Buffer | null {
  try {
    return execFileSync('bzip2', ['-c', '-9'], { input: data, maxBuffer: 1 << 26 });
  } catch {
    return null;
  }
}

const ORIGIN = { file: 'fuzz', base: 0, what: 'fuzz block' };

export function targets(s: SeedSet): Target[] {
  const db = (mutate: 'CURRENT' | 'MANIFEST' | 'sst' | 'wal') => async (input: Buffer): Promise<void> => {
    // One database: an SST, the MANIFEST naming it, CURRENT, and a WAL;
    // the mutated input replaces one of them.
    const pick = (what: typeof mutate, valid: Buffer): Buffer => (mutate === what ? input : valid);
    const files = new Map<string, RandomAccessFile>();
    files.set('CURRENT', memFile('CURRENT', pick('CURRENT', Buffer.from('MANIFEST-000005\n'))));
    files.set('MANIFEST-000005', memFile('MANIFEST-000005', pick('MANIFEST', s.db.manifest)));
    files.set('000010.sst', memFile('000010.sst', pick('sst', s.db.sst)));
    files.set('000011.log', memFile('000011.log', pick('wal', s.db.wal)));
    const image: DbImage = { name: 'fuzz-db', files };
    const d = await RocksDb.open(image, { maxWalBytes: 4 * 1024 * 1024 });
    for await (const _ of d.entries()) { /* drain */ }
  };

  return [
    {
      name: 'state.bin', seeds: s.stateBin,
      async run(input) {
        const d = decodeStateBin(once(input), { size: input.length, file: 'fuzz/state.bin', batchSize: 64 });
        for await (const _ of d.batches()) { /* drain */ }
      },
      fields: (seed) => {
        // Header fields at 0, 4, 8; then each entry's u32 lengths (walk the valid seed).
        const out = [0, 4, 8];
        let p = 12;
        while (p + 4 <= seed.length && out.length < 64) {
          out.push(p);
          p += 4 + seed.readUInt32LE(p);
        }
        return out;
      },
    },
    { name: 'metadata.json', seeds: s.metadata, run: (input) => { MetadataDoc.decode(input); } },
    { name: 'meta.json', seeds: s.meta, run: (input) => { MetaDoc.decode(input); } },
    { name: 'manifest.sha256', seeds: s.manifest, run: (input) => { parseManifest(input); } },
    { name: 'pointer', seeds: s.pointer, run: (input) => { parsePointer(input); } },
    { name: 'sst_manifest.json', seeds: s.sstManifest, run: (input) => { SstManifestDoc.decode(input); } },
    {
      name: 'sst', seeds: s.sst,
      async run(input) {
        const t = await Table.open(memFile('fuzz.sst', input), { windowSize: 64 * 1024 });
        for await (const _ of t.entries()) { /* drain */ }
        await t.rangeTombstones();
        await t.verifyMetaBlocks();
      },
      fields: (seed) => Array.from({ length: 12 }, (_, i) => Math.max(0, seed.length - 53 + i * 4)),
    },
    {
      name: 'sst-nochecksum', seeds: s.sstNoChecksum,
      async run(input) {
        const t = await Table.open(memFile('fuzz.sst', input), { windowSize: 64 * 1024 });
        for await (const _ of t.entries()) { /* drain */ }
        await t.rangeTombstones();
        await t.verifyMetaBlocks();
      },
    },
    { name: 'sst-block', seeds: s.blocks, run: (input) => { decodeBlock(input, ORIGIN); } },
    { name: 'block-decompress', seeds: s.compressed.map((c) => Buffer.concat([Buffer.from([c.type]), c.stored])), run: (input) => { if (input.length) decompressBlock(input[0]!, input.subarray(1), ORIGIN); } },
    {
      name: 'MANIFEST', seeds: s.rocksManifest,
      async run(input) { await replayManifest(memFile('MANIFEST-000005', input)); },
    },
    { name: 'version-edit', seeds: s.edits, run: (input) => { decodeVersionEdit(input, ORIGIN); } },
    {
      name: 'WAL', seeds: s.wal,
      async run(input) {
        const into = { entries: [], tombstones: [], bytes: 0, records: 0 };
        for await (const r of readLog(memFile('000011.log', input), { maxRecord: 4 * 1024 * 1024 })) replayBatch(r.payload, { file: '000011.log', offset: r.offset, keep: true }, into);
      },
    },
    {
      name: 'write-batch', seeds: s.batches,
      run: (input) => { replayBatch(input, { file: 'fuzz.log', offset: 0, keep: true }, { entries: [], tombstones: [], bytes: 0, records: 0 }); },
      fields: () => [0, 4, 8],
    },
    { name: 'db:CURRENT', seeds: [Buffer.from('MANIFEST-000005\n')], run: db('CURRENT') },
    { name: 'db:MANIFEST', seeds: [s.db.manifest], run: db('MANIFEST') },
    { name: 'db:sst', seeds: [s.db.sst], run: db('sst') },
    { name: 'db:wal', seeds: [s.db.wal], run: db('wal') },
  ];
}
