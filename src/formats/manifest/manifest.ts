import { isUtf8 } from 'node:buffer';
import { KspError } from '../../errors.js';
import { unsafeReason } from '../stored-path.js';

/**
 * `manifest.sha256`, the integrity manifest (FORMAT.md beside this file).
 * Parsing is strict where a mistake could hide corruption (bad hash text,
 * unsafe or duplicate paths) and reports, rather than rejects, what only
 * differs in layout from what the engine writes (order, blank lines).
 */

export const MANIFEST_NAME = 'manifest.sha256';

export interface ManifestEntry {
  path: string;
  sha256: string;
}

export interface ManifestNote {
  line: number;
  message: string;
}

export interface ParsedManifest {
  entries: ManifestEntry[];
  /** Layout differences from what the engine writes; not errors. */
  notes: ManifestNote[];
}

/**
 * The manifest's entries, compact: a large job's manifest lists 200,000
 * files, and a Map of path to hex string plus an entry object per line held
 * ~40 MB where this holds ~12 (the 32 hash bytes per file in one buffer,
 * the hex made only when asked for). Paths keep the manifest's order.
 */
export class ManifestIndex {
  /**
   * Path to position, only while the paths are not in byte order: a sorted
   * index (an engine manifest as parsed, a writer's index once sorted) is
   * searched by bisection instead, and a Map of 200,000 paths was ~9 MB.
   */
  private at: Map<string, number> | null = null;
  private readonly order: string[] = [];
  private hashes: Buffer = Buffer.allocUnsafe(32 * 1024);
  /** The paths are in byte order, each once: encode() takes them as they are. */
  private sorted = true;

  get size(): number {
    return this.order.length;
  }

  /** Adds a path not yet listed; `hex` is 64 lowercase hex digits. */
  add(path: string, hex: string): void {
    const i = this.order.length;
    if (this.hashes.length < 32 * (i + 1)) {
      const grown = Buffer.allocUnsafe(this.hashes.length * 2);
      this.hashes.copy(grown);
      this.hashes = grown;
    }
    this.hashes.write(hex, 32 * i, 'hex');
    if (this.sorted && i > 0 && byteOrder(this.order[i - 1]!, path) >= 0) {
      // Out of order: from here on looked up by a Map.
      this.sorted = false;
      this.at = new Map(this.order.map((p, k) => [p, k]));
    }
    this.at?.set(path, i);
    this.order.push(path);
  }

