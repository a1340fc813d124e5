import { KspError } from '../errors.js';

/**
 * Codecs that turn key/value bytes into something readable, for `inspect`
 * (`--key-codec`, `--value-codec`) and exports. Each names the Arrow type its
 * decoded column gets. msgpackr is loaded only when the msgpack codec is used.
 */

export type ViewCodecName = 'utf8' | 'json' | 'msgpack' | 'i64le' | 'u64le' | 'f64le' | 'hex';
export const VIEW_CODECS: readonly ViewCodecName[] = ['utf8', 'json', 'msgpack', 'i64le', 'u64le', 'f64le', 'hex'];

export type Decoded = string | bigint | number | null;

export interface ViewCodec {
  name: ViewCodecName;
  /** Arrow type of the decoded column. */
  column: 'utf8' | 'int64' | 'uint64' | 'float64';
  /** Decoded value, or throws CODEC_DECODE. */
  decode(bytes: Uint8Array): Decoded;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function fail(codec: string, why: string): never {
  throw new KspError('CODEC_DECODE', `${codec}: ${why}`, { codec });
}

function fixed8(codec: string, b: Uint8Array): Buffer {
  if (b.length !== 8) fail(codec, `expected 8 bytes, found ${b.length}`);
  return Buffer.from(b.buffer, b.byteOffset, 8);
}

/** JSON text of a msgpack value: bytes become hex strings, Maps objects, bigints numbers. */
function toJsonText(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x === 'bigint') return x.toString();
    if (x instanceof Uint8Array) return Buffer.from(x).toString('hex');
    if (x instanceof Map) return Object.fromEntries(x);
    return x;
  });
}

export async function viewCodec(name: string): Promise<ViewCodec> {
  switch (name) {
    case 'utf8':
      return { name, column: 'utf8', decode: (b) => { try { return utf8.decode(b); } catch { return fail(name, 'not valid UTF-8'); } } };
    case 'hex':
      return { name, column: 'utf8', decode: (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') };
    case 'json':
      return {
        name, column: 'utf8', decode: (b) => {
          try { return JSON.stringify(JSON.parse(utf8.decode(b))); } catch (e) { return fail(name, `not JSON: ${(e as Error).message}`); }
        },
      };
    case 'msgpack': {
      const { Unpackr } = await import('msgpackr');
      const u = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'bigint' });
      return { name, column: 'utf8', decode: (b) => { try { return toJsonText(u.unpack(b)); } catch (e) { return fail(name, `not msgpack: ${(e as Error).message}`); } } };
    }
    case 'i64le':
      return { name, column: 'int64', decode: (b) => fixed8(name, b).readBigInt64LE(0) };
    case 'u64le':
      return { name, column: 'uint64', decode: (b) => fixed8(name, b).readBigUInt64LE(0) };
    case 'f64le':
      return { name, column: 'float64', decode: (b) => fixed8(name, b).readDoubleLE(0) };
    default:
      throw new KspError('CODEC_UNKNOWN', `unknown codec ${JSON.stringify(name)}; expected one of ${VIEW_CODECS.join(', ')}`, { found: name, expected: VIEW_CODECS });
  }
}
