/**
 * `npm run bench [-- --entries N --tasks T --keep]`: generates a canonical
 * savepoint (default 2M entries over 4 tasks, 16-byte keys, ~100-byte
 * msgpack values) and measures the main operations, each in a fresh process
 * so its peak RSS is its own: entries/s, MB/s, peak RSS. The write
 * operations (rescale, migrate, relocate) include their final re-verify.
 * Also `ksp --help` start-up time, and the native (RocksDB) read side: a
 * database of 5M entries (`--native-entries N`) made by real RocksDB,
 * converted to canonical, beside RocksDB's own `ldb dump` of it, and
 * converted back to native, beside the time `ldb load` took for the same
 * entries (`--native-only` runs just that part, `--no-native` skips it).
 * Benchmarks, not tests: nothing here asserts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { copyFileSync, cpSync, createReadStream, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildManifest } from '../formats/manifest/manifest.js';
import { MetadataDoc, epochDirName } from '../formats/metadata/metadata.js';
import { fromPlain } from '../formats/json/json-text.js';
import { encodeNativeKey } from '../formats/native-key/native-key.js';
import { encodePointer } from '../formats/pointer/pointer.js';
import { MALLOC_ENV, needsMallocEnv } from '../cli/malloc-env.js';
import { writeSyntheticSavepoint } from './synthetic.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SELF = fileURLToPath(import.meta.url);

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}

async function generate(dir: string, entries: number, tasks: number): Promise<number> {
  rmSync(join(dir, 'bench'), { recursive: true, force: true });
  const r = await writeSyntheticSavepoint(dir, { job: 'bench', operator: 'op-bench', entries, tasks, fill: (pool) => void randomFillSync(pool) });
  return r.bytes;
}

/** Child mode: run one CLI command in this process and report time and peak RSS. */
async function child(args: string[]): Promise<void> {
  const { main } = await import('../cli/main.js');
  const t0 = process.hrtime.bigint();
  const code = await main([...args, '--quiet']);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stderr.write(`\n@@bench ${JSON.stringify({ code, secs, maxRssMb: process.resourceUsage().maxRSS / 1024 })}\n`);
  process.exitCode = code;
}

function measure(args: string[]): { code: number; secs: number; maxRssMb: number } {
  // The environment bin/ksp.js gives writing commands.
  const env = needsMallocEnv(args) ? { ...process.env, ...MALLOC_ENV } : process.env;
  const r = spawnSync(process.execPath, [SELF, '--child', ...args], { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'ignore', 'pipe'] });
  const m = /@@bench (.*)/.exec(r.stderr);
  if (!m) throw new Error(`bench child failed: ${r.stderr.slice(-2000)}`);
  return JSON.parse(m[1]!);
}

