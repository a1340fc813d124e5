/**
 * The rows of issue 13's goal table: for each, the ksp command, the
 * reference it is measured against in the same run (or none, when the goal
 * is a rate), and the goal. `runRow` runs them in pairs, ksp and reference
 * interleaved (alternating which goes first), so drift on a shared machine
 * affects both sides of a ratio alike.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import type { CanonicalInput, NativeInput } from './bench-data.js';
import { measureKsp, median, timeCommands, type KspRun, type RefRun } from './bench-measure.js';
import type { S3Bench, S3Reference } from './bench-s3.js';

/** The memory budget every command must keep (issue 13). */
export const RSS_BUDGET_MB = 256;

export type Goal =
  /** ksp wall ÷ reference wall ≤ max. */
  | { kind: 'wall'; max: number }
  /** ksp entries/s ÷ reference entries/s ≥ min (the same entries, so reference wall ÷ ksp wall). */
  | { kind: 'rate-ratio'; min: number }
  /** ksp entries/s ≥ min; no reference. */
  | { kind: 'rate'; min: number }
  /** wall with --threads 1 ÷ wall with --threads 2 ≥ min. */
  | { kind: 'speedup'; min: number }
  /** Only the memory budget. */
  | { kind: 'rss' };

export interface Reference {
  /** The command as printed (paths relative to the bench directory). */
  command: string;
  run(): RefRun & { maxRssMb?: number };
}

export interface Context {
  root: string;
  self: string;
  dir: string;
  entries: number;
  tasks: number;
  canonical?: CanonicalInput;
  native?: NativeInput;
  /** Copies of the native databases for ldb dump. */
  ldbDbs?: string[];
  s3?: S3Bench;
  s3Uri?: string;
  s3Ref?: S3Reference;
  /** Why the rows needing an input cannot run (no ldb, no moto_server). */
  missing: Partial<Record<'native' | 's3', string>>;
  migrations: string;
  /** The C baseline, compiled on first use; a string says why it cannot be. */
  cBaseline?: string | { bin: string; tmp: string };
  /** Commands whose --help lists --threads. */
  threadsHelp: Map<string, boolean>;
}

export interface RowSpec {
  name: string;
  work: string;
  needs: Array<'canonical' | 'native' | 's3'>;
  goal: Goal;
  /** The ksp arguments; a string instead says why the row is skipped. */
  ksp(ctx: Context): string[] | string;
  env?(ctx: Context): NodeJS.ProcessEnv;
  /** The reference; a string says why the row is skipped; undefined: the goal has none. */
  ref?(ctx: Context): Reference | string;
}

const out = (ctx: Context): string => join(ctx.dir, 'out');
const rel = ['--mode', 'relative'];
const shown = (ctx: Context, p: string): string => relative(ctx.dir, p) || '.';

/** Paths as a shell brace list (`dir/{a,b}/state.bin`), so a reference command stays one readable line. */
function braced(ctx: Context, paths: string[]): string {
  const ps = paths.map((p) => shown(ctx, p));
  if (ps.length < 2) return ps.join(' ');
  let pre = ps.reduce((a, b) => { let i = 0; while (i < a.length && a[i] === b[i]) i++; return a.slice(0, i); });
  pre = pre.slice(0, pre.lastIndexOf('/') + 1);
  const rest = ps.map((p) => p.slice(pre.length));
  let suf = rest.reduce((a, b) => { let i = 0; while (i < a.length && i < b.length && a[a.length - 1 - i] === b[b.length - 1 - i]) i++; return a.slice(a.length - i); });
  suf = suf.slice(suf.indexOf('/') < 0 ? suf.length : suf.indexOf('/'));
  return `${pre}{${rest.map((r) => r.slice(0, r.length - suf.length)).join(',')}}${suf}`;
}

