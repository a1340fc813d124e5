import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHOP_SP } from '../support/env.js';
import { ksp } from '../support/cli.js';
import { rows, useTempDirs } from '../write/support.js';
import { parseRenameMap } from '../../src/formats/rename-map/rename-map.js';

const tmp = useTempDirs();

describe('mutating commands on the command line', () => {
  for (const cmd of ['migrate', 'rescale', 'relocate', 'edit']) {
    it(`ksp ${cmd} --help shows examples, --dry-run and --overwrite`, async () => {
      const r = await ksp([cmd, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Examples:');
      expect(r.stdout).toContain('--dry-run');
      expect(r.stdout).toContain('--overwrite');
      expect(r.stdout).toContain('--json');
    });
  }

  it('rescale --dry-run prints the plan in words and writes nothing', async () => {
    const out = join(tmp(), 'o');
    const r = await ksp(['rescale', SHOP_SP, out, '-p', '4', '--mode', 'relative', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('windows: rescale 2 → 4 tasks by window');
    expect(r.stdout).toContain('dry run: nothing was written');
    expect(existsSync(out)).toBe(false);
  });

  it('rescale writes, reports per-task counts, and the output verifies', async () => {
    const out = join(tmp(), 'o');
    const r = await ksp(['rescale', SHOP_SP, out, '-p', '2', '--operator', 'orders-agg', '--routing', 'state-key', '--mode', 'relative', '--json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.rescale[0]).toMatchObject({ operator: 'orders-agg', routed: 70 });
    expect(rep.rescale[0].counts.reduce((a: number, b: number) => a + b, 0)).toBe(70);
    expect((await ksp(['verify', out])).code).toBe(0);
  });

  it('edit takes --rename, --rename-map (both shapes) and --remove', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'map.json'), JSON.stringify([{ from: 'windows', to: 'win' }, { old: 'fraud', new: 'fraud2' }]));
    const out = join(dir, 'o');
    const r = await ksp(['edit', SHOP_SP, out, '--rename', 'orders-agg=orders', '--rename-map', join(dir, 'map.json'), '--remove', 'sink', '--mode', 'relative']);
    expect(r.code).toBe(0);
    const ops = new Set((await rows(out)).map((x) => `${x.operator}:${x.entryOperator}`));
    expect(ops).toEqual(new Set(['orders:orders', 'win:win', 'fraud2:fraud-model']));
    expect(parseRenameMap('{"a":"b","c":"d"}')).toEqual([['a', 'b'], ['c', 'd']]);
    expect(() => parseRenameMap('[{"old":"a"}]')).toThrow(/"new"/);
    expect(() => parseRenameMap('[{"old":"a","new":"b"},{"from":"a","to":"c"}]')).toThrow(/twice/);
  });

  it('bad requests exit 2 with a coded message and no stack trace; --verbose adds one', async () => {
    const out = join(tmp(), 'o');
    const cases: Array<[string[], string]> = [
      [['edit', SHOP_SP, out, '--rename', 'missing=x'], 'OPERATOR_UNKNOWN'],
      [['edit', SHOP_SP, out], 'USAGE'],
      [['rescale', SHOP_SP, out, '-p', '0'], 'USAGE'],
      [['relocate', SHOP_SP, join(SHOP_SP, 'x')], 'TARGET_OVERLAPS_SOURCE'],
      [['relocate', SHOP_SP, out, '--mode', 'relative', '--base', out], 'USAGE'],
    ];
    for (const [args, code] of cases) {
      const r = await ksp(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain(`[${code}]`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const v = await ksp(['edit', SHOP_SP, out, '--rename', 'missing=x', '--verbose']);
    expect(v.stderr).toMatch(/\n\s+at /);
  });
});
