import { isAscii } from 'node:buffer';
import { KspError } from '../../errors.js';

/**
 * A JSON reader and writer that loses nothing the engine's files carry:
 * integers of any size (u64 above 2^53), the order of object members (also
 * for integer-like names, which plain JS objects would reorder), and the
 * number text as written. The writer reproduces serde_json's pretty printer
 * (two-space indent, `"key": value`, `[]`/`{}` when empty, no trailing
 * newline), so decode -> encode of an engine file is byte-identical.
 * Layout: FORMAT.md beside this file.
 */

/** A JSON number kept as its source text; `value` is a bigint for integers. */
export class JsonNumber {
  constructor(readonly text: string) {}
  get isInteger(): boolean {
    return /^-?\d+$/.test(this.text);
  }
  get value(): bigint | number {
    return this.isInteger ? BigInt(this.text) : Number(this.text);
  }
  static of(v: bigint | number): JsonNumber {
    if (typeof v === 'number' && !Number.isFinite(v)) throw new TypeError('JSON cannot hold a non-finite number');
    return new JsonNumber(String(v));
  }
}

/**
 * An object with its members in order. Names and values are kept in two
 * lists, and objects of one shape (every element of `operator_snapshots`)
 * share one list of names: metadata with 200,000 snapshots then costs one
 * object and one list per snapshot, not four arrays.
 */
export class JsonObject {
  private names: readonly string[];
  private vals: readonly JsonValue[];
  constructor(members: Array<[string, JsonValue]> = []) {
    this.names = members.map(([k]) => k);
    this.vals = members.map(([, v]) => v);
  }
  /** @internal From lists the caller will not change (`names` may be shared). */
  static fromLists(names: readonly string[], values: readonly JsonValue[]): JsonObject {
    const o = new JsonObject();
    o.names = names;
    o.vals = values;
    return o;
  }
  /** The members as [name, value] pairs (a new array each time). */
  get members(): Array<[string, JsonValue]> {
    return this.names.map((k, i) => [k, this.vals[i]!]);
  }
  get keys(): readonly string[] {
    return this.names;
  }
  get(name: string): JsonValue | undefined {
    const i = this.names.indexOf(name);
    return i < 0 ? undefined : this.vals[i];
  }
  has(name: string): boolean {
    return this.names.includes(name);
  }
  /** A copy with `name` set: replaced in place, or inserted before the first of `before` present, else appended. */
  with(name: string, value: JsonValue, before: readonly string[] = []): JsonObject {
    const members = this.members;
    const i = members.findIndex(([k]) => k === name);
    if (i >= 0) {
      members[i] = [name, value];
      return new JsonObject(members);
    }
    const at = members.findIndex(([k]) => before.includes(k));
    if (at >= 0) members.splice(at, 0, [name, value]);
    else members.push([name, value]);
    return new JsonObject(members);
  }
  without(name: string): JsonObject {
    return new JsonObject(this.members.filter(([k]) => k !== name));
  }
}

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

/** Plain JS form for validation: integers become bigint, objects plain objects. */
export type PlainJson = null | boolean | string | bigint | number | PlainJson[] | { [k: string]: PlainJson };

export function toPlain(v: JsonValue): PlainJson {
  if (v instanceof JsonNumber) return v.value;
  if (v instanceof JsonObject) {
    const o: { [k: string]: PlainJson } = {};
    // defineProperty, so a member named "__proto__" stays a member.
    for (const [k, x] of v.members) Object.defineProperty(o, k, { value: toPlain(x), enumerable: true, writable: true, configurable: true });
    return o;
  }
  if (Array.isArray(v)) return v.map(toPlain);
  return v;
}

