import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildManifest, parseManifest } from '../../src/formats/manifest/manifest.js';
import { KspError } from '../../src/errors.js';
import { ENGINE_SP, HAS_SHARED } from '../support/env.js';

const H = 'a'.repeat(64);

describe('manifest.sha256', () => {
  it.skipIf(!HAS_SHARED)('parses and rebuilds the engine fixture byte-identically', () => {
    const bytes = readFileSync(join(ENGINE_SP, 'manifest.sha256'));
    const m = parseManifest(bytes);
    expect(m.entries.map((e) => e.path)).toEqual(['metadata.json', 'op-0/task-0/state.bin']);
    expect(m.notes).toEqual([]);
    expect(Buffer.from(buildManifest(m.entries)).equals(bytes)).toBe(true);
  });

  it('sorts by UTF-8 bytes like the engine', () => {
    const out = buildManifest([{ path: 'b', sha256: H }, { path: '\u{1F600}', sha256: H }, { path: '\uFF61', sha256: H }, { path: 'a/b', sha256: H }, { path: 'a-c', sha256: H }]).toString();
    expect(out.split('\n').filter(Boolean).map((l) => l.slice(73))).toEqual(['a-c', 'a/b', 'b', '\uFF61', '\u{1F600}']);
  });

  it.each([
    [`sha256:${H} metadata.json\n`, /two spaces/],
    [`sha256:${H.toUpperCase()}  metadata.json\n`, /64 lowercase hex/],
    [`md5:${H}  metadata.json\n`, /expected "sha256:/],
    [`sha256:${H}  ../etc/passwd\n`, /"\.\." component/],
    [`sha256:${H}  /abs\n`, /starts with "\/"/],
    [`sha256:${H}  a\\b\n`, /contains "\\"/],
    [`sha256:${H}  a//b\n`, /empty component/],
    [`sha256:${H}  manifest.sha256\n`, /must not list itself/],
    [`sha256:${H}  a\nsha256:${H}  a\n`, /listed twice/],
  ])('rejects %j with its line', (text, msg) => {
    let e: KspError | undefined;
    try { parseManifest(Buffer.from(text), 'm'); } catch (x) { e = x as KspError; }
    expect(e?.code).toBe('MANIFEST_MALFORMED');
    expect(e?.message).toMatch(msg);
    expect(e?.data.line).toBeGreaterThan(0);
  });

  it('notes layout-only differences without rejecting', () => {
    const m = parseManifest(Buffer.from(`sha256:${H}  b\n\nsha256:${H}  a`));
    expect(m.entries.length).toBe(2);
    expect(m.notes.map((n) => n.message)).toEqual(['the last line has no newline', 'blank line', 'not sorted: "a" comes after "b"']);
  });

  it('rejects non-UTF-8', () => {
    expect(() => parseManifest(Buffer.from([0xff]))).toThrow(/UTF-8/);
  });
});
