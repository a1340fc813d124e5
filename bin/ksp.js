#!/usr/bin/env node
// Thin launcher: the CLI lives in dist/ (built by `npm run build`; a packed ksp ships it).
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

// A signal that arrives before the CLI (or the worker below) has its own
// handlers: nothing has been written yet, so say so and exit 128 + n, as
// the CLI would. Once a worker runs, signals are passed on to it instead.
let worker = null;
const early = (s) => () => {
  if (worker) {
    worker.kill(s);
    return;
  }
  if (process.listenerCount(s) > 1) return; // the CLI's own handler (write/interrupt.ts) has it
  process.stderr.write(`ksp: interrupted by ${s} before anything was written\n`);
  process.exit(128 + (constants.signals[s] ?? 15));
};
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];
for (const s of SIGNALS) process.on(s, early(s));

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('ksp: not built yet; run `npm run build` in the ksp checkout first\n');
  process.exit(70);
}
const { needsMallocEnv, MALLOC_ENV, writerNodeFlags } = await import(new URL('../dist/cli/malloc-env.js', import.meta.url).href);
if (needsMallocEnv(process.argv.slice(2))) {
  // Writing commands run in a child with glibc's trim threshold set (see
  // src/cli/malloc-env.ts); signals are passed on, the exit status back. The
  // IPC channel lets the child notice this launcher's death (kill -9
  // included) and roll its write back instead of running on unseen.
  const { spawn } = await import('node:child_process');
  worker = spawn(process.execPath, [...process.execArgv, ...writerNodeFlags(), fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    // Tells the child its IPC channel is this launcher's (src/write/interrupt.ts).
    env: { ...process.env, ...MALLOC_ENV, KSP_LAUNCHED_WITH_IPC: '1' },
  });
  let sealed = null;
  worker.on('message', (m) => {
    if (m && m.ksp === 'sealed') sealed = m.target;
  });
  worker.on('exit', (code, signal) => {
    if (signal && SIGNALS.includes(signal)) {
      // The worker met the signal without its handlers: before it installed
      // them (nothing written yet), or while exiting after its write ended
      // (sealed and verified, or rolled back: nothing sealed).
      process.stderr.write(sealed
        ? `ksp: interrupted by ${signal}; the output at ${sealed} was already sealed and verified, so it was kept\n`
        : `ksp: interrupted by ${signal}; nothing at the target was sealed\n`);
      process.exit(128 + (constants.signals[signal] ?? 15));
    } else if (signal) {
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
