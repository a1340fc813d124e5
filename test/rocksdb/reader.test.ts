import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RocksDb } from '../../src/rocksdb/db.js';
import { localImage } from '../../src/rocksdb/local-image.js';
import { asScanLines, createDb, ldb, loadPairs, requireLdb, scanHex, type DbSpec } from './support.js';

/**
 * The reader against databases written by real RocksDB (ldb 7.8): every
 * format_version ldb can write, every checksum and compression, each index
 * kind, many small blocks, versions spread over files and levels, deletes of
 * every kind, data left only in the WAL. The expected entries always come
 * from `ldb scan --hex`, never from ksp.
 */

let root: string;
beforeAll(() => {
  requireLdb();
  root = mkdtempSync(join(tmpdir(), 'ksp-rocksdb-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
const fresh = (): string => join(root, `db-${n++}`);

async function readAll(dir: string): Promise<string[]> {
  const db = await RocksDb.open(localImage(dir));
  const out: Array<{ key: Buffer; value: Buffer }> = [];
  for await (const b of db.entries(97)) out.push(...b);
  return asScanLines(out);
}

/** Keys of many shapes: empty value, long keys (multi-byte varints), binary bytes, shared prefixes. */
function pairs(count: number, seed = 1): Array<[Buffer, Buffer]> {
  const out: Array<[Buffer, Buffer]> = [];
  let x = seed;
  const rnd = (): number => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
  for (let i = 0; i < count; i++) {
    const shape = i % 7;
    let key: Buffer;
    if (shape === 0) key = Buffer.from(`user:${String(i).padStart(6, '0')}`);
    else if (shape === 1) key = Buffer.concat([Buffer.from([0x00, 0xff, i & 0xff]), Buffer.from(String(i))]);
    else if (shape === 2) key = Buffer.from(`long:${'k'.repeat(130 + (i % 40))}:${i}`);
    else key = Buffer.from(`k${String(rnd() % 100000).padStart(5, '0')}-${i}`);
    const value = i % 11 === 0 ? Buffer.alloc(0) : Buffer.from(`value-${i}-${'v'.repeat(rnd() % 200)}`);
    out.push([key, value]);
  }
  return out;
}

describe('block-based tables written by ldb 7.8', () => {
  const compressions: Array<NonNullable<DbSpec['compression']>> = ['no', 'snappy', 'zlib', 'bzip2', 'lz4', 'lz4hc', 'zstd'];
  const checksums: Array<NonNullable<DbSpec['checksum']>> = ['kCRC32c', 'kxxHash', 'kxxHash64', 'kXXH3', 'kNoChecksum'];
  const cases: DbSpec[] = [];
  for (const fv of [2, 3, 4, 5] as const) compressions.forEach((c, i) => cases.push({ formatVersion: fv, compression: c, checksum: checksums[(i + fv) % checksums.length]!, blockSize: 512 }));

  it.each(cases)('format_version $formatVersion, $compression, $checksum', async (spec) => {
    const dir = fresh();
    createDb(dir, spec);
    loadPairs(dir, pairs(700, spec.formatVersion), spec);
    const expected = scanHex(dir);
    expect(expected.length).toBeGreaterThan(600);
    expect(await readAll(dir)).toEqual(expected);
    const db = await RocksDb.open(localImage(dir));
    const t = db.summary.tables[0]!;
    expect(t.formatVersion).toBe(spec.formatVersion);
    expect(t.dataBlocks).toBeGreaterThan(20);
    expect(t.checksum).toBe({ kCRC32c: 'crc32c', kxxHash: 'xxhash', kxxHash64: 'xxhash64', kXXH3: 'xxh3', kNoChecksum: 'none' }[spec.checksum!]);
  });

  const indexes: Array<[string, DbSpec]> = [
    ['partitioned (two-level) index', { formatVersion: 5, table: { index_type: 'kTwoLevelIndexSearch', metadata_block_size: 256 }, blockSize: 256 }],
    ['partitioned index, format_version 3', { formatVersion: 3, table: { index_type: 'kTwoLevelIndexSearch', metadata_block_size: 256 }, blockSize: 256 }],
    ['binary search with first key', { formatVersion: 4, table: { index_type: 'kBinarySearchWithFirstKey' }, blockSize: 512 }],
    ['hash-indexed data blocks', { formatVersion: 5, table: { data_block_index_type: 'kDataBlockBinaryAndHash' }, blockSize: 1024 }],
    ['uncompressed index, delta restarts', { formatVersion: 4, compression: 'snappy', table: { enable_index_compression: 'false', index_block_restart_interval: 4, block_restart_interval: 3 }, blockSize: 512 }],
    ['bloom filter and a 64 KiB+ block', { formatVersion: 5, compression: 'zlib', table: { filter_policy: 'bloomfilter:10:false' }, blockSize: 200_000 }],
  ];
  it.each(indexes)('%s', async (_name, spec) => {
    const dir = fresh();
    createDb(dir, spec);
    loadPairs(dir, pairs(900, 7), spec);
    expect(await readAll(dir)).toEqual(scanHex(dir));
    const db = await RocksDb.open(localImage(dir));
    await db.verifyMetaBlocks();
  });
});

describe('the live key set across files, levels and the WAL', () => {
  it('overwrites in newer files, deletes, single deletes, range deletes, compaction and WAL-only data', async () => {
    const dir = fresh();
    const spec: DbSpec = { formatVersion: 5, blockSize: 256 };
    createDb(dir, spec);
    const base = pairs(400, 3);
    loadPairs(dir, base, { compression: 'snappy' });
    // Overwrite every third key in a second file, then push both to level 1+.
    loadPairs(dir, base.filter((_, i) => i % 3 === 0).map(([k], i) => [k, Buffer.from(`second-${i}`)]), { compression: 'lz4' });
    ldb(dir, ['--compression_type=zstd', 'compact']);
    // Newer L0 files over the compacted level.
    loadPairs(dir, base.filter((_, i) => i % 5 === 0).map(([k], i) => [k, Buffer.from(`third-${i}`)]), { compression: 'zlib' });
    const del = (k: Buffer, cmd: string): string => ldb(dir, ['--hex', '--auto_compaction=false', cmd, `0x${k.toString('hex')}`]);
    del(base[1]![0], 'delete');
    del(base[2]![0], 'singledelete');
    ldb(dir, ['--auto_compaction=false', 'deleterange', 'k20000', 'k40000']);
    ldb(dir, ['--auto_compaction=false', 'put', 'k30000-revived', 'after-the-range-delete']);
    // Flush those (a read-write open flushes the WAL into L0) ...
    ldb(dir, ['--auto_compaction=false', 'put', 'flushed-by-next-open', 'x']);
    // ... and leave these only in the WAL: a read-only `get` does not flush.
    ldb(dir, ['--hex', '--auto_compaction=false', 'batchput', `0x${base[3]![0].toString('hex')}`, '0x57414C', '0x77616C2D6F6E6C79', '0x01']);
    ldb(dir, ['get', 'wal-only']);
    expect(readdirSync(dir).some((f) => f.endsWith('.log') && statSync(join(dir, f)).size > 0)).toBe(true);

    const ours = await readAll(dir);
    expect(ours).toEqual(scanHex(dir));
    expect(ours).toContain('0x77616C2D6F6E6C79 : 0x01');
    const db = await RocksDb.open(localImage(dir));
    expect(db.summary.levels.length).toBeGreaterThan(1);
    expect(db.summary.tables.some((t) => t.rangeDeletions > 0)).toBe(true);
  });

  it('an ingested external SST (global sequence number) shadows older data', async () => {
    const dir = fresh();
    createDb(dir, {});
    loadPairs(dir, [[Buffer.from('a'), Buffer.from('old')], [Buffer.from('b'), Buffer.from('old')]]);
    const sst = join(root, `ext-${n}.sst`);
    ldb(dir, ['write_extern_sst', sst], 'a ==> new\nc ==> new\n');
    ldb(dir, ['ingest_extern_sst', sst]);
    const ours = await readAll(dir);
    expect(ours).toEqual(scanHex(dir));
    expect(ours).toEqual(['0x61 : 0x6E6577', '0x62 : 0x6F6C64', '0x63 : 0x6E6577']);
  });

  it('other column families are reported and ignored', async () => {
    const dir = fresh();
    createDb(dir, {});
    ldb(dir, ['create_column_family', 'side']);
    ldb(dir, ['--column_family=side', 'put', 'x', 'in-side']);
    ldb(dir, ['put', 'y', 'in-default']);
    const db = await RocksDb.open(localImage(dir));
    expect(db.summary.otherColumnFamilies).toEqual(['side']);
    expect(await readAll(dir)).toEqual(['0x79 : 0x696E2D64656661756C74']);
  });
});

describe('corruption is a typed error naming the file and offset', () => {
  let dir: string;
  beforeAll(() => {
    dir = fresh();
    createDb(dir, { formatVersion: 5, checksum: 'kCRC32c', blockSize: 512 });
    loadPairs(dir, pairs(300, 9), { compression: 'snappy' });
    ldb(dir, ['put', 'in-the-wal', 'yes']);
    ldb(dir, ['get', 'in-the-wal']);
  });

  function damaged(mutate: (d: string) => void): string {
    const d = fresh();
    cpSync(dir, d, { recursive: true });
    mutate(d);
    return d;
  }
  const flip = (file: string, offset: number): void => {
    const b = readFileSync(file);
    b[offset < 0 ? b.length + offset : offset]! ^= 0x40;
    writeFileSync(file, b);
  };
  const only = (d: string, re: RegExp): string => join(d, readdirSync(d).find((f) => re.test(f))!);

  it('a data block', async () => {
    const d = damaged((x) => flip(only(x, /\.sst$/), 10));
    await expect(readAll(d)).rejects.toMatchObject({ code: 'ROCKSDB_CHECKSUM', data: { file: expect.stringMatching(/\.sst$/), offset: 0, block: 'data block 0' } });
  });

  it('the index block', async () => {
    const d = damaged((x) => {
      const f = only(x, /\.sst$/);
      const b = readFileSync(f);
      // The index block ends right before the metaindex: damage the byte 6 before the 53-byte footer area's handles point.
      // Simpler and exact: the footer's index handle (bytes 1.. after the metaindex handle).
      const c = b.subarray(b.length - 53);
      let p = 1;
      const v = (): number => { let r = 0; let s = 0; for (;;) { const x = c[p++]!; r += (x & 0x7f) * 2 ** s; if (x < 0x80) return r; s += 7; } };
      v(); v();
      const idxOff = v();
      b[idxOff + 2]! ^= 0x40;
      writeFileSync(f, b);
    });
    await expect(readAll(d)).rejects.toMatchObject({ code: 'ROCKSDB_CHECKSUM', data: { block: 'index block' } });
  });

  it('the footer', async () => {
    const d = damaged((x) => flip(only(x, /\.sst$/), -3));
    await expect(readAll(d)).rejects.toMatchObject({ code: 'ROCKSDB_CORRUPT', data: { file: expect.stringMatching(/\.sst$/) } });
  });

  it('a MANIFEST record', async () => {
    const d = damaged((x) => flip(only(x, /^MANIFEST-/), 20));
    await expect(readAll(d)).rejects.toMatchObject({ code: 'ROCKSDB_CHECKSUM', data: { file: expect.stringMatching(/MANIFEST-\d+$/), offset: 0, block: 0 } });
  });

  it('a WAL record', async () => {
    const d = damaged((x) => {
      const wal = readdirSync(x).filter((f) => f.endsWith('.log')).map((f) => join(x, f)).find((f) => statSync(f).size > 0)!;
      flip(wal, 15);
    });
    await expect(readAll(d)).rejects.toMatchObject({ code: 'ROCKSDB_CHECKSUM', data: { file: expect.stringMatching(/\.log$/), offset: 0 } });
  });

  it('a truncated SST, and a CURRENT without its newline', async () => {
    const t = damaged((x) => {
      const f = only(x, /\.sst$/);
      writeFileSync(f, readFileSync(f).subarray(0, 100));
    });
    await expect(readAll(t)).rejects.toMatchObject({ code: 'ROCKSDB_CORRUPT', message: expect.stringMatching(/size 100 differs/) });
    const c = damaged((x) => writeFileSync(join(x, 'CURRENT'), readFileSync(join(x, 'CURRENT'), 'latin1').trim()));
    await expect(readAll(c)).rejects.toMatchObject({ code: 'ROCKSDB_CORRUPT', message: expect.stringMatching(/newline/) });
  });
});
