import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ksp } from '../support/cli.js';
import { inspectSavepoint } from '../../src/model/inspect.js';
import { verifySavepoint } from '../../src/model/verify.js';
import { humanSummary } from '../../src/cli/inspect/run.js';
import { RepeatDetector } from '../../src/model/repeated-keys.js';
import { scanFile } from '../../src/model/scan-file.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { encodeStateBinToBuffer } from '../../src/formats/state-bin/encoder.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';
import { FIXTURES, SHOP_SP, copyOf } from '../support/env.js';
import { reseal } from '../support/reseal.js';

/** inspect's source offsets and native sizes; repeated keys in verify and inspect. */

const NATIVE_SP = join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007');

describe('inspect: source_offsets', () => {
  it('in the summary, --json and text', async () => {
    const s = await inspectSavepoint(SHOP_SP);
    // As gen-fixtures.ts writes them.
    expect(s.sourceOffsets).toEqual([
      { partitionId: 'orders-0', offset: '1234', encodedOffset: 'd204000000000000' },
      { partitionId: 'orders-1', offset: '-1' },
    ]);
    expect(humanSummary(s, false)).toContain('  source offsets: orders-0=1234 (encoded d204000000000000), orders-1=-1\n');
    const r = await ksp(['inspect', SHOP_SP, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).sourceOffsets).toEqual(s.sourceOffsets);
    const text = await ksp(['inspect', SHOP_SP]);
    expect(text.stdout).toContain('source offsets: orders-0=1234');
  });

  it('many partitions: the first 32 without --verbose', async () => {
    const s = await inspectSavepoint(SHOP_SP);
    s.sourceOffsets = Array.from({ length: 40 }, (_, i) => ({ partitionId: `p-${i}`, offset: String(i) }));
    expect(humanSummary(s, false)).toContain('p-31=31, … 8 more (--verbose)');
    expect(humanSummary(s, true)).toContain('p-39=39\n');
  });
});

describe('inspect: native sizes count SST data', () => {
  it('operator and overall bytes add up the SST bytes each native task shows, not its pointer file', async () => {
    const s = await inspectSavepoint(NATIVE_SP);
    const win = s.operators.find((o) => o.id === 'windows')!;
    const task = win.tasks[0]!;
    expect(task.native).toBeDefined();
    expect(task.size).toBeLessThan(task.native!.sstBytes);
    expect(win.bytes).toBe(task.native!.sstBytes);
    const sum = s.operators.flatMap((o) => o.tasks).reduce((n, t) => n + (t.native ? t.native.sstBytes : t.size), 0);
    expect(s.totals.bytes).toBe(sum);
  });
});

describe('RepeatDetector', () => {
  it('finds repeats per state pair, and stops at its cap with a count of entries not checked', () => {
    const d = new RepeatDetector(1000);
    for (let i = 0; i < 900; i++) d.add(Buffer.from(`k-${i}`), 0);
    // The same key in another state is not a repeat.
    d.add(Buffer.from('k-1'), 1);
    expect(d.result.repeats).toBe(0);
    d.add(Buffer.from('k-7'), 0);
    d.add(Buffer.from('k-8'), 0);
    expect(d.result).toMatchObject({ repeats: 2, example: { pair: 0, key: Buffer.from('k-7').toString('hex') }, unchecked: 0 });
    for (let i = 900; i < 1200; i++) d.add(Buffer.from(`k-${i}`), 0);
    expect(d.result.unchecked).toBe(1200 - 1000 + 1);
  });
});

describe('repeated keys within a task', () => {
  let dir = '';
  beforeAll(async () => {
    const t = copyOf(SHOP_SP);
    afterAll(t.cleanup);
    dir = t.path;
    // orders-agg/task-0 with three of its totals entries written again, later in the body (as an older tool did).
    const sp = await Savepoint.open(SHOP_SP);
    const entries: StateEntry[] = [];
    for await (const b of sp.entries({ operator: 'orders-agg' })) for (const e of b) if (e.task.taskId === 'task-0') entries.push({ operatorId: e.operatorId, stateName: e.stateName, key: Buffer.from(e.key), value: Buffer.from(e.value) });
    const totals = entries.filter((e) => e.stateName === 'totals').slice(0, 3);
    entries.push(...totals.map((e) => ({ ...e, value: Buffer.from([0xc0]) })));
    writeFileSync(join(dir, 'orders-agg', 'task-0', 'state.bin'), await encodeStateBinToBuffer(entries));
    reseal(dir);
  });

  it('verify: a KEY_REPEATED warning naming the task, the state and the first key; the savepoint stays ok', async () => {
    const r = await verifySavepoint(dir);
    expect(r.ok).toBe(true);
    const w = r.findings.filter((f) => f.code === 'KEY_REPEATED');
    expect(w).toHaveLength(1);
    expect(w[0]!.severity).toBe('warning');
    expect(w[0]!.message).toMatch(/orders-agg\/task-0\/state\.bin: 3 entries repeat keys stored earlier in this task \(first: orders-agg\/totals key [0-9a-f]+\); the engine's load keeps the last entry/);
    // The untouched savepoint has none.
    expect((await verifySavepoint(SHOP_SP)).findings.filter((f) => f.code === 'KEY_REPEATED')).toEqual([]);
  });

  it('the full decoder finds the same repeats as the counting walker', async () => {
    const uri = join(dir, 'orders-agg', 'task-0', 'state.bin');
    for (const exact of [false, true]) {
      const r = await scanFile({ uri, hash: false, decode: true, keyGroups: false, repeats: true, exact });
      expect(r.repeatedKeys).toBe(3);
      expect(r.notes!.map((n) => n.code)).toEqual(['KEY_REPEATED']);
    }
  });

  it('inspect: counted per operator and overall, the note on the task, in text and --json', async () => {
    const s = await inspectSavepoint(dir);
    expect(s.totals.repeatedKeys).toBe(3);
    const op = s.operators.find((o) => o.id === 'orders-agg')!;
    expect(op.repeatedKeys).toBe(3);
    expect(op.tasks.find((t) => t.id === 'task-0')!.notes!.map((n) => n.code)).toEqual(['KEY_REPEATED']);
    const text = humanSummary(s, false);
    expect(text).toContain('  repeated keys: 3 entries repeat a key stored earlier in its task; the engine keeps the last (KEY_REPEATED)');
    expect(text).toContain('  warning [KEY_REPEATED] task-0: 3 entries repeat keys');
    const r = await ksp(['inspect', dir, '--json']);
    expect(JSON.parse(r.stdout).totals.repeatedKeys).toBe(3);
    const v = await ksp(['verify', dir]);
    expect(v.code).toBe(0);
    expect(v.stdout + v.stderr).toContain('KEY_REPEATED');
  });
});
