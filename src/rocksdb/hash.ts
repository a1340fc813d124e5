/**
 * The two hashes RocksDB's Bloom filters are defined by (FORMAT.md §2.7).
 * They are part of the file format: a filter built with any other hash makes
 * RocksDB answer "not found" for keys that exist.
 *
 * - `hash64`: RocksDB's `Hash64`/`GetSliceHash64`, the *preview* XXH3
 *   (xxHash 0.7.2, "XXPH3") with seed 0, plus RocksDB's own rule for the
 *   empty input. It is not the final XXH3 of xxHash 0.8 (whose avalanche
 *   constant and mid-size rounds differ), so no xxHash library gives it.
 *   Used by the format_version ≥ 5 FastLocalBloom filter.
 * - `legacyBloomHash`: the 32-bit MurmurHash1 variant `Hash(key, 0xbc9f1d34)`
 *   of the format_version < 5 (legacy) Bloom filter.
 *
 * 64-bit values are carried as (hi, lo) pairs of unsigned 32-bit numbers:
 * BigInt would cost microseconds per key, and filters hash every key.
 */

// Results of the 64-bit helpers, to avoid allocating a pair per operation.
let rHi = 0;
let rLo = 0;

const TWO32 = 4294967296;

/**
 * Full product of two unsigned 32-bit numbers into (rHi, rLo), from four
 * 16×16-bit partial products (each below 2^32, so shifts and masks stay
 * exact): integer operations only, about twice as fast as splitting with
 * division and Math.floor, and filters hash every key.
 */
function mul32(a: number, b: number): void {
  const a0 = a & 0xffff;
  const a1 = a >>> 16;
  const b0 = b & 0xffff;
  const b1 = b >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  rLo = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  rHi = (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0;
}

/** Low 64 bits of a 64×64 product. */
function mul64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  mul32(aLo, bLo);
  rHi = (rHi + Math.imul(aLo, bHi) + Math.imul(aHi, bLo)) >>> 0;
}

/** The 128-bit product of two 64-bit values, its halves XORed (`XXH3_mul128_fold64`). */
function mulFold(aHi: number, aLo: number, bHi: number, bLo: number): void {
  mul32(aLo, bLo);
  const llH = rHi;
  const llL = rLo;
  mul32(aLo, bHi);
  const lhH = rHi;
  const lhL = rLo;
  mul32(aHi, bLo);
  const hlH = rHi;
  const hlL = rLo;
  mul32(aHi, bHi);
  const hhH = rHi;
  const hhL = rLo;
  // cross = (ll >> 32) + (hl & 0xffffffff) + lh
  let crossLo = llH + hlL + lhL;
  const crossHi = lhH + Math.floor(crossLo / TWO32);
  crossLo >>>= 0;
  // upper = (hl >> 32) + (cross >> 32) + hh; lower = (cross << 32) | (ll & 0xffffffff)
  let upLo = hhL + hlH + crossHi;
  const upHi = (hhH + Math.floor(upLo / TWO32)) >>> 0;
  upLo >>>= 0;
  rHi = (crossLo ^ upHi) >>> 0;
  rLo = (llL ^ upLo) >>> 0;
}

const P32_1 = 0x9e3779b1;
const P64_1 = [0x9e3779b1, 0x85ebca87] as const;
const P64_2 = [0xc2b2ae3d, 0x27d4eb4f] as const;
const P64_3 = [0x165667b1, 0x9e3779f9] as const;
const P64_4 = [0x85ebca77, 0xc2b2ae63] as const;
const P64_5 = [0x27d4eb2f, 0x165667c5] as const;
const P32_2 = 0x85ebca77;
const P32_3 = 0xc2b2ae3d;

/** xxHash's default 192-byte secret (the same bytes in the preview and the final XXH3). */
const SECRET = Buffer.from(
  'b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671fcb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c' +
  '3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364' +
  'eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e',
  'hex',
);

const u32 = (b: Uint8Array, o: number): number => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;

/** h ^= h >> 37; h *= PRIME64_3; h ^= h >> 32, into (rHi, rLo). */
function avalanche(hi: number, lo: number): void {
  lo = (lo ^ (hi >>> 5)) >>> 0;
  mul64(hi, lo, P64_3[0], P64_3[1]);
  rLo = (rLo ^ rHi) >>> 0;
}

/** XXH3_mix16B with seed 0: fold(in[0..8) ^ secret[0..8), in[8..16) ^ secret[8..16)). */
function mix16(input: Uint8Array, i: number, s: number): void {
  mulFold(
    (u32(input, i + 4) ^ u32(SECRET, s + 4)) >>> 0, (u32(input, i) ^ u32(SECRET, s)) >>> 0,
    (u32(input, i + 12) ^ u32(SECRET, s + 12)) >>> 0, (u32(input, i + 8) ^ u32(SECRET, s + 8)) >>> 0,
  );
}

