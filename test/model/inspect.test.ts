import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspectSavepoint } from '../../src/model/inspect.js';
import { tasksForKey } from '../../src/model/key-lookup.js';
import { Savepoint, type EntryRow } from '../../src/model/savepoint.js';
import { ENGINE_SP, FIXTURES, HAS_SHARED, SHOP_SP, copyOf } from '../support/env.js';

async function collect(it: AsyncIterable<EntryRow[]>): Promise<EntryRow[]> {
  const out: EntryRow[] = [];
  for await (const b of it) out.push(...b);
  return out;
}

describe.skipIf(!HAS_SHARED)('inspect: the engine fixture', () => {
  it('summarises it', async () => {
    const s = await inspectSavepoint(ENGINE_SP);
    expect(s).toMatchObject({ jobId: 'fixture-job', epoch: '1', kind: 'savepoint', label: 'v1-compat-fixture', layout: 'engine' });
    expect(s.operators).toHaveLength(1);
    expect(s.operators[0]).toMatchObject({ id: 'op-0', entries: 2, bytes: 147 });
    expect(s.operators[0]!.states).toEqual([{ name: 'tumbling', entryOperator: 'continuous-window', entries: 2, keyBytes: 11, valueBytes: 10 }]);
    expect(s.operators[0]!.keyGroups).toMatchObject({ distinct: 2, minPerGroup: 1, maxPerGroup: 1, watermarkKeys: 1, windowKeys: 0 });
  });
  it('lists its two entries, filtered by either operator id', async () => {
    const sp = await Savepoint.open(ENGINE_SP);
    const all = await collect(sp.entries());
    expect(all.map((e) => [e.task.operatorId, e.operatorId, Buffer.from(e.key).toString(), Buffer.from(e.value).toString('hex')])).toEqual([
      ['op-0', 'continuous-window', 'tw:key-a', '3431'],
      ['op-0', 'continuous-window', 'wm:', '2823000000000000'],
    ]);
    expect(await collect(sp.entries({ operator: 'continuous-window' }))).toHaveLength(2);
    expect(await collect(sp.entries({ operator: 'op-0', key: Buffer.from('wm:') }))).toHaveLength(1);
    expect(await collect(sp.entries({ operator: 'nope' }))).toHaveLength(0);
  });
});

