import { describe, expect, it } from 'vitest';
import { aggStateJson, decodeAggState, encodeAggState, type AggEntry } from '../../src/model/aggstate.js';
import { parseWindowKey } from '../../src/model/window-key.js';
import { codecSpec, checkSpecStates, viewCodec } from '../../src/model/value-codecs.js';
import { isKspError } from '../../src/errors.js';

// The engine's own test vector (state_persistence.rs, sample_agg_state).
const SAMPLE: AggEntry[] = [
  { value: 42n, hasValue: true, avgSum: 12.5, avgCount: 3n, floatValue: -7.25, sqSum: 99 },
  { value: -(1n << 63n), hasValue: false, avgSum: 0, avgCount: 0n, floatValue: -Infinity, sqSum: 0 },
];

function windowKey(tag: string, group: string | Buffer, ...times: bigint[]): Buffer {
  const g = Buffer.isBuffer(group) ? group : Buffer.from(group, 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(g.length);
  const t = times.map((x) => {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(x);
    return b;
  });
  return Buffer.concat([Buffer.from(tag, 'latin1'), len, g, ...t]);
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isKspError(e)) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'no error';
}

describe('AggState v1 (krishiv-dataflow window/state_persistence.rs)', () => {
  it('binary: tag 0x01, u32 count, 41-byte records, every field exact', () => {
    const b = encodeAggState(SAMPLE);
    expect(b.length).toBe(5 + 2 * 41);
    expect([...b.subarray(0, 5)]).toEqual([1, 2, 0, 0, 0]);
    expect(decodeAggState(b)).toEqual(SAMPLE);
    expect(JSON.parse(aggStateJson(decodeAggState(b)))).toEqual([
      { value: 42, has_value: true, avg_sum: 12.5, avg_count: 3, float_value: -7.25, sq_sum: 99 },
      { value: -9223372036854775808, has_value: false, avg_sum: 0, avg_count: 0, float_value: '-Infinity', sq_sum: 0 },
    ]);
    // i64::MIN keeps every digit in the JSON text.
    expect(aggStateJson(decodeAggState(b))).toContain('"value":-9223372036854775808');
  });

  it('binary: a count the bytes do not hold is refused; trailing bytes are ignored as the engine ignores them', () => {
    const b = encodeAggState(SAMPLE);
    expect(() => decodeAggState(b.subarray(0, b.length - 1))).toThrow(/2 entries need 87 bytes, found 86/);
    expect(() => decodeAggState(Buffer.from([1, 0, 0]))).toThrow(/missing entry count/);
    const huge = Buffer.from([1, 0xff, 0xff, 0xff, 0xff]);
    expect(() => decodeAggState(huge)).toThrow(/entry truncated/);
    expect(decodeAggState(Buffer.concat([b, Buffer.from([9, 9])]))).toEqual(SAMPLE);
    expect(() => decodeAggState(Buffer.from([2]))).toThrow(/unrecognized encoding tag 0x02/);
    expect(() => decodeAggState(Buffer.alloc(0))).toThrow(/empty/);
  });

  it('legacy JSON: the engine test vector, elements of the wrong type skipped, missing ones defaulted', () => {
    const legacy = Buffer.from(JSON.stringify({ values: [42, 0], has_value: [true, false], avg_sums: [12.5, 0.0], avg_counts: [3, 0], float_values: [-7.25, 0.0], sq_sums: [99.0, 0.0] }));
    const d = decodeAggState(legacy);
    expect(d).toHaveLength(2);
    expect(d[0]).toEqual({ value: 42n, hasValue: true, avgSum: 12.5, avgCount: 3n, floatValue: -7.25, sqSum: 99 });
    // as_i64 skips 1.5 and "x"; as_u64 skips -1; a session payload's extra members are ignored.
    const odd = decodeAggState(Buffer.from('{"session_start_ms":5,"values":[1.5,"x",7,9223372036854775807],"avg_counts":[-1,4]}'));
    expect(odd).toEqual([
      { value: 7n, hasValue: false, avgSum: 0, avgCount: 4n, floatValue: 0, sqSum: 0 },
      { value: 9223372036854775807n, hasValue: false, avgSum: 0, avgCount: 0n, floatValue: 0, sqSum: 0 },
    ]);
    expect(() => decodeAggState(Buffer.from('{"values":'))).toThrow(/legacy JSON/);
  });

  it('the aggstate codec reads a wm: entry of the same state as its watermark', async () => {
    const c = await viewCodec('aggstate');
    const wm = Buffer.alloc(8);
    wm.writeBigInt64LE(9000n);
    expect(c.decode(wm, Buffer.from('wm:'))).toBe('{"watermark_ms":9000}');
    expect(() => c.decode(wm, Buffer.from('tw:x'))).toThrow(/aggstate: unrecognized encoding tag/);
  });
});

