/**
 * The hostile-input corpus (corpus.ts), every command on every case.
 *
 *   npm test               a deterministic sample (every category, ~60 cases)
 *   npm run test:hostile   the whole corpus (KSP_HOSTILE=full)
 *   KSP_HOSTILE_ONLY=<id prefix>[,<id prefix>…]  only matching cases
 *
 * For each case and command, in a fresh copy of the case's savepoint:
 * - no INTERNAL error (exit 70) and no stack trace without --verbose;
 * - a typed outcome: exit 0, or 1–6 with a `[CODE]`; and the case's
 *   expectation (reject / accept / typed) relative to the valid base;
 * - no hang (per-run timeout) and bounded memory;
 * - the source tree byte-identical afterwards, nothing written outside the
 *   target, the temp dir empty.
 * A report of every run is written to the OS temp dir (path printed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { buildBases, buildCorpus, COMMANDS, WRITERS, type Base, type Cmd, type HostileCase } from './corpus.js';
import { diff, materialize, removeTarget, sandboxPaths, snapshot, type Sandbox } from './sandbox.js';
import { runChild, runInProcess, type RunResult } from './runner.js';

const FULL = process.env.KSP_HOSTILE === 'full';
const ONLY = process.env.KSP_HOSTILE_ONLY;
const WORK = join(tmpdir(), `ksp-hostile-${process.pid}`);
mkdirSync(WORK, { recursive: true });

const bases = await buildBases(WORK);
const corpus = await buildCorpus(bases);

/** The quick sample: per category the case whose id hashes lowest (heavy ones left to the full run), then more by hash up to 45. */
function quickSample(all: HostileCase[]): HostileCase[] {
  const h = (id: string): string => createHash('sha256').update(id).digest('hex');
  const heavy = (c: HostileCase): boolean => (c.timeoutMs ?? 0) >= 60_000 || /(^|-)(1g|10g|256m|200k)/.test(c.id) || c.id.includes('huge');
  const light = all.filter((c) => !heavy(c)).sort((a, b) => h(a.id).localeCompare(h(b.id)));
  const picked = new Map<string, HostileCase>();
  for (const c of light) if (![...picked.values()].some((p) => p.category === c.category)) picked.set(c.id, c);
  // At most 4 cases in child processes: each costs a node start per command.
  let isolated = [...picked.values()].filter((c) => c.isolate).length;
  for (const c of light) {
    if (picked.size >= 45) break;
    if (picked.has(c.id)) continue;
    if (c.isolate && isolated >= 4) continue;
    if (c.isolate) isolated++;
    picked.set(c.id, c);
  }
  return [...picked.values()].sort((a, b) => a.id.localeCompare(b.id));
}

/** KSP_HOSTILE_SHARD=i/n: every n-th case from the i-th (to spread the full run over processes). */
const SHARD = /^(\d+)\/(\d+)$/.exec(process.env.KSP_HOSTILE_SHARD ?? '');
const chosen = ONLY ? corpus.filter((c) => ONLY.split(',').some((p) => c.id.startsWith(p))) : FULL ? corpus : quickSample(corpus);
const selected = SHARD ? chosen.filter((_, i) => i % Number(SHARD[2]) === Number(SHARD[1])) : chosen;
const baseline = new Map<string, number>();

interface Outcome { id: string; category: string; cmd: Cmd; expect: string; code: number; errorCode: string | null; ms: number; rssMb: number; how: string; problems: string[] }
const outcomes: Outcome[] = [];

function argvFor(c: HostileCase | null, cmd: Cmd, sb: Sandbox, out: string): string[] {
  const src = c?.source ? c.source(sb) : sb.sp;
  const w = [out, '--mode', 'relative', '--temp-dir', sb.tmp, ...(c?.writeArgs ?? [])];
  switch (cmd) {
    case 'verify': return ['verify', src];
    case 'inspect': return ['inspect', src];
    case 'relocate': return ['relocate', src, ...w];
    case 'rescale': return ['rescale', src, ...w, '-p', '3'];
    case 'migrate': return ['migrate', src, ...w, '--migrations', join(sb.root, 'migrate.mjs')];
    case 'convert-canonical': return ['convert', src, ...w, '--to', 'canonical'];
    case 'convert-native': return ['convert', src, ...w, '--to', 'native'];
    case 'edit': return ['edit', src, ...w, '--rename', 'orders-agg=orders-agg-2'];
  }
}

