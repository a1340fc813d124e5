import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';
import { ksp } from '../support/cli.js';
import { FIXTURES, tempDir } from '../support/env.js';
import { engineKey, nativeSavepoint } from '../rocksdb/native-savepoint.js';
import { createDb, loadPairs, requireLdb } from '../rocksdb/support.js';
import { buildSavepoint } from '../write/build.js';
import { treeHashes } from '../write/support.js';
import { prng } from '../../src/tools/synthetic.js';

/**
 * The native (RocksDB) paths made faster must not change a byte of what
 * they write: every output file of `convert --to native` and `convert --to
 * canonical`, on the bundled fixtures and on generated savepoints (one made
 * by real RocksDB, one large enough that the key sort spills), hashed and
 * compared with the hashes recorded before the speed work started, with
 * `--threads 1` and `--threads 2`.
 *
 * `KSP_IDENTITY_RECORD=1` rewrites native-identity.hashes.json instead of
 * comparing (only ever on a commit whose outputs are known right).
 */

const HASHES = new URL('./native-identity.hashes.json', import.meta.url).pathname;
const RECORD = process.env.KSP_IDENTITY_RECORD === '1';
const recorded: Record<string, Record<string, string>> = existsSync(HASHES) ? JSON.parse(readFileSync(HASHES, 'utf8')) : {};
const fresh: Record<string, Record<string, string>> = {};

const NATIVE_FIXTURE = join(FIXTURES, 'native', 'shop', 'savepoints', '00000000000000000007');
const CANONICAL_FIXTURE = join(FIXTURES, 'relative-savepoint');

function bytes(rand: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (rand() * 256) | 0;
  return b;
}

let root: { path: string; cleanup: () => void };
/** A canonical savepoint of one big task (its key sort spills past the 32 MiB arena) and two small ones. */
let bigCanonical: string;
/** A native savepoint made by ldb: fv5, Snappy, 16 KiB blocks (the engine's settings), two tasks. */
let ldbNative: string;

beforeAll(async () => {
  requireLdb();
  root = tempDir('ksp-native-identity-');
  const rand = prng(13);
  const entryOf = (i: number): StateEntry => {
    const value = Buffer.concat([bytes(rand, 40), Buffer.alloc(50 + (i % 20), 0x61 + (i % 3))]);
    return { operatorId: 'agg', stateName: i % 5 === 0 ? 'counts' : 'sessions', key: bytes(rand, 16), value };
  };
  const big: StateEntry[] = [];
  for (let i = 0; i < 300_000; i++) big.push(entryOf(i));
  // Repeated keys: the later entry wins.
  for (let i = 0; i < 50; i++) big.push({ ...big[i * 997]!, value: Buffer.from(`again-${i}`) });
  const small = [Array.from({ length: 3000 }, (_, i) => entryOf(i)), Array.from({ length: 2000 }, (_, i) => entryOf(i))];
  bigCanonical = join(root.path, 'big');
  await buildSavepoint(bigCanonical, [{ id: 'agg', tasks: [big, ...small] }, { id: 'empty', tasks: [[]] }]);

  const dbs: Array<{ op: string; task: string; db: string }> = [];
  for (let t = 0; t < 2; t++) {
    const db = join(root.path, `db${t}`);
    createDb(db, { formatVersion: 5, blockSize: 16384 });
    const pairs: Array<[Buffer, Buffer]> = [];
    for (let i = 0; i < 20_000; i++) pairs.push([engineKey('op-n', i % 7 === 0 ? 'a' : 'b', bytes(rand, 16)), Buffer.concat([bytes(rand, 48), Buffer.alloc(52, 0x78)])]);
    loadPairs(db, pairs, { compression: 'snappy' });
    dbs.push({ op: 'op-n', task: `task-${t}`, db });
  }
  ldbNative = await nativeSavepoint(join(root.path, 'store'), 'nat', 3, dbs);
}, 300_000);

afterAll(() => {
  if (RECORD) writeFileSync(HASHES, JSON.stringify({ ...recorded, ...fresh }, null, 1) + '\n');
  root?.cleanup();
});

async function convertHashes(name: string, src: () => string, to: 'native' | 'canonical', threads: number, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const out = join(root.path, `out-${name}-${threads}`);
  const r = await ksp(['convert', src(), out, '--to', to, '--mode', 'relative', '--threads', String(threads)], env);
  expect(r.stderr, r.stderr).not.toMatch(/error/i);
  expect(r.code).toBe(0);
  const h = treeHashes(out);
  // meta.json records when and from where the run wrote (created_at_secs,
  // ksp.source): left out, and its line left out of manifest.sha256.
  delete h['meta.json'];
  const manifest = readFileSync(join(out, 'manifest.sha256'), 'utf8').split('\n').filter((l) => !l.endsWith('  meta.json')).join('\n');
  h['manifest.sha256'] = createHash('sha256').update(manifest).digest('hex');
  rmSync(out, { recursive: true, force: true });
  if (RECORD) {
    fresh[name] = h;
    return;
  }
  expect(recorded[name], `no hashes recorded for ${name}`).toBeDefined();
  expect(h).toEqual(recorded[name]);
}

const CASES: Array<[string, () => string, 'native' | 'canonical']> = [
  ['fixture-native-to-canonical', () => NATIVE_FIXTURE, 'canonical'],
  ['fixture-native-to-native', () => NATIVE_FIXTURE, 'native'],
  ['fixture-canonical-to-native', () => CANONICAL_FIXTURE, 'native'],
  ['ldb-native-to-canonical', () => ldbNative, 'canonical'],
  ['ldb-native-to-native', () => ldbNative, 'native'],
  ['big-canonical-to-native', () => bigCanonical, 'native'],
];

describe('convert outputs are byte-identical to before, whatever --threads is', () => {
  for (const threads of RECORD ? [1] : [1, 2]) {
    for (const [name, src, to] of CASES) {
      it(`${name}, --threads ${threads}`, () => convertHashes(name, src, to, threads), 120_000);
    }
  }
  // The pure-JS codecs (where a platform has no native binary) decode to the same bytes;
  // a key sort that spills runs and merges them writes the same tables as one in memory.
  if (!RECORD) {
    it('big-canonical-to-native with the sort spilling 8 MiB runs (KSP_SORT_RUN_BYTES)', () => convertHashes('big-canonical-to-native', () => bigCanonical, 'native', 2, { KSP_SORT_RUN_BYTES: String(8 << 20) }), 120_000);
    it('ldb-native-to-canonical with the pure-JS codecs (KSP_PURE_JS_CODECS=1)', () => convertHashes('ldb-native-to-canonical', () => ldbNative, 'canonical', 2, { KSP_PURE_JS_CODECS: '1' }), 120_000);
  }
  it('records a hash for every case', () => {
    if (RECORD) return;
    expect(Object.keys(recorded).sort()).toEqual(CASES.map((c) => c[0]).sort());
  });
});

describe('ksp --version --verbose', () => {
  it('names the codec libraries in use, native or the pure-JS fallbacks', async () => {
    const native = await ksp(['--version', '--verbose']);
    expect(native.code).toBe(0);
    expect(native.stdout).toMatch(/^snappy: snappy \(N-API\)/m);
    expect(native.stdout).toMatch(/^crc32c: @node-rs\/crc32 \(N-API\)/m);
    const js = await ksp(['--version', '--verbose'], { KSP_PURE_JS_CODECS: '1' });
    expect(js.stdout).toMatch(/^snappy: snappyjs \(pure JS\)/m);
    expect(js.stdout).toMatch(/^lz4: lz4js \(pure JS\)/m);
  });
});
