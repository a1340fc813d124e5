import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { StateBinDecoder, type StateEntry } from '../../src/formats/state-bin/decoder.js';
import { encodeStateBin, encodeStateBinToBuffer } from '../../src/formats/state-bin/encoder.js';
import { KspError } from '../../src/errors.js';
import { ENGINE_SP, HAS_SHARED } from '../support/env.js';

async function* chunked(b: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, Math.min(b.length, i + size));
}

async function decodeAll(b: Uint8Array, chunk = 1 << 20, size = b.length): Promise<StateEntry[]> {
  const out: StateEntry[] = [];
  const d = new StateBinDecoder(chunked(b, chunk), { size, file: 't.bin' });
  for await (const batch of d.batches()) for (const e of batch) out.push({ ...e, key: Buffer.from(e.key), value: Buffer.from(e.value) });
  return out;
}

async function failure(b: Uint8Array, chunk = 7, size = b.length): Promise<KspError> {
  try {
    await decodeAll(b, chunk, size);
  } catch (e) {
    return e as KspError;
  }
  throw new Error('expected a decode error');
}

function u64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
}

const entry = (op: string, st: string, k: string, v: string): StateEntry => ({ operatorId: op, stateName: st, key: Buffer.from(k), value: Buffer.from(v) });

describe.skipIf(!HAS_SHARED)('state.bin: the engine fixture', () => {
  // A skipped describe's body still runs at collection: the fixture is read only once a test runs.
  let bytes: Buffer;
  beforeAll(() => {
    bytes = readFileSync(join(ENGINE_SP, 'op-0', 'task-0', 'state.bin'));
  });
  it('decodes to its two entries', async () => {
    const es = await decodeAll(bytes);
    expect(es.map((e) => [e.operatorId, e.stateName, Buffer.from(e.key).toString(), e.value.length])).toEqual([
      ['continuous-window', 'tumbling', 'tw:key-a', 2],
      ['continuous-window', 'tumbling', 'wm:', 8],
    ]);
    expect(Buffer.from(es[0]!.value).toString()).toBe('41');
    expect(Buffer.from(es[1]!.value).readBigInt64LE()).toBe(9000n);
  });
  it('re-encodes byte-identically, whatever the chunking', async () => {
    for (const chunk of [1, 3, 12, 13, 64, 1 << 20]) {
      expect((await encodeStateBinToBuffer(await decodeAll(bytes, chunk))).equals(bytes)).toBe(true);
    }
  });
});

describe('state.bin codec', () => {
  it('decode(encode(x)) = x and encode(decode(b)) = b for any entries and chunking', async () => {
    const arbEntry = fc.record({
      operatorId: fc.string({ maxLength: 12 }),
      stateName: fc.string({ maxLength: 12 }),
      key: fc.uint8Array({ maxLength: 40 }),
      value: fc.uint8Array({ maxLength: 300 }),
    });
    await fc.assert(fc.asyncProperty(fc.array(arbEntry, { maxLength: 60 }), fc.integer({ min: 1, max: 97 }), async (entries, chunk) => {
      const bytes = await encodeStateBinToBuffer(entries);
      const back = await decodeAll(bytes, chunk);
      expect(back.map((e) => ({ ...e, key: new Uint8Array(e.key), value: new Uint8Array(e.value) }))).toEqual(entries.map((e) => ({ ...e, key: new Uint8Array(e.key), value: new Uint8Array(e.value) })));
      expect((await encodeStateBinToBuffer(back)).equals(bytes)).toBe(true);
    }), { numRuns: 150 });
  });

  it('an empty file is a stateless task; a 12-byte header with 0 entries is a stateful empty one', async () => {
    const d = new StateBinDecoder(chunked(Buffer.alloc(0), 1), { size: 0 });
    expect(await d.header()).toEqual({ stateful: false, version: 1, entryCount: 0 });
    // ksp never writes the 0-byte form: the engine's decoder refuses it.
    expect((await encodeStateBinToBuffer(null)).length).toBe(12);
    const empty = await encodeStateBinToBuffer([]);
    expect(empty.length).toBe(12);
    expect(await decodeAll(empty)).toEqual([]);
  });

  it('streams many entries in batches without holding the file', async () => {
    const n = 50_000;
    async function* gen(): AsyncGenerator<StateEntry[]> {
      for (let i = 0; i < n; i += 1000) yield Array.from({ length: 1000 }, (_, j) => entry('op', 's', `k${i + j}`, 'v'.repeat(20)));
    }
    const chunks: Buffer[] = [];
    for await (const c of encodeStateBin(n, gen())) chunks.push(c);
    const all = Buffer.concat(chunks);
    const d = new StateBinDecoder(chunked(all, 65536), { size: all.length, batchSize: 4096 });
    let count = 0;
    let batches = 0;
    for await (const b of d.batches()) {
      count += b.length;
      batches++;
      expect(b.length).toBeLessThanOrEqual(4096);
    }
    expect(count).toBe(n);
    expect(batches).toBeGreaterThan(10);
  });

  it('the encoder refuses a count that does not match', async () => {
    const run = async (count: number, es: StateEntry[]) => { for await (const _ of encodeStateBin(count, [es])) void _; };
    await expect(run(2, [entry('a', 'b', 'c', 'd')])).rejects.toMatchObject({ code: 'STATE_BIN_COUNT' });
    await expect(run(0, [entry('a', 'b', 'c', 'd')])).rejects.toMatchObject({ code: 'STATE_BIN_COUNT' });
  });
});

