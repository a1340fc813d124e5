import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach } from 'vitest';
import { Savepoint } from '../../src/model/savepoint.js';
import { tempDir } from '../support/env.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';

/** Every file under `dir` with its SHA-256, relative paths sorted: a snapshot to compare before/after. */
export function treeHashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

export function files(dir: string): string[] {
  return Object.keys(treeHashes(dir));
}

export interface Row {
  operator: string;
  task: string;
  entryOperator: string;
  state: string;
  key: string;
  value: string;
}

/** All entries of a savepoint as comparable rows (hex key and value). */
export async function rows(uri: string, operator?: string): Promise<Row[]> {
  const sp = await Savepoint.open(uri);
  const out: Row[] = [];
  for await (const batch of sp.entries(operator !== undefined ? { operator } : {})) {
    for (const e of batch) out.push({ operator: e.task.operatorId, task: e.task.taskId, entryOperator: e.operatorId, state: e.stateName, key: hex(e.key), value: hex(e.value) });
  }
  return out;
}

/** Rows without task placement, sorted: the multiset of entries. */
export function multiset(r: Row[]): string[] {
  return r.map((x) => `${x.operator}|${x.entryOperator}|${x.state}|${x.key}|${x.value}`).sort();
}

export function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

export function entry(op: string, state: string, key: string | Uint8Array, value: string | Uint8Array): StateEntry {
  return { operatorId: op, stateName: state, key: typeof key === 'string' ? Buffer.from(key) : key, value: typeof value === 'string' ? Buffer.from(value) : value };
}

/** A temp-dir maker for one test file; every directory it made is removed after each test. */
export function useTempDirs(prefix?: string): () => string {
  const cleanups: Array<() => void> = [];
  afterEach(() => { while (cleanups.length) cleanups.pop()!(); });
  return () => {
    const t = tempDir(prefix);
    cleanups.push(t.cleanup);
    return t.path;
  };
}
