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
 * The placement check of a rescaled operator, by state key and by window:
 * verify reads each key where the walker found it (scan-file.ts `addAt`),
 * hashing it or matching it against a rescale's PlacementProof, and must
 * still find entries on the wrong task, with their count and an example.
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
    swapFiles(out, a, b);

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

/** A "tw:"/"ses:" window-layout key with group key `group` (model/routing.ts). */
function windowKey(prefix: 'tw:' | 'ses:', group: string): Buffer {
  const g = Buffer.from(group);
  const tail = prefix === 'tw:' ? 8 : 16;
  const b = Buffer.alloc(prefix.length + 4 + g.length + tail, 1);
  b.write(prefix, 0, 'latin1');
  b.writeUInt32LE(g.length, prefix.length);
  g.copy(b, prefix.length + 4);
  return b;
}

describe('window placement of a rescale\'s output (the engine\'s routing)', () => {
  it('verifies as written, with watermarks and broadcast keys; with its tasks swapped, the window entries are misplaced', async () => {
    const src = join(tmp(), 'src');
    const tasks: StateEntry[][] = [[], []];
    for (let i = 0; i < 40; i++) tasks[0]!.push(entry('win', 'w', windowKey(i % 3 ? 'tw:' : 'ses:', `user-${i}`), `v${i}`));
    tasks[0]!.push(entry('win', 'w', 'wm:', Buffer.alloc(8, 0)), entry('win', 'w', 'plain-key', 'x'));
    tasks[1]!.push(entry('win', 'w', 'wm:', Buffer.alloc(8, 0)));
    await buildSavepoint(src, [{ id: 'win', tasks }]);
    const out = join(tmp(), 'out');
    const r = await ksp(['rescale', src, out, '-p', '2', '--mode', 'relative']);
    expect(r.code, r.stderr).toBe(0);
    const [a, b] = ['win/task-0/state.bin', 'win/task-1/state.bin'];
    swapFiles(out, a, b);
    const v = await verifySavepoint(out);
    const found = v.findings.filter((f) => f.code === 'KEY_GROUP_MISPLACED');
    const onTask1 = tasks[0]!.slice(0, 40).filter((e) => owner(Buffer.from(e.key).subarray(e.key[0] === 0x74 ? 7 : 8, e.key.length - (e.key[0] === 0x74 ? 8 : 16)), 2) === 1).length;
    const f0 = found.find((f) => (f.data as { task: string }).task === 'task-0')!;
    expect(f0.data).toMatchObject({ routed: onTask1, misplaced: onTask1 });
  });

  it('a window proof: routing keys are the group keys; watermarks are counted and other keys are not routed', async () => {
    const { scanFile } = await import('../../src/model/scan-file.js');
    const { murmur32At, SEED_A, SEED_B } = await import('../../src/bytes/key-multiset.js');
    const { encodeStateBinToBuffer } = await import('../../src/formats/state-bin/encoder.js');
    const groupsOf = (n: number): string[] => Array.from({ length: n }, (_, i) => `g-${i}`);
    const own0 = groupsOf(80).filter((g) => owner(Buffer.from(g), 2) === 0).slice(0, 20);
    const entries = [...own0.map((g, i) => entry('op', 's', windowKey(i % 2 ? 'tw:' : 'ses:', g), 'v')), entry('op', 's', 'wm:', Buffer.alloc(8)), entry('op', 's', 'other', 'v')];
    const file = join(tmp(), 'w.bin');
    writeFileSync(file, await encodeStateBinToBuffer(entries));
    const groups = new Uint32Array(1024);
    const sums: [number, number] = [0, 0];
    for (const g of own0) {
      const k = Buffer.from(g);
      const d = createHash('sha256').update(Buffer.from('krishiv.partition-key.v1\0keygroup\0', 'latin1')).update(k).digest();
      const kg = Number(d.readBigUInt64LE(0) % 32768n);
      groups[kg >>> 5]! |= 1 << (kg & 31);
      sums[0] = (sums[0] + murmur32At(k, 0, k.length, SEED_A)) | 0;
      sums[1] = (sums[1] + murmur32At(k, 0, k.length, SEED_B)) | 0;
    }
    const rule = { parallelism: 2, ranges: [0], routing: 'window' as const };
    const plain = await scanFile({ uri: `file://${file}`, hash: true, decode: true, keyGroups: false, placement: rule });
    expect(plain.placement).toEqual({ routed: 20, watermarks: 1, misplaced: 0 });
    const proved = await scanFile({ uri: `file://${file}`, hash: true, decode: true, keyGroups: false, placement: rule, proof: { routed: 20, sums, groups } });
    expect(proved.placement).toEqual(plain.placement);
    // That the proof, not a hash per key, decided: it is believed about the key groups (here, told that a range-1 group key is in range 0).
    const stray = groupsOf(80).find((g) => owner(Buffer.from(g), 2) === 1)!;
    const strayFile = join(tmp(), 'stray.bin');
    writeFileSync(strayFile, await encodeStateBinToBuffer([...entries, entry('op', 's', windowKey('tw:', stray), 'v')]));
    const k = Buffer.from(stray);
    const strayProof = { routed: 21, sums: [(sums[0] + murmur32At(k, 0, k.length, SEED_A)) | 0, (sums[1] + murmur32At(k, 0, k.length, SEED_B)) | 0] as [number, number], groups };
    expect((await scanFile({ uri: `file://${strayFile}`, hash: true, decode: true, keyGroups: false, placement: rule, proof: strayProof })).placement).toEqual({ routed: 21, watermarks: 1, misplaced: 0 });
    expect((await scanFile({ uri: `file://${strayFile}`, hash: true, decode: true, keyGroups: false, placement: rule })).placement).toMatchObject({ routed: 21, misplaced: 1 });
    // A proof over the whole keys instead of their group keys does not hold: every key is checked again, with the same result.
    const wrong = await scanFile({ uri: `file://${file}`, hash: true, decode: true, keyGroups: false, placement: rule, proof: { routed: 20, sums: [sums[0] + 1, sums[1]], groups } });
    expect(wrong.placement).toEqual(plain.placement);
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

/** Swaps two files of a savepoint, and their manifest lines: each file's entries now sit on the other task. */
function swapFiles(dir: string, a: string, b: string): void {
  const da = readFileSync(join(dir, a));
  const db = readFileSync(join(dir, b));
  writeFileSync(join(dir, a), db);
  writeFileSync(join(dir, b), da);
  const m = join(dir, 'manifest.sha256');
  const sha = (x: Buffer): string => createHash('sha256').update(x).digest('hex');
  writeFileSync(m, readFileSync(m, 'utf8').split('\n').map((l) => (l.endsWith(`  ${a}`) ? `sha256:${sha(db)}  ${a}` : l.endsWith(`  ${b}`) ? `sha256:${sha(da)}  ${b}` : l)).join('\n'));
}
