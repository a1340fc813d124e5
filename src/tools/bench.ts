/**
 * `npm run bench [-- --entries N --tasks T --runs N --only row,... --json --keep]`:
 * issue 13's goal table, each row measured beside its reference in the same
 * run. The data: a canonical savepoint (default 2M entries over 4 tasks,
 * 16-byte keys, ~100-byte msgpack values, src/tools/synthetic.ts) and the
 * same entries as native state, one RocksDB database per task made by `ldb
 * load` with the engine's table settings. Each ksp run is a fresh process
 * (its peak RSS is its own); ksp and reference runs alternate in pairs and
 * the table shows medians and the median of the per-pair ratios.
 * `--list` prints the row names; `--only threads` selects every threads row.
 * `--keep` keeps the generated inputs under .bench/data-ENTRIESxTASKS and
 * reuses them next time (a run without --keep leaves kept inputs alone).
 * Benchmarks, not tests: nothing here asserts; the exit code is 0 unless the bench itself broke.
 */
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { epochDirName } from '../formats/metadata/metadata.js';
import { canonicalInput, ldbCopies, nativeInput } from './bench-data.js';
import { child } from './bench-measure.js';
import { json, markdown } from './bench-report.js';
import { ROWS, runRow, type Context, type RowResult } from './bench-rows.js';
import { s3Reference, startMoto, uploadDir } from './bench-s3.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SELF = fileURLToPath(import.meta.url);

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}
const num = (name: string, dflt: number): number => {
  const v = arg(name);
  const n = v === undefined ? dflt : Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${v}`);
  return n;
};
const has = (flag: string): boolean => process.argv.includes(`--${flag}`);

function firstLine(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.error ? 'absent' : `${r.stdout}${r.stderr}`.trim().split('\n')[0]!;
}

/** `ksp --help` start-up, the whole process (mean of 10 after 2 warm-ups). */
function helpStartupMs(): number {
  const times: number[] = [];
  for (let i = 0; i < 12; i++) {
    const t0 = process.hrtime.bigint();
    spawnSync(process.execPath, [join(ROOT, 'bin', 'ksp.js'), '--help'], { stdio: 'ignore' });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return times.slice(2).reduce((a, b) => a + b, 0) / 10;
}

function machine(): Record<string, string | number> {
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    os: `${process.platform} ${release()}`,
    node: process.version,
    ldb: firstLine('ldb', ['--version']),
    openssl: firstLine('openssl', ['version']),
  };
}

function selected(): typeof ROWS {
  const only = arg('only');
  if (!only) return ROWS;
  const names = only.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => n !== 'threads' && n !== 'startup' && !ROWS.some((r) => r.name === n));
  if (unknown.length) throw new Error(`--only: unknown row ${unknown.join(', ')}; rows: ${ROWS.map((r) => r.name).join(', ')}, threads (every threads row) or startup (ksp --help)`);
  return ROWS.filter((r) => names.includes(r.name) || (names.includes('threads') && r.name.startsWith('threads-')));
}

async function run(): Promise<void> {
  if (has('list')) {
    for (const r of ROWS) process.stdout.write(`${r.name.padEnd(20)} ${r.work}\n`);
    process.stdout.write(`${'startup'.padEnd(20)} \`ksp --help\` start-up (whole process)\n`);
    return;
  }
  const entries = num('entries', 2_000_000);
  const tasks = num('tasks', 4);
  const runs = num('runs', 3);
  const rows = selected();
  const asJson = has('json');
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  const m = machine();
  const header = [
    `ksp bench: ${entries.toLocaleString('en-US')} entries over ${tasks} tasks (16-byte keys, ~100-byte msgpack values), median of ${runs} paired runs`,
    `machine: ${m.cpu}, ${m.cores} cores, ${m.memoryGb} GB, ${m.os}; Node ${m.node}; ${m.ldb}; ${m.openssl}`,
  ];
  // A shared machine's other work slows both sides of a ratio, not the ratio; the load says how noisy the figures are.
  const load = (): string => loadavg().map((x) => x.toFixed(1)).join(' ');
  header.push(`load average at the start: ${load()}`);
  log(header.join('\n'));

  const dir = join(ROOT, '.bench', `data-${entries}x${tasks}`);
  const reused = existsSync(join(dir, 'canonical.done'));
  mkdirSync(dir, { recursive: true });
  const ctx: Context = { root: ROOT, self: SELF, dir, entries, tasks, migrations: join(dir, 'migrations.mjs'), threadsHelp: new Map(), missing: {} };
  writeFileSync(ctx.migrations, `export default (m, codecs) => {
  m.value('op-bench', 1, 2, codecs.msgpack, codecs.msgpack, (o) => ({ ...o, n: o.n + 1, migrated: true }), { state: 'sessions' });
};\n`);
  const needs = new Set(rows.flatMap((r) => r.needs));
  const results: RowResult[] = [];
  try {
    if (needs.size) ctx.canonical = await canonicalInput(dir, entries, tasks, log);
    if (needs.has('native') && spawnSync('ldb', ['--version'], { stdio: 'ignore' }).error) ctx.missing.native = 'ldb is not installed (Debian package rocksdb-tools)';
    if (needs.has('native') && ctx.canonical && !ctx.missing.native) {
      ctx.native = await nativeInput(dir, ctx.canonical, log);
      if (rows.some((r) => r.needs.includes('native') && r.ref)) ctx.ldbDbs = ldbCopies(dir, ctx.native.dbs);
    }
    if (needs.has('s3') && ctx.canonical) {
      const s3 = await startMoto();
      if (typeof s3 === 'string') ctx.missing.s3 = s3;
      else {
        ctx.s3 = s3;
        const prefix = `bench/savepoints/${epochDirName(1n)}`;
        const t0 = Date.now();
        await uploadDir(s3, ctx.canonical!.sp, 'ksp-bench', prefix);
        log(`uploaded the savepoint to moto_server at ${s3.endpoint} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        ctx.s3Uri = `s3://ksp-bench/${prefix}`;
        ctx.s3Ref = s3Reference(s3, dir, 'ksp-bench', prefix);
      }
    }
    for (const spec of rows) {
      log(`${spec.name}: ${spec.work}`);
      results.push(runRow(spec, ctx, runs, log));
      log(`  → ${results.at(-1)!.result}`);
    }
  } finally {
    await ctx.s3?.stop();
    if (typeof ctx.cBaseline === 'object') rmSync(ctx.cBaseline.tmp, { recursive: true, force: true });
    // Inputs kept by an earlier --keep run stay for the next one; what this run made goes unless --keep.
    if (!has('keep') && !reused) rmSync(dir, { recursive: true, force: true });
    else for (const f of ['rocksdb-copy', 'out', 'c-out', 'x.parquet', 'x.arrow', 'rescaled-p7', 'x-import.parquet']) rmSync(join(dir, f), { recursive: true, force: true });
  }
  header.push(`load average at the end: ${load()}`);
  const only = arg('only')?.split(',');
  const startupMs = !only || only.includes('startup') ? helpStartupMs() : undefined;
  const startup = startupMs === undefined ? '' : `\n\`ksp --help\` start-up: ${startupMs.toFixed(0)} ms (whole process, mean of 10)\n`;
  process.stdout.write(asJson ? json({ ...m, entries, tasks, runs, ...(startupMs === undefined ? {} : { helpStartupMs: startupMs }) }, results) : `\n${markdown(header, results)}${startup}`);
}

if (process.argv[2] === '--child') await child(process.argv.slice(3));
else {
  try {
    await run();
  } catch (e) {
    // The bench itself broke (a bad flag, a reference that could not be set up): say so, without a stack for flag mistakes.
    process.stderr.write(`bench: ${e instanceof Error && e.message.startsWith('--') ? e.message : e instanceof Error ? e.stack : String(e)}\n`);
    process.exitCode = 2;
  }
}
