/**
 * Mutation fuzzer over ksp's decoders (npm run fuzz). Each iteration takes a
 * valid seed of one target (state.bin, metadata.json, manifest.sha256, SST,
 * RocksDB MANIFEST, WAL, …, see fuzz-targets.ts), mutates it (bit flips, byte
 * sets, truncations, insertions, deletions, splices, boundary values written
 * over length and count fields) and runs the decoder in memory.
 *
 * The property: every call returns or throws a KspError. Anything else (a
 * TypeError, a RangeError from a lying length, a hang, memory beyond the
 * limit) is a failure, saved with its reproducer: the run seed and the
 * iteration number re-derive the same input (`--seed S --replay I`), and the
 * input itself is written to a temp folder.
 *
 *   node dist/tools/fuzz.js [--iterations 1000000] [--seed 1] [--target sst] [--replay N] [--hang-ms 10000] [--max-rss-mb 1024]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { isKspError } from '../errors.js';
import { buildSeeds, targets, type Target } from './fuzz-targets.js';

export interface FuzzOptions {
  iterations: number;
  seed: number;
  /** Only targets whose name contains this. */
  target?: string;
  /** A call running longer than this is a hang (the watchdog ends the process). */
  hangMs?: number;
  /** Resident memory above this is a failure. */
  maxRssMb?: number;
  /** Where failing inputs go (default: a new folder in the OS temp dir). */
  outDir?: string;
  fixturesDir?: string;
  /** Progress lines on stderr every this many iterations (0: none). */
  progressEvery?: number;
}

export interface FuzzFailure {
  target: string;
  iteration: number;
  kind: 'exception' | 'memory' | 'slow';
  error: string;
  /** Where the input was saved. */
  file?: string;
  reproduce: string;
}

export interface FuzzResult {
  iterations: number;
  seconds: number;
  perSecond: number;
  /** Inputs decoded without error. */
  accepted: number;
  /** KspError codes seen, with counts. */
  codes: Record<string, number>;
  perTarget: Record<string, number>;
  peakRssMb: number;
  failures: FuzzFailure[];
  /** Failures grouped by target and message shape. */
  distinctFailures: number;
  outDir: string;
}

/** A small fast PRNG (sfc32) seeded from (run seed, iteration): each input is reproducible alone. */
function rng(seed: number, iteration: number): () => number {
  let a = seed >>> 0, b = iteration >>> 0, c = (Math.floor(iteration / 0x1_0000_0000) ^ 0x9e3779b9) >>> 0, d = 0x6a09e667;
  const next = (): number => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  return next;
}

const INTERESTING_8 = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x22, 0x5c, 0x2f, 0xef, 0xbb, 0xbf, 0xc0];
const INTERESTING_32 = [0, 1, 2, 11, 12, 31, 32, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const VARINTS = [[0x80], [0xff, 0x7f], [0xff, 0xff, 0xff, 0xff, 0x0f], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]];
const TOKENS = ['"', '{', '}', '[', ']', ',', ':', '\\u0000', '\ufeff', '..', '/', '/etc/passwd', '1e999', '-1', '18446744073709551616', 'null', '\n', '\r\n', ' '];

