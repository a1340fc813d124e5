import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import { prng, writeSyntheticSavepoint } from '../../src/tools/synthetic.js';
import { epochDirName } from '../../src/formats/metadata/metadata.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';
import { FIXTURES, SHOP_SP, tempDir } from '../support/env.js';
import { ksp } from '../support/cli.js';
import { buildSavepoint } from '../write/build.js';

/**
 * The write paths are made faster without changing a byte of what they
 * write: every output file of rescale (both routings, several
 * parallelisms), migrate, relocate and edit, on the bundled fixtures and on
 * generated savepoints, hashes to what the code wrote before the speed-up
 * (recorded in output-identity.hashes.json), whatever --threads is.
 *
 * meta.json carries the wall-clock time and the source's path, so it is
 * compared without those two fields, and manifest.sha256 without its
 * meta.json line. Re-record (only when an output change is intended) with
 * KSP_RECORD_IDENTITY=1.
 */

const HASHES = join(import.meta.dirname, 'output-identity.hashes.json');
const RECORD = process.env.KSP_RECORD_IDENTITY === '1';
const recorded: Record<string, Record<string, string>> = existsSync(HASHES) ? JSON.parse(readFileSync(HASHES, 'utf8')) : {};

let work: { path: string; cleanup: () => void };
let generated = '';
let windowed = '';
let migrations = '';

beforeAll(async () => {
  work = tempDir('ksp-identity-');
  const next = prng(0x5eed);
  generated = (await writeSyntheticSavepoint(join(work.path, 'gen'), {
    job: 'gen', operator: 'op-bench', entries: 12_000, tasks: 4,
    fill: (pool) => { for (let i = 0; i < pool.length; i++) pool[i] = (next() * 256) | 0; },
  })).sp;
  windowed = join(work.path, 'win');
  mkdirSync(windowed);
  await buildSavepoint(windowed, [{ id: 'win', tasks: windowTasks(4, 2500) }]);
  migrations = join(work.path, 'migrations');
  mkdirSync(migrations);
  writeFileSync(join(migrations, 'msgpack.mjs'), `export default (m, codecs) => {
  m.value('op-bench', 1, 2, codecs.msgpack, codecs.msgpack, (o) => ({ ...o, n: o.n + 1, migrated: true }), { state: 'sessions' });
};\n`);
  // A key step that folds keys onto fewer keys: entries move to their new key's owner, and collide.
  writeFileSync(join(migrations, 'keys.mjs'), `export default (m, codecs) => {
  m.keyValue('op-bench', 1, 2, { key: codecs.raw, value: codecs.raw }, { key: codecs.raw, value: codecs.raw }, (k, v) => ({ key: k.subarray(0, 2), value: v }), { state: 'counts' });
};\n`);
  writeFileSync(join(migrations, 'orders.mjs'), `export default (m, codecs) => {
  m.value('orders-agg', 1, 2, codecs.msgpack, codecs.msgpack, (o) => ({ ...o, sum: o.sum * 2 }), { state: 'totals' });
};\n`);
}, 120_000);

afterAll(() => work?.cleanup());

/** Window-layout keys (tw:/sw:/ses:) over a few hundred group keys, per-task watermarks, and a few keys broadcast by window routing. */
function windowTasks(tasks: number, perTask: number): StateEntry[][] {
  const next = prng(0x77696e);
  const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => (next() * 256) | 0));
  const groups = Array.from({ length: 300 }, (_, i) => bytes(4 + (i % 9)));
  const out: StateEntry[][] = [];
  for (let t = 0; t < tasks; t++) {
    const task: StateEntry[] = [];
    for (let i = 0; i < perTask; i++) {
      const g = groups[(next() * groups.length) | 0]!;
      const kind = i % 3;
      const tag = Buffer.from(kind === 0 ? 'tw:' : kind === 1 ? 'sw:' : 'ses:');
      const len = Buffer.alloc(4);
      len.writeUInt32LE(g.length);
      const key = Buffer.concat([tag, len, g, bytes(kind === 2 ? 16 : 8)]);
      task.push({ operatorId: 'win', stateName: ['tumbling', 'sliding', 'session'][kind]!, key, value: bytes(20 + (i % 50)) });
    }
    const wm = Buffer.alloc(8);
    wm.writeBigInt64LE(BigInt(1_000_000 - t * 1000));
    task.push({ operatorId: 'win', stateName: 'watermark', key: Buffer.from('wm:'), value: wm });
    task.push({ operatorId: 'win', stateName: 'config', key: Buffer.from('config'), value: Buffer.from('same on every task') });
    for (let i = 0; i < 5; i++) task.push({ operatorId: 'win', stateName: 'other', key: bytes(12), value: bytes(30) });
    out.push(task);
  }
  return out;
}

