import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Rewrites a savepoint folder's manifest.sha256 over every file in it, after a test changed some. */
export function reseal(dir: string): void {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (e !== 'manifest.sha256') files.push(relative(dir, p));
    }
  };
  walk(dir);
  writeFileSync(join(dir, 'manifest.sha256'), files.sort().map((f) => `sha256:${createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')}  ${f}\n`).join(''));
}