  /** Position of a path, or -1. */
  private find(path: string): number {
    if (this.at) return this.at.get(path) ?? -1;
    const order = this.order;
    let lo = 0;
    let hi = order.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const c = byteOrder(order[mid]!, path);
      if (c === 0) return mid;
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  has(path: string): boolean {
    return this.find(path) >= 0;
  }

  /** The path's position in `paths()`, or -1. */
  indexOf(path: string): number {
    return this.find(path);
  }

  /** Replaces a listed path's hash (a writer's placeholder, once the file's hash is known). */
  setHash(path: string, hex: string): void {
    const i = this.find(path);
    if (i < 0 || !/^[0-9a-f]{64}$/.test(hex)) throw new KspError('INTERNAL', `manifest: cannot set ${JSON.stringify(hex)} for ${path}`);
    this.hashes.write(hex, 32 * i, 'hex');
  }

  /** The recorded SHA-256, as lowercase hex. */
  get(path: string): string | undefined {
    const i = this.find(path);
    return i < 0 ? undefined : this.hashes.toString('hex', 32 * i, 32 * i + 32);
  }

  /** Paths in manifest order. */
  paths(): readonly string[] {
    return this.order;
  }

  /**
   * Puts the paths in the order the encoded manifest lists them (UTF-8
   * bytes): a writer's index fills in completion order, and a re-verify
   * handed the index itself (no second parsed copy, ~20 MB at 200,000 files)
   * then reads the files in the order it would read them from the bytes.
   * `moved(from, to)` hears where each position went, for a caller that
   * keeps something per position.
   */
  sort(moved?: (from: number, to: number) => void): void {
    if (this.sorted) return;
    const paths = this.order;
    const at = Int32Array.from(paths, (_, i) => i).sort((a, b) => byteOrder(paths[a]!, paths[b]!));
    const hashes = Buffer.allocUnsafe(Math.max(32, 32 * at.length));
    const order = new Array<string>(at.length);
    for (let k = 0; k < at.length; k++) {
      const i = at[k]!;
      // What encode() refuses, refused here already.
      checkManifestPath(paths[i]!);
      if (k > 0 && paths[at[k - 1]!] === paths[i]) throw new KspError('INTERNAL', `manifest lists ${paths[i]} twice`);
      this.hashes.copy(hashes, 32 * k, 32 * i, 32 * i + 32);
      order[k] = paths[i]!;
      moved?.(i, k);
    }
    this.hashes = hashes;
    this.order.length = 0;
    for (const p of order) this.order.push(p);
    this.at = null;
    this.sorted = true;
  }

  *entries(): IterableIterator<ManifestEntry> {
    for (const path of this.order) yield { path, sha256: this.get(path)! };
  }

  /**
   * The engine's serialisation (see buildManifest), written straight into
   * one buffer: no line string or entry object per file.
   */
  encode(): Buffer {
    const paths = this.order;
    let size = 0;
    for (const p of paths) {
      checkManifestPath(p);
      size += PATH_AT + Buffer.byteLength(p, 'utf8') + 1;
    }
    // A writer sorted its index for the re-verify already: not sorted again.
    const at = Int32Array.from(paths, (_, i) => i);
    if (!this.sorted) at.sort((a, b) => byteOrder(paths[a]!, paths[b]!));
    const out = Buffer.allocUnsafe(size);
    let o = 0;
    for (let k = 0; k < at.length; k++) {
      const i = at[k]!;
      if (k > 0 && paths[at[k - 1]!] === paths[i]) throw new KspError('INTERNAL', `manifest lists ${paths[i]} twice`);
      o += PREFIX.copy(out, o);
      o += out.write(this.hashes.toString('hex', 32 * i, 32 * i + 32), o, 'latin1');
      out[o++] = 0x20;
      out[o++] = 0x20;
      o += out.write(paths[i]!, o, 'utf8');
      out[o++] = 0x0a;
    }
    return out;
  }
}

function checkManifestPath(path: string): void {
  const why = unsafeReason(path);
  if (why) throw new KspError('PATH_UNSAFE', `manifest path ${JSON.stringify(path)} is not a safe relative path: ${why}`, { found: path });
  if (path === MANIFEST_NAME) throw new KspError('INTERNAL', 'the manifest must not list itself');
}

const LINE = /^sha256:([0-9a-f]{64}) {2}(.+)$/;
const PREFIX = Buffer.from('sha256:');
/** Where the path starts on a well-formed line: `sha256:` + 64 hex + two spaces. */
const PATH_AT = PREFIX.length + 64 + 2;

/**
 * Order by UTF-8 bytes, as the engine keeps entries (a BTreeMap<String>).
 * UTF-16 code-unit order agrees with it except where a surrogate (a
 * character above U+FFFF) meets a unit of U+E000 or more: only then are the
 * strings encoded and compared as bytes. A sort of 200,000 paths encoding
 * both strings at every comparison made millions of buffers.
 */
export function byteOrder(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if ((x >= 0xd800 && x <= 0xdfff) || (y >= 0xd800 && y <= 0xdfff)) {
      if (x >= 0xe000 || y >= 0xe000 || x < 0xd800 || y < 0xd800) return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
    }
    return x - y;
  }
  return a.length - b.length;
}

function isLowerHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66);
}

/** Only ASCII white space between `s` and `e` (a line `trim()` would empty), when it is all ASCII. */
function asciiBlank(b: Uint8Array, s: number, e: number): boolean | null {
  for (let i = s; i < e; i++) {
    const c = b[i]!;
    if (c >= 0x80) return null;
    if (c !== 0x20 && c !== 0x09 && c !== 0x0d && c !== 0x0b && c !== 0x0c) return false;
  }
  return true;
}

/**
 * A well-formed line read from its bytes without a string per line (the
 * common case, 200,000 times for a large job): its path and hash text, or
 * null when the line needs the exact, string-based reading below (anything
 * unusual: it then gets the same answer, or error, as always).
 */
function fastLine(b: Buffer, s: number, e: number): [string, string] | null {
  if (e > s && b[e - 1] === 0x0d) e--;
  if (e - s <= PATH_AT) return null;
  for (let i = 0; i < PREFIX.length; i++) if (b[s + i] !== PREFIX[i]) return null;
  for (let i = s + PREFIX.length; i < s + PREFIX.length + 64; i++) if (!isLowerHex(b[i]!)) return null;
  if (b[s + PATH_AT - 2] !== 0x20 || b[s + PATH_AT - 1] !== 0x20) return null;
  let ascii = true;
  for (let i = s + PATH_AT; i < e; i++) {
    const c = b[i]!;
    // \r and the line separators U+2028/2029 (E2 80 A8/A9) end a regex `.`: the exact reading decides.
    if (c === 0x0d || c === 0xe2) return null;
    if (c >= 0x80) ascii = false;
  }
  return [b.toString(ascii ? 'latin1' : 'utf8', s + PATH_AT, e), b.toString('latin1', s + PREFIX.length, s + PREFIX.length + 64)];
}

