import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KEY_GROUPS, keyGroup, keyGroupRange, taskForKeyGroup } from '../../src/model/key-group.js';
import { isWatermarkKey, routingKey, windowGroupKey } from '../../src/model/routing.js';

describe('key groups', () => {
  it.each([
    ['', 25080], ['customer-42', 29021], ['acct-7', 4166], ['user-00', 11677], ['key-a', 11571], ['tw:', 4950],
  ])('matches the engine vector %j -> %i', (k, g) => {
    expect(keyGroup(Buffer.from(k))).toBe(g);
  });
  it('bytes 00 01 02 -> 10238', () => {
    expect(keyGroup(Buffer.from([0, 1, 2]))).toBe(10238);
  });
  it('long keys (beyond the scratch buffer) hash like short ones would', () => {
    const big = Buffer.alloc(10_000, 7);
    const d = createHash('sha256').update(Buffer.from('krishiv.partition-key.v1\0keygroup\0', 'latin1')).update(big).digest();
    expect(keyGroup(big)).toBe(Number(d.readBigUInt64LE(0) % 32768n));
  });
  it('ranges for p=3 are the engine\'s', () => {
    expect([0, 1, 2].map((i) => keyGroupRange(i, 3))).toEqual([[0, 10922], [10923, 21845], [21846, 32767]]);
  });
  it('ranges tile 0..32767 and taskForKeyGroup agrees with them, for any parallelism', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: KEY_GROUPS }), fc.integer({ min: 0, max: KEY_GROUPS - 1 }), (p, kg) => {
      const t = taskForKeyGroup(kg, p);
      const [a, b] = keyGroupRange(t, p);
      expect(kg).toBeGreaterThanOrEqual(a);
      expect(kg).toBeLessThanOrEqual(b);
      expect(keyGroupRange(0, p)[0]).toBe(0);
      expect(keyGroupRange(p - 1, p)[1]).toBe(KEY_GROUPS - 1);
    }), { numRuns: 500 });
  });
});

function wkey(tag: string, group: Buffer, tail: number, lenOverride?: number): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(lenOverride ?? group.length);
  return Buffer.concat([Buffer.from(tag), len, group, Buffer.alloc(tail, 9)]);
}

describe('window routing', () => {
  const g = Buffer.from('user-7');
  it.each([['tw:', 8], ['sw:', 8], ['ses:', 16]])('%s keys route by their embedded group key', (tag, tail) => {
    expect(Buffer.from(windowGroupKey(wkey(tag, g, tail))!).equals(g)).toBe(true);
    expect(Buffer.from(routingKey(wkey(tag, g, tail), 'window')!).equals(g)).toBe(true);
  });
  it.each([
    ['wrong tail length', wkey('tw:', g, 7)],
    ['length past the end', wkey('tw:', g, 8, 100)],
    ['ses: with an 8-byte tail', wkey('ses:', g, 8)],
    ['the fixture key tw:key-a', Buffer.from('tw:key-a')],
    ['no tag', Buffer.from('user-7')],
  ])('%s: not a window key (broadcast under window routing)', (_n, key) => {
    expect(windowGroupKey(key)).toBeNull();
    expect(routingKey(key, 'window')).toBeNull();
    expect(routingKey(key, 'state-key')).toBe(key);
  });
  it('wm: is the watermark and is broadcast', () => {
    expect(isWatermarkKey(Buffer.from('wm:'))).toBe(true);
    expect(isWatermarkKey(Buffer.from('wm:x'))).toBe(false);
    expect(routingKey(Buffer.from('wm:'), 'window')).toBeNull();
  });
  it('an empty group key is a valid layout', () => {
    expect(windowGroupKey(wkey('tw:', Buffer.alloc(0), 8))!.length).toBe(0);
  });
});
