import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Real RocksDB for the tests: Debian's `ldb` 7.8 (rocksdb-tools, installed by
 * .ci/run) makes databases and is the oracle for what they hold. Nothing here
 * uses ksp's reader to make expectations.
 */

export function requireLdb(): void {
  const r = spawnSync('ldb', ['--help'], { encoding: 'utf8' });
  if (r.error) throw new Error('ldb (Debian package rocksdb-tools) is not installed; .ci/run installs it: apt-get install -y rocksdb-tools');
}

export interface DbSpec {
  formatVersion?: 2 | 3 | 4 | 5;
  checksum?: 'kNoChecksum' | 'kCRC32c' | 'kxxHash' | 'kxxHash64' | 'kXXH3';
  compression?: 'no' | 'snappy' | 'zlib' | 'bzip2' | 'lz4' | 'lz4hc' | 'zstd';
  blockSize?: number;
  /** Extra `name=value` lines for the BlockBasedTable section (index_type, …). */
  table?: Record<string, string | number>;
}

export function ldb(dir: string, args: string[], input?: string): string {
  return execFileSync('ldb', [`--db=${dir}`, ...args], { input, encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['pipe', 'pipe', 'pipe'] });
}

const hex = (b: Uint8Array): string => `0x${Buffer.from(b).toString('hex').toUpperCase()}`;

/** An empty database whose OPTIONS file sets the table format (ldb has no flags for it). */
export function createDb(dir: string, spec: DbSpec = {}): void {
  ldb(dir, ['--create_if_missing', 'load', '--disable_wal'], '');
  const name = readdirSync(dir).filter((f) => f.startsWith('OPTIONS-')).sort().at(-1)!;
  const path = join(dir, name);
  let text = readFileSync(path, 'utf8');
  const set = (key: string, value: string | number): void => {
    const re = new RegExp(`^(\\s*)${key}=.*$`, 'm');
    const section = text.indexOf('[TableOptions/BlockBasedTable "default"]');
    const head = text.slice(0, section);
    let tail = text.slice(section);
    tail = re.test(tail) ? tail.replace(re, `$1${key}=${value}`) : tail.replace('[TableOptions/BlockBasedTable "default"]', `[TableOptions/BlockBasedTable "default"]\n  ${key}=${value}`);
    text = head + tail;
  };
  if (spec.formatVersion) set('format_version', spec.formatVersion);
  if (spec.checksum) set('checksum', spec.checksum);
  if (spec.blockSize) set('block_size', spec.blockSize);
  for (const [k, v] of Object.entries(spec.table ?? {})) set(k, v);
  writeFileSync(path, text);
}

/** Loads pairs through ldb (flushed to an SST on close). */
export function loadPairs(dir: string, pairs: Array<[Uint8Array, Uint8Array]>, spec: DbSpec = {}, extra: string[] = []): void {
  const input = pairs.map(([k, v]) => `${hex(k)} ==> ${hex(v)}`).join('\n') + '\n';
  ldb(dir, ['--hex', '--auto_compaction=false', ...(spec.compression ? [`--compression_type=${spec.compression}`] : []), ...extra, 'load', '--disable_wal'], input);
}

/**
 * What RocksDB itself says the database holds: `ldb scan --hex` on a copy (an
 * open may change the directory). `noOptions` for databases without an
 * OPTIONS file (as ksp writes them).
 */
export function scanHex(dir: string, noOptions = false): string[] {
  const copy = mkdtempSync(join(tmpdir(), 'ksp-ldb-scan-'));
  try {
    cpSync(dir, copy, { recursive: true });
    const out = ldb(copy, [...(noOptions ? ['--try_load_options=false'] : []), '--hex', 'scan']);
    return out.split('\n').filter((l) => l.startsWith('0x'));
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

export function asScanLines(pairs: Array<{ key: Uint8Array; value: Uint8Array }>): string[] {
  return pairs.map((p) => `${hex(p.key)} : ${hex(p.value)}`);
}

/** Files RocksDB's checkpoint would ship (no LOCK, LOG or IDENTITY). */
export function dbFiles(dir: string): string[] {
  return readdirSync(dir).filter((f) => /^\d+\.(sst|log)$/.test(f) || /^(CURRENT|MANIFEST-\d+|OPTIONS-\d+)$/.test(f)).sort();
}

/** `sst_dump --command=verify --verify_checksum` of one table: its stderr (it exits 0 even on corruption). */
export function sstVerify(file: string): string {
  const r = spawnSync('sst_dump', [`--file=${file}`, '--command=verify', '--verify_checksum'], { encoding: 'utf8' });
  return `${r.stderr}${r.error ? String(r.error) : ''}`;
}
