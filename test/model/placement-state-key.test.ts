import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { verifySavepoint } from '../../src/model/verify.js';
import { ksp } from '../support/cli.js';
import { buildSavepoint } from '../write/build.js';
import { entry, useTempDirs } from '../write/support.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';

/**
 * The placement check of an operator ksp rescaled by state key: verify
 * hashes each key where the walker found it (scan-file.ts `addAt`), and
 * must still find entries on the wrong task, with their count and an example.
 */

const tmp = useTempDirs();

/** The engine's key group (FORMAT.md §7), from node:crypto, and its owner among p tasks. */
function owner(key: Uint8Array, p: number): number {
  const d = createHash('sha256').update(Buffer.from('krishiv.partition-key.v1\0keygroup\0', 'latin1')).update(key).digest();
  const kg = Number(d.readBigUInt64LE(0) % 32768n);
  const base = Math.floor(32768 / p);
  const rem = 32768 % p;
  const big = rem * (base + 1);
  return kg < big ? Math.floor(kg / (base + 1)) : rem + Math.floor((kg - big) / base);
}

describe('state-key placement in verify', () => {
  it('a rescaled output verifies; with its two tasks swapped, every routed entry is reported misplaced', async () => {
    const src = join(tmp(), 'src');
    const tasks: StateEntry[][] = [[], []];
    for (let i = 0; i < 60; i++) tasks[0]!.push(entry('op', i % 2 ? 'a' : 'b', `key-${i}`, `v${i}`));
    await buildSavepoint(src, [{ id: 'op', tasks }]);
    const out = join(tmp(), 'out');
    const r = await ksp(['rescale', src, out, '-p', '2', '--routing', 'state-key', '--mode', 'relative']);
    expect(r.code, r.stderr).toBe(0);
    const ok = await verifySavepoint(out);
    expect(ok.findings.filter((f) => f.severity === 'error')).toEqual([]);

    // Swap the two tasks' files (and their manifest lines): every entry is now on the other task.
    const [a, b] = ['op/task-0/state.bin', 'op/task-1/state.bin'];
    const da = readFileSync(join(out, a));
    const db = readFileSync(join(out, b));
    writeFileSync(join(out, a), db);
    writeFileSync(join(out, b), da);
    const m = join(out, 'manifest.sha256');
    const sha = (x: Buffer): string => createHash('sha256').update(x).digest('hex');
    writeFileSync(m, readFileSync(m, 'utf8').split('\n').map((l) => (l.endsWith(`  ${a}`) ? `sha256:${sha(db)}  ${a}` : l.endsWith(`  ${b}`) ? `sha256:${sha(da)}  ${b}` : l)).join('\n'));

    const v = await verifySavepoint(out);
    const found = v.findings.filter((f) => f.code === 'KEY_GROUP_MISPLACED');
    const onTask1 = tasks[0]!.filter((e) => owner(e.key, 2) === 1).length;
    expect(found.map((f) => (f.data as { task: string }).task).sort()).toEqual(['task-0', 'task-1']);
    const f0 = found.find((f) => (f.data as { task: string }).task === 'task-0')!;
    expect(f0.data).toMatchObject({ routed: onTask1, misplaced: onTask1 });
    const ex = (f0.data as { example: { key: string; state: string } }).example;
    const key = Buffer.from(ex.key, 'hex');
    expect(owner(key, 2)).toBe(1);
    expect(ex.state).toBe(tasks[0]!.find((e) => Buffer.from(e.key).equals(key))!.stateName);
  });
});

