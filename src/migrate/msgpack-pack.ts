/**
 * A fast msgpack encoder for the common values of a migration step (plain
 * objects, arrays, ASCII strings, numbers, booleans, null, bytes), written
 * to give exactly the bytes of the msgpackr Packr the msgpack codec uses
 * (codecs.ts: `useRecords: false`, no float32, no extensions), so the output
 * of a migration does not depend on which encoder ran. Anything else
 * (non-ASCII strings, bigint, undefined, Map, Date, other classes, typed
 * arrays other than bytes, a `toJSON` hook) makes `packFast` answer null
 * and the caller uses msgpackr itself. Checked byte for byte against
 * msgpackr in test/migrate/msgpack-pack.test.ts.
 *
 * Why: msgpackr's generic pack was the largest cost of `migrate` (about a
 * third of a rewrite thread's time on the bench's msgpack step), most of it
 * per-call set-up and type dispatch that these values do not need.
 *
 * The rules copied, from msgpackr's `pack` (pack.js): a non-negative integer
 * below 2^32 is a positive fixint up to 0x7f (records off), else uint8,
 * uint16, uint32; a negative integer from -2^31 is a negative fixint, int8,
 * int16, int32; every other number is a float64. A plain object (constructor
 * Object) is always a map16 (0xde) over its own enumerable keys in for-in
 * order; an array is a fixarray, array16 or array32; a string takes the
 * smallest of fixstr, str8, str16, str32 for its UTF-8 length; bytes
 * (Buffer, Uint8Array) are bin8, bin16 or bin32.
 */

/** Not handled here: the caller falls back to msgpackr. */
const FALLBACK = Symbol('fallback');

let busy = false;
/**
 * Values are encoded straight into a shared chunk and handed out as views
 * of it (as msgpackr does): one allocation per many values. `start` is where
 * the value being encoded begins, `pos` where the next byte goes.
 */
const CHUNK = 64 * 1024;
let buf = Buffer.allocUnsafe(CHUNK);
let start = 0;
let pos = 0;
const bufferToJSON = Buffer.prototype.toJSON;
// eslint-disable-next-line @typescript-eslint/unbound-method
const hasOwn = Object.prototype.hasOwnProperty;
const OBJECT_PROTO = Object.prototype;
const ARRAY_PROTO = Array.prototype;

/** Makes n bytes available at pos: a fresh chunk, the value begun so far moved to its start. */
function room(n: number): void {
  if (pos + n <= buf.length) return;
  const grown = Buffer.allocUnsafe(Math.max(CHUNK, 2 * (pos - start + n)));
  buf.copy(grown, 0, start, pos);
  pos -= start;
  start = 0;
  buf = grown;
}

/** The msgpack bytes of `value` as msgpackr writes them, or null when msgpackr must encode it. */
export function packFast(value: unknown): Uint8Array | null {
  // A getter that encodes from inside an encode: msgpackr handles that.
  if (busy) return null;
  // A changed standard prototype (never in practice): msgpackr's own rules then.
  if (OBJECT_PROTO.constructor !== Object || OBJECT_PROTO.hasOwnProperty !== hasOwn || ARRAY_PROTO.constructor !== Array || (OBJECT_PROTO as { then?: unknown }).then !== undefined) return null;
  busy = true;
  pos = start;
  try {
    write(value, 0);
  } catch (e) {
    if (e === FALLBACK) return null;
    throw e;
  } finally {
    busy = false;
  }
  const r = buf.subarray(start, pos);
  // Word-aligned starts, as msgpackr's.
  start = Math.min((pos + 7) & ~7, buf.length);
  return r;
}

/** Deep values are left to msgpackr (which recurses further). */
const MAX_DEPTH = 64;

function write(v: unknown, depth: number): void {
  switch (typeof v) {
    case 'number':
      return number(v);
    case 'string':
      return string(v);
    case 'boolean':
      room(1);
      buf[pos++] = v ? 0xc3 : 0xc2;
      return;
    case 'object': {
      if (v === null) {
        room(1);
        buf[pos++] = 0xc0;
        return;
      }
      if (depth >= MAX_DEPTH) throw FALLBACK;
      if (ArrayBuffer.isView(v)) {
        const c = (v as { constructor?: unknown }).constructor;
        if (c !== Buffer && c !== Uint8Array) throw FALLBACK;
        const j = (v as { toJSON?: unknown }).toJSON;
        if (j !== undefined && j !== bufferToJSON) throw FALLBACK;
        return bytes(v as Uint8Array);
      }
      // msgpackr asks `v.constructor`; the prototype and the own properties
      // say the same (the standard prototypes are checked in packFast), and
      // cost far less on objects made by spreading, whose lookups along the
      // prototype chain are slow in V8.
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto === OBJECT_PROTO) {
        if (hasOwn.call(v, 'constructor') || hasOwn.call(v, 'hasOwnProperty')) throw FALLBACK;
        return object(v as Record<string, unknown>, depth);
      }
      if (proto === ARRAY_PROTO && Array.isArray(v) && !hasOwn.call(v, 'constructor')) return array(v as unknown[], depth);
      throw FALLBACK;
    }
    default:
      throw FALLBACK;
  }
}

