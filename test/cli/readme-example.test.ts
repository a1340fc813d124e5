import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, FIXTURES, tempDir } from '../support/env.js';
import { ksp } from '../support/cli.js';

describe('README', () => {
  it('the library write example runs as written (TypeScript, through ksp/ts-loader)', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const at = readme.indexOf('Writing, in the spirit of Flink');
    const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(at))![1]!;
    const t = tempDir();
    try {
      // A project that has installed ksp, with the fixtures beside it.
      mkdirSync(join(t.path, 'node_modules'));
      symlinkSync(ROOT, join(t.path, 'node_modules', 'ksp'));
      symlinkSync(FIXTURES, join(t.path, 'fixtures'));
      writeFileSync(join(t.path, 'package.json'), '{"type":"module"}');
      writeFileSync(join(t.path, 'example.ts'), block);
      const r = spawnSync(process.execPath, ['--import', 'ksp/ts-loader', 'example.ts'], { cwd: t.path, encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('true');
    } finally {
      t.cleanup();
    }
  });
});

describe('README migration examples', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### `ksp migrate`'), readme.indexOf('### `ksp rescale`'));
  const block = (lang: string): string => new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(section)![1]!;

  it('the TypeScript module compiles under tsc --strict against the package types', () => {
    const t = tempDir();
    try {
      mkdirSync(join(t.path, 'node_modules'));
      symlinkSync(ROOT, join(t.path, 'node_modules', 'ksp'));
      writeFileSync(join(t.path, 'package.json'), '{"type":"module"}');
      writeFileSync(join(t.path, 'migrations.ts'), block('ts'));
      writeFileSync(join(t.path, 'tsconfig.json'), JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', skipLibCheck: true, types: [] },
        files: ['migrations.ts'],
      }));
      const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
      const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: t.path, encoding: 'utf8' });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    } finally {
      t.cleanup();
    }
  });

  for (const [lang, file] of [['js', 'migrations.mjs'], ['ts', 'migrations.ts']] as const) {
    it(`the ${lang} module migrates the bundled shop savepoint, every step matching entries`, async () => {
      const t = tempDir();
      try {
        mkdirSync(join(t.path, 'node_modules'));
        symlinkSync(ROOT, join(t.path, 'node_modules', 'ksp'));
        writeFileSync(join(t.path, 'package.json'), '{"type":"module"}');
        writeFileSync(join(t.path, file), block(lang));
        const r = await ksp(['migrate', join(FIXTURES, 'base', 'shop', 'savepoints', '00000000000000000007'), join(t.path, 'v2'), '--migrations', join(t.path, file), '--mode', 'relative', '--json']);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        const rep = JSON.parse(r.stdout);
        expect(rep.verify.ok).toBe(true);
        for (const m of rep.migrations) expect(m.transformed, m.step).toBeGreaterThan(0);
      } finally {
        t.cleanup();
      }
    });
  }
});
