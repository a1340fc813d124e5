import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { ROOT } from '../support/env.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
  /** Did not finish within the timeout (killed, or left running in-process). */
  hang: boolean;
  /** In-process: growth of resident memory over the run; child: its peak RSS. */
  rssMb: number;
  how: 'in-process' | 'child' | 'cli';
}

let busy = false;

/**
 * Runs `ksp <argv>` in this process through the CLI's own main(), with
 * stdout and stderr captured: the whole corpus costs milliseconds per run.
 * Resident memory is sampled while it runs.
 */
export async function runInProcess(argv: string[], timeoutMs: number): Promise<RunResult> {
  if (busy) throw new Error('runInProcess is not reentrant (a previous run hung)');
  busy = true;
  let stdout = '';
  let stderr = '';
  const outW = process.stdout.write;
  const errW = process.stderr.write;
  const capture = (sink: (s: string) => void) => ((chunk: unknown, enc?: unknown, cb?: unknown): boolean => {
    sink(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    const done = typeof enc === 'function' ? enc : cb;
    if (typeof done === 'function') queueMicrotask(() => (done as () => void)());
    return true;
  }) as typeof process.stdout.write;
  process.stdout.write = capture((s) => (stdout += s));
  process.stderr.write = capture((s) => (stderr += s));
  const rss0 = process.memoryUsage.rss();
  let peak = rss0;
  const sampler = setInterval(() => { const r = process.memoryUsage.rss(); if (r > peak) peak = r; }, 20);
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const restore = (): void => {
    clearInterval(sampler);
    process.stdout.write = outW;
    process.stderr.write = errW;
  };
  try {
    const r = await Promise.race([
      main(argv).then((code) => ({ code, hang: false })),
      new Promise<{ code: number; hang: boolean }>((res) => { timer = setTimeout(() => res({ code: -1, hang: true }), timeoutMs); }),
    ]);
    const end = process.memoryUsage.rss();
    if (end > peak) peak = end;
    if (!r.hang) busy = false;
    return { code: r.code, stdout, stderr, ms: performance.now() - t0, hang: r.hang, rssMb: (peak - rss0) / 2 ** 20, how: 'in-process' };
  } catch (e) {
    busy = false;
    // main() reports every error itself; a throw out of it is a harness failure.
    return { code: -2, stdout, stderr: `${stderr}\nmain() threw: ${(e as Error)?.stack ?? e}`, ms: performance.now() - t0, hang: false, rssMb: (peak - rss0) / 2 ** 20, how: 'in-process' };
  } finally {
    clearTimeout(timer);
    restore();
  }
}

const CHILD = join(ROOT, 'test', 'hostile', 'child.mjs');
export const BIN = join(ROOT, 'bin', 'ksp.js');

/**
 * Runs `ksp <argv>` in a child process with a 256 MB heap cap, killed (its
 * whole process group) at the timeout. Peak RSS comes from the child's own
 * report, or from /proc while it runs when it has to be killed.
 */
export function runChild(argv: string[], timeoutMs: number, cli = false): Promise<RunResult> {
  return new Promise((resolve) => {
    const args = cli ? [BIN, ...argv] : ['--max-old-space-size=256', CHILD, ...argv];
    const child = spawn(process.execPath, args, { env: { ...process.env, CI: 'true' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let hang = false;
    let hwm = 0;
    const t0 = performance.now();
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) hwm = Math.max(hwm, Number(m[1]) * 1024);
      } catch { /* gone */ }
    }, 100);
    const timer = setTimeout(() => {
      hang = true;
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearInterval(poll);
      const m = /\n@@ksp-child (\{.*\})\n?$/.exec(stderr);
      if (m) {
        const r = JSON.parse(m[1]!) as { maxRss: number };
        hwm = Math.max(hwm, r.maxRss);
        stderr = stderr.slice(0, m.index);
      }
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr, ms: performance.now() - t0, hang, rssMb: hwm / 2 ** 20, how: cli ? 'cli' : 'child' });
    });
  });
}