/** The error code a run reported: `ksp: error [CODE]`, or the first `[CODE]` of a failed verify. */
function errorCode(r: RunResult): string | null {
  const m = /ksp: error \[([A-Z0-9_]+)\]/.exec(r.stderr) ?? /\[([A-Z][A-Z0-9_]+)\]/.exec(r.stdout) ?? /\[([A-Z][A-Z0-9_]+)\]/.exec(r.stderr);
  return m ? m[1]! : null;
}

const STACK = /^\s+at .+(:\d+:\d+\)?|\(native\))$/m;

let seq = 0;
function loadSlack(): number {
  return Math.min(4, Math.max(1, loadavg()[0]! / availableParallelism()));
}
async function runOne(c: HostileCase | null, base: Base, cmd: Cmd, forceChild = false): Promise<{ r: RunResult; problems: string[] }> {
  const root = join(WORK, `run-${++seq}`);
  materialize(base.template, root);
  const sb = sandboxPaths(root, base.layout);
  const problems: string[] = [];
  try {
    if (c) await c.apply(sb);
    const isWriter = WRITERS.includes(cmd);
    const out = isWriter && c?.target ? c.target(sb, cmd) : join(root, `out-${cmd}`);
    const defaultOut = `out-${cmd}`;
    const skip = (rel: string): boolean => rel === defaultOut || rel.startsWith(`${defaultOut}/`);
    const before = snapshot(root, skip);
    // A hang is no exit within the case's time on a machine with a core to
    // spare: on one loaded past its cores (other test runs, benchmarks) the
    // limit grows with the load, up to 4 times, so a slow run under load is
    // not called a hang while a real one (a blocked read, a loop) still is.
    const timeout = Math.round((c?.timeoutMs ?? (c?.isolate ? 45_000 : 60_000)) * loadSlack());
    const r = c?.isolate || forceChild ? await runChild(argvFor(c, cmd, sb, out), timeout) : await runInProcess(argvFor(c, cmd, sb, out), timeout);
    const after = snapshot(root, skip);
    const d = diff(before, after);
    const text = `${r.stdout}\n${r.stderr}`;
    if (r.hang) problems.push(`hang: no exit within ${timeout / 1000} s`);
    if (r.code === 70 || /internal error/i.test(r.stderr)) problems.push(`INTERNAL: ${firstLine(r.stderr, /internal error/i)}`);
    if (r.code === -2) problems.push(`harness: ${r.stderr.slice(-300)}`);
    if (!r.hang && STACK.test(text)) problems.push('stack trace printed without --verbose');
    if (!r.hang && ![0, 1, 2, 3, 4, 5, 6, 70].includes(r.code)) problems.push(`exit ${r.code} (killed by a signal or unknown)`);
    if (!r.hang && r.code >= 1 && r.code <= 6 && !errorCode(r)) problems.push(`exit ${r.code} without a typed [CODE]: ${r.stderr.slice(0, 200)}`);
    const tmpLeft = d.added.filter((p) => p.startsWith('tmp/'));
    const srcChanged = [...d.changed, ...d.removed, ...d.added.filter((p) => !p.startsWith('tmp/'))];
    if (srcChanged.length) problems.push(`source or outside changed: ${srcChanged.slice(0, 5).join(', ')}${srcChanged.length > 5 ? ` (+${srcChanged.length - 5})` : ''}`);
    if (tmpLeft.length && !r.hang) problems.push(`left in --temp-dir: ${tmpLeft.slice(0, 3).join(', ')}`);
    const memLimit = r.how === 'in-process' ? 256 : 512;
    if (r.rssMb > memLimit) problems.push(`memory: ${r.rssMb.toFixed(0)} MB ${r.how === 'in-process' ? 'RSS growth' : 'peak RSS'} (limit ${memLimit})`);
    if (c) {
      const exp = c.perCommand?.[cmd] ?? c.expect;
      const base0 = baseline.get(`${base.name}/${cmd}`) ?? 0;
      if (!r.hang && exp === 'reject' && r.code === 0) problems.push(`accepted (exit 0), expected a typed rejection`);
      if (!r.hang && exp === 'accept' && r.code !== base0) problems.push(`exit ${r.code} [${errorCode(r)}], expected ${base0} as on the valid savepoint: ${firstLine(r.stderr, /error/)}`);
      if (c.after) problems.push(...c.after(sb, cmd, out));
    }
    return { r, problems };
  } finally {
    removeTarget(join(root, `out-${cmd}`));
    try { rmSync(root, { recursive: true, force: true }); } catch { /* e.g. mode 000 */ }
  }
}

function firstLine(text: string, re: RegExp): string {
  return (text.split('\n').find((l) => re.test(l)) ?? text.split('\n')[0] ?? '').slice(0, 240);
}

beforeAll(() => {
  process.env.CI = 'true';
});