/** 64-bit addition of (rHi, rLo) into an accumulator pair. */
function addInto(acc: Uint32Array | number[], i: number): void {
  const lo = acc[i + 1]! + rLo;
  acc[i + 1] = lo >>> 0;
  acc[i] = (acc[i]! + rHi + Math.floor(lo / TWO32)) >>> 0;
}

const acc2 = [0, 0];

function len0to16(input: Uint8Array, len: number): void {
  if (len > 8) {
    // input_lo = read64(in) ^ read64(secret); input_hi = read64(in+len-8) ^ read64(secret+8)
    const aHi = (u32(input, 4) ^ u32(SECRET, 4)) >>> 0;
    const aLo = (u32(input, 0) ^ u32(SECRET, 0)) >>> 0;
    const bHi = (u32(input, len - 4) ^ u32(SECRET, 12)) >>> 0;
    const bLo = (u32(input, len - 8) ^ u32(SECRET, 8)) >>> 0;
    mulFold(aHi, aLo, bHi, bLo);
    // acc = len + (lo + hi) + fold
    let lo = len + aLo + bLo + rLo;
    const hi = (aHi + bHi + rHi + Math.floor(lo / TWO32)) >>> 0;
    lo >>>= 0;
    avalanche(hi, lo);
    return;
  }
  if (len >= 4) {
    // keyed = (in_lo | in_hi << 32) ^ read64(secret)
    const kHi = (u32(input, len - 4) ^ u32(SECRET, 4)) >>> 0;
    const kLo = (u32(input, 0) ^ u32(SECRET, 0)) >>> 0;
    // mix64 = len + ((keyed ^ (keyed >> 51)) * PRIME32_1)
    mul64(kHi, (kLo ^ (kHi >>> 19)) >>> 0, 0, P32_1);
    let lo = rLo + len;
    let hi = (rHi + Math.floor(lo / TWO32)) >>> 0;
    lo >>>= 0;
    // avalanche((mix64 ^ (mix64 >> 47)) * PRIME64_2)
    lo = (lo ^ (hi >>> 15)) >>> 0;
    mul64(hi, lo, P64_2[0], P64_2[1]);
    avalanche(rHi, rLo);
    return;
  }
  if (len > 0) {
    const combined = (input[0]! | (input[len >> 1]! << 8) | (input[len - 1]! << 16) | (len << 24)) >>> 0;
    const keyedLo = (combined ^ u32(SECRET, 0)) >>> 0;
    mul64(0, keyedLo, P64_1[0], P64_1[1]);
    avalanche(rHi, rLo);
    return;
  }
  // RocksDB's change to the preview: the empty input hashes the seed, not 0.
  mulFold(u32(SECRET, 4), u32(SECRET, 0), P64_2[0], P64_2[1]);
}

function len17to128(input: Uint8Array, len: number): void {
  mul64(0, len, P64_1[0], P64_1[1]);
  acc2[0] = rHi;
  acc2[1] = rLo;
  const add = (i: number, s: number): void => {
    mix16(input, i, s);
    addInto(acc2, 0);
  };
  if (len > 32) {
    if (len > 64) {
      if (len > 96) {
        add(48, 96);
        add(len - 64, 112);
      }
      add(32, 64);
      add(len - 48, 80);
    }
    add(16, 32);
    add(len - 32, 48);
  }
  add(0, 0);
  add(len - 16, 16);
  avalanche(acc2[0]!, acc2[1]!);
}

function len129to240(input: Uint8Array, len: number): void {
  mul64(0, len, P64_1[0], P64_1[1]);
  acc2[0] = rHi;
  acc2[1] = rLo;
  const rounds = Math.floor(len / 16);
  for (let i = 0; i < 8; i++) {
    mix16(input, 16 * i, 16 * i);
    addInto(acc2, 0);
  }
  avalanche(acc2[0]!, acc2[1]!);
  acc2[0] = rHi;
  acc2[1] = rLo;
  for (let i = 8; i < rounds; i++) {
    mix16(input, 16 * i, 16 * (i - 8) + 3);
    addInto(acc2, 0);
  }
  mix16(input, len - 16, 136 - 17);
  addInto(acc2, 0);
  avalanche(acc2[0]!, acc2[1]!);
}

const STRIPE = 64;
const acc8 = new Uint32Array(16);

