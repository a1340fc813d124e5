import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildFixtures } from '../src/tools/gen-fixtures.js';
import { FIXTURES } from './support/env.js';

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p, out);
    else out.push(p);
  }
  return out;
}

describe('bundled fixtures', () => {
  it('are exactly what the committed generator produces (npm run fixtures)', async () => {
    const built = await buildFixtures();
    const onDisk = walk(FIXTURES).map((p) => relative(FIXTURES, p)).filter((p) => !p.endsWith('.md')).sort();
    expect(onDisk).toEqual([...built.keys()].sort());
    for (const [rel, data] of built) expect(readFileSync(join(FIXTURES, rel)).equals(data), rel).toBe(true);
  });
});
