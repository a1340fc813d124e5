import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, SHOP_SP, tempDir } from '../support/env.js';

const run = promisify(execFile);
const tmp = tempDir('ksp-pack-');
afterAll(() => tmp.cleanup());

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

describe('the npm package', () => {
  it('package.json builds on pack, not on a consumer\'s install', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string>; license: string };
    expect(pkg.scripts.prepack).toBe('tsc -p .');
    expect(pkg.scripts.prepare).toBeUndefined();
    expect(pkg.license).toBe('Apache-2.0');
    expect(readFileSync(join(ROOT, 'LICENSE'), 'utf8')).toMatch(/Apache License\s+Version 2\.0, January 2004/);
  });

  // The dist/ the tests run is current (npm test builds first), so the pack skips its prepack build.
  it('packs, installs into an empty folder, and `npx ksp` runs', { timeout: 300_000 }, async () => {
    const started = Date.now();
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', tmp.path], { cwd: ROOT });
    const tgz = join(tmp.path, stdout.trim().split('\n').pop()!);
    const app = join(tmp.path, 'app');
    await run('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), '{ "name": "app", "private": true }\n');
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tgz], { cwd: app, timeout: 240_000 });

    const installed = join(app, 'node_modules', 'ksp');
    const files = walk(installed).map((f) => relative(installed, f));
    expect(files).toContain('LICENSE');
    // No demo, bench or fixture generator: their fixtures stay in the repository.
    expect(files.filter((f) => f.startsWith('dist/tools/') || f.startsWith('src/tools/'))).toEqual([]);
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('fixtures/'))).toEqual([]);
    // Every source map's sources are shipped.
    const missing: string[] = [];
    for (const m of files.filter((f) => f.endsWith('.map'))) {
      const map = JSON.parse(readFileSync(join(installed, m), 'utf8')) as { sources: string[]; sourceRoot?: string };
      for (const s of map.sources) if (!existsSync(join(installed, dirname(m), map.sourceRoot ?? '', s))) missing.push(`${m}: ${s}`);
    }
    expect(missing).toEqual([]);
    // The README's relative links lead to files in the package.
    const readme = readFileSync(join(installed, 'README.md'), 'utf8');
    const links = [...readme.matchAll(/\]\(([^)#:\s]+)(#[^)]*)?\)/g)].map((m) => normalize(m[1]!));
    expect(links.length).toBeGreaterThan(0);
    expect(links.filter((l) => !existsSync(join(installed, l)))).toEqual([]);

    const help = await run('npx', ['--no-install', 'ksp', '--help'], { cwd: app });
    expect(help.stdout).toContain('ksp verify <savepoint>');
    const verify = await run('npx', ['--no-install', 'ksp', 'verify', SHOP_SP, '--json'], { cwd: app });
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true });
    console.log(`pack + install + run: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });
});
