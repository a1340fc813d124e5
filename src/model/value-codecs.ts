import { KspError } from '../errors.js';
import { aggStateJson, decodeAggState } from './aggstate.js';
import { isWatermark, parseWindowKey, type WindowKey } from './window-key.js';

/**
 * Codecs that turn key/value bytes into something readable, for `inspect`
 * (`--key-codec`, `--value-codec`) and exports. Each names the Arrow type its
 * decoded column gets. msgpackr is loaded only when the msgpack codec is used.
 *
 * `aggstate` reads the engine's window accumulator (aggstate.ts), `window`
 * turns window-layout keys into columns (window-key.ts), `raw` decodes
 * nothing. A codec spec (codecSpec) picks a codec per state name.
 */

export type ViewCodecName = 'utf8' | 'json' | 'msgpack' | 'i64le' | 'u64le' | 'f64le' | 'hex' | 'aggstate' | 'window' | 'raw';
export const VIEW_CODECS: readonly ViewCodecName[] = ['utf8', 'json', 'msgpack', 'i64le', 'u64le', 'f64le', 'hex', 'aggstate', 'window', 'raw'];

export type Decoded = string | bigint | number | null;

export interface ViewCodec {
  name: ViewCodecName;
  /** Arrow type of the decoded column; `window`: the window columns instead; `none`: no column (raw). */
  column: 'utf8' | 'int64' | 'uint64' | 'float64' | 'window' | 'none';
  /** The decoded text is JSON (embedded as JSON in JSON Lines). */
  embed?: boolean;
  /** Decoded value, or throws CODEC_DECODE. `key` is the entry's key (aggstate reads a `wm:` entry's value as its watermark). */
  decode(bytes: Uint8Array, key?: Uint8Array): Decoded;
  /** The `window` codec: the key's window columns, or null when the key is not one (`value` gives `wm:` its watermark). */
  window?(key: Uint8Array, value: Uint8Array | undefined): WindowKey | null;
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

function windowJson(w: WindowKey): string {
  return JSON.stringify({ kind: w.kind, group_key: w.groupKey, window_start: w.start?.toString() ?? null, window_end: w.end?.toString() ?? null, watermark: w.watermark?.toString() ?? null });
}

export async function viewCodec(name: string): Promise<ViewCodec> {
  // `window:SIZE_MS`: tumbling and sliding windows of that size get their end.
  const sized = /^window:(\d+)$/.exec(name);
  if (sized || name === 'window') {
    const size = sized ? BigInt(sized[1]!) : null;
    const win = (k: Uint8Array, v: Uint8Array | undefined): WindowKey | null => parseWindowKey(k, v, size);
    return {
      name: 'window', column: 'window', embed: true, window: win,
      decode: (b) => {
        const w = win(b, undefined);
        if (w) return windowJson(w);
        return isWatermark(b) ? JSON.stringify({ kind: 'wm' }) : fail('window', 'not a window state key (tw:/sw:/ses: with its u32 length, a UTF-8 group key and its times, or wm:)');
      },
    };
  }
  switch (name) {
    case 'raw':
      return { name, column: 'none', decode: () => null };
    case 'aggstate':
      return {
        name, column: 'utf8', embed: true, decode: (b, key) => {
          // The watermark shares the window operator's state (window-key.ts): an i64, not an accumulator.
          if (key && isWatermark(key)) return b.length >= 8 ? `{"watermark_ms":${Buffer.from(b.buffer, b.byteOffset, 8).readBigInt64LE(0)}}` : fail(name, `watermark value of ${b.length} bytes, expected 8`);
          try { return aggStateJson(decodeAggState(b)); } catch (e) { return fail(name, (e as Error).message); }
        },
      };
    case 'utf8':
      return { name, column: 'utf8', decode: (b) => { try { return utf8.decode(b); } catch { return fail(name, 'not valid UTF-8'); } } };
    case 'hex':
      return { name, column: 'utf8', decode: (b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') };
    case 'json':
      return {
        name, column: 'utf8', embed: true, decode: (b) => {
          try { return JSON.stringify(JSON.parse(utf8.decode(b))); } catch (e) { return fail(name, `not JSON: ${(e as Error).message}`); }
        },
      };
    case 'msgpack': {
      const { Unpackr } = await import('msgpackr');
      const u = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'bigint' });
      return { name, column: 'utf8', embed: true, decode: (b) => { try { return toJsonText(u.unpack(b)); } catch (e) { return fail(name, `not msgpack: ${(e as Error).message}`); } } };
    }
    case 'i64le':
      return { name, column: 'int64', decode: (b) => fixed8(name, b).readBigInt64LE(0) };
    case 'u64le':
      return { name, column: 'uint64', decode: (b) => fixed8(name, b).readBigUInt64LE(0) };
    case 'f64le':
      return { name, column: 'float64', decode: (b) => fixed8(name, b).readDoubleLE(0) };
    default:
      throw new KspError('CODEC_UNKNOWN', `unknown codec ${JSON.stringify(name)}; expected one of ${VIEW_CODECS.join(', ')} (or window:SIZE_MS)`, { found: name, expected: VIEW_CODECS });
  }
}

/**
 * Codecs per state name: `--value-codec totals=msgpack,score=f64le,*=raw`.
 * A single name (`msgpack`) applies to every state, as before; in a list,
 * `*=` sets the codec of states not named (default raw: not decoded).
 */
export interface CodecSpec {
  readonly spec: true;
  /** As given, for messages. */
  readonly text: string;
  readonly byState: ReadonlyMap<string, ViewCodec>;
  readonly fallback: ViewCodec | undefined;
  /** Arrow type of the decoded column: the codecs' own when they agree, else utf8 (numbers as text); null when none has one. */
  readonly column: 'utf8' | 'int64' | 'uint64' | 'float64' | null;
  /** Some state uses the `window` codec: the export has the window columns. */
  readonly window: boolean;
  /** The codec of a state, undefined when it is not decoded. */
  for(state: string): ViewCodec | undefined;
}

export function isCodecSpec(c: ViewCodec | CodecSpec | undefined): c is CodecSpec {
  return c !== undefined && (c as CodecSpec).spec === true;
}

/** A spec that applies one codec to every state. */
export function uniformSpec(c: ViewCodec): CodecSpec {
  return makeSpec(c.name, new Map(), c);
}

function makeSpec(text: string, byState: Map<string, ViewCodec>, fallback: ViewCodec | undefined): CodecSpec {
  const all = [...byState.values(), ...(fallback ? [fallback] : [])];
  const cols = new Set(all.map((c) => c.column).filter((c) => c !== 'window' && c !== 'none'));
  const column = cols.size === 0 ? null : cols.size === 1 ? ([...cols][0] as CodecSpec['column']) : 'utf8';
  const noRaw = (c: ViewCodec | undefined): ViewCodec | undefined => (c?.column === 'none' ? undefined : c);
  const decoded = new Map([...byState].map(([k, v]) => [k, noRaw(v)] as const));
  const dflt = noRaw(fallback);
  return {
    spec: true, text, byState, fallback, column, window: all.some((c) => c.column === 'window'),
    for: (state) => (decoded.has(state) ? decoded.get(state) : dflt),
  };
}

/** Parses `--key-codec` / `--value-codec`: one codec name, or `state=codec,…,*=codec`. */
export async function codecSpec(text: string, which: 'key' | 'value'): Promise<CodecSpec> {
  const flag = `--${which}-codec`;
  const check = (c: ViewCodec): ViewCodec => {
    if (which === 'value' && c.column === 'window') throw new KspError('USAGE', `${flag}: window is a key codec (--key-codec); a wm: entry's watermark comes with it`, { found: text });
    if (which === 'key' && c.name === 'aggstate') throw new KspError('USAGE', `${flag}: aggstate is a value codec (--value-codec)`, { found: text });
    return c;
  };
  if (!text.includes('=')) return makeSpec(text, new Map(), check(await viewCodec(text)));
  const byState = new Map<string, ViewCodec>();
  let fallback: ViewCodec | undefined;
  let star = false;
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const state = eq < 0 ? '' : part.slice(0, eq).trim();
    const name = eq < 0 ? '' : part.slice(eq + 1).trim();
    if (!state || !name) throw new KspError('USAGE', `${flag}: ${JSON.stringify(part)} is not STATE=CODEC (the form is state=codec,…,*=codec, or one codec for every state)`, { found: text });
    const codec = check(await viewCodec(name));
    if (state === '*') {
      if (star) throw new KspError('USAGE', `${flag}: *= given twice`, { found: text });
      star = true;
      fallback = codec;
    } else {
      if (byState.has(state)) throw new KspError('USAGE', `${flag}: state ${JSON.stringify(state)} given twice`, { found: text });
      byState.set(state, codec);
    }
  }
  return makeSpec(text, byState, fallback);
}