/** Converts plain values (bigint/number integers allowed) to the lossless form. */
export function fromPlain(v: unknown): JsonValue {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'bigint' || typeof v === 'number') return JsonNumber.of(v);
  if (v instanceof JsonNumber || v instanceof JsonObject) return v;
  if (Array.isArray(v)) return v.map(fromPlain);
  if (v instanceof Map) return new JsonObject([...v].map(([k, x]) => [String(k), fromPlain(x)]));
  if (typeof v === 'object') {
    return new JsonObject(Object.entries(v as object).filter(([, x]) => x !== undefined).map(([k, x]) => [k, fromPlain(x)]));
  }
  throw new TypeError(`cannot write ${typeof v} as JSON`);
}

const MAX_DEPTH = 128;

/**
 * The text being parsed: a string, or its bytes when every byte is ASCII
 * (then offsets in bytes and characters agree, and a 30 MB metadata.json is
 * parsed without a decoded copy of it beside its bytes).
 */
type Source = string | Buffer;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

class Parser {
  pos = 0;
  readonly length: number;
  private readonly bytes: Buffer | null;
  private readonly str: string;
  constructor(src: Source, readonly file: string) {
    this.length = src.length;
    this.bytes = typeof src === 'string' ? null : src;
    this.str = typeof src === 'string' ? src : '';
  }

  /** The code unit at `i` (NaN past the end). */
  private at(i: number): number {
    if (this.bytes) return i < this.length ? this.bytes[i]! : NaN;
    return this.str.charCodeAt(i);
  }

  /**
   * The text from `a` to `b`. From bytes it is a fresh string; a slice of a
   * string would be a V8 "sliced string" that keeps the whole document alive
   * (32 MB for 200,000 snapshots) for as long as any value is kept, so it is
   * flattened the same way.
   */
  private text(a: number, b: number): string {
    return this.bytes ? this.bytes.toString('latin1', a, b) : this.str.slice(a, b);
  }

  private indexOfQuote(from: number): number {
    return this.bytes ? this.bytes.indexOf(QUOTE, from) : this.str.indexOf('"', from);
  }

  fail(what: string): never {
    // Line/column help a person find the spot in a pretty-printed file.
    const before = this.text(0, this.pos);
    const line = before.split('\n').length;
    const col = this.pos - before.lastIndexOf('\n');
    throw new KspError('JSON_SYNTAX', `${this.file}: invalid JSON at line ${line}, column ${col} (offset ${this.pos}): ${what}`, {
      file: this.file, offset: this.pos, line,
    });
  }

  ws(): void {
    for (;;) {
      const c = this.at(this.pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) this.pos++;
      else return;
    }
  }

  private literal(lit: string): boolean {
    for (let i = 0; i < lit.length; i++) if (this.at(this.pos + i) !== lit.charCodeAt(i)) return false;
    return true;
  }

