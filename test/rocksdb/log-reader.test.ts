/**
 * The log reader reads 1 MiB at a time: records that cross its 32-block
 * chunks come out whole, and a long zero-filled (preallocated) stretch is
 * skipped block by block, as RocksDB's log::Reader does, in bounded time.
 */
import { mkdtempSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadChecksums } from '../../src/rocksdb/checksum.js';
import { fileAt } from '../../src/rocksdb/file.js';
import { readLog, LOG_BLOCK } from '../../src/rocksdb/log-reader.js';
import { encodeLog } from '../../src/rocksdb/log-writer.js';
import { locate } from '../../src/storage/uri.js';

let dir: string;
beforeAll(async () => {
  await loadChecksums();
  dir = mkdtempSync(join(tmpdir(), 'ksp-log-reader-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function records(file: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const r of readLog(fileAt(locate(file), statSync(file).size))) out.push(r.payload);
  return out;
}

describe('readLog', () => {
  it('joins records that cross 1 MiB read chunks', async () => {
    const recs = Array.from({ length: 40 }, (_, i) => Buffer.alloc(70_000 + i, i));
    const file = join(dir, 'chunks.log');
    writeFileSync(file, encodeLog(recs));
    expect(statSync(file).size).toBeGreaterThan(2 * 1024 * 1024);
    const got = await records(file);
    expect(got.length).toBe(recs.length);
    got.forEach((b, i) => expect(b.equals(recs[i]!)).toBe(true));
  });

  it('skips a 1 GiB sparse zero tail quickly, and reads a record in a block after zeros', async () => {
    const tail = join(dir, 'tail.log');
    writeFileSync(tail, encodeLog([Buffer.from('a'), Buffer.from('b')]));
    truncateSync(tail, 1024 ** 3);
    const t0 = performance.now();
    expect((await records(tail)).map(String)).toEqual(['a', 'b']);
    expect(performance.now() - t0).toBeLessThan(30_000);

    // Zeros end only their block: a record in a later block is still read.
    const later = join(dir, 'later.log');
    const first = encodeLog([Buffer.from('x')]);
    const next = encodeLog([Buffer.from('y')]);
    writeFileSync(later, Buffer.concat([first, Buffer.alloc(40 * LOG_BLOCK - first.length), next]));
    expect((await records(later)).map(String)).toEqual(['x', 'y']);
  }, 60_000);
});