function number(v: number): void {
  room(9);
  const b = buf;
  if (v >>> 0 === v) {
    if (v < 0x80) b[pos++] = v;
    else if (v < 0x100) {
      b[pos++] = 0xcc;
      b[pos++] = v;
    } else if (v < 0x10000) {
      b[pos++] = 0xcd;
      b[pos++] = v >> 8;
      b[pos++] = v & 0xff;
    } else {
      b[pos++] = 0xce;
      b.writeUInt32BE(v, pos);
      pos += 4;
    }
  } else if (v >> 0 === v) {
    if (v >= -0x20) b[pos++] = 0x100 + v;
    else if (v >= -0x80) {
      b[pos++] = 0xd0;
      b[pos++] = v + 0x100;
    } else if (v >= -0x8000) {
      b[pos++] = 0xd1;
      b.writeInt16BE(v, pos);
      pos += 2;
    } else {
      b[pos++] = 0xd2;
      b.writeInt32BE(v, pos);
      pos += 4;
    }
  } else {
    // NaN payloads are left to msgpackr's own float write.
    if (v !== v) throw FALLBACK;
    b[pos++] = 0xcb;
    b.writeDoubleBE(v, pos);
    pos += 8;
  }
}

/** ASCII only: other strings have encoder-specific edge cases (lone surrogates), left to msgpackr. */
function string(s: string): void {
  const n = s.length;
  room(n + 5);
  const b = buf;
  const h = n < 0x20 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
  let p = pos + h;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) throw FALLBACK;
    b[p++] = c;
  }
  if (n < 0x20) b[pos] = 0xa0 | n;
  else if (n < 0x100) {
    b[pos] = 0xd9;
    b[pos + 1] = n;
  } else if (n < 0x10000) {
    b[pos] = 0xda;
    b[pos + 1] = n >> 8;
    b[pos + 2] = n & 0xff;
  } else {
    b[pos] = 0xdb;
    b.writeUInt32BE(n, pos + 1);
  }
  pos = p;
}

function bytes(v: Uint8Array): void {
  const n = v.byteLength;
  room(n + 5);
  const b = buf;
  if (n < 0x100) {
    b[pos++] = 0xc4;
    b[pos++] = n;
  } else if (n < 0x10000) {
    b[pos++] = 0xc5;
    b[pos++] = n >> 8;
    b[pos++] = n & 0xff;
  } else {
    b[pos++] = 0xc6;
    b.writeUInt32BE(n, pos);
    pos += 4;
  }
  if (n <= 64) {
    for (let i = 0; i < n; i++) b[pos + i] = v[i]!;
  } else b.set(v, pos);
  pos += n;
}

function array(a: unknown[], depth: number): void {
  const n = a.length;
  room(5);
  if (n < 0x10) buf[pos++] = 0x90 | n;
  else if (n < 0x10000) {
    buf[pos++] = 0xdc;
    buf[pos++] = n >> 8;
    buf[pos++] = n & 0xff;
  } else {
    buf[pos++] = 0xdd;
    buf.writeUInt32BE(n, pos);
    pos += 4;
  }
  for (let i = 0; i < n; i++) write(a[i], depth + 1);
}

function object(o: Record<string, unknown>, depth: number): void {
  room(3);
  buf[pos] = 0xde;
  // Relative to the value's start: room() may move the value to a new chunk.
  const at = pos + 1 - start;
  pos += 3;
  // msgpackr walks for-in and keeps the keys `o.hasOwnProperty` accepts:
  // with the standard hasOwnProperty (checked by the caller) that is exactly
  // Object.keys, in the same order, and Object.keys is faster.
  const keys = Object.keys(o);
  const size = keys.length;
  if (size > 0xffff) throw FALLBACK;
  for (let i = 0; i < size; i++) {
    const key = keys[i]!;
    string(key);
    write(o[key], depth + 1);
  }
  buf[start + at] = size >> 8;
  buf[start + at + 1] = size & 0xff;
}
