import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { packFast } from '../../src/migrate/msgpack-pack.js';
import { codecs } from '../../src/migrate/codecs.js';
import { prng } from '../../src/tools/synthetic.js';

// The msgpack codec's own msgpackr settings (src/migrate/codecs.ts).
const packr = new Packr({ useRecords: false, int64AsType: 'auto' } as unknown as ConstructorParameters<typeof Packr>[0]);

// A seeded generator (src/tools/synthetic.ts), so a failure names a value that can be made again.
const rng = prng;

const EDGE_NUMBERS = [0, -0, 1, 0x1f, 0x20, 0x3f, 0x40, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000,
  -1, -0x1f, -0x20, -0x21, -0x7f, -0x80, -0x81, -0x7fff, -0x8000, -0x8001, -0x7fffffff, -0x80000000, -0x80000001,
  0.5, -0.5, 1.5e300, -2.5e-300, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 2 ** 53, Infinity, -Infinity, Number.EPSILON, 3.14159];

function value(r: () => number, depth: number): unknown {
  const k = Math.floor(r() * (depth > 3 ? 6 : 9));
  switch (k) {
    case 0: return EDGE_NUMBERS[Math.floor(r() * EDGE_NUMBERS.length)];
    case 1: return Math.floor((r() - 0.5) * 2 ** Math.floor(r() * 40));
    case 2: return (r() - 0.5) * 10 ** Math.floor(r() * 12);
    case 3: return 'abcdefghijklmnopqrstuvwxyz_-0123456789'.repeat(1 + Math.floor(r() * 10)).slice(0, [0, 1, 31, 32, 63, 64, 200, 255, 256][Math.floor(r() * 9)]!);
    case 4: return r() < 0.3 ? null : r() < 0.5;
    case 5: {
      const n = [0, 1, 64, 255, 256, 1000][Math.floor(r() * 6)]!;
      const b = Buffer.alloc(n, Math.floor(r() * 256));
      return r() < 0.5 ? b : new Uint8Array(b);
    }
    case 6: return Array.from({ length: [0, 3, 15, 16, 20][Math.floor(r() * 5)]! }, () => value(r, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      const n = [0, 2, 4, 15, 16, 17][Math.floor(r() * 6)]!;
      for (let i = 0; i < n; i++) o[`k${Math.floor(r() * 1000)}`] = value(r, depth + 1);
      return r() < 0.3 ? { ...o, extra: true } : o;
    }
  }
}

describe('msgpack: the fast encoder writes msgpackr\'s bytes', () => {
  it('random plain values (objects, arrays, numbers, ASCII strings, bytes) encode byte for byte as msgpackr', () => {
    const r = rng(13);
    let fast = 0;
    for (let i = 0; i < 8000; i++) {
      const v = value(r, 0);
      const mine = packFast(v);
      const theirs = packr.pack(v);
      if (mine === null) continue;
      fast++;
      if (Buffer.compare(Buffer.from(mine), Buffer.from(theirs)) !== 0) {
        expect(Buffer.from(mine).toString('hex'), JSON.stringify(v)).toBe(Buffer.from(theirs).toString('hex'));
      }
    }
    expect(fast).toBeGreaterThan(7500);
  });

  it('every edge number, a long string and big bytes match', () => {
    for (const n of EDGE_NUMBERS) expect(Buffer.from(packFast(n)!).toString('hex'), String(n)).toBe(Buffer.from(packr.pack(n)).toString('hex'));
    for (const v of ['x'.repeat(70000), Buffer.alloc(70000, 3), Array.from({ length: 70000 }, (_, i) => i)]) {
      expect(Buffer.compare(Buffer.from(packFast(v)!), Buffer.from(packr.pack(v)))).toBe(0);
    }
    // Values handed out stay intact while later ones are encoded.
    const a = packFast({ a: 1, s: 'first' })!;
    const copy = Buffer.from(a);
    for (let i = 0; i < 10000; i++) packFast({ i, pad: 'p'.repeat(i % 100) });
    expect(Buffer.compare(Buffer.from(a), copy)).toBe(0);
  });

  it('what it does not handle is left to msgpackr (null answer), and the codec still encodes it', () => {
    class Point { constructor(readonly x: number) {} }
    const others: unknown[] = ['naïve', 'a\ud800b', 1n, 2n ** 70n, undefined, { u: undefined }, new Map([[1, 2]]), new Date(0), new Set([1]), new Point(1), new Uint16Array([1, 2]), NaN, Object.create(null), [1, 'é'],
      Object.assign(Buffer.from([1]), { toJSON: () => 'x' })];
    others.forEach((v, i) => expect(packFast(v), `others[${i}]`).toBeNull());
    others.forEach((v, i) => {
      // msgpackr refuses big bigints; it writes a Uint16Array's bytes only half (the rest is whatever its buffer held), so no two runs agree.
      if (v === undefined || (typeof v === 'bigint' && v >= 2n ** 64n) || v instanceof Uint16Array) return;
      expect(Buffer.from(codecs.msgpack.encode(v)).toString('hex'), `others[${i}]`).toBe(Buffer.from(packr.pack(v)).toString('hex'));
    });
  });
});