function helpStartup(): number {
  const runs = 10;
  const times: number[] = [];
  for (let i = 0; i < runs + 2; i++) {
    const t0 = process.hrtime.bigint();
    spawnSync(process.execPath, [join(ROOT, 'bin', 'ksp.js'), '--help'], { stdio: 'ignore' });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return times.slice(2).reduce((a, b) => a + b, 0) / runs;
}

/**
 * A RocksDB database of `n` engine-keyed entries made by real RocksDB (`ldb
 * load`, format_version 5, Snappy, XXH3, 16 KiB blocks, compacted), wrapped
 * in a one-task native savepoint in the engine's layout. Returns the
 * savepoint directory, the database directory and its SST bytes.
 */
async function generateNative(dir: string, n: number): Promise<{ sp: string; db: string; sstBytes: number; loadSecs: number }> {
  const job = 'native';
  const db = join(dir, 'rocksdb');
  rmSync(db, { recursive: true, force: true });
  rmSync(join(dir, job), { recursive: true, force: true });
  spawnSync('ldb', [`--db=${db}`, '--create_if_missing', 'load', '--disable_wal'], { input: '' });
  const loadStart = process.hrtime.bigint();
  const ldb = spawn('ldb', [`--db=${db}`, '--hex', '--compression_type=snappy', '--block_size=16384', 'load', '--disable_wal', '--bulk_load', '--compact'], { stdio: ['pipe', 'ignore', 'inherit'] });
  const done = new Promise<number>((res) => ldb.on('close', (code) => res(code ?? 1)));
  const prefix = encodeNativeKey('op-bench', 'sessions', Buffer.alloc(0)).toString('hex');
  const filler = Buffer.from('x'.repeat(52)).toString('hex');
  for (let i = 0; i < n; i += 8192) {
    const pool = randomFillSync(Buffer.allocUnsafe(64 * 8192));
    let text = '';
    for (let j = 0; j < Math.min(8192, n - i); j++) {
      text += `0x${prefix}${pool.toString('hex', j * 64, j * 64 + 16)} ==> 0x${pool.toString('hex', j * 64 + 16, j * 64 + 64)}${filler}\n`;
    }
    if (!ldb.stdin.write(text)) await new Promise((r) => ldb.stdin.once('drain', r));
  }
  ldb.stdin.end();
  if ((await done) !== 0) throw new Error('ldb load failed (is rocksdb-tools installed?)');
  const loadSecs = Number(process.hrtime.bigint() - loadStart) / 1e9;

  const epoch = epochDirName(1n);
  const sp = join(dir, job, 'savepoints', epoch);
  const incr = `${job}/incr/op-bench/task-0`;
  mkdirSync(join(dir, incr, 'sst'), { recursive: true });
  mkdirSync(join(dir, incr, 'epochs', epoch), { recursive: true });
  mkdirSync(join(sp, 'op-bench', 'task-0'), { recursive: true });
  const sst = [];
  const meta = [];
  let sstBytes = 0;
  for (const f of readdirSync(db)) {
    if (f.endsWith('.sst')) {
      const to = `${incr}/sst/${f}`;
      copyFileSync(join(db, f), join(dir, to));
      const hash = createHash('sha256');
      for await (const c of createReadStream(join(db, f))) hash.update(c as Buffer);
      const size = statSync(join(db, f)).size;
      sstBytes += size;
      sst.push({ filename: f, size_bytes: size, sha256_hex: hash.digest('hex'), storage_path: to });
    } else if (/^(CURRENT|MANIFEST-\d+|\d+\.log)$/.test(f)) {
      const to = `${incr}/epochs/${epoch}/${f}`;
      copyFileSync(join(db, f), join(dir, to));
      meta.push({ filename: f, storage_path: to });
    }
  }
  const manifestPath = `${incr}/epochs/${epoch}/sst_manifest.json`;
  writeFileSync(join(dir, manifestPath), JSON.stringify({ epoch: 1, sst_files: sst, meta_files: meta, manifest_storage_path: manifestPath }));
  const pointer = encodePointer({ manifestPath });
  writeFileSync(join(sp, 'op-bench', 'task-0', 'state.bin'), pointer);
  const md = MetadataDoc.fromJson(fromPlain({
    version: 3, epoch: 1, job_id: job, fencing_token: 1, timestamp_ms: 1760000000000, source_offsets: [],
    operator_snapshots: [{ operator_id: 'op-bench', task_id: 'task-0', snapshot_path: `${job}/checkpoints/${epoch}/op-bench/task-0/state.bin` }],
    is_savepoint: true, savepoint_label: 'bench-native',
  })).encode();
  writeFileSync(join(sp, 'metadata.json'), md);
  writeFileSync(join(sp, 'manifest.sha256'), buildManifest([
    { path: 'op-bench/task-0/state.bin', sha256: createHash('sha256').update(pointer).digest('hex') },
    { path: 'metadata.json', sha256: createHash('sha256').update(md).digest('hex') },
  ]));
  return { sp, db, sstBytes, loadSecs };
}

function treeBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
  return n;
}

