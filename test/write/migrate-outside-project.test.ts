import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SHOP_SP, tempDir } from '../support/env.js';
import { ksp } from '../support/cli.js';
import { rows } from './support.js';

// A folder in the OS temp dir: no package.json or node_modules on the way up, so no 'ksp' Node could find.
const tmp = tempDir('ksp-outside-');
afterAll(() => tmp.cleanup());

const scores = async (dir: string): Promise<number[]> =>
  (await rows(dir)).filter((x) => x.state === 'score').map((x) => Buffer.from(x.value, 'hex').readDoubleLE(0));

describe("a migrations module outside any project imports 'ksp'", () => {
  const cases = [
    ['TypeScript, defineMigrations', 'm.ts', `import { defineMigrations, codecs } from 'ksp';
import type { Codec } from 'ksp';
const score: Codec<number> = codecs.f64le;
export default defineMigrations((m) => {
  m.value('fraud', 1, 2, score, codecs.f64le, (s: number): number => s / 1000, { state: 'score' });
});
`],
    // Function exports run in write threads, each loading the module again: the hook is there too.
    ['JavaScript, a function export run on write threads', 'm.mjs', `import { codecs } from 'ksp';
export default (m) => { m.value('fraud', 1, 2, codecs.f64le, codecs.f64le, (s) => s / 1000, { state: 'score' }); };
`],
  ] as const;
  for (const [what, name, source] of cases) {
    it(`${what}: gets the running ksp`, { timeout: 180_000 }, async () => {
      const dir = join(tmp.path, name.replace('.', '-'));
      const mod = join(tmp.path, name);
      writeFileSync(mod, source);
      const r = await ksp(['migrate', SHOP_SP, dir, '--migrations', mod, '--mode', 'relative', '--threads', '2']);
      expect(r.code, r.stderr).toBe(0);
      expect(await scores(dir)).toEqual((await scores(SHOP_SP)).map((s) => s / 1000));
    });
  }
});