/** The input of one iteration: a seed of `target`, mutated 1–4 times. */
export function mutate(t: Target, seed: number, iteration: number): Buffer {
  const r = rng(seed, iteration);
  const int = (n: number): number => Math.floor(r() * n);
  let b = Buffer.from(t.seeds[int(t.seeds.length)]!);
  const fields = t.fields ? t.fields(b) : [];
  const n = 1 + (r() < 0.5 ? 0 : r() < 0.6 ? 1 : int(3) + 1);
  for (let m = 0; m < n; m++) {
    const pos = b.length ? int(b.length) : 0;
    switch (int(10)) {
      case 0: if (b.length) b[pos] = b[pos]! ^ (1 << int(8)); break;
      case 1: if (b.length) b[pos] = r() < 0.5 ? INTERESTING_8[int(INTERESTING_8.length)]! : int(256); break;
      case 2: b = b.subarray(0, r() < 0.3 && fields.length ? Math.min(b.length, fields[int(fields.length)]! + int(5)) : pos); break;
      case 3: { const ins = Buffer.alloc(1 + int(16)); for (let i = 0; i < ins.length; i++) ins[i] = int(256); b = Buffer.concat([b.subarray(0, pos), ins, b.subarray(pos)]); break; }
      case 4: b = Buffer.concat([b.subarray(0, pos), b.subarray(Math.min(b.length, pos + 1 + int(64)))]); break;
      case 5: { const len = 1 + int(128); b = Buffer.concat([b.subarray(0, pos), b.subarray(pos, pos + len), b.subarray(pos)]); break; }
      case 6: {
        // A boundary value over a length or count field (u32 LE/BE or u64 LE).
        const at = fields.length && r() < 0.7 ? fields[int(fields.length)]! : pos;
        const v = INTERESTING_32[int(INTERESTING_32.length)]!;
        const w = int(3);
        if (w === 0 && at + 4 <= b.length) b.writeUInt32LE(v, at);
        else if (w === 1 && at + 4 <= b.length) b.writeUInt32BE(v, at);
        else if (at + 8 <= b.length) b.writeBigUInt64LE(r() < 0.3 ? 0xffff_ffff_ffff_ffffn : BigInt(v) * (r() < 0.5 ? 1n : 0x1_0000_0000n), at);
        break;
      }
      case 7: { const v = Buffer.from(VARINTS[int(VARINTS.length)]!); b = Buffer.concat([b.subarray(0, pos), v, b.subarray(Math.min(b.length, pos + (r() < 0.5 ? v.length : 0)))]); break; }
      case 8: { const tok = Buffer.from(TOKENS[int(TOKENS.length)]!); b = Buffer.concat([b.subarray(0, pos), tok, b.subarray(Math.min(b.length, pos + (r() < 0.5 ? tok.length : 0)))]); break; }
      case 9: {
        // Splice: a head of this input, a tail of another seed.
        const other = t.seeds[int(t.seeds.length)]!;
        b = Buffer.concat([b.subarray(0, pos), other.subarray(other.length ? int(other.length) : 0)]);
        break;
      }
    }
  }
  return Buffer.from(b);
}

/** Watchdog thread: a call that does not return in `hangMs` is a hang; it saves the input and ends the process. */
function watchdog(shared: SharedArrayBuffer, input: SharedArrayBuffer, hangMs: number, outDir: string, seed: number, names: string[]): Worker {
  const code = `
    const { workerData } = require('node:worker_threads');
    const fs = require('node:fs');
    const { shared, input, hangMs, outDir, seed, names } = workerData;
    const st = new Int32Array(shared);
    let last = -1, since = Date.now();
    setInterval(() => {
      const it = Atomics.load(st, 0);
      if (Atomics.load(st, 3) === 1) process.exit(0);
      if (it !== last) { last = it; since = Date.now(); return; }
      if (Atomics.load(st, 1) === 1 && Date.now() - since > hangMs) {
        const len = Atomics.load(st, 2);
        const target = names[Atomics.load(st, 4)];
        fs.mkdirSync(outDir, { recursive: true });
        const file = outDir + '/hang-' + target.replace(/[^a-z0-9.-]/gi, '_') + '-' + it + '.bin';
        fs.writeFileSync(file, Buffer.from(new Uint8Array(input, 0, len)));
        process.stderr.write('fuzz: HANG in ' + target + ' at iteration ' + it + ' (no return in ' + hangMs + ' ms); input saved to ' + file + '; reproduce: node dist/tools/fuzz.js --seed ' + seed + ' --replay ' + it + '\\n');
        process.kill(process.pid, 'SIGKILL');
      }
    }, 250);
  `;
  const w = new Worker(code, { eval: true, workerData: { shared, input, hangMs, outDir, seed, names } });
  w.unref();
  return w;
}

