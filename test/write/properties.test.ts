import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Savepoint } from '../../src/model/savepoint.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { defineMigrations } from '../../src/migrate/registry.js';
import { codecs } from '../../src/migrate/codecs.js';
import { keyGroup, taskForKeyGroup } from '../../src/model/key-group.js';
import { routingKey } from '../../src/model/routing.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';
import { buildSavepoint } from './build.js';
import { files, multiset, rows, type Row, useTempDirs } from './support.js';

const tmp = useTempDirs('ksp-prop-');

const RUNS = { numRuns: 12 };

/** Window-layout key: tag, u32 length, group key, window start (and end for sessions). */
function windowKey(tag: 'tw:' | 'ses:', group: Uint8Array, t: number): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(group.length);
  const tail = Buffer.alloc(tag === 'ses:' ? 16 : 8);
  tail.writeBigInt64LE(BigInt(t));
  return Buffer.concat([Buffer.from(tag), len, group, tail]);
}

/**
 * An operator's entries with distinct keys, spread over `n` tasks: window
 * keys on the task owning their group key (verify checks that), other keys
 * anywhere (the engine broadcasts them, so rescale must not care).
 */
const operatorArb = fc.record({
  n: fc.integer({ min: 1, max: 5 }),
  window: fc.boolean(),
  keys: fc.uniqueArray(fc.uint8Array({ minLength: 0, maxLength: 12 }), { maxLength: 60, selector: (k) => Buffer.from(k).toString('hex') }),
  seed: fc.nat(),
}).map(({ n, window, keys, seed }) => {
  const tasks: StateEntry[][] = Array.from({ length: n }, () => []);
  keys.forEach((k, i) => {
    const key = window ? windowKey(i % 2 ? 'tw:' : 'ses:', k, i) : Buffer.from(k);
    tasks[window ? taskForKeyGroup(keyGroup(k), n) : (i + seed) % n]!.push({ operatorId: 'op', stateName: i % 3 ? 'a' : 'b', key, value: Buffer.from([i & 0xff, seed & 0xff]) });
  });
  if (window) {
    // Each task keeps its own watermark, as the engine does; rescale merges them to the minimum.
    tasks.forEach((t, i) => {
      const v = Buffer.alloc(8);
      v.writeBigInt64LE(BigInt(1000 + ((seed + i * 7) % 50)));
      t.push({ operatorId: 'op', stateName: 'a', key: Buffer.from('wm:'), value: v });
    });
  }
  return { n, window, tasks };
});

async function source(op: { tasks: StateEntry[][] }): Promise<string> {
  const dir = join(tmp(), 'src');
  await buildSavepoint(dir, [{ id: 'op', tasks: op.tasks }, { id: 'other', tasks: [[{ operatorId: 'other', stateName: 's', key: Buffer.from('k'), value: Buffer.from('v') }]] }]);
  return dir;
}

async function rescale(src: string, m: number, routing: 'window' | 'state-key'): Promise<string> {
  const out = join(tmp(), `p${m}-${Math.random().toString(36).slice(2)}`);
  await SavepointWriter.from(await Savepoint.open(src)).rescale(m, { operators: ['op'], routing }).write(out, { mode: 'relative' });
  return out;
}

const isWm = (r: Row): boolean => r.key === Buffer.from('wm:').toString('hex');
const perTask = (r: Row[]): string[] => r.filter((x) => x.operator === 'op').map((x) => `${x.task}|${x.state}|${x.key}|${x.value}`).sort();

describe('properties of the write pipeline', () => {
  it('rescale keeps the multiset of routed entries and puts each on the task owning its key group', async () => {
    await fc.assert(fc.asyncProperty(operatorArb, fc.integer({ min: 1, max: 9 }), async (op, m) => {
      const src = await source(op);
      const out = await rescale(src, m, op.window ? 'window' : 'state-key');
      const before = await rows(src);
      const after = await rows(out);
      expect(multiset(after.filter((r) => !isWm(r)))).toEqual(multiset(before.filter((r) => !isWm(r))));
      const routing = op.window ? 'window' : 'state-key';
      for (const r of after.filter((x) => x.operator === 'op')) {
        const rk = routingKey(Buffer.from(r.key, 'hex'), routing);
        if (rk === null) continue;
        expect(r.task).toBe(`task-${taskForKeyGroup(keyGroup(rk), m)}`);
      }
      if (op.window) {
        const wms = after.filter(isWm);
        expect(wms.length).toBe(m);
        const min = Math.min(...before.filter(isWm).map((r) => Number(Buffer.from(r.value, 'hex').readBigInt64LE(0))));
        for (const w of wms) expect(Number(Buffer.from(w.value, 'hex').readBigInt64LE(0))).toBe(min);
      }
    }), RUNS);
  });

  it('rescale n → m → k equals n → k', async () => {
    await fc.assert(fc.asyncProperty(operatorArb, fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 7 }), async (op, m, k) => {
      const src = await source(op);
      const routing = op.window ? 'window' : 'state-key';
      const direct = await rescale(src, k, routing);
      const twice = await rescale(await rescale(src, m, routing), k, routing);
      expect(perTask(await rows(twice))).toEqual(perTask(await rows(direct)));
    }), RUNS);
  });

  it('migrate with identity steps is a byte-identical no-op on state files', async () => {
    await fc.assert(fc.asyncProperty(operatorArb, async (op) => {
      const src = await source(op);
      const reg = defineMigrations((mm) => {
        mm.value('op', 1, 2, codecs.raw, codecs.raw, (v) => v);
        mm.keyValue('op', 2, 3, { key: codecs.raw, value: codecs.raw }, { key: codecs.raw, value: codecs.raw }, (key, value) => ({ key, value }));
      });
      const out = join(tmp(), 'mig');
      // An operator with no entries matches no step: allowed here, refused by default.
      const r = await SavepointWriter.from(await Savepoint.open(src)).migrate(reg, { allowUnmatched: true }).write(out, { mode: 'relative' });
      expect(r.plan.operators.find((o) => o.id === 'op')?.action).toBe(op.tasks.some((t) => t.length) ? 'rewrite' : 'copy');
      for (let i = 0; i < op.tasks.length; i++) {
        const rel = `op/task-${i}/state.bin`;
        expect(readFileSync(join(out, rel)).equals(readFileSync(join(src, rel)))).toBe(true);
      }
    }), RUNS);
  });

  it('relocate → move by plain copy → verify passes; a flipped byte anywhere in the output fails verify', async () => {
    await fc.assert(fc.asyncProperty(operatorArb, fc.nat(), fc.integer({ min: 1, max: 255 }), async (op, pick, mask) => {
      const src = await source(op);
      const out = join(tmp(), 'rel');
      await SavepointWriter.from(await Savepoint.open(src)).relocate().write(out, { mode: 'relative' });
      const moved = join(tmp(), 'moved');
      cpSync(out, moved, { recursive: true });
      expect((await verifySavepoint(moved)).ok).toBe(true);
      const all = files(moved).filter((f) => readFileSync(join(moved, f)).length > 0);
      const victim = join(moved, all[pick % all.length]!);
      const bytes = readFileSync(victim);
      bytes[pick % bytes.length] ^= mask;
      writeFileSync(victim, bytes);
      const v = await verifySavepoint(moved).catch(() => ({ ok: false }));
      expect(v.ok).toBe(false);
    }), RUNS);
  });
});