  value(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.fail(`nesting deeper than ${MAX_DEPTH}`);
    this.ws();
    const c = this.at(this.pos);
    if (c === 0x7b) return this.object(depth);
    if (c === 0x5b) return this.array(depth);
    if (c === QUOTE) return this.string();
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    for (const [lit, val] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.literal(lit)) {
        this.pos += lit.length;
        return val;
      }
    }
    this.fail(Number.isNaN(c) ? 'unexpected end of input' : `unexpected character ${JSON.stringify(String.fromCharCode(c))}`);
  }

  object(depth: number): JsonObject {
    this.pos++;
    const keys: string[] = [];
    const values: JsonValue[] = [];
    let seen: Set<string> | null = null;
    this.ws();
    if (this.at(this.pos) === 0x7d) {
      this.pos++;
      return JsonObject.fromLists(keys, values);
    }
    for (;;) {
      this.ws();
      if (this.at(this.pos) !== QUOTE) this.fail('expected a member name');
      const start = this.pos;
      const k = this.name(this.string());
      // Most objects are small: a linear search beats a Set per object;
      // a large one (kafka_offsets of many partitions) gets a Set.
      if (keys.length === 16) seen = new Set(keys);
      if (seen ? seen.has(k) : keys.includes(k)) {
        this.pos = start;
        this.fail(`duplicate member ${JSON.stringify(k)}`);
      }
      keys.push(k);
      seen?.add(k);
      this.ws();
      if (this.at(this.pos) !== 0x3a) this.fail('expected ":"');
      this.pos++;
      values.push(this.value(depth + 1));
      this.ws();
      const c = this.at(this.pos++);
      // An array grown by push keeps room for 17 elements: an exact copy
      // saves ~110 bytes per object (22 MB for 200,000 snapshots).
      if (c === 0x7d) return JsonObject.fromLists(this.shape(keys), values.length < 17 ? values.slice() : values);
      if (c !== 0x2c) {
        this.pos--;
        this.fail('expected "," or "}"');
      }
    }
  }

  /** One shared list of names per shape. */
  private readonly shapes = new Map<string, readonly string[]>();
  shape(keys: string[]): readonly string[] {
    if (keys.length > 16) return keys;
    const sig = keys.join('\u0000');
    const known = this.shapes.get(sig);
    if (known) return known;
    if (this.shapes.size < 1024) this.shapes.set(sig, keys);
    return keys;
  }

  /** Member names repeat in every element of an array: one string each. */
  private readonly names = new Map<string, string>();
  name(k: string): string {
    const known = this.names.get(k);
    if (known !== undefined) return known;
    if (this.names.size < 4096) this.names.set(k, k);
    return k;
  }

  array(depth: number): JsonValue[] {
    this.pos++;
    const out: JsonValue[] = [];
    this.ws();
    if (this.at(this.pos) === 0x5d) {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.value(depth + 1));
      this.ws();
      const c = this.at(this.pos++);
      if (c === 0x5d) return out;
      if (c !== 0x2c) {
        this.pos--;
        this.fail('expected "," or "]"');
      }
    }
  }

  string(): string {
    const start = this.pos;
    this.pos++;
    for (;;) {
      const i = this.indexOfQuote(this.pos);
      if (i < 0) {
        this.pos = start;
        this.fail('unterminated string');
      }
      let bs = 0;
      for (let j = i - 1; j > start && this.at(j) === BACKSLASH; j--) bs++;
      this.pos = i + 1;
      if (bs % 2 === 0) break;
    }
    let escaped = false;
    for (let i = start + 1; i < this.pos - 1; i++) {
      const c = this.at(i);
      if (c < 0x20) {
        this.pos = i;
        this.fail('control character in string');
      }
      if (c === BACKSLASH) escaped = true;
    }
    // Most strings hold no escape: the text between the quotes is the value,
    // without a JSON.parse (metadata with 200,000 snapshots has 600,000 of
    // them).
    if (!escaped) return this.text(start + 1, this.pos - 1);
    try {
      return JSON.parse(this.text(start, this.pos)) as string;
    } catch {
      this.pos = start;
      return this.fail('invalid escape in string');
    }
  }

  /**
   * -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, scanned by hand: a RegExp
   * keeps its last subject alive (RegExp.lastMatch), and a slice of the
   * text as subject would keep the whole document with it.
   */
  number(): JsonNumber {
    const start = this.pos;
    let p = start;
    const digits = (): number => {
      const from = p;
      for (let c = this.at(p); c >= 0x30 && c <= 0x39; c = this.at(p)) p++;
      return p - from;
    };
    if (this.at(p) === 0x2d) p++;
    if (this.at(p) === 0x30) p++;
    else if (digits() === 0) this.fail('invalid number');
    if (this.at(p) === 0x2e) {
      p++;
      if (digits() === 0) this.fail('invalid number');
    }
    if (this.at(p) === 0x65 || this.at(p) === 0x45) {
      p++;
      if (this.at(p) === 0x2b || this.at(p) === 0x2d) p++;
      if (digits() === 0) this.fail('invalid number');
    }
    this.pos = p;
    return new JsonNumber(this.text(start, p));
  }
}

