import { inflateRawSync } from 'node:zlib';
import Bunzip from 'seek-bzip';
import { decompress as zstdDecompress } from 'fzstd';
import { decompressBlock as lz4DecompressBlock } from 'lz4js';
import { uncompress as snappyUncompress } from 'snappyjs';
import { KspError } from '../errors.js';
import { Cursor, type Origin } from './coding.js';

/**
 * Block compression (FORMAT.md §1.5). Each compression type byte maps to one
 * `Decompressor`; the libraries behind them are pure JavaScript (snappyjs,
 * lz4js, fzstd, seek-bzip) or Node's own zlib, so nothing needs a native
 * build. Swapping a library (e.g. to node:zlib's zstd on Node ≥ 22.15) only
 * touches this file.
 *
 * format_version ≥ 2 framing: zlib, bzip2, LZ4, LZ4HC and ZSTD payloads start
 * with a varint32 of the uncompressed size; Snappy carries its own length.
 */

export const COMPRESSION_NAMES: Record<number, string> = {
  0x00: 'none',
  0x01: 'snappy',
  0x02: 'zlib',
  0x03: 'bzip2',
  0x04: 'lz4',
  0x05: 'lz4hc',
  0x06: 'xpress',
  0x07: 'zstd',
  0x40: 'zstd',
};

export interface Decompressor {
  readonly name: string;
  /** Decodes `payload` (size prefix already removed) into exactly `size` bytes. */
  decompress(payload: Uint8Array, size: number): Uint8Array;
}

/**
 * An upper bound on how much one byte can expand, per codec, so a declared
 * size is checked before anything is allocated for it. The bounds are the
 * codecs' own limits (a Snappy copy op emits ≤ 64 bytes from 2; an LZ4 length
 * byte adds ≤ 255; deflate ≤ 1032:1), generous for bzip2 and ZSTD.
 */
const MAX_RATIO: Record<string, number> = { snappy: 64, lz4: 256, lz4hc: 256, zlib: 1032, bzip2: 50_000, zstd: 50_000 };
/** One block never exceeds what one Buffer can hold. */
const MAX_BLOCK = 0x7fff_ffff;

const decoders: Record<string, Decompressor> = {
  snappy: { name: 'snappy', decompress: (p, size) => snappyUncompress(p, size) },
  zlib: { name: 'zlib', decompress: (p, size) => inflateRawSync(p, { maxOutputLength: Math.max(1, size) }) },
  bzip2: { name: 'bzip2', decompress: (p, size) => Bunzip.decode(p, size) },
  lz4: { name: 'lz4', decompress: lz4 },
  lz4hc: { name: 'lz4hc', decompress: lz4 },
  zstd: { name: 'zstd', decompress: (p, size) => zstdDecompress(p, new Uint8Array(size)) },
};

function lz4(p: Uint8Array, size: number): Uint8Array {
  const out = Buffer.allocUnsafe(size);
  const n = lz4DecompressBlock(p, out, 0, p.length, 0);
  if (n !== size) throw new Error(`LZ4 block decoded to ${n} bytes`);
  return out;
}

/**
 * Decompresses one stored block. `origin` names the block in errors; the
 * caller has already verified its checksum.
 */
export function decompressBlock(type: number, stored: Buffer, origin: Origin): Buffer {
  if (type === 0) return stored;
  const name = COMPRESSION_NAMES[type];
  const dec = name ? decoders[name] : undefined;
  if (!dec) {
    const what = name ?? (type >= 0x80 ? `custom compression 0x${type.toString(16)} (needs the writer's CompressionManager)` : `compression type 0x${type.toString(16)}`);
    throw new KspError('ROCKSDB_UNSUPPORTED', `${origin.file}: ${origin.what}: ${what} is not supported`, { file: origin.file, offset: origin.base, found: type });
  }
  let size: number;
  let payload: Buffer = stored;
  if (dec.name === 'snappy') {
    size = new Cursor(stored, origin).varint32();
  } else {
    const c = new Cursor(stored, origin);
    size = c.varint32();
    payload = stored.subarray(c.pos);
  }
  const limit = Math.min(MAX_BLOCK, payload.length * MAX_RATIO[dec.name]! + 1024);
  if (size > limit) {
    throw new KspError('ROCKSDB_CORRUPT', `${origin.file}: ${origin.what}: declares ${size} uncompressed bytes from ${payload.length} ${dec.name} bytes, more than the codec can produce`, {
      file: origin.file, offset: origin.base, expected: `<= ${limit}`, found: size,
    });
  }
  let out: Uint8Array;
  try {
    out = dec.decompress(payload, size);
  } catch (e) {
    throw new KspError('ROCKSDB_CORRUPT', `${origin.file}: ${origin.what}: ${dec.name} data does not decompress: ${(e as Error).message ?? e}`, { file: origin.file, offset: origin.base });
  }
  if (out.length !== size) {
    throw new KspError('ROCKSDB_CORRUPT', `${origin.file}: ${origin.what}: ${dec.name} data decompressed to ${out.length} bytes, the block declares ${size}`, {
      file: origin.file, offset: origin.base, expected: size, found: out.length,
    });
  }
  return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}
