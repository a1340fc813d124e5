import { createRequire } from 'node:module';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { KspError } from '../errors.js';
import { checksumImplementations } from './checksum.js';
import { Cursor, type Origin } from './coding.js';

/**
 * Block compression (FORMAT.md §1.5). Each compression type byte maps to one
 * `Decompressor`. Snappy and LZ4 decode through the maintained N-API
 * packages `snappy` and `lz4-napi` (prebuilt, no install scripts; about 2–5×
 * the pure-JS codecs on 16 KiB blocks, ../../../shared/design/ecosystem.md
 * §4), each loaded on first use; where a platform has no binary (or with
 * KSP_PURE_JS_CODECS=1) the pure-JS snappyjs and lz4js decode instead.
 * ZSTD (fzstd), bzip2 (seek-bzip) are pure JS, zlib is Node's own. Every
 * module is loaded only when a block of its type arrives, so a worker that
 * reads Snappy tables never compiles the others. `codecImplementations()`
 * says which one is in use (`ksp --version --verbose`).
 *
 * The write side (`compressor`) stays on the pure-JS encoders for Snappy
 * and LZ4: the native encoders choose other (equally valid) matches, and the
 * tables ksp writes must stay byte-identical whatever the platform. ZSTD
 * encoding needs native code (fzstd only decodes): @mongodb-js/zstd 1.2.2,
 * prebuilt and asynchronous, so `compress` may return a promise and the
 * table writer keeps several blocks in flight.
 *
 * format_version ≥ 2 framing: zlib, bzip2, LZ4, LZ4HC and ZSTD payloads start
 * with a varint32 of the uncompressed size; Snappy carries its own length.
 */

const require = createRequire(import.meta.url);

/** Native codecs unless KSP_PURE_JS_CODECS=1 (tests of the fallbacks, or a broken binary). */
function nativeAllowed(): boolean {
  return process.env.KSP_PURE_JS_CODECS !== '1';
}

/** Loads a CommonJS module on first use; null when it cannot load (no binary for this platform). */
function tryRequire<T>(name: string): T | null {
  try {
    return require(name) as T;
  } catch {
    return null;
  }
}

type SnappyNative = { uncompressSync(b: Uint8Array, o: { asBuffer: true; copyOutputData: true }): Buffer };
type Lz4Native = { uncompressSync(b: Uint8Array): Buffer };
type SnappyJs = typeof import('snappyjs');
type Lz4Js = typeof import('lz4js');

let snappyNative: SnappyNative | null | undefined;
let lz4Native: Lz4Native | null | undefined;
let snappyJs: SnappyJs | undefined;
let lz4Js: Lz4Js | undefined;

function nativeSnappy(): SnappyNative | null {
  if (snappyNative === undefined) snappyNative = nativeAllowed() ? tryRequire<SnappyNative>('snappy') : null;
  return snappyNative;
}

function nativeLz4(): Lz4Native | null {
  if (lz4Native === undefined) lz4Native = nativeAllowed() ? tryRequire<Lz4Native>('lz4-napi') : null;
  return lz4Native;
}

function jsSnappy(): SnappyJs {
  return (snappyJs ??= require('snappyjs') as SnappyJs);
}

function jsLz4(): Lz4Js {
  return (lz4Js ??= require('lz4js') as Lz4Js);
}

/** Which library decodes (and encodes) each codec and checksum in this process, loading them to find out. */
export function codecImplementations(): Record<string, string> {
  return {
    ...checksumImplementations(),
    snappy: nativeSnappy() ? 'snappy (N-API) to decode, snappyjs to encode' : 'snappyjs (pure JS)',
    lz4: nativeLz4() ? 'lz4-napi (N-API) to decode, lz4js to encode' : 'lz4js (pure JS)',
    zstd: 'fzstd (pure JS) to decode, @mongodb-js/zstd (N-API) to encode',
    zlib: 'node:zlib',
    bzip2: 'seek-bzip (pure JS), decode only',
  };
}

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
  (require('seek-bzip') as { decode(input: Uint8Array, output: typeof sink): unknown }).decode(p, sink);
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

/**
 * Snappy: the payload carries its own length, which `decompressBlock` has
 * already checked against the limits, so the native decoder allocates no
 * more than that.
 */
function snappy(p: Uint8Array, size: number): Uint8Array {
  const n = nativeSnappy();
  // copyOutputData: a plain Buffer, not an external one (external buffers
  // are released only by GC, which makes throughput erratic).
  if (n) return n.uncompressSync(p, { asBuffer: true, copyOutputData: true });
  return jsSnappy().uncompress(p, size);
}

const decoders: Record<string, Decompressor> = {
  snappy: { name: 'snappy', decompress: snappy },
  zlib: { name: 'zlib', decompress: inflate },
  bzip2: { name: 'bzip2', decompress: bunzip },
  lz4: { name: 'lz4', decompress: lz4 },
  lz4hc: { name: 'lz4hc', decompress: lz4 },
  zstd: { name: 'zstd', decompress: (p, size) => (require('fzstd') as { decompress(p: Uint8Array, out: Uint8Array): Uint8Array }).decompress(p, new Uint8Array(size)) },
};

/**
 * LZ4 raw block of a declared `size`. lz4-napi (lz4_flex) expects its own
 * framing, a 4-byte little-endian size before the block, so the block is
 * copied behind one (a copy of a compressed block costs far less than the
 * decode it speeds up). lz4_flex stops with an error rather than write past
 * the size it is given, so the declared-size cap holds for it too.
 */
function lz4(p: Uint8Array, size: number): Uint8Array {
  const n = nativeLz4();
  if (n) {
    const framed = Buffer.allocUnsafe(4 + p.length);
    framed.writeUInt32LE(size, 0);
    framed.set(p, 4);
    return n.uncompressSync(framed);
  }
  const out = Buffer.allocUnsafe(size);
  const got = jsLz4().decompressBlock(p, out, 0, p.length, 0);
  if (got !== size) throw new Error(`LZ4 block decoded to ${got} bytes`);
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
      return { type, compress: (raw) => { const c = jsSnappy().compress(raw); return Buffer.from(c.buffer, c.byteOffset, c.byteLength); } };
    case 'zlib':
      // RocksDB inflates with a 16 KiB window (windowBits -14): a larger
      // window could produce distances it cannot resolve.
      return { type, compress: (raw) => sizePrefixed(raw.length, deflateRawSync(raw, { windowBits: 14 })) };
    case 'lz4': {
      const table = new Uint32Array(1 << 16);
      const { compressBlock: lz4CompressBlock, compressBound: lz4CompressBound } = jsLz4();
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