export interface ParseJsonOptions {
  /**
   * A leading byte order mark: refused by default, as serde_json refuses it
   * (`serde_json::from_slice` skips only JSON whitespace, so the engine's
   * read_epoch_metadata in krishiv-state checkpoint/io.rs fails on it); files
   * a person writes for ksp (rename maps) may allow it.
   */
  allowBom?: boolean;
}

/** Parses JSON text (UTF-8 bytes or a string); `file` names it in errors. */
export function parseJson(input: Uint8Array | string, file: string, options: ParseJsonOptions = {}): JsonValue {
  let src: Source;
  if (typeof input === 'string') src = input;
  else if (isAscii(input)) src = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  else {
    try {
      // ignoreBOM keeps a BOM in the text, so it is seen (and refused) below
      // instead of being dropped silently by the decoder.
      src = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(input);
    } catch {
      throw new KspError('JSON_SYNTAX', `${file}: not valid UTF-8 (the engine reads JSON as UTF-8 only)`, { file });
    }
  }
  // A BOM is not ASCII, so only decoded text can start with one.
  if (typeof src === 'string' && src.charCodeAt(0) === 0xfeff) {
    if (!options.allowBom) throw new KspError('JSON_SYNTAX', `${file}: starts with a UTF-8 byte order mark (EF BB BF), which the engine's JSON parser refuses`, { file, offset: 0 });
    src = src.slice(1);
  }
  const p = new Parser(src, file);
  const v = p.value(0);
  p.ws();
  if (p.pos !== p.length) p.fail('unexpected data after the JSON value');
  return v;
}

/** serde_json's `to_vec_pretty` layout. */
export function stringifyPretty(v: JsonValue, indent = ''): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  // JSON.stringify escapes exactly what serde_json escapes (", \, control
  // characters, lone surrogates) and writes everything else as UTF-8.
  if (typeof v === 'string') return JSON.stringify(v);
  if (v instanceof JsonNumber) return v.text;
  const inner = indent + '  ';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[\n${v.map((x) => inner + stringifyPretty(x, inner)).join(',\n')}\n${indent}]`;
  }
  if (v.members.length === 0) return '{}';
  return `{\n${v.members.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${stringifyPretty(x, inner)}`).join(',\n')}\n${indent}}`;
}

/**
 * stringifyPretty's UTF-8 bytes, built a megabyte at a time: no single string
 * of the whole document nor a list of all its lines (metadata with 1,000,000
 * source offsets made both, on top of the parsed document, past a 256 MB heap).
 */
export function prettyBytes(v: JsonValue): Buffer {
  const bufs: Buffer[] = [];
  let parts: string[] = [];
  let len = 0;
  const put = (s: string): void => {
    parts.push(s);
    len += s.length;
    if (len >= 1 << 20) {
      bufs.push(Buffer.from(parts.join(''), 'utf8'));
      parts = [];
      len = 0;
    }
  };
  const walk = (x: JsonValue, indent: string): void => {
    if (!Array.isArray(x) && !(x instanceof JsonObject)) return put(stringifyPretty(x));
    const inner = indent + '  ';
    if (Array.isArray(x)) {
      if (x.length === 0) return put('[]');
      put('[\n');
      for (let i = 0; i < x.length; i++) {
        if (i) put(',\n');
        put(inner);
        walk(x[i]!, inner);
      }
      return put(`\n${indent}]`);
    }
    const members = x.members;
    if (members.length === 0) return put('{}');
    put('{\n');
    for (let i = 0; i < members.length; i++) {
      if (i) put(',\n');
      put(`${inner}${JSON.stringify(members[i]![0])}: `);
      walk(members[i]![1], inner);
    }
    put(`\n${indent}}`);
  };
  walk(v, '');
  bufs.push(Buffer.from(parts.join(''), 'utf8'));
  return bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs);
}
