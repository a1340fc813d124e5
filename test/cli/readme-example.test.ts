import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, FIXTURES, tempDir } from '../support/env.js';

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
