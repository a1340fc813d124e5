import { describe, expect, it } from 'vitest';
import { tmpdir } from 'node:os';
import { KeySorter } from '../../src/write/key-sorter.js';

/** The key sorter's order against a plain reference sort: byte order, equal keys reduced to the last added. */

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

async function sortedBy(records: Array<[Buffer, Buffer]>, runBytes: number): Promise<{ out: string[]; duplicates: number; superseded: string[] }> {
  const s = new KeySorter(tmpdir(), runBytes);
  const superseded: string[] = [];
  s.onDuplicate = (k) => void superseded.push(Buffer.from(k).toString('hex'));
  for (const [k, v] of records) s.add(k, v);
  const out: string[] = [];
  try {
    for await (const b of s.sorted()) for (const r of b) out.push(`${Buffer.from(r.key).toString('hex')}=${Buffer.from(r.value).toString('hex')}`);
  } finally {
    s.remove();
  }
  return { out, duplicates: s.duplicates, superseded: superseded.sort() };
}

describe('KeySorter', () => {
  it.each([[1 << 26, 'in memory'], [1 << 16, 'spilled runs']])('orders short, shared-prefix and repeated keys as a reference sort does (%s: %s)', async (runBytes) => {
    const r = rng(7);
    const records: Array<[Buffer, Buffer]> = [];
    for (let i = 0; i < 5000; i++) {
      // Lengths 0..9 over a 3-letter alphabet: many keys shorter than 4 bytes, many sharing their first 4, many repeats.
      const key = Buffer.from(Array.from({ length: Math.floor(r() * 10) }, () => Math.floor(r() * 3)));
      // Values of 64 bytes: records large enough for the packed sort (byPrefix) in both arena sizes.
      records.push([key, Buffer.from(String(i).padStart(64, '.'))]);
    }
    const last = new Map<string, string>();
    const count = new Map<string, number>();
    for (const [k, v] of records) {
      last.set(k.toString('hex'), v.toString('hex'));
      count.set(k.toString('hex'), (count.get(k.toString('hex')) ?? 0) + 1);
    }
    const expected = [...last.keys()].sort((a, b) => Buffer.compare(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'))).map((k) => `${k}=${last.get(k)}`);
    const got = await sortedBy(records, runBytes);
    expect(got.out).toEqual(expected);
    expect(got.duplicates).toBe(records.length - last.size);
    expect(got.superseded).toEqual([...count].flatMap(([k, n]) => Array<string>(n - 1).fill(k)).sort());
  });
});