describe('a placement proof (what a rescale\'s routing pass saw) in place of hashing every key again', () => {
  it('a proof that matches is accepted; a proof that does not makes the scan check each key, whose findings stand', async () => {
    const { scanFile } = await import('../../src/model/scan-file.js');
    const { murmur32At, SEED_A, SEED_B } = await import('../../src/bytes/key-multiset.js');
    const { encodeStateBinToBuffer } = await import('../../src/formats/state-bin/encoder.js');
    const dir = tmp();
    const entries: StateEntry[] = [];
    for (let i = 0; i < 50; i++) entries.push(entry('op', 's', `k-${i}`, `v${i}`));
    const file = join(dir, 'state.bin');
    writeFileSync(file, await encodeStateBinToBuffer(entries));
    const kgOf = (key: Uint8Array): number => {
      const d = createHash('sha256').update(Buffer.from('krishiv.partition-key.v1\0keygroup\0', 'latin1')).update(key).digest();
      return Number(d.readBigUInt64LE(0) % 32768n);
    };
    const proofOf = (es: StateEntry[]) => {
      const groups = new Uint32Array(1024);
      const sums: [number, number] = [0, 0];
      for (const e of es) {
        const kg = kgOf(e.key);
        groups[kg >>> 5]! |= 1 << (kg & 31);
        sums[0] = (sums[0] + murmur32At(e.key, 0, e.key.length, SEED_A)) | 0;
        sums[1] = (sums[1] + murmur32At(e.key, 0, e.key.length, SEED_B)) | 0;
      }
      return { routed: es.length, sums, groups };
    };
    // Task 0 of 2 owns key-group range 0: the entries the engine routes to task 1 are misplaced there.
    const rule = { parallelism: 2, ranges: [0], routing: 'state-key' as const };
    const misplaced = entries.filter((e) => owner(e.key, 2) === 1);
    expect(misplaced.length).toBeGreaterThan(0);
    const scan = (proof?: ReturnType<typeof proofOf>) => scanFile({ uri: `file://${file}`, hash: true, decode: true, keyGroups: false, placement: rule, ...(proof ? { proof } : {}) });

    const plain = await scan();
    expect(plain.placement).toMatchObject({ routed: 50, misplaced: misplaced.length });
    // A proof of exactly these keys: its key groups include range 1's, so it does not hold, and every key is checked.
    expect((await scan(proofOf(entries))).placement).toEqual(plain.placement);
    // A proof whose key groups all lie in range 0 but whose keys are other ones (the sums differ): checked key by key.
    const inRange = entries.filter((e) => owner(e.key, 2) === 0);
    expect((await scan({ ...proofOf(inRange), routed: 50 })).placement).toEqual(plain.placement);

    // A file holding only range-0 keys, with its own proof: accepted as placed, with its count.
    const good = join(dir, 'good.bin');
    writeFileSync(good, await encodeStateBinToBuffer(inRange));
    const ok = await scanFile({ uri: `file://${good}`, hash: true, decode: true, keyGroups: false, placement: rule, proof: proofOf(inRange) });
    expect(ok.placement).toEqual({ routed: inRange.length, watermarks: 0, misplaced: 0 });
    expect(ok.entryCount).toBe(inRange.length);
    // What a proof is trusted for: the key groups its routing pass computed for exactly these keys.
    // Keys that match its sums are not hashed again (here a bitmap that leaves out range 1's groups is believed).
    const { groups } = proofOf(inRange);
    const trusted = await scan({ ...proofOf(entries), groups });
    expect(trusted.placement).toEqual({ routed: 50, watermarks: 0, misplaced: 0 });

    // One key changed under the same proof: the sums no longer match, and the changed key is checked (and found misplaced when it is).
    const swapped = [...inRange.slice(1), misplaced[0]!];
    const bad = join(dir, 'bad.bin');
    writeFileSync(bad, await encodeStateBinToBuffer(swapped));
    const r = await scanFile({ uri: `file://${bad}`, hash: true, decode: true, keyGroups: false, placement: rule, proof: proofOf(inRange) });
    expect(r.placement).toMatchObject({ routed: inRange.length, misplaced: 1, example: { key: Buffer.from(misplaced[0]!.key).toString('hex'), range: 1 } });
  });
});