/** Every output file's SHA-256; meta.json without its time and source path, manifest.sha256 without its meta.json line. */
function outputHashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) {
        walk(p);
        continue;
      }
      const rel = relative(dir, p);
      let bytes: Buffer | string = readFileSync(p);
      if (e === 'meta.json') {
        const meta = JSON.parse(bytes.toString('utf8'));
        delete meta.created_at_secs;
        if (meta.ksp) delete meta.ksp.source;
        bytes = JSON.stringify(meta);
      } else if (e === 'manifest.sha256') {
        bytes = bytes.toString('utf8').split('\n').filter((l) => !l.endsWith(' meta.json')).join('\n');
      } else if (e === '.ksp-lock' || e.includes('.ksp-tmp-')) {
        throw new Error(`left behind in the output: ${rel}`);
      }
      out[rel] = createHash('sha256').update(bytes).digest('hex');
    }
  };
  walk(dir);
  return out;
}

interface Case {
  name: string;
  args: () => string[];
}

const REL = join(FIXTURES, 'relative-savepoint');
const NATIVE_SP = join(FIXTURES, 'native', 'shop', 'savepoints', epochDirName(7n));
const r = ['--mode', 'relative'];

const CASES: Case[] = [
  { name: 'generated: rescale 4→7 state-key', args: () => ['rescale', generated, '-p', '7', '--routing', 'state-key', ...r] },
  { name: 'generated: rescale 4→3 state-key', args: () => ['rescale', generated, '-p', '3', '--routing', 'state-key', ...r] },
  { name: 'generated: rescale 4→1 state-key', args: () => ['rescale', generated, '-p', '1', '--routing', 'state-key', ...r] },
  { name: 'generated: migrate msgpack value step', args: () => ['migrate', generated, '--migrations', join(migrations, 'msgpack.mjs'), ...r] },
  { name: 'generated: migrate key step, keep-last', args: () => ['migrate', generated, '--migrations', join(migrations, 'keys.mjs'), '--on-collision', 'keep-last', ...r] },
  { name: 'generated: relocate', args: () => ['relocate', generated, ...r] },
  { name: 'generated: edit rename', args: () => ['edit', generated, '--rename', 'op-bench=op-renamed', ...r] },
  { name: 'window: rescale 4→7 window', args: () => ['rescale', windowed, '-p', '7', ...r] },
  { name: 'window: rescale 4→2 window', args: () => ['rescale', windowed, '-p', '2', ...r] },
  { name: 'window: rescale 4→12 window', args: () => ['rescale', windowed, '-p', '12', ...r] },
  { name: 'window: rescale 4→5 state-key', args: () => ['rescale', windowed, '-p', '5', '--routing', 'state-key', ...r] },
  { name: 'fixture: rescale 3', args: () => ['rescale', REL, '-p', '3', ...r] },
  { name: 'fixture: rescale 5 state-key', args: () => ['rescale', REL, '-p', '5', '--routing', 'state-key', ...r] },
  { name: 'fixture: migrate orders-agg', args: () => ['migrate', REL, '--migrations', join(migrations, 'orders.mjs'), ...r] },
  { name: 'fixture: relocate', args: () => ['relocate', REL, ...r] },
  { name: 'fixture: edit rename + remove', args: () => ['edit', REL, '--rename', 'fraud=fraud-v2', '--remove', 'sink', ...r] },
  { name: 'fixture (engine layout): rescale 2', args: () => ['rescale', SHOP_SP, '-p', '2', ...r] },
  { name: 'fixture (native): rescale 2', args: () => ['rescale', NATIVE_SP, '-p', '2', ...r] },
  { name: 'fixture (native): relocate', args: () => ['relocate', NATIVE_SP, ...r] },
];

describe('write outputs are byte-identical to before the speed-up, whatever --threads is', () => {
  CASES.forEach((c, n) => {
    it(c.name, async () => {
      const seen: Array<Record<string, string>> = [];
      for (const threads of ['1', '2']) {
        const out = join(work.path, `out-${n}-${threads}`);
        const run = await ksp([...c.args(), out, '--threads', threads, '--quiet']);
        expect(run.stderr + run.stdout).not.toContain('ksp: ');
        expect(run.code).toBe(0);
        seen.push(outputHashes(out));
      }
      expect(seen[1]).toEqual(seen[0]);
      if (RECORD) {
        recorded[c.name] = seen[0]!;
        writeFileSync(HASHES, `${JSON.stringify(recorded, null, 1)}\n`);
      } else {
        expect(recorded[c.name], `no recorded hashes for "${c.name}": record them with KSP_RECORD_IDENTITY=1`).toBeDefined();
        expect(seen[0]).toEqual(recorded[c.name]);
      }
    });
  });
});
