/**
 * The compact manifest index (formats/manifest/manifest.ts): the same
 * answers as the plain parse, hashes kept as bytes, and an encoding equal
 * to buildManifest's, in UTF-8 byte order however the paths compare as
 * JavaScript strings.
 */
import { describe, expect, it } from 'vitest';
import { ManifestIndex, buildManifest, byteOrder, parseManifest, parseManifestIndex } from '../../src/formats/manifest/manifest.js';
import { prng } from '../../src/tools/synthetic.js';

const hex = (r: () => number): string => Array.from({ length: 64 }, () => '0123456789abcdef'[Math.floor(r() * 16)]).join('');

describe('ManifestIndex', () => {
  it('answers as the plain parse does, in manifest order, and encodes what buildManifest builds', () => {
    const r = prng(7);
    const lines = Array.from({ length: 500 }, (_, i) => `sha256:${hex(r)}  op-${i % 7}/task-${i}/state.bin\n`);
    const bytes = Buffer.from(lines.join(''));
    const { index, notes } = parseManifestIndex(bytes);
    const plain = parseManifest(bytes);
    expect(index.size).toBe(500);
    expect([...index.entries()]).toEqual(plain.entries);
    expect(notes).toEqual(plain.notes);
    for (const e of plain.entries) expect(index.get(e.path)).toBe(e.sha256);
    expect(index.get('op-0/missing')).toBeUndefined();
    expect(index.encode().equals(Buffer.from(buildManifest(plain.entries)))).toBe(true);
  });

  it('orders by UTF-8 bytes where UTF-16 order differs (a character above U+FFFF against one from U+E000)', () => {
    const paths = ['\uFF61', '\u{1F600}', 'a', '\uE000x', '\u{10000}', 'é', 'z'];
    const utf8 = [...paths].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect([...paths].sort(byteOrder)).toEqual(utf8);
    const index = new ManifestIndex();
    for (const p of paths) index.add(p, 'b'.repeat(64));
    expect(index.encode().toString().split('\n').filter(Boolean).map((l) => l.slice(73))).toEqual(utf8);
  });

  it('replaces a placeholder hash, and refuses a path it does not list', () => {
    const index = new ManifestIndex();
    index.add('a', '0'.repeat(64));
    index.setHash('a', 'f'.repeat(64));
    expect(index.get('a')).toBe('f'.repeat(64));
    expect(() => index.setHash('b', 'f'.repeat(64))).toThrow(/cannot set/);
  });

  it('keeps the exact reading for unusual lines: CRLF, a blank line, no final newline, a non-ASCII path', () => {
    const H = 'c'.repeat(64);
    const text = `sha256:${H}  b\r\n\nsha256:${H}  \u00e9t\u00e9\nsha256:${H}  a`;
    const { index, notes } = parseManifestIndex(Buffer.from(text));
    expect(index.paths()).toEqual(['b', '\u00e9t\u00e9', 'a']);
    expect(notes.map((n) => n.message)).toEqual(['the last line has no newline', 'blank line', 'not sorted: "a" comes after "été"']);
  });
});

describe('ManifestIndex.sort', () => {
  it('puts the paths in manifest order, and encodes the bytes an unsorted index encodes', () => {
    const paths = ['z/state.bin', 'a/b', 'é/x', 'a/a', 'B'];
    const fill = (): ManifestIndex => {
      const m = new ManifestIndex();
      paths.forEach((p, i) => m.add(p, String(i).repeat(64)));
      return m;
    };
    const sorted = fill();
    sorted.sort();
    expect([...sorted.paths()]).toEqual(['B', 'a/a', 'a/b', 'z/state.bin', 'é/x']);
    expect(sorted.get('é/x')).toBe('2'.repeat(64));
    expect(sorted.encode().equals(fill().encode())).toBe(true);
    // A path added after sorting is placed by encode() again.
    sorted.add('0', '9'.repeat(64));
    expect(sorted.encode().toString().split('\n')[0]).toBe(`sha256:${'9'.repeat(64)}  0`);
  });
});