/** One 64-byte stripe into the 8 accumulators (scalar XXH3_accumulate_512, 64-bit lanes). */
function accumulate512(input: Uint8Array, i: number, s: number): void {
  for (let k = 0; k < 8; k++) {
    const dHi = u32(input, i + 8 * k + 4);
    const dLo = u32(input, i + 8 * k);
    const keyHi = (dHi ^ u32(SECRET, s + 8 * k + 4)) >>> 0;
    const keyLo = (dLo ^ u32(SECRET, s + 8 * k)) >>> 0;
    // acc += data; acc += lo32(key) * hi32(key)
    rHi = dHi;
    rLo = dLo;
    addInto(acc8, 2 * k);
    mul32(keyLo, keyHi);
    addInto(acc8, 2 * k);
  }
}

function scramble(s: number): void {
  for (let k = 0; k < 8; k++) {
    let hi = acc8[2 * k]!;
    let lo = acc8[2 * k + 1]!;
    lo = (lo ^ (hi >>> 15)) >>> 0;
    hi = (hi ^ u32(SECRET, s + 8 * k + 4)) >>> 0;
    lo = (lo ^ u32(SECRET, s + 8 * k)) >>> 0;
    mul64(hi, lo, 0, P32_1);
    acc8[2 * k] = rHi;
    acc8[2 * k + 1] = rLo;
  }
}

function hashLong(input: Uint8Array, len: number): void {
  const init = [0, P32_3, ...P64_1, ...P64_2, ...P64_3, ...P64_4, 0, P32_2, ...P64_5, 0, P32_1];
  acc8.set(init);
  const roundsPerBlock = (SECRET.length - STRIPE) / 8; // 16 stripes per block
  const blockLen = STRIPE * roundsPerBlock;
  const blocks = Math.floor(len / blockLen);
  for (let n = 0; n < blocks; n++) {
    for (let st = 0; st < roundsPerBlock; st++) accumulate512(input, n * blockLen + st * STRIPE, st * 8);
    scramble(SECRET.length - STRIPE);
  }
  const stripes = Math.floor((len - blockLen * blocks) / STRIPE);
  for (let st = 0; st < stripes; st++) accumulate512(input, blocks * blockLen + st * STRIPE, st * 8);
  if (len & (STRIPE - 1)) accumulate512(input, len - STRIPE, SECRET.length - STRIPE - 7);
  // merge: start = len * PRIME64_1, + fold(acc[2i] ^ secret, acc[2i+1] ^ secret) over 4 pairs at secret + 11
  mul64(Math.floor(len / TWO32), len >>> 0, P64_1[0], P64_1[1]);
  acc2[0] = rHi;
  acc2[1] = rLo;
  for (let p = 0; p < 4; p++) {
    const s = 11 + 16 * p;
    mulFold(
      (acc8[4 * p]! ^ u32(SECRET, s + 4)) >>> 0, (acc8[4 * p + 1]! ^ u32(SECRET, s)) >>> 0,
      (acc8[4 * p + 2]! ^ u32(SECRET, s + 12)) >>> 0, (acc8[4 * p + 3]! ^ u32(SECRET, s + 8)) >>> 0,
    );
    addInto(acc2, 0);
  }
  avalanche(acc2[0]!, acc2[1]!);
}

/**
 * RocksDB's `GetSliceHash64(key)` as [upper 32 bits, lower 32 bits]; the
 * FastLocalBloom filter takes its cache line from the lower half and its
 * probes from the upper.
 */
export function hash64(input: Uint8Array): [hi: number, lo: number] {
  const len = input.length;
  if (len <= 16) len0to16(input, len);
  else if (len <= 128) len17to128(input, len);
  else if (len <= 240) len129to240(input, len);
  else hashLong(input, len);
  return [rHi, rLo];
}

/** `BloomHash(key)` = `Hash(key, 0xbc9f1d34)`: MurmurHash1 as RocksDB (and LevelDB) define it. */
export function legacyBloomHash(input: Uint8Array): number {
  const m = 0xc6a4a793;
  const n = input.length;
  let h = (0xbc9f1d34 ^ Math.imul(n, m)) >>> 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    h = (h + u32(input, i)) >>> 0;
    h = Math.imul(h, m) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  // Trailing bytes are sign-extended, as the C++ does (int8_t → uint32_t).
  const sx = (b: number): number => (b << 24) >> 24;
  const rest = n - i;
  if (rest > 0) {
    if (rest === 3) h = (h + (sx(input[i + 2]!) << 16)) >>> 0;
    if (rest >= 2) h = (h + (sx(input[i + 1]!) << 8)) >>> 0;
    h = (h + sx(input[i]!)) >>> 0;
    h = Math.imul(h, m) >>> 0;
    h = (h ^ (h >>> 24)) >>> 0;
  }
  return h;
}
