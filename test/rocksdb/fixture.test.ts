import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { FIXTURES } from '../support/env.js';
import { requireLdb, scanHex } from './support.js';

/**
 * The bundled native fixture's database is made by ksp's own fixture table
 * builder; real RocksDB must open it and list what ksp lists.
 */

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

it('ldb 7.8 opens the bundled native fixture and lists its five entries', () => {
  requireLdb();
  const db = mkdtempSync(join(tmpdir(), 'ksp-fixture-db-'));
  dirs.push(db);
  const incr = join(FIXTURES, 'native', 'shop', 'incr', 'windows', 'task-0');
  cpSync(join(incr, 'sst', '000012.sst'), join(db, '000012.sst'));
  for (const f of ['CURRENT', 'MANIFEST-000005']) cpSync(join(incr, 'epochs', '00000000000000000007', f), join(db, f));
  const lines = scanHex(db);
  expect(lines).toHaveLength(5);
  expect(lines.map((l) => Buffer.from(l.split(' : ')[0]!.slice(2), 'hex').subarray(31).toString())).toEqual(['tw:key-a:60000', 'tw:key-b:120000', 'tw:key-c:180000', 'tw:key-d:240000', 'wm:']);
});