describe('state.bin hostile input', () => {
  const good = Buffer.concat([Buffer.from([1, 0, 0, 0]), u64(2n),
    u64(2n), Buffer.from('op'), u64(1n), Buffer.from('s'), u64(3n), Buffer.from('key'), u64(5n), Buffer.from('value'),
    u64(2n), Buffer.from('op'), u64(1n), Buffer.from('s'), u64(0n), u64(1n), Buffer.from('v')]);

  it('is well-formed to begin with', async () => {
    expect((await decodeAll(good)).length).toBe(2);
  });

  it('a file cut at every byte boundary gives a typed error with the offset', async () => {
    for (let cut = 1; cut < good.length; cut++) {
      const e = await failure(good.subarray(0, cut), 5);
      expect(e).toBeInstanceOf(KspError);
      expect(['STATE_BIN_TRUNCATED', 'STATE_BIN_LENGTH']).toContain(e.code);
      expect(e.message).toMatch(/^t\.bin: /);
      expect(typeof e.data.offset).toBe('number');
    }
  });

  it('a stream shorter than its stated size is truncation', async () => {
    const e = await failure(good.subarray(0, 30), 5, good.length);
    expect(e.code).toBe('STATE_BIN_TRUNCATED');
    expect(e.data.entry).toBe(0);
  });

  it('trailing bytes are corruption', async () => {
    const e = await failure(Buffer.concat([good, Buffer.from([0])]));
    expect(e.code).toBe('STATE_BIN_TRAILING');
    expect(e.data.offset).toBe(good.length);
  });

  it('wrong version', async () => {
    const b = Buffer.from(good);
    b.writeUInt32LE(2, 0);
    const e = await failure(b);
    expect(e).toMatchObject({ code: 'STATE_BIN_VERSION', data: { offset: 0, expected: 1, found: 2 } });
  });

  it('huge declared lengths are refused before any allocation', async () => {
    for (const [at, field] of [[12, 'operator_id'], [22, 'state_name'], [31, 'key'], [42, 'value']] as const) {
      for (const n of [0xffffffffffffffffn, 1n << 40n, BigInt(good.length)]) {
        const b = Buffer.from(good);
        u64(n).copy(b, at);
        const before = process.memoryUsage().arrayBuffers;
        const e = await failure(b);
        expect(e.code).toBe('STATE_BIN_LENGTH');
        expect(e.data).toMatchObject({ field, entry: 0, offset: at });
        expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
      }
    }
  });

  it('an entry count that cannot fit is refused at the header', async () => {
    const b = Buffer.from(good);
    u64(1n << 50n).copy(b, 4);
    const e = await failure(b);
    expect(e).toMatchObject({ code: 'STATE_BIN_LENGTH', data: { field: 'entry_count', offset: 4 } });
  });

  it('an entry count that promises more entries than the bytes hold fails at the entry that is not there', async () => {
    // Three entries declared, room for them by size, but only two written and padding after.
    const b = Buffer.concat([good, Buffer.alloc(40, 0xff)]);
    u64(3n).copy(b, 4);
    const e = await failure(b);
    expect(e.code).toBe('STATE_BIN_LENGTH');
    expect(e.data.entry).toBe(2);
  });

  it('bad UTF-8 in an operator id or state name', async () => {
    const b = Buffer.from(good);
    b[20] = 0xff; // inside "op" of entry 0
    expect(await failure(b)).toMatchObject({ code: 'STATE_BIN_UTF8', data: { entry: 0, field: 'operator_id' } });
    const c = Buffer.from(good);
    c[30] = 0xc3; // "s" of entry 0 becomes a lone lead byte
    expect(await failure(c)).toMatchObject({ code: 'STATE_BIN_UTF8', data: { entry: 0, field: 'state_name' } });
  });

  it('a native pointer blob is recognised, not misread', async () => {
    const e = await failure(Buffer.from('INCR-SST-V1|job/incr/op/task/epochs/00000000000000000001/sst_manifest.json'));
    expect(e.code).toBe('STATE_BIN_IS_POINTER');
  });

  it('never hangs on an endless stream that lies about its size', async () => {
    async function* endless(): AsyncGenerator<Uint8Array> {
      yield good;
      for (;;) yield Buffer.alloc(1024);
    }
    const d = new StateBinDecoder(endless(), { size: good.length });
    let err: KspError | undefined;
    try { for await (const _ of d.batches()) void _; } catch (e) { err = e as KspError; }
    expect(err?.code).toBe('STATE_BIN_TRAILING');
  });
});
