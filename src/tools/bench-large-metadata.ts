/**
 * `npm run bench:metadata [-- --sizes 20000,100000,200000 --zero-byte --keep]`: a
 * savepoint whose metadata.json lists many operator snapshots (10 operators
 * of N/10 tasks each; one task in 100 holds a few entries, the rest none:
 * see generateLargeMetadata) and the time and peak RSS of `verify`, `inspect` and one write
 * (`relocate`) on it, each in a fresh process so its peak RSS is its own.
 * Issue 12, second pass: 200,000 snapshots must stay within the 256 MB
 * budget, with time growing linearly. Benchmarks, not tests: nothing here
 * asserts.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeStateBinToBuffer } from '../formats/state-bin/encoder.js';
import { epochDirName } from '../formats/metadata/metadata.js';
import { MALLOC_ENV, writerNodeFlags } from '../cli/malloc-env.js';

const SELF = fileURLToPath(import.meta.url);
const DIST = dirname(dirname(SELF));
const OPERATORS = 10;

/**
 * A savepoint with `n` snapshots under `dir`; returns its directory. A task
 * without entries holds what the engine writes for a stateful task with no
 * entries, the 12-byte empty snapshot (krishiv-state backend.rs `snapshot`;
 * the engine references no file for a stateless one). `zeroByte` makes them
 * 0-byte files instead, as older ksp versions wrote: every writer then
 * rewrites each one (to the 12-byte snapshot), the heaviest case per task.
 */
export async function generateLargeMetadata(dir: string, n: number, options: { zeroByte?: boolean } = {}): Promise<string> {
  const sp = join(dir, 'bench', 'savepoints', epochDirName(1n));
  mkdirSync(sp, { recursive: true });
  const per = Math.ceil(n / OPERATORS);
  const manifest: string[] = [];
  const snaps: string[] = [];
  const empty12 = await encodeStateBinToBuffer([]);
  for (let o = 0; o < OPERATORS; o++) {
    const op = `op-${o}`;
    mkdirSync(join(sp, op));
    for (let t = 0; t < per && o * per + t < n; t++) {
      const task = `task-${t}`;
      const rel = `${op}/${task}/state.bin`;
      mkdirSync(join(sp, op, task));
      let bytes: Buffer = options.zeroByte ? Buffer.alloc(0) : empty12;
      if (t % 100 === 0) {
        bytes = await encodeStateBinToBuffer([0, 1, 2].map((i) => ({ operatorId: op, stateName: 's', key: Buffer.from(`k-${t}-${i}`), value: Buffer.from(`v-${i}`) })));
      }
      writeFileSync(join(sp, rel), bytes);
      manifest.push(`sha256:${createHash('sha256').update(bytes).digest('hex')}  ${rel}\n`);
      snaps.push(`    {\n      "operator_id": "${op}",\n      "task_id": "${task}",\n      "snapshot_path": "bench/checkpoints/${epochDirName(1n)}/${rel}"\n    }`);
    }
  }
  const md = `{\n  "version": 3,\n  "epoch": 1,\n  "job_id": "bench",\n  "fencing_token": 1,\n  "timestamp_ms": 1760000000000,\n  "source_offsets": [],\n  "operator_snapshots": [\n${snaps.join(',\n')}\n  ],\n  "is_savepoint": true,\n  "savepoint_label": null\n}`;
  writeFileSync(join(sp, 'metadata.json'), md);
  manifest.push(`sha256:${createHash('sha256').update(md).digest('hex')}  metadata.json\n`);
  manifest.sort((a, b) => Buffer.compare(Buffer.from(a.slice(73)), Buffer.from(b.slice(73))));
  writeFileSync(join(sp, 'manifest.sha256'), manifest.join(''));
  return sp;
}

