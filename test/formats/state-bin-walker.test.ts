import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StateBinDecoder } from '../../src/formats/state-bin/decoder.js';
import { encodeStateBinToBuffer } from '../../src/formats/state-bin/encoder.js';
import { StateBinWalker, WalkBail, type WalkedState } from '../../src/formats/state-bin/walker.js';

/**
 * The walker (verify's counting pass) must accept exactly the files the
 * decoder accepts, with the same totals, however the bytes are chunked:
 * when it bails, the caller falls back to the decoder for the error.
 */

type Outcome = { ok: true; entries: number; states: WalkedState[]; keys: string[] } | { ok: false };

async function* chunked(b: Uint8Array, cuts: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (const c of cuts) {
    if (c <= at || c >= b.length) continue;
    yield b.subarray(at, c);
    at = c;
  }
  yield b.subarray(at);
}

async function decoded(b: Buffer, version: 1 | 2): Promise<Outcome> {
  try {
    const d = new StateBinDecoder(chunked(b, []), { size: b.length, version });
    const states = new Map<string, WalkedState>();
    const keys: string[] = [];
    let entries = 0;
    for await (const batch of d.batches()) {
      for (const e of batch) {
        const id = `${e.operatorId}\u0000${e.stateName}`;
        let s = states.get(id);
        if (!s) states.set(id, (s = { operator: e.operatorId, state: e.stateName, entries: 0, keyBytes: 0, valueBytes: 0 }));
        s.entries++;
        s.keyBytes += e.key.length;
        s.valueBytes += e.value.length;
        keys.push(Buffer.from(e.key).toString('hex'));
        entries++;
      }
    }
    return { ok: true, entries, states: [...states.values()], keys };
  } catch {
    return { ok: false };
  }
}

function walked(b: Buffer, version: 1 | 2, cuts: number[]): Outcome {
  const keys: string[] = [];
  try {
    const w = new StateBinWalker(b.length, version, (buf, start, len) => keys.push(buf.subarray(start, start + len).toString('hex')));
    let at = 0;
    for (const c of [...cuts.filter((c) => c > 0 && c < b.length).sort((x, y) => x - y), b.length]) {
      if (c <= at) continue;
      w.push(b.subarray(at, c));
      at = c;
    }
    w.end();
    return { ok: true, entries: w.entryCount, states: w.states, keys };
  } catch (e) {
    if (e instanceof WalkBail) return { ok: false };
    throw e;
  }
}

const arbEntry = fc.record({
  operatorId: fc.constantFrom('op-a', 'op-b', '\uFEFFop-a', 'операция'),
  stateName: fc.constantFrom('s', 'counts', 'sessions', ''),
  key: fc.uint8Array({ maxLength: 40 }),
  value: fc.uint8Array({ maxLength: 300 }),
});

describe('state.bin walker', () => {
  it('counts what the decoder decodes, at every chunking', async () => {
    await fc.assert(fc.asyncProperty(fc.array(arbEntry, { maxLength: 30 }), fc.array(fc.nat(12000), { maxLength: 12 }), async (entries, cuts) => {
      const b = await encodeStateBinToBuffer(entries.map((e) => ({ ...e, key: Buffer.from(e.key), value: Buffer.from(e.value) })));
      const d = await decoded(b, 1);
      expect(d.ok).toBe(true);
      expect(walked(b, 1, cuts)).toEqual(d);
    }), { numRuns: 300 });
  });

  it('accepts exactly what the decoder accepts, on damaged bytes', async () => {
    await fc.assert(fc.asyncProperty(
      fc.array(arbEntry, { minLength: 1, maxLength: 8 }),
      fc.array(fc.tuple(fc.nat(4000), fc.nat(255)), { minLength: 1, maxLength: 4 }),
      fc.integer({ min: -40, max: 40 }),
      fc.array(fc.nat(4000), { maxLength: 6 }),
      async (entries, flips, resize, cuts) => {
        let b = await encodeStateBinToBuffer(entries.map((e) => ({ ...e, key: Buffer.from(e.key), value: Buffer.from(e.value) })));
        b = Buffer.from(b);
        for (const [at, v] of flips) b[at % b.length] = v;
        if (resize < 0) b = b.subarray(0, Math.max(12, b.length + resize));
        else if (resize > 0) b = Buffer.concat([b, Buffer.alloc(resize, 7)]);
        const d = await decoded(b, 1);
        const w = walked(b, 1, cuts);
        expect(w.ok).toBe(d.ok);
        if (d.ok) expect(w).toEqual(d);
      },
    ), { numRuns: 1500 });
  });

  it('reads version 2 only when told to', async () => {
    const b = Buffer.from(await encodeStateBinToBuffer([{ operatorId: 'o', stateName: 's', key: Buffer.from('k'), value: Buffer.from('v') }]));
    expect(walked(b, 2, []).ok).toBe(false);
    b.writeUInt32LE(2, 0);
    expect(walked(b, 2, [3, 13, 20])).toEqual(await decoded(b, 2));
  });

  it('passes over a value larger than any chunk without keeping it', async () => {
    const value = Buffer.alloc(5 << 20, 1);
    const b = await encodeStateBinToBuffer([
      { operatorId: 'o', stateName: 's', key: Buffer.from('a'), value },
      { operatorId: 'o', stateName: 's', key: Buffer.from('b'), value: Buffer.from('x') },
    ]);
    const cuts = Array.from({ length: 40 }, (_, i) => 30 + i * 131072);
    const w = walked(b, 1, cuts);
    expect(w).toEqual(await decoded(b, 1));
  });
});
