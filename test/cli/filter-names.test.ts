import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KspError } from '../../src/errors.js';
import { checkFilterNames } from '../../src/model/filter-names.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { SHOP_SP, tempDir } from '../support/env.js';
import { refusal } from '../support/refusal.js';
import { ksp } from '../support/cli.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

describe('--operator and --state with a name the savepoint lacks', () => {
  it('inspect (summary and entries): exit 2, the valid names listed, JSON too', async () => {
    let r = await ksp(['inspect', SHOP_SP, '--operator', 'frad']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('[OPERATOR_UNKNOWN]');
    // Both metadata ids and ids stored only inside entries are valid.
    expect(r.stderr).toContain('operator ids: "fraud", "fraud-model", "orders-agg", "sink", "windows"');
    r = await ksp(['inspect', SHOP_SP, '--entries', '--operator', 'frad', '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'OPERATOR_UNKNOWN', found: 'frad', expected: ['fraud', 'fraud-model', 'orders-agg', 'sink', 'windows'] });
    r = await ksp(['inspect', SHOP_SP, '--entries', '--operator', 'fraud', '--state', 'scor']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('[STATE_UNKNOWN]');
    expect(r.stderr).toContain('state names of operator "fraud": "bitmap", "score"');
    r = await ksp(['inspect', SHOP_SP, '--state', 'scor']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/STATE_UNKNOWN.*state names: "bitmap", "last-seen", "score"/);
  });

  it('known names still work, including an id stored only in entries', async () => {
    const r = await ksp(['inspect', SHOP_SP, '--entries', '--operator', 'fraud-model', '--state', 'score', '--json']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n').length).toBeGreaterThan(0);
    const s = await ksp(['inspect', SHOP_SP, '--operator', 'fraud', '--state', 'score', '--json']);
    expect(s.code).toBe(0);
    expect(JSON.parse(s.stdout).operators.map((o: { id: string }) => o.id)).toEqual(['fraud']);
  });

  it('an export with an unknown name writes nothing', async () => {
    const out = join(tmp.path, 'e.parquet');
    const r = await ksp(['inspect', SHOP_SP, '--out', out, '--state', 'nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('[STATE_UNKNOWN]');
    expect(existsSync(out)).toBe(false);
  });

  it('rescale --operator lists the operators', async () => {
    const r = await ksp(['rescale', SHOP_SP, join(tmp.path, 'r'), '-p', '2', '--operator', 'windos', '--dry-run']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/OPERATOR_UNKNOWN.*"windos".*operators: orders-agg, windows, fraud, sink/);
  });

  it('the library check: OPERATOR_UNKNOWN / STATE_UNKNOWN with the valid names', async () => {
    const sp = await Savepoint.open(SHOP_SP);
    await checkFilterNames(sp, { operator: 'fraud-model', state: 'score' });
    await checkFilterNames(sp, {});
    const e = await refusal(checkFilterNames(sp, { operator: 'windows', state: 'score' }));
    expect(e).toBeInstanceOf(KspError);
    expect(e.code).toBe('STATE_UNKNOWN');
    expect(e.data.expected).toEqual(['session', 'sliding', 'tumbling']);
    expect((await refusal(checkFilterNames(sp, { operator: 'x' }))).code).toBe('OPERATOR_UNKNOWN');
  });
});