/** One operation in this process (the child side). */
async function runOne(op: string, sp: string, out: string): Promise<void> {
  // As the CLI runs (src/cli/main.ts).
  (await import('../cli/heap.js')).tuneHeap();
  const started = performance.now();
  let detail = '';
  if (op === 'verify') {
    const { verifySavepoint } = await import('../model/verify.js');
    // As `ksp verify` runs it (records kept only for up to 20 tasks, see cli/verify/run.ts).
    const r = await verifySavepoint(sp, { records: 20 });
    detail = `ok=${r.ok} findings=${r.findings.length}`;
  } else if (op === 'inspect') {
    // As `ksp inspect` runs it: the source's integrity first, then the summary (cli/inspect/run.ts).
    const { inspectSavepoint } = await import('../model/inspect.js');
    const { Savepoint } = await import('../model/savepoint.js');
    const { checkSourceIntegrity } = await import('../model/source-integrity.js');
    const opened = await Savepoint.open(sp);
    const { hashes } = await checkSourceIntegrity(opened, false);
    const r = await inspectSavepoint(opened, { hashes, records: 16 });
    detail = `tasks=${r.totals.tasks} entries=${r.totals.entries}`;
  } else {
    const { Savepoint } = await import('../model/savepoint.js');
    const { SavepointWriter } = await import('../write/writer.js');
    // As `ksp relocate` runs it without --json or --verbose: no per-file records (cli/write/run.ts).
    const r = await SavepointWriter.from(await Savepoint.open(sp)).relocate().write(out, { mode: 'relative', records: false });
    detail = `files=${r.written.files}`;
  }
  const seconds = (performance.now() - started) / 1000;
  // CPU time (every thread of the process, start-up included) drifts far less than wall time when
  // the machine is shared, so the growth from 20K to 200K snapshots is read from it.
  const ru = process.resourceUsage();
  const cpu = (ru.userCPUTime + ru.systemCPUTime) / 1e6;
  process.stdout.write(JSON.stringify({ op, seconds, cpu, maxRssMb: ru.maxRSS / 1024, detail }) + '\n');
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--child');
  if (i > 0) return runOne(process.argv[i + 1]!, process.argv[i + 2]!, process.argv[i + 3]!);
  const s = process.argv.indexOf('--sizes');
  const sizes = (s > 0 ? process.argv[s + 1]! : '20000,100000,200000').split(',').map(Number);
  const keep = process.argv.includes('--keep');
  const zeroByte = process.argv.includes('--zero-byte');
  console.log(`bench:metadata — ${OPERATORS} operators, 1 task in 100 holds 3 entries, the rest ${zeroByte ? '0-byte files (rewritten by every writer)' : 'the 12-byte empty snapshot'} (node ${process.version})`);
  console.log('snapshots  operation  seconds  CPU s  CPU µs/snapshot  peak RSS MB  detail');
  for (const n of sizes) {
    const dir = mkdtempSync(join(tmpdir(), 'ksp-bench-md-'));
    try {
      const t0 = performance.now();
      const sp = await generateLargeMetadata(dir, n, { zeroByte });
      console.log(`${String(n).padStart(9)}  generate   ${((performance.now() - t0) / 1000).toFixed(1).padStart(7)}`);
      for (const op of ['verify', 'inspect', 'relocate']) {
        const out = join(dir, `out-${op}`);
        // The write runs with the malloc setting and V8 flags bin/ksp.js gives writing commands (src/cli/malloc-env.ts).
        const env = op === 'relocate' ? { ...process.env, ...MALLOC_ENV } : process.env;
        const flags = op === 'relocate' ? writerNodeFlags([], env) : [];
        const r = spawnSync(process.execPath, [...flags, SELF, '--child', op, sp, out], { encoding: 'utf8', cwd: DIST, maxBuffer: 64 * 1024 * 1024, env });
        const line = r.stdout.trim().split('\n').pop() ?? '';
        try {
          const x = JSON.parse(line) as { seconds: number; cpu: number; maxRssMb: number; detail: string };
          const perSnapshot = (x.cpu * 1e6) / n;
          console.log(`${String(n).padStart(9)}  ${op.padEnd(9)}  ${x.seconds.toFixed(1).padStart(7)}  ${x.cpu.toFixed(1).padStart(5)}  ${perSnapshot.toFixed(0).padStart(15)}  ${x.maxRssMb.toFixed(0).padStart(11)}  ${x.detail}`);
        } catch {
          console.log(`${String(n).padStart(9)}  ${op.padEnd(9)}  failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().split('\n').slice(0, 3).join(' | ')}`);
        }
        rmSync(out, { recursive: true, force: true });
      }
    } finally {
      if (!keep) rmSync(dir, { recursive: true, force: true });
      else console.log(`kept ${dir}`);
    }
  }
}

if (process.argv[1] === SELF) await main();
