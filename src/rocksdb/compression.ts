import { deflateRawSync, inflateRawSync } from 'node:zlib';
import Bunzip from 'seek-bzip';
import { decompress as zstdDecompress } from 'fzstd';
import { compressBlock as lz4CompressBlock, compressBound as lz4CompressBound, decompressBlock as lz4DecompressBlock } from 'lz4js';
import { compress as snappyCompress, uncompress as snappyUncompress } from 'snappyjs';
import { KspError } from '../errors.js';
import { Cursor, type Origin } from './coding.js';

/**
 * Block compression (FORMAT.md §1.5). Each compression type byte maps to one
 * `Decompressor`; the libraries behind them are pure JavaScript (snappyjs,
 * lz4js, fzstd, seek-bzip) or Node's own zlib, so nothing needs a native
 * build. Swapping a library (e.g. to node:zlib's zstd on Node ≥ 22.15) only
 * touches this file.
 *
 * The write side (`compressor`) covers the types ksp writes: Snappy, zlib,
 * LZ4 and ZSTD. ZSTD encoding needs native code (fzstd only decodes):
 * @mongodb-js/zstd 1.2.2, prebuilt and asynchronous, so `compress` may return
 * a promise and the table writer keeps several blocks in flight.
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
/**
 * The documented limit on one block's uncompressed size: 64 MiB, or
 * KSP_MAX_BLOCK_BYTES. RocksDB blocks are a few KiB (block_size, 4 KiB by
 * default, 16 KiB in the engine's options); only a single entry larger than
 * that makes a larger block. A declared size above the limit is refused
 * before anything is allocated, and codecs without a size of their own
 * (bzip2, zlib) are streamed against the declared size and stop at it, so a
 * decompression bomb costs at most this much memory.
 */
export const DEFAULT_MAX_BLOCK = 64 * 1024 * 1024;

export function maxBlockBytes(): number {
  const v = Number(process.env.KSP_MAX_BLOCK_BYTES);
  // Never above what one Buffer can hold.
  return Number.isSafeInteger(v) && v > 0 ? Math.min(v, 0x7fff_ffff) : DEFAULT_MAX_BLOCK;
}

/** Thrown by a decoder that would write past the declared size. */
class OverLimit extends Error {}

/**
 * bzip2 decoded byte by byte into exactly `size` bytes: seek-bzip given a
 * plain size would keep decoding (silently dropping bytes past the end) for
 * as long as the bomb lasts; this sink stops at the first byte too many.
 */
function bunzip(p: Uint8Array, size: number): Uint8Array {
  const buffer = Buffer.allocUnsafe(size);
  let pos = 0;
  const sink = {
    writeByte(b: number): void {
      if (pos >= size) throw new OverLimit();
      buffer[pos++] = b;
    },
  };
  Bunzip.decode(p, sink);
  return pos === size ? buffer : buffer.subarray(0, pos);
}