afterAll(() => {
  const file = join(tmpdir(), `ksp-hostile-report-${process.pid}.json`);
  writeFileSync(file, JSON.stringify(outcomes, null, 1));
  const failed = new Map<string, Set<string>>();
  for (const o of outcomes) if (o.problems.length) (failed.get(o.category) ?? failed.set(o.category, new Set()).get(o.category)!).add(o.id);
  const cats = new Map<string, Set<string>>();
  for (const o of outcomes) (cats.get(o.category) ?? cats.set(o.category, new Set()).get(o.category)!).add(o.id);
  const lines = [...cats].map(([k, v]) => `  ${k}: ${v.size} case(s), ${failed.get(k)?.size ?? 0} failing`);
  console.log(`hostile corpus: ${corpus.length} cases built, ${selected.length} run (${FULL ? 'full' : ONLY ? `only ${ONLY}` : 'quick sample'}), ${outcomes.length} runs; report: ${file}\n${lines.join('\n')}`);
  try { for (const e of readdirSync(WORK)) rmSync(join(WORK, e), { recursive: true, force: true }); rmSync(WORK, { recursive: true, force: true }); } catch { /* ignore */ }
});

describe('hostile-input corpus', () => {
  it(`has at least 500 cases built from valid savepoints (${corpus.length})`, () => {
    expect(corpus.length).toBeGreaterThanOrEqual(500);
    expect(new Set(corpus.map((c) => c.id)).size).toBe(corpus.length);
  });

  for (const base of bases) {
    it(`baseline: every command on the valid ${base.name} savepoint`, async () => {
      const problems: string[] = [];
      for (const cmd of COMMANDS) {
        const { r, problems: p } = await runOne(null, base, cmd);
        baseline.set(`${base.name}/${cmd}`, r.code);
        outcomes.push({ id: `baseline/${base.name}`, category: 'baseline', cmd, expect: 'accept', code: r.code, errorCode: errorCode(r), ms: r.ms, rssMb: r.rssMb, how: r.how, problems: p });
        if (r.code !== 0) p.push(`exit ${r.code} on a valid savepoint: ${firstLine(r.stderr, /error/)}`);
        problems.push(...p.map((x) => `${cmd}: ${x}`));
      }
      expect(problems).toEqual([]);
    }, 300_000);
  }

  selected.forEach((c, index) => {
    // The full run: every command on every case. The quick sample: verify
    // and two more commands per case, rotating, so each command runs on
    // about a third of the sample.
    const all = c.commands ?? COMMANDS;
    const cmds = FULL || ONLY ? all : [...new Set([all[0]!, all[(1 + index) % all.length]!, all[(4 + index) % all.length]!])];
    it(`${c.id}: ${c.description.slice(0, 120)}`, async () => {
      const base = bases.find((b) => b.name === c.base)!;
      const problems: string[] = [];
      for (const cmd of cmds) {
        const { r, problems: p } = await runOne(c, base, cmd);
        outcomes.push({ id: c.id, category: c.category, cmd, expect: c.perCommand?.[cmd] ?? c.expect, code: r.code, errorCode: errorCode(r), ms: r.ms, rssMb: r.rssMb, how: r.how, problems: p });
        problems.push(...p.map((x) => `${cmd}: ${x}`));
        if (r.hang && !c.isolate) break; // an in-process hang poisons later runs
      }
      expect(problems).toEqual([]);
    }, (c.timeoutMs ?? 60_000) * 9 * 4);
  });

  // The real CLI (bin/ksp.js, which runs writing commands in a child of its
  // own) on a subset: same exit code as in-process.
  const cliCases = selected.filter((c) => !c.isolate && !c.target).filter((_, i) => i % (FULL ? 10 : 12) === 0);
  for (const c of cliCases) {
    it(`real CLI agrees: ${c.id}`, async () => {
      const base = bases.find((b) => b.name === c.base)!;
      const problems: string[] = [];
      for (const cmd of ['verify', 'relocate'] as const) {
        const inProc = await runOne(c, base, cmd);
        const root = join(WORK, `cli-${++seq}`);
        materialize(base.template, root);
        const sb = sandboxPaths(root, base.layout);
        await c.apply(sb);
        const r = await runChild(argvFor(c, cmd, sb, join(root, `out-${cmd}`)), 60_000, true);
        rmSync(root, { recursive: true, force: true });
        if (r.code !== inProc.r.code) problems.push(`${cmd}: CLI exit ${r.code}, in-process ${inProc.r.code}`);
        if (STACK.test(r.stderr)) problems.push(`${cmd}: stack trace from the CLI`);
      }
      expect(problems).toEqual([]);
    }, 180_000);
  }
});
