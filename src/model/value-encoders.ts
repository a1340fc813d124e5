import { KspError } from '../errors.js';
import type { ViewCodecName } from './value-codecs.js';

/**
 * The way back of the view codecs (value-codecs.ts): a decoded column, as
 * an export writes it and an editor changes it, encoded into key or value
 * bytes again (`ksp import --value-codec`). `decoded` is what a reader hands
 * over: a string (Arrow/Parquet utf8 columns, JSON text), a number or bigint
 * (int64/float64 columns), or, from JSON Lines, the embedded JSON value.
 *
 * Round trips: utf8, hex, i64le, u64le and f64le give back the exact bytes;
 * json gives compact JSON text; msgpack gives the same value, not always the
 * same bytes (a map's header width, an integer's width), and the export
 * turned bytes into hex strings and 64-bit integers into text, which come
 * back as such. aggstate, window and raw have no way back.
 */

export type Encoder = (decoded: unknown) => Uint8Array;

/** Why a value cannot be encoded: the caller names the row and column. */
export class EncodeError extends Error {}

function text(codec: string, v: unknown): string {
  if (typeof v === 'string') return v;
  throw new EncodeError(`${codec} expects text, found ${typeof v}`);
}

/** JSON text of a decoded JSON column: a string as the export wrote it, or the embedded value of a JSON Lines row. */
function jsonValue(codec: string, v: unknown): unknown {
  if (typeof v !== 'string') return v;
  try {
    return JSON.parse(v);
  } catch (e) {
    throw new EncodeError(`${codec}: not JSON: ${(e as Error).message}`);
  }
}

function int64(codec: string, v: unknown, signed: boolean): bigint {
  let b: bigint;
  if (typeof v === 'bigint') b = v;
  else if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
  else if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) b = BigInt(v.trim());
  else throw new EncodeError(`${codec} expects an integer, found ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)}`);
  const [lo, hi] = signed ? [-(1n << 63n), (1n << 63n) - 1n] : [0n, (1n << 64n) - 1n];
  if (b < lo || b > hi) throw new EncodeError(`${codec}: ${b} is out of range`);
  return b;
}

export async function valueEncoder(name: ViewCodecName): Promise<Encoder> {
  switch (name) {
    case 'utf8':
      return (v) => Buffer.from(text(name, v), 'utf8');
    case 'hex':
      return (v) => {
        const s = text(name, v);
        if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) throw new EncodeError(`hex: ${JSON.stringify(s.slice(0, 40))} is not an even number of hex digits`);
        return Buffer.from(s, 'hex');
      };
    case 'json':
      return (v) => Buffer.from(JSON.stringify(jsonValue(name, v)), 'utf8');
    case 'msgpack': {
      const { Packr } = await import('msgpackr');
      const p = new Packr({ useRecords: false, variableMapSize: true });
      return (v) => p.pack(jsonValue(name, v));
    }
    case 'i64le':
      return (v) => { const b = Buffer.alloc(8); b.writeBigInt64LE(int64(name, v, true)); return b; };
    case 'u64le':
      return (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(int64(name, v, false)); return b; };
    case 'f64le':
      return (v) => {
        const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
        if (Number.isNaN(n) && v !== 'NaN') throw new EncodeError(`f64le expects a number, found ${JSON.stringify(v)}`);
        const b = Buffer.alloc(8);
        b.writeDoubleLE(n);
        return b;
      };
    default:
      throw new KspError('USAGE', `the ${name} codec cannot encode values back (import accepts utf8, hex, json, msgpack, i64le, u64le, f64le); give the raw column instead`, { found: name });
  }
}