function table(rows: string[][]): void {
  const head = ['operation', 'result', 'seconds', 'entries/s', 'MB/s', 'peak RSS MB'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) process.stdout.write(r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ') + '\n');
}

async function runNative(dir: string, n: number): Promise<void> {
  process.stdout.write(`\nnative: ${n.toLocaleString('en-US')} entries written by RocksDB (ldb load: format_version 5, Snappy, XXH3, 16 KiB blocks, compacted)\n`);
  const g0 = Date.now();
  const { sp, db, sstBytes, loadSecs } = await generateNative(dir, n);
  process.stdout.write(`generated ${(sstBytes / 1e6).toFixed(0)} MB of SST in ${((Date.now() - g0) / 1000).toFixed(1)} s (ldb load itself: ${loadSecs.toFixed(1)} s)\n\n`);
  const written = join(dir, 'native-out');
  const rows: string[][] = [];
  const row = (name: string, r: { code: number; secs: number; maxRssMb: number }): void =>
    void rows.push([name, r.code === 0 ? 'ok' : `exit ${r.code}`, r.secs.toFixed(2), Math.round(n / r.secs).toLocaleString('en-US'), (sstBytes / 1e6 / r.secs).toFixed(0), r.maxRssMb.toFixed(0)]);
  rmSync(written, { recursive: true, force: true });
  const convert = measure(['convert', sp, written, '--to', 'canonical', '--mode', 'relative']);
  row('convert --to canonical (incl. re-verify)', convert);
  row('verify (native: hashes, blocks, entries)', measure(['verify', sp]));
  row('inspect (native summary)', measure(['inspect', sp]));
  // RocksDB's own reading of the same database, on a copy (an open may write to it).
  const copy = join(dir, 'rocksdb-copy');
  rmSync(copy, { recursive: true, force: true });
  cpSync(db, copy, { recursive: true });
  const t0 = process.hrtime.bigint();
  const d = spawnSync('ldb', [`--db=${copy}`, 'dump'], { stdio: ['ignore', 'ignore', 'ignore'] });
  const ldbSecs = Number(process.hrtime.bigint() - t0) / 1e9;
  rows.push(['ldb dump (RocksDB 7.8, C++)', d.status === 0 ? 'ok' : `exit ${d.status}`, ldbSecs.toFixed(2), Math.round(n / ldbSecs).toLocaleString('en-US'), (sstBytes / 1e6 / ldbSecs).toFixed(0), '-']);
  table(rows);
  process.stdout.write(`\nconvert --to canonical takes ${(convert.secs / ldbSecs).toFixed(1)}× the time of ldb dump of the same database\n`);

  // The write side: the canonical savepoint just made (same entries, in key
  // order) back to native with the defaults, and native → native directly
  // (streamed, no sort), beside the time ldb took to load the same entries.
  const canonicalBytes = treeBytes(written);
  const back = join(dir, 'native-back');
  const wrows: string[][] = [];
  const wrow = (name: string, r: { code: number; secs: number; maxRssMb: number }, bytes: number): void =>
    void wrows.push([name, r.code === 0 ? 'ok' : `exit ${r.code}`, r.secs.toFixed(2), Math.round(n / r.secs).toLocaleString('en-US'), (bytes / 1e6 / r.secs).toFixed(0), r.maxRssMb.toFixed(0)]);
  rmSync(back, { recursive: true, force: true });
  const toNative = measure(['convert', written, back, '--to', 'native', '--mode', 'relative']);
  wrow('convert canonical → native (sort, SSTs, re-verify)', toNative, canonicalBytes);
  rmSync(back, { recursive: true, force: true });
  wrow('convert native → native (streamed, re-verify)', measure(['convert', sp, back, '--to', 'native', '--mode', 'relative']), sstBytes);
  rmSync(back, { recursive: true, force: true });
  wrows.push(['ldb load of the same entries (RocksDB 7.8, C++)', 'ok', loadSecs.toFixed(2), Math.round(n / loadSecs).toLocaleString('en-US'), (canonicalBytes / 1e6 / loadSecs).toFixed(0), '-']);
  process.stdout.write(`\nwrite side (MB/s of canonical input, or of SST for native → native; defaults: format_version 5, Snappy, XXH3, 16 KiB blocks, Bloom 10):\n`);
  table(wrows);
  process.stdout.write(`\nconvert --to native takes ${(toNative.secs / loadSecs).toFixed(2)}× the time of ldb load of the same entries\n`);
  rmSync(written, { recursive: true, force: true });
}

async function run(): Promise<void> {
  const entries = arg('entries', 2_000_000);
  const tasks = arg('tasks', 4);
  const dir = join(ROOT, '.bench');
  mkdirSync(dir, { recursive: true });
  process.stdout.write(`ksp bench: ${entries.toLocaleString('en-US')} entries over ${tasks} tasks, 16-byte keys, ~100-byte msgpack values (node ${process.version})\n`);
  const g0 = Date.now();
  const bytes = await generate(dir, entries, tasks);
  const sp = join(dir, 'bench', 'savepoints', epochDirName(1n));
  process.stdout.write(`generated ${(bytes / 1e6).toFixed(0)} MB of state.bin in ${((Date.now() - g0) / 1000).toFixed(1)} s\n\n`);
  if (process.argv.includes('--generate-only')) return;
  if (process.argv.includes('--native-only')) {
    await runNative(dir, arg('native-entries', 5_000_000));
    if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
    return;
  }

  const out = join(dir, 'bench.parquet');
  const ops: Array<[string, string[]]> = [
    ['verify', ['verify', sp]],
    ['inspect (summary)', ['inspect', sp]],
    ['inspect --out x.parquet', ['inspect', sp, '--out', out, '--overwrite']],
    ['inspect --out x.arrows', ['inspect', sp, '--out', join(dir, 'bench.arrows'), '--overwrite']],
  ];
  const written = join(dir, 'out');
  const migrations = join(dir, 'migrations.mjs');
  writeFileSync(migrations, `export default (m, codecs) => {
  m.value('op-bench', 1, 2, codecs.msgpack, codecs.msgpack, (o) => ({ ...o, n: o.n + 1, migrated: true }), { state: 'sessions' });
};\n`);
  const rel = ['--mode', 'relative'];
  ops.push(
    [`rescale ${tasks}→7`, ['rescale', sp, written, '-p', '7', ...rel]],
    ['migrate (msgpack value step)', ['migrate', sp, written, '--migrations', migrations, ...rel]],
    ['relocate (copy)', ['relocate', sp, written, ...rel]],
    ['relocate --link (no copy)', ['relocate', sp, written, '--link', ...rel]],
    ['convert --to native (random key order)', ['convert', sp, written, '--to', 'native', ...rel]],
  );
  const rows: string[][] = [];
  for (const [name, args] of ops) {
    rmSync(written, { recursive: true, force: true });
    const r = measure(args);
    rows.push([name, r.code === 0 ? 'ok' : `exit ${r.code}`, r.secs.toFixed(2), Math.round(entries / r.secs).toLocaleString('en-US'), (bytes / 1e6 / r.secs).toFixed(0), r.maxRssMb.toFixed(0)]);
  }
  table(rows);
  process.stdout.write(`\nparquet file: ${(statSync(out).size / 1e6).toFixed(0)} MB (zstd)\n`);
  process.stdout.write(`ksp --help start-up: ${helpStartup().toFixed(0)} ms (mean of 10)\n`);
  if (!process.argv.includes('--no-native')) await runNative(dir, arg('native-entries', 5_000_000));
  if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
}

if (process.argv[2] === '--child') await child(process.argv.slice(3));
else await run();
