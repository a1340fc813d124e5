import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/env.js';

/**
 * package.json's engines must be true: every package `npm i --engine-strict`
 * installs accepts the lowest Node version ksp declares. Optional packages
 * are left out (npm skips one whose engines do not fit, even then), and so
 * are engines given for other runtimes (an object such as { bare }).
 * A small semver range check: comparators, x-ranges, ^, ~ and ||.
 */

type V = [number, number, number];

function parts(s: string): Array<number | null> {
  return s.replace(/^v/, '').split('.').slice(0, 3).map((p) => (/^[x*]$/i.test(p) || p === '' ? null : Number(p)));
}

const cmp = (a: V, b: V): number => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];

/** The [low, high) interval a comparator allows. */
function interval(c: string): [V, V | null] | ((v: V) => boolean) {
  const m = /^(>=|<=|>|<|=|\^|~)?\s*(.*)$/.exec(c)!;
  const op = m[1] ?? '';
  const p = parts(m[2]!);
  const given = p.findIndex((x) => x === null);
  const n = given === -1 ? Math.min(p.length, 3) : given;
  const low: V = [p[0] ?? 0, n > 1 ? p[1]! : 0, n > 2 ? p[2]! : 0];
  const bump = (i: number): V => (i === 0 ? [low[0] + 1, 0, 0] : i === 1 ? [low[0], low[1] + 1, 0] : [low[0], low[1], low[2] + 1]);
  if (op === '>=') return [low, null];
  if (op === '>') return n === 3 ? (v) => cmp(v, low) > 0 : [bump(n - 1), null];
  if (op === '<') return (v) => cmp(v, low) < 0;
  if (op === '<=') return n === 3 ? (v) => cmp(v, low) <= 0 : (v) => cmp(v, bump(n - 1)) < 0;
  if (op === '^') return [low, bump(low[0] > 0 || n === 1 ? 0 : low[1] > 0 || n === 2 ? 1 : 2)];
  if (op === '~') return [low, bump(n === 1 ? 0 : 1)];
  return n === 3 ? [low, bump(2)] : [low, bump(n - 1)];
}

export function satisfies(version: string, range: string): boolean {
  const p = parts(version);
  const v: V = [p[0] ?? 0, p[1] ?? 0, p[2] ?? 0];
  return range.split('||').some((set) => {
    const comparators = set.trim().replace(/(>=|<=|>|<|=|\^|~)\s+/g, '$1').split(/\s+/).filter((c) => c !== '' && c !== '*');
    return comparators.every((c) => {
      const i = interval(c);
      if (typeof i === 'function') return i(v);
      return cmp(v, i[0]) >= 0 && (i[1] === null || cmp(v, i[1]) < 0);
    });
  });
}

describe('declared engines', () => {
  it('the range check', () => {
    expect(satisfies('20.19.0', '>=20.19')).toBe(true);
    expect(satisfies('20.12.0', '^20.19.0 || >=22.12.0')).toBe(false);
    expect(satisfies('20.19.0', '^20.19.0 || ^22.12.0 || >=23')).toBe(true);
    expect(satisfies('20.19.0', '>=22')).toBe(false);
    expect(satisfies('20.19.0', '6.* || 8.* || >= 10.*')).toBe(true);
    expect(satisfies('20.19.0', '^10 || ^12 || ^13.7 || ^14 || >=15.0.1')).toBe(true);
    expect(satisfies('20.19.0', '^20.0.0 || ^22.0.0 || >=24.0.0')).toBe(true);
    expect(satisfies('20.19.0', '>=0.8.x')).toBe(true);
    expect(satisfies('20.19.0', '~20.18.0')).toBe(false);
    expect(satisfies('20.19.0', '>=18 <20')).toBe(false);
    expect(satisfies('20.19', '^20.19.0 || >=22.12.0')).toBe(true);
    expect(satisfies('20.12', '>=20.19')).toBe(false);
  });

  it("every package npm installs accepts package.json's lowest Node", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
    const min = /^>=\s*(\d+(\.\d+){0,2})$/.exec(pkg.engines.node)?.[1];
    expect(min, 'engines.node is a plain >= range').toBeDefined();
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { optional?: boolean; engines?: unknown }> };
    const refused: string[] = [];
    for (const [path, p] of Object.entries(lock.packages)) {
      if (path === '' || p.optional) continue;
      const range = typeof p.engines === 'object' && p.engines !== null ? (p.engines as { node?: unknown }).node : undefined;
      if (typeof range === 'string' && !satisfies(min!, range)) refused.push(`${path.replace(/^.*node_modules\//, '')} (node ${range})`);
    }
    expect(refused).toEqual([]);
    // The lock's own copy of the root engines matches package.json.
    expect((lock.packages[''] as { engines?: { node?: string } }).engines?.node).toBe(pkg.engines.node);
  });
});