describe('window keys (state_persistence.rs parse_window_state_key, session.rs)', () => {
  it('tw:/sw: give group key and start, and end with a size; ses: start and last event; wm: the value as i64', () => {
    expect(parseWindowKey(windowKey('tw:', 'user-1', 1000n), undefined, null)).toEqual({ kind: 'tw', groupKey: 'user-1', start: 1000n, end: null, watermark: null });
    expect(parseWindowKey(windowKey('sw:', '', -5n), undefined, 60000n)).toEqual({ kind: 'sw', groupKey: '', start: -5n, end: 59995n, watermark: null });
    expect(parseWindowKey(windowKey('ses:', 'k', 10n, 20n), undefined, 60000n)).toEqual({ kind: 'ses', groupKey: 'k', start: 10n, end: 20n, watermark: null });
    const v = Buffer.alloc(8);
    v.writeBigInt64LE(-1n);
    expect(parseWindowKey(Buffer.from('wm:'), v, null)).toEqual({ kind: 'wm', groupKey: null, start: null, end: null, watermark: -1n });
  });

  it('keys that do not parse: wrong length, non-UTF-8 group key, short watermark, other keys', () => {
    const k = windowKey('tw:', 'abc', 1n);
    expect(parseWindowKey(k.subarray(0, k.length - 1), undefined, null)).toBeNull();
    expect(parseWindowKey(Buffer.concat([k, Buffer.from([0])]), undefined, null)).toBeNull();
    expect(parseWindowKey(windowKey('tw:', Buffer.from([0xff, 0xfe]), 1n), undefined, null)).toBeNull();
    expect(parseWindowKey(Buffer.from('wm:'), Buffer.alloc(7), null)).toBeNull();
    expect(parseWindowKey(Buffer.from('tw:key-a'), undefined, null)).toBeNull();
    expect(parseWindowKey(Buffer.from('customer-1'), undefined, null)).toBeNull();
  });
});

describe('codec specs', () => {
  it('one codec for every state, or per state with a default', async () => {
    const one = await codecSpec('msgpack', 'value');
    expect(one.for('anything')?.name).toBe('msgpack');
    expect(one.column).toBe('utf8');
    const per = await codecSpec('totals=msgpack,score=f64le,*=raw', 'value');
    expect(per.for('totals')?.name).toBe('msgpack');
    expect(per.for('score')?.name).toBe('f64le');
    expect(per.for('bitmap')).toBeUndefined();
    // Mixed types share one text column.
    expect(per.column).toBe('utf8');
    expect((await codecSpec('a=i64le,b=i64le', 'value')).column).toBe('int64');
    expect((await codecSpec('a=i64le', 'value')).for('b')).toBeUndefined();
    const keys = await codecSpec('tumbling=window:60000,*=utf8', 'key');
    expect(keys.window).toBe(true);
    expect(keys.column).toBe('utf8');
  });

  it('bad specs are usage errors', async () => {
    expect(await code(codecSpec('totals=nope', 'value'))).toMatch(/^CODEC_UNKNOWN: unknown codec "nope"/);
    expect(await code(codecSpec('totals', 'value'))).toMatch(/^CODEC_UNKNOWN/);
    expect(await code(codecSpec('totals=msgpack,score', 'value'))).toMatch(/^USAGE: --value-codec: "score" is not STATE=CODEC/);
    expect(await code(codecSpec('a=utf8,a=hex', 'key'))).toMatch(/^USAGE: --key-codec: state "a" given twice/);
    expect(await code(codecSpec('window', 'value'))).toMatch(/^USAGE: --value-codec: window is a key codec/);
    expect(await code(codecSpec('*=aggstate', 'key'))).toMatch(/^USAGE: --key-codec: aggstate is a value codec/);
  });

  it('a state named in a spec that the entries do not have: an error listing the state names', async () => {
    const rows = [[{ stateName: 'totals' }, { stateName: 'score' }], [{ stateName: 'bitmap' }]];
    await checkSpecStates([{ flag: '--value-codec', spec: await codecSpec('totals=msgpack,score=f64le', 'value') }], rows as never);
    expect(await code(checkSpecStates([{ flag: '--value-codec', spec: await codecSpec('totals=msgpack,scor=f64le', 'value') }], (async function* () { yield* rows; })())))
      .toBe('USAGE: --value-codec: no state named "scor" in the entries selected; state names: "bitmap", "score", "totals"');
  });
});
