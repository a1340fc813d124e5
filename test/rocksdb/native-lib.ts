import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * RocksDB 10.5 through the npm package rocksdb-native (dev dependency), run
 * in a child process: its `close()` never settles, so each script flushes
 * what must be durable and exits. It writes format_version 6/7 tables with
 * XXH3 checksums, as the engine's RocksDB does, and is their oracle.
 */

const MODULE = createRequire(import.meta.url).resolve('rocksdb-native');

export interface NativeOp {
  put?: [string, string];
  del?: string;
  deleteRange?: [string, string];
  flush?: true;
}

function run(script: string, args: unknown): string {
  // Arguments travel on stdin: an operation list can exceed the argv limit.
  return execFileSync(process.execPath, ['--input-type=module', '-e', script], { input: JSON.stringify(args), encoding: 'utf8', maxBuffer: 1 << 30 });
}

/** Applies hex-encoded operations in order; unflushed writes stay in the WAL. */
export function nativeWrite(dir: string, ops: NativeOp[], options: { tableFormatVersion?: number; tableBlockSize?: number } = {}): void {
  run(`
    import { createRequire } from 'node:module';
    import { readFileSync } from 'node:fs';
    const RocksDB = createRequire(import.meta.url)(${JSON.stringify(MODULE)});
    const { dir, ops, options } = JSON.parse(readFileSync(0, 'utf8'));
    const db = new RocksDB(dir, options);
    await db.ready();
    const h = (x) => Buffer.from(x, 'hex');
    let w = db.write();
    let pending = 0;
    for (const op of ops) {
      if (op.put) { w.put(h(op.put[0]), h(op.put[1])); pending++; }
      if (op.del) { w.delete(h(op.del)); pending++; }
      if (op.deleteRange) { w.deleteRange(h(op.deleteRange[0]), h(op.deleteRange[1])); pending++; }
      if (pending >= 1000 || op.flush) { await w.flush(); w = db.write(); pending = 0; }
      if (op.flush) await db.flush();
    }
    if (pending) await w.flush();
    process.exit(0);
  `, { dir, ops, options });
}

/** What RocksDB 10.5 iterates, as `0xKEY : 0xVALUE` lines (on a copy: opening writes to the directory). */
export function nativeScan(dir: string): string[] {
  const copy = mkdtempSync(join(tmpdir(), 'ksp-rn-scan-'));
  try {
    cpSync(dir, copy, { recursive: true });
    const out = run(`
      import { createRequire } from 'node:module';
      import { readFileSync } from 'node:fs';
      const RocksDB = createRequire(import.meta.url)(${JSON.stringify(MODULE)});
      const { dir } = JSON.parse(readFileSync(0, 'utf8'));
      const db = new RocksDB(dir);
      await db.ready();
      const lines = [];
      for await (const e of db.iterator({})) lines.push('0x' + Buffer.from(e.key).toString('hex').toUpperCase() + ' : 0x' + Buffer.from(e.value).toString('hex').toUpperCase());
      // Exit only once stdout is flushed: a pipe takes large output in pieces.
      process.stdout.write(lines.join('\\n'), () => process.exit(0));
    `, { dir: copy });
    return out.split('\n').filter((l) => l.startsWith('0x'));
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

/**
 * Point lookups through RocksDB 10.5 (on a copy), which consult each table's
 * Bloom filter (rocksdb-native sets a 10-bit Bloom policy by default): a
 * filter built wrong makes keys that exist come back missing. Returns the
 * hex value of each key, or null.
 */
export function nativeGet(dir: string, keysHex: string[]): Array<string | null> {
  const copy = mkdtempSync(join(tmpdir(), 'ksp-rn-get-'));
  try {
    cpSync(dir, copy, { recursive: true });
    const out = run(`
      import { createRequire } from 'node:module';
      import { readFileSync } from 'node:fs';
      const RocksDB = createRequire(import.meta.url)(${JSON.stringify(MODULE)});
      const { dir, keys } = JSON.parse(readFileSync(0, 'utf8'));
      const db = new RocksDB(dir);
      await db.ready();
      const found = [];
      for (const k of keys) { const v = await db.get(Buffer.from(k, 'hex')); found.push(v ? Buffer.from(v).toString('hex') : null); }
      process.stdout.write(JSON.stringify(found), () => process.exit(0));
    `, { dir: copy, keys: keysHex });
    return JSON.parse(out) as Array<string | null>;
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}
