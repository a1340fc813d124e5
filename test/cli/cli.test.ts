import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ENGINE_SP, FIXTURES, HAS_SHARED, ROOT, SHOP_SP, copyOf, tempDir } from '../support/env.js';
import { BIN, ksp } from '../support/cli.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());
const NATIVE = join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007');
const STACK = /\n\s+at .+\(.+:\d+:\d+\)/;

describe('ksp --help', () => {
  it('lists the commands and the exit codes', async () => {
    const r = await ksp(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['verify', 'inspect', 'list']) expect(r.stdout).toContain(`ksp ${c}`);
    expect(r.stdout).toMatch(/Exit codes: 0 ok, 1 verification failed/);
  });
  it.each(['verify', 'inspect', 'list'])('%s --help shows examples', async (c) => {
    const r = await ksp([c, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Examples:/);
  });
  it('a mistyped command is a usage error (exit 2)', async () => {
    const r = await ksp(['verfy', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Did you mean verify|Unknown argument/);
  });
  it('--version is the package version', async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    expect((await ksp(['--version'])).stdout.trim()).toBe(pkg.version);
  });
  it('no command is a usage error', async () => {
    expect((await ksp([])).code).toBe(2);
  });
});

describe.skipIf(!HAS_SHARED)('ksp on the engine fixture', () => {
  it('verify: exit 0, human and JSON', async () => {
    const r = await ksp(['verify', ENGINE_SP]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^OK /);
    const j = await ksp(['verify', ENGINE_SP, '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: true, jobId: 'fixture-job', epoch: '1', totals: { entries: 2 } });
  });
  it('inspect lists its two entries with the decoded watermark', async () => {
    const r = await ksp(['inspect', ENGINE_SP, '--entries', '--json', '--value-codec', 'i64le']);
    expect(r.code).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(rows.map((x) => [x.operator_id, x.entry_operator, Buffer.from(x.key_hex, 'hex').toString(), x.value_decoded])).toEqual([
      ['op-0', 'continuous-window', 'tw:key-a', null],
      ['op-0', 'continuous-window', 'wm:', 9000],
    ]);
  });
  it('verify of a tampered copy fails with exit 1 and names the file', async () => {
    const c = copyOf(join(ENGINE_SP, '..', '..', '..'));
    try {
      const sp = join(c.path, 'fixture-job', 'savepoints', '00000000000000000001');
      const f = join(sp, 'op-0', 'task-0', 'state.bin');
      const b = readFileSync(f);
      b[b.length - 1] ^= 1;
      writeFileSync(f, b);
      const r = await ksp(['verify', sp]);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/HASH_MISMATCH.*op-0\/task-0\/state\.bin/);
      expect(r.stderr).toMatch(/does NOT verify/);
      expect(r.stderr + r.stdout).not.toMatch(STACK);
    } finally {
      c.cleanup();
    }
  });
});

describe('ksp inspect', () => {
  it('summary as JSON', async () => {
    const r = await ksp(['inspect', SHOP_SP, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).totals).toMatchObject({ operators: 4, tasks: 8, entries: 158 });
  });
  it('human summary names operators, states and tasks', async () => {
    const r = await ksp(['inspect', SHOP_SP]);
    expect(r.stdout).toMatch(/operator orders-agg: 3 task\(s\), 70 entries/);
    expect(r.stdout).toMatch(/key groups: 60 of 32768 used/);
    expect(r.stdout).toMatch(/task-0\s+stateless/);
  });
  it('an exact key (UTF-8) with a msgpack value', async () => {
    const r = await ksp(['inspect', SHOP_SP, '--operator', 'orders-agg', '--state', 'totals', '--key-utf8', 'customer-42', '--value-codec', 'msgpack', '--json', '--verbose']);
    expect(r.code).toBe(0);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toHaveLength(1);
    expect(rows[0].value_decoded).toMatchObject({ count: 43, currency: 'EUR' });
    expect(rows[0].key_group).toBe(29021);
    expect(r.stderr).toMatch(/reading 1 of 3 task\(s\)/);
  });
  it('--limit and key prefix in hex', async () => {
    const r = await ksp(['inspect', SHOP_SP, '--key-prefix', Buffer.from('customer-').toString('hex'), '--limit', '5', '--json']);
    expect(r.stdout.trim().split('\n')).toHaveLength(5);
  });
  it('--out writes Parquet, and refuses to overwrite without --overwrite', async () => {
    const out = join(tmp.path, 'x.parquet');
    const r = await ksp(['inspect', SHOP_SP, '--out', out, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ rows: 158, format: 'parquet' });
    const again = await ksp(['inspect', SHOP_SP, '--out', out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/TARGET_NOT_EMPTY.*--overwrite/);
    expect((await ksp(['inspect', SHOP_SP, '--out', out, '--overwrite'])).code).toBe(0);
  });
  it('bad hex is a usage error', async () => {
    const r = await ksp(['inspect', SHOP_SP, '--key', 'zz']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--key: "zz" is not hex/);
  });
  it('native state: the summary names its RocksDB files; entries are listed like canonical ones', async () => {
    expect((await ksp(['inspect', NATIVE])).stdout).toMatch(/native: 1 SST \(L6:1\), format_version 5, none, crc32c/);
    const r = await ksp(['inspect', NATIVE, '--operator', 'windows', '--entries', '--json']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.key_hex)).toContain(Buffer.from('wm:').toString('hex'));
    expect(lines).toHaveLength(5);
  });
  it('stops quietly when the reader of its output goes away', async () => {
    const child = spawn(process.execPath, [BIN, 'inspect', SHOP_SP, '--entries', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    child.stdout.destroy();
    const code = await new Promise((r) => child.on('close', r));
    expect(code).toBe(0);
    expect(err).not.toMatch(/EPIPE|Error/);
  });
});

describe('bad input through the CLI', () => {
  it('a missing savepoint: exit 4, no stack', async () => {
    const r = await ksp(['verify', join(tmp.path, 'nope')]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/NOT_FOUND.*no metadata\.json/);
    expect(r.stderr).not.toMatch(STACK);
  });
  it('corrupt metadata: exit 3 from inspect, stack only with --verbose', async () => {
    const c = copyOf(SHOP_SP);
    try {
      writeFileSync(join(c.path, 'metadata.json'), '{"version": 3, "epoch": "x"}');
      const r = await ksp(['inspect', c.path]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/ksp: error \[METADATA_INVALID\]: .*metadata\.json: field epoch/);
      expect(r.stderr).not.toMatch(STACK);
      const v = await ksp(['inspect', c.path, '--verbose']);
      expect(v.stderr).toMatch(STACK);
      const j = await ksp(['inspect', c.path, '--json']);
      expect(JSON.parse(j.stdout).error).toMatchObject({ code: 'METADATA_INVALID', field: 'epoch' });
    } finally {
      c.cleanup();
    }
  });
  it('a truncated state file: inspect reports the offset and exits 3', async () => {
    const c = copyOf(SHOP_SP);
    try {
      const f = join(c.path, 'orders-agg', 'task-0', 'state.bin');
      writeFileSync(f, readFileSync(f).subarray(0, 100));
      const r = await ksp(['inspect', c.path, '--operator', 'orders-agg', '--entries', '--json']);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/STATE_BIN_(TRUNCATED|LENGTH).*state\.bin: .* at offset \d+/);
      // An export that fails midway leaves no file behind (written under a temporary name, never renamed).
      const out = join(tmp.path, 'partial.parquet');
      const e = await ksp(['inspect', c.path, '--out', out]);
      expect(e.code).toBe(3);
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(tmp.path).filter((f) => f.includes('partial'))).toEqual([]);
    } finally {
      c.cleanup();
    }
  });
});

describe('ksp list', () => {
  it('lists the fixture base, and verifies with --verify', async () => {
    const r = await ksp(['list', join(FIXTURES, 'base'), '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).map((x: { kind: string; epoch: string }) => `${x.kind}:${x.epoch}`)).toEqual(['checkpoint:7', 'checkpoint:8', 'savepoint:7', 'savepoint:9']);
    const v = await ksp(['list', join(FIXTURES, 'base'), '--verify']);
    expect(v.code).toBe(1); // checkpoint 8 has no manifest
    expect(v.stdout).toMatch(/checkpoint\s+8\s.*NO/);
    const one = await ksp(['list', join(FIXTURES, 'base', 'shop'), '--json']);
    expect(JSON.parse(one.stdout)).toHaveLength(4);
    const none = await ksp(['list', join(FIXTURES, 'base'), '--job', 'other']);
    expect(none.stdout).toMatch(/no checkpoints or savepoints/);
  });
});
