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
