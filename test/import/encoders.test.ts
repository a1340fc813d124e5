import { describe, expect, it } from 'vitest';
import { viewCodec, type ViewCodecName } from '../../src/model/value-codecs.js';
import { EncodeError, valueEncoder } from '../../src/model/value-encoders.js';
import { router } from '../../src/import/apply.js';
import { keyGroup, taskForKeyGroup } from '../../src/model/key-group.js';
import { rangeOwnersByName } from '../../src/model/task-ranges.js';

/** The way back of the export's codecs, and the import's routing rule. */

describe('value encoders', () => {
  const bytes = (h: string): Uint8Array => Buffer.from(h, 'hex');
  const cases: Array<[ViewCodecName, string]> = [
    ['utf8', '637573746f6d65722d33'],
    ['hex', '00ff10'],
    ['i64le', '2823000000000000'],
    ['u64le', 'ffffffffffffffff'],
    ['f64le', '000070f827385940'],
    ['json', '7b2261223a5b312c325d7d'],
  ];
  for (const [name, hex] of cases) {
    it(`${name}: decode then encode gives the same bytes`, async () => {
      const decoded = (await viewCodec(name)).decode(bytes(hex));
      expect(Buffer.from((await valueEncoder(name))(decoded)).toString('hex')).toBe(hex);
    });
  }

  it('msgpack: the same value back (JSON text and JSON Lines objects)', async () => {
    const dec = await viewCodec('msgpack');
    const enc = await valueEncoder('msgpack');
    const original = bytes('de0003a5636f756e7401a373756dcb4082c8cccccccccda863757272656e6379a3455552');
    const text = dec.decode(original) as string;
    expect(dec.decode(enc(text))).toBe(text);
    expect(dec.decode(enc(JSON.parse(text)))).toBe(text);
  });

  it('refuses what it cannot encode', async () => {
    await expect((async () => (await valueEncoder('i64le'))('12x'))()).rejects.toBeInstanceOf(EncodeError);
    await expect((async () => (await valueEncoder('u64le'))(-1))()).rejects.toBeInstanceOf(EncodeError);
    await expect((async () => (await valueEncoder('hex'))('abc'))()).rejects.toBeInstanceOf(EncodeError);
    await expect((async () => (await valueEncoder('json'))('{'))()).rejects.toBeInstanceOf(EncodeError);
    await expect(valueEncoder('aggstate')).rejects.toMatchObject({ code: 'USAGE' });
  });
});

describe('routing of import rows', () => {
  const ids = Array.from({ length: 12 }, (_, i) => `task-${i}`);
  const route = router(ids);
  const owners = rangeOwnersByName(ids);
  const tw = (group: string): Buffer => {
    const g = Buffer.from(group);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(g.length);
    return Buffer.concat([Buffer.from('tw:'), len, g, Buffer.alloc(8)]);
  };

  it('a window key goes to the owner of its group key, whatever task_id says (range i to the i-th id in string order)', () => {
    for (const k of ['a', 'b', 'customer-42']) {
      expect(route({ key: tw(k), taskId: 'task-0' })).toBe(owners[taskForKeyGroup(keyGroup(Buffer.from(k)), 12)]);
    }
  });

  it('other keys: the task the row names, else a watermark everywhere, else the owner of the key', () => {
    expect(route({ key: Buffer.from('wm:'), taskId: 'task-7' })).toBe(7);
    expect(route({ key: Buffer.from('wm:'), taskId: null })).toBe(-1);
    expect(route({ key: Buffer.from('wm:'), taskId: 'task-99' })).toBe(-1);
    expect(route({ key: Buffer.from('k1'), taskId: 'task-3' })).toBe(3);
    expect(route({ key: Buffer.from('k1'), taskId: null })).toBe(owners[taskForKeyGroup(keyGroup(Buffer.from('k1')), 12)]);
  });
});
