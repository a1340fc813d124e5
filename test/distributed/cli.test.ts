import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ksp } from '../support/cli.js';
import { ROOT } from '../support/env.js';
import { useTempDirs } from '../write/support.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { SavepointWriter } from '../../src/write/writer.js';
import { encodeJson, recordLocation } from '../../src/write/distributed/plan-file.js';
import { locate } from '../../src/storage/uri.js';
import { commitDistributed, distributedStatus, runShard, writeDistributedPlan } from '../../src/write/distributed/index.js';
import { parseShard } from '../../src/write/distributed/shard.js';
import { buildSource } from './support.js';

const tmp = useTempDirs('ksp-dist-cli-');

describe('ksp work, commit, status: the command line', () => {
  it('each has --help with examples and exit codes', async () => {
    for (const c of ['work', 'commit', 'status']) {
      const r = await ksp([c, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Examples:');
      expect(r.stdout).toContain('Exit codes');
    }
    const r = await ksp(['rescale', '--help']);
    expect(r.stdout).toContain('--distributed');
  });

  it('usage errors, a target with no plan, and the shard index from the environment', async () => {
    const none = join(tmp(), 'none');
    let r = await ksp(['work', none, '--shard', '2/2', '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error.code).toBe('SHARD_INVALID');
    r = await ksp(['work', none, '--shard', '4']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('JOB_COMPLETION_INDEX');
    r = await ksp(['work', none, '--shard', '0/1']);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('DISTRIBUTED_PLAN_MISSING');
    expect((await ksp(['status', none])).code).toBe(4);
    expect((await ksp(['commit', none])).code).toBe(4);
    expect(parseShard('4', { JOB_COMPLETION_INDEX: '3' })).toEqual({ index: 3, count: 4 });
    expect(parseShard('4', { AWS_BATCH_JOB_ARRAY_INDEX: '1' })).toEqual({ index: 1, count: 4 });
    expect(parseShard('2/4', { JOB_COMPLETION_INDEX: '3' })).toEqual({ index: 2, count: 4 });
    expect(() => parseShard('4', { JOB_COMPLETION_INDEX: '4' })).toThrow(/not below/);
    const src = join(tmp(), 'src');
    await buildSource(src, 20);
    r = await ksp(['rescale', src, join(tmp(), 'o'), '-p', '2', '--shards', '3']);
    expect(r.code).toBe(2);
    // Engine mode: native tables go to the job's shared incr/ folder under fresh names (engine.test.ts holds it to the one-process bytes).
    r = await ksp(['convert', src, '--to', 'native', '--mode', 'engine', '--base', join(tmp(), 'b'), '--distributed']);
    expect(r.code, r.stderr).toBe(0);
  });

  it('the Kubernetes work Job\'s command runs as written, its index from JOB_COMPLETION_INDEX', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 100);
    const out = join(tmp(), 'out');
    expect((await ksp(['rescale', src, out, '-p', '4', '--operator', 'windows', '--mode', 'relative', '--distributed'])).code).toBe(0);
    const job = JSON.parse(readFileSync(join(ROOT, 'deploy/kubernetes/work-job.json'), 'utf8'));
    const n = job.spec.completions as number;
    const args = (job.spec.template.spec.containers[0].args as string[]).map((a) => a.replace('$(KSP_TARGET)', out));
    // Every index of the Job, four pods at a time (16 processes at once would crowd the test machine's 2 cores):
    // a shard whose merge needs a route no pod has started yet runs it itself.
    for (let i = 0; i < n; i += 4) {
      const runs = await Promise.all(Array.from({ length: Math.min(4, n - i) }, (_, k) => ksp(args, { JOB_COMPLETION_INDEX: String(i + k), KSP_WORK_POLL_MS: '50' })));
      for (const r of runs) expect(r.code, r.stderr).toBe(0);
    }
    const commit = JSON.parse(readFileSync(join(ROOT, 'deploy/kubernetes/commit-job.json'), 'utf8'));
    const c = await ksp((commit.spec.template.spec.containers[0].args as string[]).map((a) => a.replace('$(KSP_TARGET)', out)));
    expect(c.code, c.stderr).toBe(0);
    expect(JSON.parse(c.stdout).verify.ok).toBe(true);
    expect((await ksp(['verify', out])).code).toBe(0);
  });

  it('a unit whose shard stopped beating is run by the shard that needs it; a failed one stops it; commit lists failures', async () => {
    const src = join(tmp(), 'src');
    await buildSource(src, 100);
    const out = join(tmp(), 'out');
    const plan = await writeDistributedPlan(await SavepointWriter.from(await Savepoint.open(src)).rescale(3, { operators: ['windows'] }).prepare(out, { mode: 'relative' }), { command: 'rescale' });
    const routes = plan.units.filter((u) => u.kind === 'route');
    const dir = locate(out);
    // One route "started" by a shard that died long ago, another by a live one that then failed.
    const old = new Date(Date.now() - 3_600_000).toISOString();
    await dir.storage.write(recordLocation(dir, routes[0]!.id, 'started').key, encodeJson({ unit: routes[0]!.id, shard: '0/9', host: 'gone', pid: 1, started: old, heartbeat: old }));
    const now = new Date().toISOString();
    await dir.storage.write(recordLocation(dir, routes[1]!.id, 'started').key, encodeJson({ unit: routes[1]!.id, shard: '1/9', host: 'h', pid: 1, started: now, heartbeat: now }));
    await dir.storage.write(recordLocation(dir, routes[1]!.id, 'failed').key, encodeJson({ unit: routes[1]!.id, shard: '1/9', host: 'h', pid: 1, failed: new Date(Date.now() + 1000).toISOString(), error: { code: 'STORAGE_IO', message: 'disk full' } }));
    let st = await distributedStatus(out);
    expect(st.list.find((x) => x.id === routes[0]!.id)!.state).toBe('stalled');
    expect(st.list.find((x) => x.id === routes[1]!.id)!.state).toBe('failed');
    const c = await commitDistributed(out).catch((e) => e);
    expect(c.code).toBe('DISTRIBUTED_INCOMPLETE');
    expect(c.data.failed[0]).toMatchObject({ unit: routes[1]!.id, error: { code: 'STORAGE_IO', message: 'disk full' } });
    expect(c.message).toContain('disk full');
    expect(existsSync(join(out, 'metadata.json'))).toBe(false);
    // A shard holding a merge, run alone: it needs every route.
    const { assign } = await import('../../src/write/distributed/shard.js');
    const split = assign(plan.units, 9);
    const k = split.findIndex((s) => s.some((u) => u.kind === 'merge'));
    const e = await runShard(out, { index: k, count: 9, pollMs: 10 }).catch((x) => x);
    expect(e.code).toBe('DISTRIBUTED_UNIT_FAILED');
    expect(e.message).toContain('disk full');
    // The stalled route was run by this shard before it met the failed one (routes in source order).
    st = await distributedStatus(out);
    expect(st.list.find((x) => x.id === routes[0]!.id)!.state).toBe('done');
    // Its own shard runs the failed route again; then everything completes.
    const owner = split.findIndex((s) => s.some((u) => u.id === routes[1]!.id));
    await runShard(out, { index: owner, count: 9, pollMs: 10 });
    for (let i = 0; i < 9; i++) await runShard(out, { index: i, count: 9, pollMs: 10 });
    expect((await commitDistributed(out)).verify.ok).toBe(true);
  });
});