function compileC(ctx: Context): string | { bin: string; tmp: string } {
  if (ctx.cBaseline !== undefined) return ctx.cBaseline;
  const src = resolve(ctx.root, '..', 'shared', 'tools', 'baseline', 'rescale.c');
  if (!existsSync(src)) return (ctx.cBaseline = 'skipped: ../shared/tools/baseline/rescale.c is absent');
  if (spawnSync('sh', ['-c', 'command -v cc'], { encoding: 'utf8' }).stdout.trim() === '') return (ctx.cBaseline = 'skipped: no C compiler (cc) on PATH');
  // Compiled from ../shared into a temp dir each run; the C file is never copied into the repo.
  const tmp = mkdtempSync(join(tmpdir(), 'ksp-bench-c-'));
  const bin = join(tmp, 'rescale');
  const r = spawnSync('cc', ['-O2', '-o', bin, src, '-lcrypto'], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    return (ctx.cBaseline = `skipped: cc -O2 -o rescale rescale.c -lcrypto failed: ${(r.stderr ?? '').trim().slice(0, 300)}`);
  }
  return (ctx.cBaseline = { bin, tmp });
}

function ldbDump(ctx: Context): Reference {
  const dbs = ctx.ldbDbs!;
  return {
    command: `for db in ${braced(ctx, dbs)}; do ldb --db=$db dump --hex > /dev/null; done`,
    run: () => timeCommands(dbs.map((d) => ({ cmd: 'ldb', args: [`--db=${d}`, 'dump', '--hex'] }))),
  };
}

/** A ksp command with `--threads 1` as the reference of the same command with `--threads 2`. */
function threadsRow(name: string, base: RowSpec): RowSpec {
  const command = (ctx: Context): string => {
    const a = base.ksp(ctx);
    return typeof a === 'string' ? a : a[0]!;
  };
  const lacks = (ctx: Context): string | undefined => {
    const c = command(ctx);
    let has = ctx.threadsHelp.get(c);
    if (has === undefined) {
      const h = spawnSync(process.execPath, [join(ctx.root, 'bin', 'ksp.js'), c, '--help'], { encoding: 'utf8' });
      has = /--threads\b/.test(`${h.stdout}${h.stderr}`);
      ctx.threadsHelp.set(c, has);
    }
    return has ? undefined : 'n/a (no --threads)';
  };
  return {
    name,
    work: `${base.work}: \`--threads 1\` ÷ \`--threads 2\``,
    needs: base.needs,
    goal: { kind: 'speedup', min: 1.7 },
    ksp: (ctx) => {
      const a = base.ksp(ctx);
      return typeof a === 'string' ? a : (lacks(ctx) ?? [...a, '--threads', '2']);
    },
    env: base.env,
    ref: (ctx) => {
      const a = base.ksp(ctx);
      if (typeof a === 'string') return a;
      const why = lacks(ctx);
      if (why) return why;
      const args = [...a, '--threads', '1'];
      return {
        command: `ksp ${args.map((x) => (x.startsWith('/') ? shown(ctx, x) : x)).join(' ')}`,
        run: () => {
          rmSync(out(ctx), { recursive: true, force: true });
          const r = measureKsp(ctx.self, ctx.root, args, base.env?.(ctx));
          return { ok: r.code === 0, secs: r.secs, maxRssMb: r.maxRssMb, error: r.error };
        },
      };
    },
  };
}

const rescale: RowSpec = {
  name: 'rescale',
  work: '`rescale` 4→7 `--routing state-key`, with re-verify',
  needs: ['canonical'],
  goal: { kind: 'rate-ratio', min: 0.5 },
  ksp: (ctx) => ['rescale', ctx.canonical!.sp, out(ctx), '-p', '7', '--routing', 'state-key', ...rel],
  ref: (ctx) => {
    const c = compileC(ctx);
    if (typeof c === 'string') return c;
    const o = join(ctx.dir, 'c-out');
    const files = ctx.canonical!.stateFiles;
    return {
      command: `rescale c-out 7 ${braced(ctx, files)} (../shared/tools/baseline/rescale.c built by cc -O2 -lcrypto)`,
      run: () => {
        rmSync(o, { recursive: true, force: true });
        mkdirSync(o, { recursive: true });
        return timeCommands([{ cmd: c.bin, args: [o, '7', ...files] }]);
      },
    };
  },
};

const verify: RowSpec = {
  name: 'verify',
  work: '`verify` (canonical)',
  needs: ['canonical'],
  goal: { kind: 'wall', max: 1.5 },
  ksp: (ctx) => ['verify', ctx.canonical!.sp],
  ref: (ctx) => spawnSync('openssl', ['version'], { stdio: 'ignore' }).error ? 'skipped: openssl is not on PATH' : ({
    command: `openssl dgst -sha256 ${braced(ctx, ctx.canonical!.files)}`,
    run: () => timeCommands([{ cmd: 'openssl', args: ['dgst', '-sha256', ...ctx.canonical!.files] }]),
  }),
};

