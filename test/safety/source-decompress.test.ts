import { execFileSync } from 'node:child_process';
import { deflateRawSync } from 'node:zlib';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KspError } from '../../src/errors.js';
import { decompressBlock, DEFAULT_MAX_BLOCK } from '../../src/rocksdb/compression.js';
import { ROOT } from '../support/env.js';

/**
 * Issue 12, item 7: every decompression is capped. A declared size above the
 * documented block limit is refused before any allocation; bzip2 and zlib,
 * which carry no size of their own, are streamed against the declared size
 * and stop at it. The error says "decompressed size exceeds limit".
 */

/**
 * A bzip2 stream of 1 GiB of zero bytes (785 bytes), made once with
 * `head -c 1073741824 /dev/zero | bzip2 -9 | base64 -w0`.
 */
const BZIP2_BOMB_1GIB = 'QlpoOTFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1lIfF/JAIpSyADAAAAEAAggADDMBSmmkSJDYUSJDxdyRThQkPaI5AI=';
/** bzip2 of "ksp bzip2 block, ksp bzip2 block, ksp bzip2 block". */
const BZIP2_SMALL = 'QlpoOTFBWSZTWcNF4z0AAA4ZgEAEEAAYLMgQIAAhtU0yMnqEDQNCDDa6oJRgyypVnhjKJPi7kinChIYaLxno';
const SMALL_TEXT = 'ksp bzip2 block, ksp bzip2 block, ksp bzip2 block';

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

const origin = { file: 'bomb.sst', base: 0, what: 'data block at 0' };
const block = (declared: number, payload: Buffer): Buffer => Buffer.concat([varint(declared), payload]);

function refusal(f: () => unknown): KspError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(KspError);
    return e as KspError;
  }
  throw new Error('expected a refusal');
}

describe('bounded decompression', () => {
  it('a valid bzip2 block still decodes', () => {
    const out = decompressBlock(0x03, block(SMALL_TEXT.length, Buffer.from(BZIP2_SMALL, 'base64')), origin);
    expect(out.toString()).toBe(SMALL_TEXT);
  });

  it('a bzip2 bomb declaring a small size stops at it, at once', () => {
    const started = Date.now();
    const e = refusal(() => decompressBlock(0x03, block(4096, Buffer.from(BZIP2_BOMB_1GIB, 'base64')), origin));
    expect(e.code).toBe('DECOMPRESS_LIMIT');
    expect(e.message).toContain('decompressed size exceeds limit');
    expect(e.message).toContain('bomb.sst');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('a bzip2 bomb declaring its true size (1 GiB) is refused before anything is allocated', () => {
    const e = refusal(() => decompressBlock(0x03, block(1024 ** 3, Buffer.from(BZIP2_BOMB_1GIB, 'base64')), origin));
    expect(e.code).toBe('DECOMPRESS_LIMIT');
    expect(e.message).toContain('decompressed size exceeds limit');
    expect(e.data.expected).toBe(`<= ${DEFAULT_MAX_BLOCK}`);
  });

  it('a zlib bomb stops at the declared size', () => {
    const bomb = deflateRawSync(Buffer.alloc(32 * 1024 * 1024));
    const e = refusal(() => decompressBlock(0x02, block(4096, bomb), origin));
    expect(e.code).toBe('DECOMPRESS_LIMIT');
    expect(e.message).toContain('decompressed size exceeds limit');
  });

  it('ZSTD data inflating past its declared size is refused', async () => {
    const { compress } = await import('@mongodb-js/zstd');
    const z = await compress(Buffer.alloc(1024 * 1024), 3);
    const e = refusal(() => decompressBlock(0x07, block(1000, z), origin));
    expect(['DECOMPRESS_LIMIT', 'ROCKSDB_CORRUPT']).toContain(e.code);
  });

  it('the worst bzip2 bomb under the limit keeps RSS far below 256 MB', () => {
    // In a fresh process, so the figure is the decompression's alone: the bomb
    // declares 32 MiB (below the limit, and below the 50,000:1 ratio bzip2 is
    // allowed for its 785 bytes) and inflates 32 times past it.
    const script = `
      import { decompressBlock, DEFAULT_MAX_BLOCK } from ${JSON.stringify(join(ROOT, 'dist', 'rocksdb', 'compression.js'))};
      const v = []; let n = 32 * 1024 * 1024; while (n >= 0x80) { v.push((n & 0x7f) | 0x80); n = Math.floor(n / 128); } v.push(n);
      const payload = Buffer.concat([Buffer.from(v), Buffer.from(${JSON.stringify(BZIP2_BOMB_1GIB)}, 'base64')]);
      let code = 'none';
      try { decompressBlock(3, payload, { file: 'bomb.sst', base: 0, what: 'data block' }); } catch (e) { code = e.code; }
      console.log(JSON.stringify({ code, maxRssKb: process.resourceUsage().maxRSS }));
    `;
    const r = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as { code: string; maxRssKb: number };
    expect(r.code).toBe('DECOMPRESS_LIMIT');
    expect(r.maxRssKb / 1024).toBeLessThan(160);
  }, 120_000);
});
