import { Packr, Unpackr } from 'msgpackr';
import { packFast } from './msgpack-pack.js';

/**
 * Codecs turn a state's stored bytes into the values a migration step works
 * on, and back. `decode` throws on bytes it cannot read; `encode` throws a
 * TypeError naming what it expected when a step returns the wrong type, so
 * the error can say which step and entry did it.
 */
export interface Codec<T = unknown> {
  readonly name: string;
  decode(bytes: Uint8Array): T;
  encode(value: T): Uint8Array;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function wrong(codec: string, expected: string, v: unknown): never {
  const found = v === null ? 'null' : Array.isArray(v) ? 'an array' : v instanceof Uint8Array ? 'bytes' : typeof v;
  throw new TypeError(`codec ${codec} expected ${expected}, got ${found}`);
}

function fixed8(codec: string, b: Uint8Array): Buffer {
  if (b.length !== 8) throw new TypeError(`codec ${codec} expected 8 bytes, found ${b.length}`);
  return Buffer.from(b.buffer, b.byteOffset, 8);
}

function int64(codec: string, v: unknown, min: bigint, max: bigint): bigint {
  let n: bigint;
  if (typeof v === 'bigint') n = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) n = BigInt(v);
  else return wrong(codec, 'a bigint or a safe integer', v);
  if (n < min || n > max) throw new TypeError(`codec ${codec}: ${n} is out of range`);
  return n;
}

const raw: Codec<Uint8Array> = {
  name: 'raw',
  decode: (b) => b,
  encode: (v) => (v instanceof Uint8Array ? v : wrong('raw', 'a Uint8Array', v)),
};

const utf8: Codec<string> = {
  name: 'utf8',
  decode: (b) => strictUtf8.decode(b),
  encode: (v) => (typeof v === 'string' ? Buffer.from(v, 'utf8') : wrong('utf8', 'a string', v)),
};

const json: Codec<unknown> = {
  name: 'json',
  decode: (b) => JSON.parse(strictUtf8.decode(b)) as unknown,
  encode: (v) => {
    const text = JSON.stringify(v);
    if (text === undefined) wrong('json', 'a JSON value', v);
    return Buffer.from(text, 'utf8');
  },
};

// Plain maps and arrays (no msgpackr records extension), 64-bit integers as
// numbers when exact and bigints otherwise: what other msgpack writers read.
// ('auto' is supported by msgpackr at run time but missing from its types.)
const packr = new Packr({ useRecords: false, int64AsType: 'auto' } as unknown as ConstructorParameters<typeof Packr>[0]);
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'auto' } as unknown as ConstructorParameters<typeof Unpackr>[0]);

const msgpack: Codec<unknown> = {
  name: 'msgpack',
  decode: (b) => unpackr.unpack(b) as unknown,
  encode: (v) => {
    if (v === undefined) wrong('msgpack', 'a value', v);
    // The same bytes as msgpackr's, faster for plain values (msgpack-pack.ts),
    // which never takes a thenable (a Promise, or a plain object whose `then`
    // is a function): checked only when it declines, as the lookup is slow.
    const fast = packFast(v);
    if (fast) return fast;
    if (typeof (v as { then?: unknown } | null)?.then === 'function') wrong('msgpack', 'a value (the step returned a Promise; steps are synchronous)', v);
    return packr.pack(v);
  },
};

const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const U64_MAX = (1n << 64n) - 1n;

const i64le: Codec<bigint> = {
  name: 'i64le',
  decode: (b) => fixed8('i64le', b).readBigInt64LE(0),
  encode: (v) => {
    const out = Buffer.alloc(8);
    out.writeBigInt64LE(int64('i64le', v, I64_MIN, I64_MAX));
    return out;
  },
};

const u64le: Codec<bigint> = {
  name: 'u64le',
  decode: (b) => fixed8('u64le', b).readBigUInt64LE(0),
  encode: (v) => {
    const out = Buffer.alloc(8);
    out.writeBigUInt64LE(int64('u64le', v, 0n, U64_MAX));
    return out;
  },
};

const f64le: Codec<number> = {
  name: 'f64le',
  decode: (b) => fixed8('f64le', b).readDoubleLE(0),
  encode: (v) => {
    if (typeof v !== 'number') wrong('f64le', 'a number', v);
    const out = Buffer.alloc(8);
    out.writeDoubleLE(v);
    return out;
  },
};

/** A user-defined codec. */
function custom<T>(name: string, decode: (bytes: Uint8Array) => T, encode: (value: T) => Uint8Array): Codec<T> {
  return {
    name,
    decode,
    encode: (v) => {
      const out = encode(v);
      return out instanceof Uint8Array ? out : wrong(name, 'its encode() to return a Uint8Array', out);
    },
  };
}

/**
 * The same codec, typed as the shape the user declares (`codecs.typed<Totals>(codecs.msgpack)`):
 * a TypeScript step can then name its parameter's type under `strict`. The
 * bytes are not checked against the type; a wrong shape fails in the step.
 */
function typed<T>(codec: Codec<unknown>): Codec<T> {
  return codec as Codec<T>;
}

export const codecs = { raw, utf8, json, msgpack, i64le, u64le, f64le, custom, typed } as const;
