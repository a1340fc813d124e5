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

const LINE = /^sha256:([0-9a-f]{64}) {2}(.+)$/;

function byteOrder(a: string, b: string): number {
  // The engine keeps entries in a BTreeMap<String>: ordered by UTF-8 bytes,
  // which differs from JS string order for characters above U+FFFF.
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export function parseManifest(bytes: Uint8Array, file = MANIFEST_NAME): ParsedManifest {
  let text: string;
  try {
    // ignoreBOM keeps a leading BOM in the text: the engine does not skip it
    // (krishiv-state checkpoint/metadata.rs, IntegrityManifest::deserialize:
    // `line.trim()` leaves U+FEFF, which is not white space, and
    // `strip_prefix("sha256:")` then fails), so neither does ksp.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new KspError('MANIFEST_MALFORMED', `${file}: not valid UTF-8`, { file });
  }
  const entries: ManifestEntry[] = [];
  const notes: ManifestNote[] = [];
  const seen = new Set<string>();
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  else if (text.length > 0) notes.push({ line: lines.length, message: 'the last line has no newline' });
  lines.forEach((raw, i) => {
    const line = i + 1;
    const fail = (why: string, extra: Record<string, unknown> = {}): never => {
      throw new KspError('MANIFEST_MALFORMED', `${file}: line ${line}: ${why}`, { file, line, ...extra });
    };
    if (raw.trim() === '') {
      notes.push({ line, message: 'blank line' });
      return;
    }
    const m = LINE.exec(raw.replace(/\r$/, ''));
    if (!m) {
      if (raw.charCodeAt(0) === 0xfeff) fail('starts with a UTF-8 byte order mark (EF BB BF), which the engine\'s manifest parser refuses');
      if (!raw.startsWith('sha256:')) fail('expected "sha256:<64 hex>  <path>"', { found: raw.slice(0, 80) });
      const hex = raw.slice(7).split(' ')[0] ?? '';
      if (!/^[0-9a-f]{64}$/.test(hex)) fail(`expected 64 lowercase hex digits after "sha256:", found ${JSON.stringify(hex.slice(0, 70))}`, { expected: '64 lowercase hex digits', found: hex.slice(0, 70) });
      fail('expected two spaces between the hash and the path', { found: raw.slice(0, 80) });
    }
    const [, sha256, path] = m as unknown as [string, string, string];
    const why = unsafeReason(path);
    if (why) fail(`path ${JSON.stringify(path)} is not a safe relative path: ${why}`, { found: path, code2: 'PATH_UNSAFE' });
    if (path === MANIFEST_NAME) fail('the manifest must not list itself');
    if (seen.has(path)) fail(`path ${JSON.stringify(path)} is listed twice`, { found: path });
    seen.add(path);
    const prev = entries[entries.length - 1];
    if (prev && byteOrder(prev.path, path) > 0) notes.push({ line, message: `not sorted: ${JSON.stringify(path)} comes after ${JSON.stringify(prev.path)}` });
    entries.push({ path, sha256 });
  });
  return { entries, notes };
}

/** The engine's serialisation: one line per file, sorted by path bytes, `\n`-terminated. */
export function buildManifest(entries: Iterable<ManifestEntry>): Uint8Array {
  const list = [...entries];
  for (const e of list) {
    const why = unsafeReason(e.path);
    if (why) throw new KspError('PATH_UNSAFE', `manifest path ${JSON.stringify(e.path)} is not a safe relative path: ${why}`, { found: e.path });
    if (e.path === MANIFEST_NAME) throw new KspError('INTERNAL', 'the manifest must not list itself');
    if (!/^[0-9a-f]{64}$/.test(e.sha256)) throw new KspError('INTERNAL', `bad sha256 for ${e.path}: ${e.sha256}`);
  }
  list.sort((a, b) => byteOrder(a.path, b.path));
  for (let i = 1; i < list.length; i++) {
    if (list[i]!.path === list[i - 1]!.path) throw new KspError('INTERNAL', `manifest lists ${list[i]!.path} twice`);
  }
  return Buffer.from(list.map((e) => `sha256:${e.sha256}  ${e.path}\n`).join(''), 'utf8');
}
