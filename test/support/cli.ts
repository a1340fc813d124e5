import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './env.js';

export const BIN = join(ROOT, 'bin', 'ksp.js');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built `ksp` binary, as a user would. */
export function ksp(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return kspInEnv(args, { ...process.env, CI: 'true', ...env });
}

/** Runs the built `ksp` binary with exactly this environment (nothing of the test's own added). */
export function kspInEnv(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
