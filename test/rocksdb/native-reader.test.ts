import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RocksDb } from '../../src/rocksdb/db.js';
import { localImage } from '../../src/rocksdb/local-image.js';
import { asScanLines } from './support.js';
import { nativeScan, nativeWrite, type NativeOp } from './native-lib.js';

/** format_version 6 and 7 (XXH3 with context checksums), written and iterated by RocksDB 10.5. */

let root: string;
beforeAll(() => void (root = mkdtempSync(join(tmpdir(), 'ksp-rn-'))));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function readAll(dir: string): Promise<string[]> {
  const db = await RocksDb.open(localImage(dir));
  const out: Array<{ key: Buffer; value: Buffer }> = [];
  for await (const b of db.entries()) out.push(...b);
  return asScanLines(out);
}

const hex = (s: string): string => Buffer.from(s).toString('hex');

describe('RocksDB 10.5 (rocksdb-native)', () => {
  it.each([6, 7])('format_version %i: flushed files, overwrites, deletes, a range delete and WAL-only writes', async (fv) => {
    const dir = join(root, `fv${fv}`);
    const ops: NativeOp[] = [];
    for (let i = 0; i < 3000; i++) ops.push({ put: [hex(`key-${String(i).padStart(5, '0')}`), hex(`value-${i}-${'x'.repeat(i % 50)}`)] });
    ops.push({ flush: true });
    for (let i = 0; i < 3000; i += 4) ops.push({ put: [hex(`key-${String(i).padStart(5, '0')}`), hex(`second-${i}`)] });
    ops.push({ del: hex('key-00001') }, { deleteRange: [hex('key-01000'), hex('key-01500')] }, { flush: true });
    ops.push({ put: [hex('key-01200'), hex('only-in-the-wal')] }, { del: hex('key-00002') });
    nativeWrite(dir, ops, { tableFormatVersion: fv, tableBlockSize: 1024 });
    expect(readdirSync(dir).some((f) => f.endsWith('.log') && statSync(join(dir, f)).size > 0)).toBe(true);

    const ours = await readAll(dir);
    expect(ours).toEqual(nativeScan(dir));
    expect(ours).toContain(`0x${hex('key-01200').toUpperCase()} : 0x${hex('only-in-the-wal').toUpperCase()}`);
    const db = await RocksDb.open(localImage(dir));
    expect(new Set(db.summary.tables.map((t) => t.formatVersion))).toEqual(new Set([fv]));
    expect(new Set(db.summary.tables.map((t) => t.checksum))).toEqual(new Set(['xxh3']));
    expect(await db.verifyMetaBlocks()).toBeGreaterThan(0); // the bloom filters
  });
});