/** Parses into a compact index (see ManifestIndex); the same rules and errors as parseManifest. */
export function parseManifestIndex(bytes: Uint8Array, file = MANIFEST_NAME): { index: ManifestIndex; notes: ManifestNote[] } {
  const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!isUtf8(b)) throw new KspError('MANIFEST_MALFORMED', `${file}: not valid UTF-8`, { file });
  const index = new ManifestIndex();
  const notes: ManifestNote[] = [];
  let prev: string | null = null;
  let line = 0;
  if (b.length > 0 && b[b.length - 1] !== 0x0a) {
    let lines = 1;
    for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) lines++;
    notes.push({ line: lines, message: 'the last line has no newline' });
  }
  for (let s = 0; s < b.length; ) {
    line++;
    let e = b.indexOf(0x0a, s);
    if (e < 0) e = b.length;
    const fail = (why: string, extra: Record<string, unknown> = {}): never => {
      throw new KspError('MANIFEST_MALFORMED', `${file}: line ${line}: ${why}`, { file, line, ...extra });
    };
    let parsed = fastLine(b, s, e);
    if (!parsed) {
      const blank = asciiBlank(b, s, e);
      // ignoreBOM: a leading BOM stays in the text, since the engine does not
      // skip it (krishiv-state checkpoint/metadata.rs,
      // IntegrityManifest::deserialize: `line.trim()` leaves U+FEFF, which is
      // not white space, and `strip_prefix("sha256:")` then fails).
      const raw = blank === true ? '' : new TextDecoder('utf-8', { ignoreBOM: true }).decode(b.subarray(s, e));
      if (blank === true || raw.trim() === '') {
        notes.push({ line, message: 'blank line' });
        s = e + 1;
        continue;
      }
      const m = LINE.exec(raw.replace(/\r$/, ''));
      if (!m) {
        if (raw.charCodeAt(0) === 0xfeff) fail('starts with a UTF-8 byte order mark (EF BB BF), which the engine\'s manifest parser refuses');
        if (!raw.startsWith('sha256:')) fail('expected "sha256:<64 hex>  <path>"', { found: raw.slice(0, 80) });
        const hex = raw.slice(7).split(' ')[0] ?? '';
        if (!/^[0-9a-f]{64}$/.test(hex)) fail(`expected 64 lowercase hex digits after "sha256:", found ${JSON.stringify(hex.slice(0, 70))}`, { expected: '64 lowercase hex digits', found: hex.slice(0, 70) });
        fail('expected two spaces between the hash and the path', { found: raw.slice(0, 80) });
      }
      parsed = [m![2]!, m![1]!];
    }
    const [path, sha256] = parsed;
    const why = unsafeReason(path);
    if (why) fail(`path ${JSON.stringify(path)} is not a safe relative path: ${why}`, { found: path, code2: 'PATH_UNSAFE' });
    if (path === MANIFEST_NAME) fail('the manifest must not list itself');
    if (index.has(path)) fail(`path ${JSON.stringify(path)} is listed twice`, { found: path });
    if (prev !== null && byteOrder(prev, path) > 0) notes.push({ line, message: `not sorted: ${JSON.stringify(path)} comes after ${JSON.stringify(prev)}` });
    index.add(path, sha256);
    prev = path;
    s = e + 1;
  }
  return { index, notes };
}

export function parseManifest(bytes: Uint8Array, file = MANIFEST_NAME): ParsedManifest {
  const { index, notes } = parseManifestIndex(bytes, file);
  return { entries: [...index.entries()], notes };
}
/** The engine's serialisation: one line per file, sorted by path bytes, `\n`-terminated. */
export function buildManifest(entries: Iterable<ManifestEntry>): Uint8Array {
  const index = new ManifestIndex();
  for (const e of entries) {
    if (!/^[0-9a-f]{64}$/.test(e.sha256)) throw new KspError('INTERNAL', `bad sha256 for ${e.path}: ${e.sha256}`);
    if (index.has(e.path)) throw new KspError('INTERNAL', `manifest lists ${e.path} twice`);
    index.add(e.path, e.sha256);
  }
  return index.encode();
}