function shape(message: string): string {
  return message.split('\n')[0]!.replace(/\d+/g, 'N').slice(0, 160);
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzResult> {
  const fixturesDir = o.fixturesDir ?? fileURLToPath(new URL('../../fixtures', import.meta.url));
  const outDir = o.outDir ?? join(tmpdir(), `ksp-fuzz-${o.seed}-${process.pid}`);
  const maxRss = (o.maxRssMb ?? 1024) * 1024 * 1024;
  const all = targets(await buildSeeds(fixturesDir)).filter((t) => t.seeds.length > 0 && (!o.target || t.name.includes(o.target)));
  if (!all.length) throw new Error(`no fuzz target matches ${o.target}`);
  const shared = new SharedArrayBuffer(4 * 8);
  const st = new Int32Array(shared);
  const INPUT_MAX = 4 * 1024 * 1024;
  const inputShared = new SharedArrayBuffer(INPUT_MAX);
  const inputView = new Uint8Array(inputShared);
  const dog = watchdog(shared, inputShared, o.hangMs ?? 10_000, outDir, o.seed, all.map((t) => t.name));

  const codes: Record<string, number> = {};
  const perTarget: Record<string, number> = {};
  const failures: FuzzFailure[] = [];
  const seen = new Map<string, number>();
  let accepted = 0;
  let peakRss = process.memoryUsage.rss();
  const start = performance.now();
  const save = (t: Target, i: number, input: Buffer, kind: FuzzFailure['kind'], error: string): void => {
    const key = `${t.name}|${kind}|${shape(error)}`;
    const n = seen.get(key) ?? 0;
    seen.set(key, n + 1);
    const reproduce = `node dist/tools/fuzz.js --seed ${o.seed} --target ${t.name} --replay ${i}`;
    // Every failure counts; the first three of each kind keep their input.
    let file: string | undefined;
    if (n < 3) {
      mkdirSync(outDir, { recursive: true });
      file = join(outDir, `${t.name.replace(/[^a-z0-9.-]/gi, '_')}-${i}.bin`);
      writeFileSync(file, input);
      writeFileSync(file.replace(/\.bin$/, '.txt'), `${kind}: ${error}\n${reproduce}\n`);
    }
    failures.push({ target: t.name, iteration: i, kind, error, file, reproduce });
  };

  for (let i = 0; i < o.iterations; i++) {
    const ti = i % all.length;
    const t = all[ti]!;
    const input = mutate(t, o.seed, i);
    if (input.length <= INPUT_MAX) inputView.set(input);
    Atomics.store(st, 2, Math.min(input.length, INPUT_MAX));
    Atomics.store(st, 4, ti);
    Atomics.store(st, 0, i);
    Atomics.store(st, 1, 1);
    const t0 = performance.now();
    try {
      await t.run(input);
      accepted++;
    } catch (e) {
      if (isKspError(e)) codes[e.code] = (codes[e.code] ?? 0) + 1;
      else save(t, i, input, 'exception', e instanceof Error ? `${e.name}: ${e.message}\n${e.stack?.split('\n').slice(1, 4).join('\n') ?? ''}` : String(e));
    }
    Atomics.store(st, 1, 0);
    const ms = performance.now() - t0;
    if (ms > 2000) {
      // The machine may have stalled (GC, other processes): a slow call is
      // timed again, and counts only when it is slow twice.
      const t1 = performance.now();
      try { await t.run(input); } catch { /* classified above */ }
      const again = performance.now() - t1;
      if (again > 2000) save(t, i, input, 'slow', `took ${ms.toFixed(0)} ms, then ${again.toFixed(0)} ms`);
    }
    perTarget[t.name] = (perTarget[t.name] ?? 0) + 1;
    if ((i & 255) === 0) {
      const rss = process.memoryUsage.rss();
      if (rss > peakRss) peakRss = rss;
      if (rss > maxRss) save(t, i, input, 'memory', `resident memory ${(rss / 2 ** 20).toFixed(0)} MB after iterations up to ${i} (limit ${o.maxRssMb ?? 1024} MB)`);
    }
    if (o.progressEvery && i > 0 && i % o.progressEvery === 0) {
      const s = (performance.now() - start) / 1000;
      process.stderr.write(`fuzz: ${i} iterations, ${(i / s).toFixed(0)}/s, ${failures.length} failures, rss ${(process.memoryUsage.rss() / 2 ** 20).toFixed(0)} MB\n`);
    }
  }
  Atomics.store(st, 3, 1);
  await dog.terminate();
  const seconds = (performance.now() - start) / 1000;
  return { iterations: o.iterations, seconds, perSecond: o.iterations / seconds, accepted, codes, perTarget, peakRssMb: peakRss / 2 ** 20, failures, distinctFailures: seen.size, outDir };
}

/** Re-runs one iteration: prints the input's size and what the decoder did. */
async function replay(seed: number, iteration: number, targetName: string | undefined): Promise<void> {
  const all = targets(await buildSeeds(fileURLToPath(new URL('../../fixtures', import.meta.url)))).filter((t) => t.seeds.length > 0);
  // Iteration i ran target i % (number of targets selected then).
  const selected = targetName ? all.filter((t) => t.name.includes(targetName)) : all;
  const t = selected[iteration % selected.length]!;
  const input = mutate(t, seed, iteration);
  process.stdout.write(`target ${t.name}, input ${input.length} bytes: ${input.subarray(0, 64).toString('hex')}${input.length > 64 ? '…' : ''}\n`);
  try {
    await t.run(input);
    process.stdout.write('returned normally\n');
  } catch (e) {
    process.stdout.write(`${isKspError(e) ? `KspError ${e.code}` : 'NOT a KspError'}: ${e instanceof Error ? e.stack : String(e)}\n`);
  }
}

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

async function cli(argv: string[]): Promise<number> {
  const seed = Number(arg(argv, 'seed') ?? 1);
  const target = arg(argv, 'target');
  const rep = arg(argv, 'replay');
  if (rep !== undefined) {
    await replay(seed, Number(rep), target);
    return 0;
  }
  const iterations = Number(arg(argv, 'iterations') ?? 1_000_000);
  const r = await runFuzz({
    iterations, seed, target, hangMs: Number(arg(argv, 'hang-ms') ?? 10_000), maxRssMb: Number(arg(argv, 'max-rss-mb') ?? 1024),
    progressEvery: iterations >= 100_000 ? 100_000 : 0,
  });
  const lines = [
    `iterations: ${r.iterations} in ${r.seconds.toFixed(1)} s (${r.perSecond.toFixed(0)} iterations/s), seed ${seed}`,
    `accepted (decoded without error): ${r.accepted}`,
    `per target: ${Object.entries(r.perTarget).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `distinct error codes (${Object.keys(r.codes).length}): ${Object.entries(r.codes).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `peak RSS: ${r.peakRssMb.toFixed(0)} MB`,
    `failures: ${r.failures.length} (${r.distinctFailures} distinct)`,
  ];
  const firstOfEach = new Map<string, FuzzFailure>();
  for (const f of r.failures) {
    const key = `${f.target}|${f.kind}|${shape(f.error)}`;
    if (!firstOfEach.has(key)) firstOfEach.set(key, f);
  }
  for (const [key, f] of firstOfEach) {
    const count = r.failures.filter((x) => `${x.target}|${x.kind}|${shape(x.error)}` === key).length;
    lines.push(`  [${f.target}] ${f.kind} ×${count}: ${f.error.split('\n')[0]}`, `    ${f.reproduce}${f.file ? `  (input: ${f.file})` : ''}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
  return r.failures.length ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await cli(process.argv.slice(2));
}
