import { describe, expect, it } from 'vitest';
import { NativeKeyDecoder, encodeNativeKey } from '../../src/formats/native-key/native-key.js';

describe('native state keys', () => {
  it('split into operator, state and key (worked example of FORMAT.md), and round-trip', () => {
    const k = encodeNativeKey('op', 's', Buffer.from('k1'));
    expect(k.toString('hex')).toBe('02000000000000006f70010000000000000073' + '6b31');
    const d = new NativeKeyDecoder('task');
    expect(d.decode(k, 0)).toEqual({ operatorId: 'op', stateName: 's', key: Buffer.from('k1') });
    // The cached prefix serves the next key of the same state, and a new state decodes afresh.
    expect(d.decode(encodeNativeKey('op', 's', Buffer.alloc(0)), 1).key).toHaveLength(0);
    expect(d.decode(encodeNativeKey('op', 't', Buffer.from('x')), 2)).toMatchObject({ stateName: 't' });
  });

  it('a key that does not parse is ROCKSDB_KEY naming the file and entry', () => {
    const d = new NativeKeyDecoder('s3://b/task-3');
    expect(() => d.decode(Buffer.from('abc'), 7)).toThrow(expect.objectContaining({ code: 'ROCKSDB_KEY', data: expect.objectContaining({ file: 's3://b/task-3', entry: 7 }) }));
    const long = Buffer.alloc(20);
    long.writeUInt32LE(100, 0);
    expect(() => d.decode(long, 8)).toThrow(expect.objectContaining({ code: 'ROCKSDB_KEY', message: expect.stringMatching(/operator id length 100 runs past the key/) }));
    const badUtf8 = Buffer.concat([Buffer.from([1, 0, 0, 0, 0, 0, 0, 0, 0xff]), Buffer.alloc(8)]);
    expect(() => d.decode(badUtf8, 9)).toThrow(expect.objectContaining({ code: 'ROCKSDB_KEY', message: expect.stringMatching(/UTF-8/) }));
  });
});
