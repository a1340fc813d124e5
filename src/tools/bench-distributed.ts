/**
 * `node dist/tools/bench-distributed.js [--entries N] [--tasks T] [--parallelism P] [--shards 1,2,4] [--json]`:
 * the figures of README "Scale-out" (a benchmark, not a test). On the bench's
 * canonical savepoint (bench-data.ts: 16-byte keys, ~100-byte values), a
 * one-process `rescale` (routing state-key, with its re-verify), then for each
 * shard count the plan, N `ksp work` processes at once, and the commit, each
 * timed; per shard its wall time and bytes read; the shuffle's extra bytes
 * (the run files, written once and read once); and a check that the output
 * is byte-identical to the one-process one.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canonicalInput } from './bench-data.js';

const BIN = fileURLToPath(new URL('../../bin/ksp.js', import.meta.url));
const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const entries = Number(arg('entries', '2000000'));
const tasks = Number(arg('tasks', '4'));
const parallelism = Number(arg('parallelism', '7'));
const shardCounts = arg('shards', '1,2,4').split(',').map(Number);
const asJson = process.argv.includes('--json');
const log = (s: string): void => void process.stderr.write(`bench-distributed: ${s}\n`);

interface Run { code: number | null; stdout: string; stderr: string; seconds: number }

function ksp(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, CI: 'true', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, stdout, stderr, seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
  });
}

function must(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}): ${r.stderr}`);
  return r;
}

function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    const rel = relative(dir, p);
    if (rel === 'meta.json' || rel === 'manifest.sha256') continue;
    out[rel] = createHash('sha256').update(readFileSync(p)).digest('hex');
  }
  return out;
}

const work = mkdtempSync(join(process.env.KSP_BENCH_DIR ?? tmpdir(), 'ksp-bench-dist-'));
try {
  const input = await canonicalInput(work, entries, tasks, log);
  const mb = input.bytes / 1e6;
  log(`source: ${entries} entries in ${tasks} tasks, ${mb.toFixed(0)} MB; rescale ${tasks}→${parallelism} by state-key; ${cpus().length} CPU(s)`);
  const one = join(work, 'one');
  const base = ['--routing', 'state-key', '--mode', 'relative', '-q'];
  const single = must(await ksp(['rescale', input.sp, one, '-p', String(parallelism), ...base]), 'one-process rescale');
  log(`one process: ${single.seconds.toFixed(2)} s (write + re-verify)`);
  const want = tree(one);
  const rows = [];
  for (const n of shardCounts) {
    const out = join(work, `n${n}`);
    const plan = must(await ksp(['rescale', input.sp, out, '-p', String(parallelism), ...base, '--distributed', '--shards', String(n)]), 'plan');
    const t0 = Date.now();
    const shards = await Promise.all(Array.from({ length: n }, (_, i) => ksp(['work', out, '--shard', `${i}/${n}`, '--json'], { KSP_WORK_POLL_MS: '100' })));
    const workSeconds = (Date.now() - t0) / 1000;
    const reports = shards.map((s, i) => JSON.parse(must(s, `shard ${i}/${n}`).stdout) as { bytes: number; seconds: number; ran: string[]; helped: string[] });
    const runs = join(out, '_ksp', 'runs');
    const shuffleBytes = readdirSync(runs).reduce((x, f) => x + statSync(join(runs, f)).size, 0);
    const commit = must(await ksp(['commit', out, '-q']), 'commit');
    const identical = JSON.stringify(tree(out)) === JSON.stringify(want);
    const row = {
      shards: n, planSeconds: plan.seconds, workSeconds, commitSeconds: commit.seconds, totalSeconds: plan.seconds + workSeconds + commit.seconds,
      perShard: reports.map((r) => ({ seconds: r.seconds, mbRead: r.bytes / 1e6, mbPerSecond: r.bytes / 1e6 / Math.max(r.seconds, 1e-9), units: r.ran.length + r.helped.length })),
      shuffleMB: shuffleBytes / 1e6, identical,
    };
    rows.push(row);
    log(`${n} shard(s): plan ${row.planSeconds.toFixed(2)} s, work ${workSeconds.toFixed(2)} s, commit ${row.commitSeconds.toFixed(2)} s; shuffle ${row.shuffleMB.toFixed(0)} MB; identical: ${identical}`);
    rmSync(out, { recursive: true, force: true });
  }
  const result = { machine: { cpus: cpus().length, model: cpus()[0]?.model }, entries, tasks, parallelism, sourceMB: mb, singleSeconds: single.seconds, rows };
  if (asJson) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else {
    process.stdout.write(`| shards | plan s | work s (wall) | commit s | total s | per-shard MB/s read, source + runs (min–max) | shuffle MB (written once, read once) | identical |\n|---|---|---|---|---|---|---|---|\n`);
    for (const r of rows) {
      const rates = r.perShard.map((p) => p.mbPerSecond);
      process.stdout.write(`| ${r.shards} | ${r.planSeconds.toFixed(2)} | ${r.workSeconds.toFixed(2)} | ${r.commitSeconds.toFixed(2)} | ${r.totalSeconds.toFixed(2)} | ${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)} | ${r.shuffleMB.toFixed(0)} | ${r.identical ? 'yes' : 'NO'} |\n`);
    }
    process.stdout.write(`one process: ${single.seconds.toFixed(2)} s for ${mb.toFixed(0)} MB\n`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