const verifyS3: RowSpec = {
  name: 'verify-s3',
  work: '`verify` from S3 (moto_server on loopback)',
  needs: ['canonical', 's3'],
  goal: { kind: 'wall', max: 1.0 },
  ksp: (ctx) => ['verify', ctx.s3Uri!],
  env: (ctx) => ({ ...ctx.s3?.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' }),
  ref: (ctx) => ({ command: ctx.s3Ref!.command, run: () => ctx.s3Ref!.run() }),
};

const toCanonical: RowSpec = {
  name: 'native-to-canonical',
  work: 'native → canonical (`convert --to canonical`), with re-verify',
  needs: ['native'],
  goal: { kind: 'wall', max: 0.75 },
  ksp: (ctx) => ['convert', ctx.native!.sp, out(ctx), '--to', 'canonical', ...rel],
  ref: ldbDump,
};

const verifyNative: RowSpec = {
  name: 'verify-native',
  work: '`verify` (native)',
  needs: ['native'],
  goal: { kind: 'wall', max: 0.4 },
  ksp: (ctx) => ['verify', ctx.native!.sp],
  ref: ldbDump,
};

const inspectNative: RowSpec = {
  name: 'inspect-native',
  work: '`inspect` (native summary)',
  needs: ['native'],
  goal: { kind: 'wall', max: 0.4 },
  ksp: (ctx) => ['inspect', ctx.native!.sp],
  ref: ldbDump,
};

const toNative: RowSpec = {
  name: 'canonical-to-native',
  work: 'canonical → native (`convert --to native`), with re-verify',
  needs: ['canonical'],
  goal: { kind: 'rate', min: 1_000_000 },
  ksp: (ctx) => ['convert', ctx.canonical!.sp, out(ctx), '--to', 'native', ...rel],
};

const migrate: RowSpec = {
  name: 'migrate',
  work: '`migrate`, msgpack value step (on the 3/4 of entries in state `sessions`), with re-verify',
  needs: ['canonical'],
  goal: { kind: 'rate', min: 700_000 },
  ksp: (ctx) => ['migrate', ctx.canonical!.sp, out(ctx), '--migrations', ctx.migrations, ...rel],
};

const parquet: RowSpec = {
  name: 'parquet',
  work: '`inspect --out x.parquet`',
  needs: ['canonical'],
  goal: { kind: 'rate', min: 1_000_000 },
  ksp: (ctx) => ['inspect', ctx.canonical!.sp, '--out', join(ctx.dir, 'x.parquet'), '--overwrite'],
};

const arrow: RowSpec = {
  name: 'arrow',
  work: '`inspect --out x.arrow`',
  needs: ['canonical'],
  goal: { kind: 'rate', min: 2_000_000 },
  ksp: (ctx) => ['inspect', ctx.canonical!.sp, '--out', join(ctx.dir, 'x.arrow'), '--overwrite'],
};

/** The canonical input rescaled 4→7 (made once per bench run, not measured): what `diff` compares it with. */
function rescaledCopy(ctx: Context): { dst: string } | string {
  const dst = join(ctx.dir, 'rescaled-p7');
  if (existsSync(join(dst, 'manifest.sha256'))) return { dst };
  rmSync(dst, { recursive: true, force: true });
  const r = spawnSync(process.execPath, [join(ctx.root, 'bin', 'ksp.js'), 'rescale', ctx.canonical!.sp, dst, '-p', '7', '--routing', 'state-key', ...rel, '-q'], { encoding: 'utf8' });
  return r.status === 0 ? { dst } : `skipped: the rescaled copy could not be made: ${(r.stderr ?? '').trim().slice(0, 300)}`;
}

const diff: RowSpec = {
  name: 'diff',
  work: '`diff` of the savepoint and its rescaled (4→7 `--routing state-key`) copy, no differences (entries/s: one side\'s entries)',
  needs: ['canonical'],
  goal: { kind: 'rss' },
  ksp: (ctx) => {
    const c = rescaledCopy(ctx);
    return typeof c === 'string' ? c : ['diff', ctx.canonical!.sp, c.dst];
  },
};

/**
 * `ksp import` of the savepoint's own Parquet export, laid out like it
 * (every state.bin the same bytes). The export is its input, made once
 * (untimed) when the arguments are asked for.
 */
const importRow: RowSpec = {
  name: 'import',
  work: '`import x-import.parquet --like` (the savepoint\'s export), with re-verify',
  needs: ['canonical'],
  goal: { kind: 'rss' },
  ksp: (ctx) => {
    const rows = join(ctx.dir, 'x-import.parquet');
    if (!existsSync(rows)) {
      const r = spawnSync(process.execPath, [join(ctx.root, 'bin', 'ksp.js'), 'inspect', ctx.canonical!.sp, '--out', rows, '-q'], { encoding: 'utf8' });
      if (r.status !== 0) return `skipped: its input, inspect --out x-import.parquet, failed: ${(r.stderr ?? '').trim().slice(0, 200)}`;
    }
    return ['import', rows, out(ctx), '--like', ctx.canonical!.sp, ...rel];
  },
};

const inspect: RowSpec = { name: 'inspect', work: '`inspect` (canonical summary)', needs: ['canonical'], goal: { kind: 'rss' }, ksp: (ctx) => ['inspect', ctx.canonical!.sp] };
const relocate: RowSpec = { name: 'relocate', work: '`relocate` (copy), with re-verify', needs: ['canonical'], goal: { kind: 'rss' }, ksp: (ctx) => ['relocate', ctx.canonical!.sp, out(ctx), ...rel] };
const relocateLink: RowSpec = { name: 'relocate-link', work: '`relocate --link`, with re-verify', needs: ['canonical'], goal: { kind: 'rss' }, ksp: (ctx) => ['relocate', ctx.canonical!.sp, out(ctx), '--link', ...rel] };

/** Every row, in the order of issue 13's goal table; `extra` rows carry only the memory budget. */
export const ROWS: RowSpec[] = [
  rescale, verify, verifyS3, toCanonical, verifyNative, inspectNative, toNative, migrate, parquet, arrow,
  threadsRow('threads-rescale', rescale),
  threadsRow('threads-migrate', migrate),
  threadsRow('threads-convert', toCanonical),
  threadsRow('threads-verify', verify),
  inspect, relocate, relocateLink, diff, importRow,
];

export interface RowResult {
  name: string;
  work: string;
  entries: number;
  goal: string;
  ksp: { command: string; secs: number; entriesPerSec: number; maxRssMb: number; runs: Array<{ secs: number; maxRssMb: number; code: number }> } | null;
  reference: { command: string; secs: number; entriesPerSec: number; maxRssMb?: number; runs: number[] } | null;
  /** The goal's figure: a ratio (median of the per-pair ratios), or entries/s for a rate goal. */
  ratio: number | null;
  ratioMeaning: string;
  pass: boolean | null;
  rssPass: boolean | null;
  result: string;
  note?: string;
}

export function goalText(g: Goal): string {
  switch (g.kind) {
    case 'wall': return `≤ ${g.max}× wall`;
    case 'rate-ratio': return `≥ ${g.min}× entries/s`;
    case 'rate': return `≥ ${(g.min / 1e6).toLocaleString('en-US')}M entries/s`;
    case 'speedup': return `≥ ${g.min}×`;
    case 'rss': return `RSS ≤ ${RSS_BUDGET_MB} MB`;
  }
}

const meaning: Record<Goal['kind'], string> = {
  wall: 'ksp wall ÷ reference wall',
  'rate-ratio': 'ksp entries/s ÷ reference entries/s',
  rate: 'ksp entries/s',
  speedup: 'wall --threads 1 ÷ wall --threads 2',
  rss: '',
};

function kspCommand(ctx: Context, args: string[]): string {
  return `ksp ${args.map((x) => (x.startsWith('/') ? shown(ctx, x) : x)).join(' ')}`;
}

export function runRow(spec: RowSpec, ctx: Context, runs: number, log: (s: string) => void): RowResult {
  const base: RowResult = {
    name: spec.name, work: spec.work, entries: ctx.entries, goal: goalText(spec.goal), ksp: null, reference: null,
    ratio: null, ratioMeaning: meaning[spec.goal.kind], pass: null, rssPass: null, result: '',
  };
  for (const need of spec.needs) {
    const why = need === 'canonical' ? undefined : ctx.missing[need];
    if (why) return { ...base, result: `skipped: ${why}` };
  }
  const args = spec.ksp(ctx);
  if (typeof args === 'string') return { ...base, result: args };
  const refOrWhy = spec.ref?.(ctx);
  // Without its reference (no cc, no ../shared, no openssl) the ksp side is still measured.
  const ref = typeof refOrWhy === 'string' ? undefined : refOrWhy;
  const noRef = typeof refOrWhy === 'string' ? `no reference (${refOrWhy.replace(/^skipped: /, '')})` : undefined;
  const env = spec.env?.(ctx) ?? process.env;
  const kspRuns: KspRun[] = [];
  const refRuns: Array<RefRun & { maxRssMb?: number }> = [];
  const runKsp = (): void => {
    rmSync(out(ctx), { recursive: true, force: true });
    kspRuns.push(measureKsp(ctx.self, ctx.root, args, env));
  };
  for (let i = 0; i < runs; i++) {
    // Alternate which side goes first, so a warm cache or a neighbour's burst does not always favour one.
    if (i % 2 === 1 && ref) refRuns.push(ref.run());
    runKsp();
    if (i % 2 === 0 && ref) refRuns.push(ref.run());
    const k = kspRuns.at(-1)!;
    const r = refRuns.at(-1);
    log(`  ${spec.name} run ${i + 1}/${runs}: ksp ${k.code === 0 ? `${k.secs.toFixed(2)} s, ${k.maxRssMb.toFixed(0)} MB` : `exit ${k.code}`}${r ? `; reference ${r.ok ? `${r.secs.toFixed(2)} s` : 'failed'}` : ''}`);
    if (k.code !== 0 || (r && !r.ok)) break;
  }
  rmSync(out(ctx), { recursive: true, force: true });
  const failed = kspRuns.find((k) => k.code !== 0);
  const refFailed = refRuns.find((r) => !r.ok);
  const secs = median(kspRuns.map((k) => k.secs));
  const maxRss = Math.max(...kspRuns.map((k) => k.maxRssMb), ...refRuns.map((r) => r.maxRssMb ?? 0));
  const result: RowResult = {
    ...base,
    ksp: { command: kspCommand(ctx, args), secs, entriesPerSec: ctx.entries / secs, maxRssMb: maxRss, runs: kspRuns.map((k) => ({ secs: k.secs, maxRssMb: k.maxRssMb, code: k.code })) },
  };
  if (ref) {
    const rs = median(refRuns.map((r) => r.secs));
    result.reference = { command: ref.command, secs: rs, entriesPerSec: ctx.entries / rs, runs: refRuns.map((r) => r.secs) };
    const rssRef = refRuns.map((r) => r.maxRssMb).filter((x): x is number => x !== undefined);
    if (rssRef.length) result.reference.maxRssMb = Math.max(...rssRef);
  }
  if (failed) return { ...result, result: `FAIL (ksp exit ${failed.code})`, note: failed.error };
  if (refFailed) return { ...result, result: 'FAIL (reference)', note: refFailed.error };
  if (noRef) return { ...result, rssPass: maxRss <= RSS_BUDGET_MB, result: noRef };
  result.rssPass = maxRss <= RSS_BUDGET_MB;
  const pairs = kspRuns.map((k, i) => [k.secs, refRuns[i]?.secs ?? NaN] as const);
  const g = spec.goal;
  switch (g.kind) {
    case 'wall':
      result.ratio = median(pairs.map(([k, r]) => k / r));
      result.pass = result.ratio <= g.max;
      break;
    case 'rate-ratio':
      result.ratio = median(pairs.map(([k, r]) => r / k));
      result.pass = result.ratio >= g.min;
      break;
    case 'speedup':
      result.ratio = median(pairs.map(([k, r]) => r / k));
      result.pass = result.ratio >= g.min;
      break;
    case 'rate':
      result.ratio = ctx.entries / secs;
      result.pass = result.ratio >= g.min;
      break;
    case 'rss':
      result.pass = true;
      break;
  }
  const misses = [...(result.pass ? [] : ['goal']), ...(result.rssPass ? [] : ['RSS'])];
  result.result = misses.length ? `MISS (${misses.join(', ')})` : 'PASS';
  return result;
}
