/**
 * How the bench times things. A ksp command runs in a fresh Node process of
 * its own (so its peak RSS is its own, threads included), timed inside that
 * process around `main()` — Node's own start-up (~50 ms) is left out, ksp's
 * module loading is in. A reference program is timed around its whole
 * process, unless it reports its own time (the S3 SDK script, whose
 * interpreter and SDK import are left out the same way).
 */
import { spawnSync } from 'node:child_process';
import { MALLOC_ENV, needsMallocEnv, writerNodeFlags } from '../cli/malloc-env.js';

export interface KspRun {
  code: number;
  secs: number;
  maxRssMb: number;
  /** The end of stderr when the command failed. */
  error?: string;
}

/** Child mode (`bench.js --child ARGS`): run one CLI command in this process and report its time and peak RSS. */
export async function child(args: string[]): Promise<void> {
  const { main } = await import('../cli/main.js');
  const t0 = process.hrtime.bigint();
  const code = await main([...args, '--quiet']);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stderr.write(`\n@@bench ${JSON.stringify({ code, secs, maxRssMb: process.resourceUsage().maxRSS / 1024 })}\n`);
  process.exitCode = code;
}

/** Runs `ksp ARGS` in a fresh process through `self --child`, with the environment bin/ksp.js gives writing commands. */
export function measureKsp(self: string, cwd: string, args: string[], env: NodeJS.ProcessEnv = process.env): KspRun {
  const writer = needsMallocEnv(args, env);
  const e = writer ? { ...env, ...MALLOC_ENV } : env;
  const r = spawnSync(process.execPath, [...(writer ? writerNodeFlags([], env) : []), self, '--child', ...args], { cwd, env: e, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'ignore', 'pipe'] });
  const m = /@@bench (.*)/.exec(r.stderr ?? '');
  if (!m) return { code: r.status ?? 1, secs: NaN, maxRssMb: NaN, error: `${r.error ?? ''}${(r.stderr ?? '').slice(-1500)}` };
  const run = JSON.parse(m[1]!) as KspRun;
  if (run.code !== 0) run.error = (r.stderr ?? '').replace(/@@bench .*/, '').trim().slice(-1500);
  return run;
}

export interface RefRun {
  ok: boolean;
  secs: number;
  error?: string;
}

/** Wall time of a sequence of programs run one after another, each with stdout discarded. */
export function timeCommands(cmds: Array<{ cmd: string; args: string[]; cwd?: string }>): RefRun {
  const t0 = process.hrtime.bigint();
  for (const c of cmds) {
    const r = spawnSync(c.cmd, c.args, { cwd: c.cwd, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    if (r.error || r.status !== 0) return { ok: false, secs: NaN, error: `${c.cmd} ${c.args.join(' ')}: ${r.error ?? `exit ${r.status}`} ${(r.stderr ?? '').slice(-800)}` };
  }
  return { ok: true, secs: Number(process.hrtime.bigint() - t0) / 1e9 };
}

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
