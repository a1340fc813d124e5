/**
 * `npm run demo`: what ksp is for, on the bundled fixtures, with no network
 * and no S3. Runs the real `ksp` binary, shows each command and its output,
 * and checks that each step did what it should (exit 1 if not).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'ksp.js');
const WORK = join(ROOT, '.demo');
const SP = join('fixtures', 'base', 'shop', 'savepoints', '00000000000000000007');
const ENGINE = join('..', 'shared', 'fixtures', 'krishiv-savepoint-v1', 'fixture-job', 'savepoints', '00000000000000000001');

let failures = 0;
const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

function step(title: string, args: string[], expectCode: number, check?: (out: string) => boolean): string {
  process.stdout.write(`\n${bold(`== ${title}`)}\n$ ksp ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0' } });
  process.stdout.write(r.stdout);
  if (r.stderr) process.stdout.write(r.stderr.split('\n').map((l) => (l ? `  (stderr) ${l}` : l)).join('\n'));
  const ok = r.status === expectCode && (!check || check(r.stdout));
  process.stdout.write(`${ok ? '  ✔' : '  ✘'} exit ${r.status} (expected ${expectCode})\n`);
  if (!ok) failures++;
  return r.stdout;
}

rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true });

step('What is in the storage base?', ['list', join('fixtures', 'base')], 0);
step('Verify a savepoint: manifest, hashes, identity, paths, full decode', ['verify', SP], 0, (o) => o.startsWith('OK'));
step('Summarise it: operators, tasks, states, key-group spread', ['inspect', SP], 0, (o) => o.includes('operator orders-agg'));
step('Look up one key; its task is found from the key group', ['inspect', SP, '--operator', 'orders-agg', '--key-utf8', 'customer-42', '--value-codec', 'msgpack'], 0, (o) => o.includes('customer-42'));
const parquet = join(relative(ROOT, WORK), 'shop.parquet');
step('Export every entry to Parquet (for DuckDB, pandas, Spark)', ['inspect', SP, '--out', parquet, '--value-codec', 'hex'], 0, (o) => o.includes('wrote 158 entries'));

// Read the Parquet file back with parquet-wasm to show it is a real one.
{
  const pq = await import('parquet-wasm/node');
  const { tableFromIPC } = await import('apache-arrow');
  const t = tableFromIPC(pq.readParquet(readFileSync(join(ROOT, parquet))).intoIPCStream());
  const ok = t.numRows === 158;
  process.stdout.write(`  read back: ${t.numRows} rows, columns ${t.schema.fields.map((f) => f.name).join(', ')} ${ok ? '✔' : '✘'}\n`);
  process.stdout.write(`  try: duckdb -c "SELECT state_name, count(*) FROM '${parquet}' GROUP BY 1"\n`);
  if (!ok) failures++;
}

// Tamper with a copy: one flipped byte, and verify refuses it.
const tampered = join(WORK, 'tampered');
cpSync(join(ROOT, SP), tampered, { recursive: true });
const victim = join(tampered, 'windows', 'task-1', 'state.bin');
const bytes = readFileSync(victim);
bytes[bytes.length - 3]! ^= 0x01;
writeFileSync(victim, bytes);
step('Flip one byte in a copy: verify must fail', ['verify', relative(ROOT, tampered)], 1, (o) => o.includes('HASH_MISMATCH'));

const NATIVE = join('fixtures', 'native', 'shop', 'savepoints', '00000000000000000007');
step('A savepoint holding native RocksDB state: its SSTs are read with no RocksDB installed', ['inspect', NATIVE], 0, (o) => o.includes('native: 1 SST'));
step('…verify checks the SST hashes and every block checksum, and decodes its entries', ['verify', NATIVE], 0, (o) => o.startsWith('OK') && o.includes('native, 5 entries'));
step('…and its entries list like any other', ['inspect', NATIVE, '--operator', 'windows', '--entries', '--key-codec', 'utf8'], 0, (o) => o.includes('tw:key-a:60000') && o.includes('wm:'));

// Writing: rescale, migrate, rename, relocate; each output is re-verified by the command itself.
const out = (name: string): string => join(relative(ROOT, WORK), name);
step('Plan a rescale of the window operator to 12 tasks without writing anything (note the fencing token)', ['rescale', SP, out('p12'), '--parallelism', '12', '--operator', 'windows', '--mode', 'relative', '--dry-run'], 0, (o) => o.includes('dry run: nothing was written') && o.includes('fencing_token 3 → 1'));
step("Rescale to 12 tasks as the engine's own rescale does: ids in string order (task-10 owns range 2), window keys routed, watermarks merged", ['rescale', SP, out('p12'), '--parallelism', '12', '--operator', 'windows', '--mode', 'relative'], 0, (o) => o.includes('verified OK') && o.includes('per task 13, 4, 7, 1, 13'));
step('verify checks that every routed entry sits on the task owning its key group, and says what it cannot check', ['verify', out('p12')], 0, (o) => o.startsWith('OK') && o.includes('PLACEMENT_UNKNOWN'));
writeFileSync(join(WORK, 'typo.mjs'), `// A typo in the state name ("total" for "totals"): the step would match nothing.
export default (m, codecs) => {
  m.value('orders-agg', 1, 2, codecs.msgpack, codecs.msgpack, (old) => ({ ...old, sumCents: Math.round(old.sum * 100) }), { state: 'total' });
};
`);
step('A migration step that matches no entry is refused before anything is written', ['migrate', out('p12'), out('typo'), '--migrations', out('typo.mjs')], 2);
writeFileSync(join(WORK, 'migrations.mjs'), `// fraud 1 -> 2: scores scaled; orders-agg 1 -> 2: totals in cents, keys upper case.
export default (m, codecs) => {
  m.value('fraud', 1, 2, codecs.f64le, codecs.f64le, (score) => score * 1.5, { state: 'score' });
  m.value('orders-agg', 1, 2, codecs.msgpack, codecs.msgpack, (old) => ({ ...old, sumCents: Math.round(old.sum * 100) }), { state: 'totals' });
  m.keyValue('orders-agg', 1, 2, { key: codecs.utf8, value: codecs.raw }, { key: codecs.utf8, value: codecs.raw }, (key, value) => ({ key: key.toUpperCase(), value }));
};
`);
step('Migrate fraud and orders-agg from version 1 to 2: counts per step; changed keys move to the task that owns them', ['migrate', out('p12'), out('v2'), '--migrations', out('migrations.mjs')], 0, (o) => o.includes('verified OK') && o.includes('entries moved to the task owning the new key') && o.includes('12 entries transformed'));
step('…so a lookup of a migrated key finds it on its owner', ['inspect', out('v2'), '--key-utf8', 'CUSTOMER-42', '--value-codec', 'msgpack'], 0, (o) => o.includes('CUSTOMER-42'));
step('Rename an operator everywhere it appears, drop another', ['edit', out('v2'), out('edited'), '--rename', 'orders-agg=orders', '--remove', 'sink'], 0, (o) => o.includes('verified OK'));
step('Make savepoint 9 (which reaches into checkpoint 7) self-contained', ['relocate', join('fixtures', 'base', 'shop', 'savepoints', '00000000000000000009'), out('sp9'), '--mode', 'relative'], 0, (o) => o.includes('verified OK'));
step('Convert the native savepoint to canonical state.bin files', ['convert', NATIVE, out('canonical'), '--to', 'canonical', '--mode', 'relative'], 0, (o) => o.includes('verified OK'));
step('…and the migrated savepoint back to native RocksDB tables the engine restores directly', ['convert', out('v2'), out('native'), '--to', 'native'], 0, (o) => o.includes('written as RocksDB') && o.includes('verified OK'));
step('…whose tasks are read back (and checked block by block) like any native state', ['verify', out('native')], 0, (o) => o.startsWith('OK') && o.includes('format_version 5, snappy, xxh3'));
cpSync(join(WORK, 'sp9'), join(WORK, 'moved', 'sp9'), { recursive: true });
step('…so a plain copy of it, anywhere, still verifies', ['verify', out(join('moved', 'sp9'))], 0, (o) => o.startsWith('OK'));

if (existsSync(join(ROOT, ENGINE))) {
  step("The engine's own savepoint fixture verifies", ['verify', ENGINE], 0, (o) => o.startsWith('OK'));
  step('…and holds two entries: tw:key-a -> "41" and the watermark wm: -> 9000', ['inspect', ENGINE, '--entries', '--key-codec', 'utf8', '--value-codec', 'i64le'], 0, (o) => o.includes('9000'));
} else {
  process.stdout.write('\n(../shared/fixtures/krishiv-savepoint-v1 is absent: skipping the engine fixture steps)\n');
}

process.stdout.write(`\n${failures === 0 ? bold('demo: every step did what it should') : bold(`demo: ${failures} step(s) went wrong`)}\n`);
process.exitCode = failures === 0 ? 0 : 1;
