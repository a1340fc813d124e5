import { describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { runFuzz } from '../../src/tools/fuzz.js';
import { FIXTURES } from '../support/env.js';

/**
 * The short run of the mutation fuzzer (npm run fuzz runs 1M iterations):
 * a fixed seed, every target, so a failure here reproduces with
 * `node dist/tools/fuzz.js --seed 42 --replay N`.
 */
describe('mutation fuzzer (short run)', () => {
  it('every mutated input decodes or fails with a KspError, memory bounded', async () => {
    const r = await runFuzz({ iterations: 6000, seed: 42, hangMs: 20_000, maxRssMb: 1024, fixturesDir: FIXTURES });
    const summary = r.failures.slice(0, 10).map((f) => `[${f.target}] ${f.kind}: ${f.error.split('\n')[0]} — ${f.reproduce}`);
    if (r.failures.length === 0) rmSync(r.outDir, { recursive: true, force: true });
    expect(summary).toEqual([]);
    // Every target ran, and the errors are typed ones from more than one family.
    expect(Object.keys(r.perTarget).length).toBeGreaterThanOrEqual(15);
    expect(Object.keys(r.codes).length).toBeGreaterThanOrEqual(8);
  }, 120_000);
});
