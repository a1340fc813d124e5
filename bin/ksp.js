#!/usr/bin/env node
// Thin launcher: the CLI lives in dist/ (built by `npm run build`, run by `npm ci`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('ksp: not built yet; run `npm run build` (or `npm ci`) in the ksp checkout first\n');
  process.exit(70);
}
const { needsMallocEnv, MALLOC_ENV } = await import(new URL('../dist/cli/malloc-env.js', import.meta.url).href);
if (needsMallocEnv(process.argv.slice(2))) {
  // Writing commands run in a child with glibc's trim threshold set (see
  // src/cli/malloc-env.ts); signals are passed on, the exit status back.
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, ...MALLOC_ENV } });
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => child.kill(s));
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else {
      process.exit(code ?? 1);
    }
  });
} else {
  const { main } = await import(entry.href);
  process.exitCode = await main(process.argv.slice(2));
}