describe('inspect: bundled fixtures', () => {
  it('summary: operators, tasks, states, stateless tasks, key-group spread, savepoint record', async () => {
    const s = await inspectSavepoint(SHOP_SP);
    expect(s.savepointId).toBe('5b1f3c7e-2d4a-4e8b-9c61-0a7d2e4f8b13');
    expect(s.operatorVersions).toEqual({ 'orders-agg': '1', windows: '2', fraud: '1', sink: '1' });
    expect(s.totals).toMatchObject({ operators: 4, tasks: 8, entries: 158, statelessTasks: 2, nativeTasks: 0 });
    const w = s.operators.find((o) => o.id === 'windows')!;
    expect(w.keyGroups).toMatchObject({ windowKeys: 60, watermarkKeys: 2 });
    expect(w.states.map((x) => [x.name, x.entries])).toEqual([['tumbling', 22], ['sliding', 20], ['session', 20]]);
    const sink = s.operators.find((o) => o.id === 'sink')!;
    expect(sink.tasks.map((t) => t.format)).toEqual(['stateless', 'stateless']);
    const o = s.operators.find((x) => x.id === 'orders-agg')!;
    expect(o.keyGroups.distinct).toBe(60);
    expect(o.keyGroups.maxPerGroup).toBe(2);
  });

  it('native tasks show their format and pointer', async () => {
    const s = await inspectSavepoint(join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007'));
    expect(s.totals.nativeTasks).toBe(1);
    expect(s.operators.find((o) => o.id === 'windows')!.tasks[0]).toMatchObject({ format: 'native', pointer: 'shop/incr/windows/task-0/epochs/00000000000000000007/sst_manifest.json' });
  });

  it('entries of a native task come from its RocksDB files, in key order', async () => {
    const sp = await Savepoint.open(join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007'));
    const rows = await collect(sp.entries({ operator: 'windows' }));
    expect(rows.map((e) => Buffer.from(e.key).toString())).toEqual(['tw:key-a:60000', 'tw:key-b:120000', 'tw:key-c:180000', 'tw:key-d:240000', 'wm:']);
    expect(rows.every((e) => e.operatorId === 'windows' && e.stateName === 'tumbling')).toBe(true);
  });

  it('filters by state and key prefix', async () => {
    const sp = await Savepoint.open(SHOP_SP);
    expect(await collect(sp.entries({ state: 'last-seen' }))).toHaveLength(10);
    expect(await collect(sp.entries({ operator: 'orders-agg', keyPrefix: Buffer.from('customer-1') }))).toHaveLength(11 + 1);
  });

  it('an exact key reads only the task that owns it, and finds the same entries as a full scan', async () => {
    const sp = await Savepoint.open(SHOP_SP);
    for (let i = 0; i < 60; i += 7) {
      const key = Buffer.from(`customer-${i}`);
      const plan = tasksForKey(sp, key, sp.candidateTasks({ operator: 'orders-agg' }));
      expect(plan.tasks).toHaveLength(1);
      expect(plan.unpruned).toEqual([]);
      const pruned = await collect(sp.entries({ operator: 'orders-agg', key, tasks: new Set(plan.tasks.map((t) => t.index)) }));
      const full = await collect(sp.entries({ operator: 'orders-agg', key }));
      expect(pruned.length).toBeGreaterThan(0);
      expect(pruned.map((e) => e.task.taskId)).toEqual(full.map((e) => e.task.taskId));
    }
  });

  it('window keys and the broadcast watermark are found through pruning too', async () => {
    const sp = await Savepoint.open(SHOP_SP);
    const all = await collect(sp.entries({ operator: 'windows' }));
    for (const e of all) {
      const plan = tasksForKey(sp, e.key, sp.candidateTasks({ operator: 'windows' }));
      expect(plan.tasks.map((t) => t.index)).toContain(e.task.index);
    }
  });

  it('an absolute path fixture resolves to s3:// locations', async () => {
    // Its state lives in another storage: read only when allowed.
    await expect(Savepoint.open(join(FIXTURES, 'absolute-paths'))).rejects.toMatchObject({ code: 'PATH_UNSAFE' });
    const sp = await Savepoint.open(join(FIXTURES, 'absolute-paths'), { allowRoots: ['s3://ksp-fixtures'] });
    expect(sp.tasks[0]!.location.storage.kind).toBe('s3');
    expect(sp.tasks[0]!.relPath).toBeNull();
  });
});

describe('Savepoint', () => {
  it('probe tells canonical, stateless, native and missing tasks apart', async () => {
    const sp = await Savepoint.open(join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007'));
    const kinds = await Promise.all(sp.tasks.map((t) => sp.probe(t)));
    expect(kinds.map((k) => k.kind)).toEqual(['canonical', 'canonical', 'canonical', 'native']);
    const shop = await Savepoint.open(SHOP_SP);
    expect((await shop.probe(shop.tasks.find((t) => t.operatorId === 'sink')!)).kind).toBe('stateless');
    const gone = { ...shop.tasks[0]!, location: { ...shop.tasks[0]!.location, key: shop.tasks[0]!.location.key + '.missing' } };
    expect((await shop.probe(gone)).kind).toBe('missing');
  });

  it('finds the engine record of a savepoint named by its epoch', async () => {
    const c = copyOf(join(FIXTURES, 'base'));
    try {
      const sps = join(c.path, 'shop', 'savepoints');
      renameSync(join(sps, '5b1f3c7e-2d4a-4e8b-9c61-0a7d2e4f8b13'), join(sps, '7'));
      const sp = await Savepoint.open(join(sps, '00000000000000000007'));
      expect(sp.meta?.value.savepoint_id).toBe('5b1f3c7e-2d4a-4e8b-9c61-0a7d2e4f8b13');
      expect(sp.metaLocation?.key.endsWith('savepoints/7/meta.json')).toBe(true);
    } finally {
      c.cleanup();
    }
  });
});
