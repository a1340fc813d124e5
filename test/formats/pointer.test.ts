import { describe, expect, it } from 'vitest';
import { encodePointer, isPointerBlob, parsePointer } from '../../src/formats/pointer/pointer.js';

describe('pointer blobs', () => {
  it('round-trip', () => {
    const p = { manifestPath: 'job/incr/op/task-0/epochs/00000000000000000009/sst_manifest.json' };
    const b = encodePointer(p);
    expect(b.toString()).toBe(`INCR-SST-V1|${p.manifestPath}`);
    expect(isPointerBlob(b)).toBe(true);
    expect(parsePointer(b)).toEqual(p);
  });
  it.each([
    ['INCR-SST-V1|', /names no sst_manifest/],
    ['INCR-SST-V2|x', /does not start with/],
    ['INCR-SST-V1|a\nb', /control character/],
  ])('rejects %j', (s, msg) => {
    expect(() => parsePointer(Buffer.from(s), 'p')).toThrow(msg);
  });
  it('rejects a non-UTF-8 path', () => {
    expect(() => parsePointer(Buffer.concat([Buffer.from('INCR-SST-V1|'), Buffer.from([0xff])]))).toThrow(/UTF-8/);
  });
});
