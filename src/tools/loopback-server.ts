import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/**
 * Starting a helper server on loopback (the S3 server of the tests and the
 * bench): a free port, and waiting until it answers HTTP.
 */

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** Resolves once `url` answers below 500; fails when `child` exits first or `ms` pass. `name` names it in errors. */
export async function waitHttp(url: string, child: ChildProcess, name: string, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  let exited = false;
  child.once('exit', () => (exited = true));
  while (Date.now() < until) {
    if (exited) throw new Error(`${name} exited before answering on ${url}`);
    try {
      if ((await fetch(url)).status < 500) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not answer on ${url} within ${ms} ms`);
}