/**
 * Every state a spec names must exist: read entries until each named state
 * is seen (usually within the first tasks; a misspelt name costs one pass,
 * before anything is written). The error lists the state names found.
 */
export async function checkSpecStates(specs: Array<{ flag: string; spec: CodecSpec | undefined }>, rows: AsyncIterable<Array<{ stateName: string }>>): Promise<void> {
  const wanted = new Set<string>();
  for (const s of specs) for (const k of s.spec?.byState.keys() ?? []) wanted.add(k);
  if (wanted.size === 0) return;
  const seen = new Set<string>();
  let last: string | null = null;
  for await (const b of rows) {
    for (const r of b) {
      if (r.stateName === last) continue;
      last = r.stateName;
      seen.add(last);
      wanted.delete(last);
    }
    if (wanted.size === 0) return;
  }
  const valid = [...seen].sort();
  for (const s of specs) {
    const bad = [...(s.spec?.byState.keys() ?? [])].filter((k) => wanted.has(k));
    if (bad.length) {
      throw new KspError('USAGE', `${s.flag}: no state named ${bad.map((b) => JSON.stringify(b)).join(', ')} in the entries selected; state names: ${valid.map((v) => JSON.stringify(v)).join(', ') || '(none)'}`, { found: bad, expected: valid });
    }
  }
}
