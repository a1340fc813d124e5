import { createRequire } from 'node:module';
import type { IHasher } from 'hash-wasm';

/**
 * Block checksums (FORMAT.md §1.4): the 32-bit value RocksDB stores after
 * every block and in the v6+ footer, and the masked CRC32C of log records.
 *
 * CRC32C goes through @node-rs/crc32 (N-API, prebuilt; ~4× hash-wasm on
 * 16 KiB blocks, ../../../shared/design/ecosystem.md §5), loaded on first
 * use, with hash-wasm's CRC32C as the fallback where it has no binary (or
 * with KSP_PURE_JS_CODECS=1). xxHash32, XXH64 and XXH3 are hash-wasm
 * (WebAssembly). The hash-wasm hashers are created once, asynchronously, by
 * `loadChecksums()`; after that every call is synchronous, so block
 * decoding never awaits per block.
 */

type Crc32cNative = (input: Uint8Array, initial?: number) => number;
let nativeCrc: Crc32cNative | null | undefined;

function crcNative(): Crc32cNative | null {
  if (nativeCrc === undefined) {
    nativeCrc = null;
    if (process.env.KSP_PURE_JS_CODECS !== '1') {
      try {
        nativeCrc = (createRequire(import.meta.url)('@node-rs/crc32') as { crc32c: Crc32cNative }).crc32c;
      } catch {
        // No binary for this platform: hash-wasm below.
      }
    }
  }
  return nativeCrc;
}

/** Which library computes each checksum in this process. */
export function checksumImplementations(): Record<string, string> {
  return {
    crc32c: crcNative() ? '@node-rs/crc32 (N-API)' : 'hash-wasm (WebAssembly)',
    'xxhash, xxhash64, xxh3': 'hash-wasm (WebAssembly)',
  };
}

export const enum ChecksumType {
  None = 0,
  CRC32c = 1,
  xxHash = 2,
  xxHash64 = 3,
  XXH3 = 4,
}

export const CHECKSUM_NAMES = ['none', 'crc32c', 'xxhash', 'xxhash64', 'xxh3'] as const;

type HasherName = 'crc32c' | 'xxh32' | 'xxh64' | 'xxh3';

const hashers: Partial<Record<HasherName, IHasher>> = {};
const loading = new Map<HasherName, Promise<void>>();

/**
 * Each hasher from its own hash-wasm bundle (a few KiB), not the package's
 * index (all of its algorithms, ~280 KiB to compile): a worker that checks
 * XXH3 blocks loads only XXH3. The bundles are CommonJS with no "exports"
 * map, so they are required by path.
 */
const BUNDLES: Record<HasherName, () => Promise<IHasher>> = {
  crc32c: () => (req('hash-wasm/dist/crc32.umd.min.js') as { createCRC32(poly: number): Promise<IHasher> }).createCRC32(0x82f63b78),
  xxh32: () => (req('hash-wasm/dist/xxhash32.umd.min.js') as { createXXHash32(seed: number): Promise<IHasher> }).createXXHash32(0),
  xxh64: () => (req('hash-wasm/dist/xxhash64.umd.min.js') as { createXXHash64(lo: number, hi: number): Promise<IHasher> }).createXXHash64(0, 0),
  xxh3: () => (req('hash-wasm/dist/xxhash3.umd.min.js') as { createXXHash3(lo: number, hi: number): Promise<IHasher> }).createXXHash3(0, 0),
};

const req = createRequire(import.meta.url);

function hasherFor(type: ChecksumType): HasherName | null {
  switch (type) {
    case ChecksumType.CRC32c:
      return crcNative() ? null : 'crc32c';
    case ChecksumType.xxHash:
      return 'xxh32';
    case ChecksumType.xxHash64:
      return 'xxh64';
    case ChecksumType.XXH3:
      return 'xxh3';
    default:
      return null;
  }
}

/**
 * Makes the hashers for `types` ready (default: every type); after that
 * every checksum of those types is computed synchronously. CRC32C needs
 * nothing loaded when the native library is there.
 */
export async function loadChecksums(types: ChecksumType[] = [ChecksumType.CRC32c, ChecksumType.xxHash, ChecksumType.xxHash64, ChecksumType.XXH3]): Promise<void> {
  await Promise.all(types.map((t) => {
    const name = hasherFor(t);
    if (name === null || hashers[name]) return undefined;
    let p = loading.get(name);
    if (!p) {
      p = BUNDLES[name]().then((h) => {
        hashers[name] = h;
      });
      loading.set(name, p);
    }
    return p;
  }));
}

function h(name: HasherName): IHasher {
  const x = hashers[name];
  if (!x) throw new Error(`loadChecksums() must complete before ${name} checksums are computed`);
  return x;
}

/** Low 32 bits of a hasher's digest (hash-wasm digests are big-endian). */
function low32(hasher: IHasher, ...parts: Uint8Array[]): number {
  hasher.init();
  for (const p of parts) hasher.update(p);
  const d = hasher.digest('binary');
  return ((d[d.length - 4]! << 24) | (d[d.length - 3]! << 16) | (d[d.length - 2]! << 8) | d[d.length - 1]!) >>> 0;
}

export function crc32c(...parts: Uint8Array[]): number {
  const n = crcNative();
  if (n) {
    let c = 0;
    for (const p of parts) c = n(p, c);
    return c >>> 0;
  }
  return low32(h('crc32c'), ...parts);
}

/** RocksDB/LevelDB store CRCs "masked", so a CRC of data holding CRCs stays well distributed. */
export function maskCrc(c: number): number {
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

export function unmaskCrc(m: number): number {
  const rot = (m - 0xa282ead8) >>> 0;
  return ((rot >>> 17) | (rot << 15)) >>> 0;
}

const ONE = new Uint8Array(1);

/**
 * `ComputeBuiltinChecksumWithLastByte`: the checksum of `data ‖ lastByte`,
 * where lastByte is the block's compression type (or the footer's final
 * magic byte).
 */
export function builtinChecksum(type: number, data: Uint8Array, lastByte: number): number {
  switch (type) {
    case ChecksumType.None:
      return 0;
    case ChecksumType.CRC32c: {
      ONE[0] = lastByte;
      const n = crcNative();
      return maskCrc(n ? n(ONE, n(data, 0)) >>> 0 : crc32c(data, ONE));
    }
    case ChecksumType.xxHash:
      ONE[0] = lastByte;
      return low32(h('xxh32'), data, ONE);
    case ChecksumType.xxHash64:
      ONE[0] = lastByte;
      return low32(h('xxh64'), data, ONE);
    case ChecksumType.XXH3: {
      // XXH3 hashes the payload alone and folds the last byte in by
      // multiplication.
      const v = low32(h('xxh3'), data);
      return (v ^ Math.imul(lastByte, 0x6b9083d9)) >>> 0;
    }
    default:
      throw new Error(`checksum type ${type}`);
  }
}

/** format_version ≥ 6: a block's stored checksum depends on where it sits. */
export function contextModifier(base: number, offset: number): number {
  if (base === 0) return 0;
  const lo = offset >>> 0;
  const hi = Math.floor(offset / 2 ** 32) >>> 0;
  return (base ^ ((lo + hi) >>> 0)) >>> 0;
}
