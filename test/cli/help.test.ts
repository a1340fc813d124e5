import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../support/env.js';
import { ksp } from '../support/cli.js';
import { reflow, wrapWords } from '../../src/cli/help.js';

/** Every command module under src/cli, with the examples its builder registers (recorded by a stand-in yargs). */
async function commandsWithExamples(): Promise<Array<{ name: string; examples: string[] }>> {
  const dir = join(ROOT, 'src', 'cli');
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => /(^|\/)(\w+-)?command\.ts$/.test(f));
  const out: Array<{ name: string; examples: string[] }> = [];
  for (const f of files) {
    const { command } = (await import(join(dir, f))) as { command: { command: string; builder: (y: unknown) => unknown } };
    const examples: string[] = [];
    const stub: unknown = new Proxy({}, {
      get: (_t, k) => (k === 'example' ? (cmd: string) => (examples.push(cmd), stub) : () => stub),
    });
    command.builder(stub);
    out.push({ name: command.command.split(' ')[0]!, examples });
  }
  return out;
}

describe('--help at 60 columns', () => {
  it('every command prints each of its examples whole, on a line of its own', async () => {
    const commands = await commandsWithExamples();
    expect(commands.map((c) => c.name).sort()).toEqual(['commit', 'convert', 'diff', 'edit', 'import', 'inspect', 'list', 'migrate', 'relocate', 'report', 'rescale', 'status', 'verify', 'work']);
    for (const c of commands) {
      const r = await ksp([c.name, '--help'], { COLUMNS: '60' });
      expect(r.code).toBe(0);
      const lines = r.stdout.split('\n').map((l) => l.trim());
      expect(c.examples.length, c.name).toBeGreaterThan(0);
      for (const ex of c.examples) expect(lines, `${c.name}: ${ex}`).toContain(ex);
      // Everything but examples and code lines fits the width.
      const wide = r.stdout.split('\n').filter((l) => l.length > 60 && !c.examples.includes(l.trim()) && !/^\s{4}/.test(l));
      expect(wide, c.name).toEqual([]);
    }
  });

  it('the top-level help says what exit 6 means and fits 60 columns', async () => {
    const r = await ksp(['--help'], { COLUMNS: '60' });
    expect(r.code).toBe(0);
    const text = r.stdout.replace(/\s+/g, ' ');
    expect(text).toContain('6 unsupported (a format feature ksp does not handle');
    expect(text).not.toContain('native state), 70');
    expect(r.stdout.split('\n').filter((l) => l.length > 60)).toEqual([]);
  });
});

describe('help layout', () => {
  it('prose is reflowed to the width; indented code lines and over-long words stay whole', () => {
    expect(wrapWords('aa bb cc dd', 5)).toEqual(['aa bb', 'cc dd']);
    expect(wrapWords('a s3://a-very-long-bucket/prefix b', 10)).toEqual(['a', 's3://a-very-long-bucket/prefix', 'b']);
    expect(reflow('one two\nthree\n  code(x, y, z);\nfour\n\nfive', 9)).toBe('one two\nthree\n  code(x, y, z);\nfour\n\nfive');
  });
});