/** zlib inflated in chunks up to `size` bytes: node stops at maxOutputLength. */
function inflate(p: Uint8Array, size: number): Uint8Array {
  try {
    // One byte more than declared, so "too much" is told apart from "exactly".
    return inflateRawSync(p, { maxOutputLength: size + 1 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new OverLimit();
    throw e;
  }
}

const decoders: Record<string, Decompressor> = {
  snappy: { name: 'snappy', decompress: (p, size) => snappyUncompress(p, size) },
  zlib: { name: 'zlib', decompress: inflate },
  bzip2: { name: 'bzip2', decompress: bunzip },
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
  const max = maxBlockBytes();
  if (size > max) {
    throw new KspError('DECOMPRESS_LIMIT', `${origin.file}: ${origin.what}: decompressed size exceeds limit: the ${dec.name} block declares ${size} bytes, the limit is ${max} (KSP_MAX_BLOCK_BYTES)`, {
      file: origin.file, offset: origin.base, expected: `<= ${max}`, found: size,
    });
  }
  const limit = payload.length * MAX_RATIO[dec.name]! + 1024;
  if (size > limit) {
    throw new KspError('ROCKSDB_CORRUPT', `${origin.file}: ${origin.what}: declares ${size} uncompressed bytes from ${payload.length} ${dec.name} bytes, more than the codec can produce`, {
      file: origin.file, offset: origin.base, expected: `<= ${limit}`, found: size,
    });
  }
  let out: Uint8Array;
  try {
    out = dec.decompress(payload, size);
  } catch (e) {
    // fzstd writing past the buffer it was given fails with a RangeError.
    if (e instanceof OverLimit || (dec.name === 'zstd' && e instanceof RangeError)) {
      throw new KspError('DECOMPRESS_LIMIT', `${origin.file}: ${origin.what}: decompressed size exceeds limit: the ${dec.name} data inflates past the ${size} bytes the block declares`, {
        file: origin.file, offset: origin.base, expected: size,
      });
    }
    throw new KspError('ROCKSDB_CORRUPT', `${origin.file}: ${origin.what}: ${dec.name} data does not decompress: ${(e as Error).message ?? e}`, { file: origin.file, offset: origin.base });
  }
  if (out.length !== size) {
    throw new KspError('ROCKSDB_CORRUPT', `${origin.file}: ${origin.what}: ${dec.name} data decompressed to ${out.length} bytes, the block declares ${size}`, {
      file: origin.file, offset: origin.base, expected: size, found: out.length,
    });
  }
  return Buffer.isBuffer(out) ? out : Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** Compression types ksp writes, by CLI name: the type byte and the `rocksdb.compression` property value. */
export const WRITABLE_COMPRESSIONS = {
  none: { type: 0x00, property: 'NoCompression' },
  snappy: { type: 0x01, property: 'Snappy' },
  zlib: { type: 0x02, property: 'Zlib' },
  lz4: { type: 0x04, property: 'LZ4' },
  zstd: { type: 0x07, property: 'ZSTD' },
} as const;

export type WritableCompression = keyof typeof WRITABLE_COMPRESSIONS;

export interface Compressor {
  readonly type: number;
  /** The stored payload with its format_version ≥ 2 framing. */
  compress(raw: Buffer): Buffer | Promise<Buffer>;
}

function sizePrefixed(size: number, payload: Uint8Array): Buffer {
  const prefix: number[] = [];
  let v = size;
  while (v >= 0x80) {
    prefix.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  prefix.push(v);
  const out = Buffer.allocUnsafe(prefix.length + payload.length);
  out.set(prefix, 0);
  out.set(payload, prefix.length);
  return out;
}

type ZstdModule = { compress(b: Buffer, level?: number): Promise<Buffer> };
let zstd: Promise<ZstdModule> | null = null;

/** The block compressor for a writable type; null for none. */
export function compressor(name: WritableCompression): Compressor | null {
  const { type } = WRITABLE_COMPRESSIONS[name];
  switch (name) {
    case 'none':
      return null;
    case 'snappy':
      // Snappy carries its own length; RocksDB adds no prefix.
      return { type, compress: (raw) => { const c = snappyCompress(raw); return Buffer.from(c.buffer, c.byteOffset, c.byteLength); } };
    case 'zlib':
      // RocksDB inflates with a 16 KiB window (windowBits -14): a larger
      // window could produce distances it cannot resolve.
      return { type, compress: (raw) => sizePrefixed(raw.length, deflateRawSync(raw, { windowBits: 14 })) };
    case 'lz4': {
      const table = new Uint32Array(1 << 16);
      return {
        type,
        compress: (raw) => {
          const dst = Buffer.allocUnsafe(lz4CompressBound(raw.length));
          // lz4js trusts its hash table: positions left from another block
          // produce wrong matches, so it is cleared for every block.
          table.fill(0);
          const n = lz4CompressBlock(raw, dst, 0, raw.length, table);
          return sizePrefixed(raw.length, dst.subarray(0, n));
        },
      };
    }
    case 'zstd':
      zstd ??= import('@mongodb-js/zstd') as Promise<ZstdModule>;
      // Level 3: ZSTD's default, which RocksDB uses when no level is set.
      return { type, compress: async (raw) => sizePrefixed(raw.length, await (await zstd!).compress(raw, 3)) };
  }
}
