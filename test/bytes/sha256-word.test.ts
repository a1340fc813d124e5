import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PrefixedSha256 } from '../../src/bytes/sha256-word.js';

describe('JS SHA-256 first word', () => {
  it('equals node:crypto for every length around the block boundaries, and beyond the fast path', () => {
    for (const prefix of [Buffer.alloc(0), Buffer.from('krishiv.partition-key.v1\0keygroup\0', 'latin1'), Buffer.alloc(63, 1)]) {
      const s = new PrefixedSha256(prefix);
      for (let len = 0; len <= 400; len++) {
        const msg = Buffer.alloc(len);
        for (let i = 0; i < len; i++) msg[i] = (i * 131 + len) & 0xff;
        const want = createHash('sha256').update(prefix).update(msg).digest().readUInt32BE(0);
        expect(s.firstWord(msg), `prefix ${prefix.length}, length ${len}`).toBe(want);
      }
    }
  });
  it('equals node:crypto for random messages, with the scratch buffer reused between calls', () => {
    const prefix = Buffer.from('krishiv.partition-key.v1\0keygroup\0', 'latin1');
    const s = new PrefixedSha256(prefix);
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 10 }), (msgs) => {
      for (const m of msgs) expect(s.firstWord(m)).toBe(createHash('sha256').update(prefix).update(m).digest().readUInt32BE(0));
    }), { numRuns: 300 });
  });
});

describe('JS SHA-256 first word, one block, message read in place', () => {
  it('equals node:crypto for every message length up to one block and beyond, at any offset', async () => {
    const { PrefixedSha256Block } = await import('../../src/bytes/sha256-block.js');
    for (const prefix of [Buffer.alloc(0), Buffer.from('krishiv.partition-key.v1\0keygroup\0', 'latin1'), Buffer.alloc(3, 7), Buffer.alloc(55, 1)]) {
      const s = new PrefixedSha256Block(prefix);
      for (let len = 0; len <= 120; len++) {
        const buf = Buffer.alloc(len + 9);
        for (let i = 0; i < buf.length; i++) buf[i] = (i * 131 + len) & 0xff;
        const msg = buf.subarray(5, 5 + len);
        const want = createHash('sha256').update(prefix).update(msg).digest().readUInt32BE(0);
        expect(s.firstWordAt(buf, 5, len), `prefix ${prefix.length}, length ${len}`).toBe(want);
      }
    }
  });

  it('equals node:crypto when lengths repeat, shrink and grow between calls (the block keeps its padding per length)', async () => {
    const { PrefixedSha256Block } = await import('../../src/bytes/sha256-block.js');
    const prefix = Buffer.from('krishiv.partition-key.v1\0keygroup\0', 'latin1');
    const s = new PrefixedSha256Block(prefix);
    const buf = Buffer.alloc(4096);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 197 + 11) & 0xff;
    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    for (let k = 0; k < 2000; k++) {
      // Runs of one length (as in a state of fixed-size keys), then a jump up or down, past the fast path too.
      const len = k % 5 === 0 ? rnd(40) : k % 5 === 1 ? 21 : 16;
      const off = rnd(buf.length - len);
      const want = createHash('sha256').update(prefix).update(buf.subarray(off, off + len)).digest().readUInt32BE(0);
      expect(s.firstWordAt(buf, off, len), `call ${k}, length ${len}`).toBe(want);
    }
  });
});
