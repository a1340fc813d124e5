import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { locate } from '../../src/storage/uri.js';
import { join } from 'node:path';
import { buildSavepoint } from '../write/build.js';
import { entry, treeHashes } from '../write/support.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';

/**
 * A source for distributed runs: two operators, one rescaled with window
 * keys (routed and broadcast entries, a watermark on every task, merged to
 * the minimum) and one left alone (copied), three tasks each.
 */
export async function buildSource(dir: string, perTask = 1500): Promise<void> {
  const windows: StateEntry[][] = [];
  const other: StateEntry[][] = [];
  for (let t = 0; t < 3; t++) {
    const list: StateEntry[] = [];
    for (let i = 0; i < perTask; i++) {
      const g = Buffer.from(`user-${t}-${i}`);
      const key = Buffer.alloc(3 + 4 + g.length + 8);
      key.write('tw:', 0);
      key.writeUInt32LE(g.length, 3);
      g.copy(key, 7);
      key.writeBigInt64LE(BigInt(i * 1000), 7 + g.length);
      list.push(entry('windows', 'sum', key, `v-${t}-${i}`));
      if (i % 100 === 0) list.push(entry('windows', 'misc', `odd-key-${i}`, `same-${i}`));
    }
    const wm = Buffer.alloc(8);
    wm.writeBigInt64LE(BigInt(1000 + t));
    list.push(entry('windows', 'watermark', 'wm:', wm));
    windows.push(list);
    other.push(Array.from({ length: 50 }, (_, i) => entry('agg', 'count', `k-${t}-${i}`, `c-${i}`)));
  }
  await buildSavepoint(dir, [{ id: 'windows', tasks: windows }, { id: 'agg', tasks: other }]);
}

/**
 * Every file with its SHA-256, except meta.json's creation time (the one
 * thing two runs at different seconds differ in) and the manifest's line
 * for meta.json that follows from it.
 */
export function comparableTree(dir: string): Record<string, string> {
  const t = treeHashes(dir);
  if (t['meta.json']) {
    const doc = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Record<string, unknown>;
    delete doc.created_at_secs;
    t['meta.json'] = JSON.stringify(doc);
    if (t['manifest.sha256']) {
      t['manifest.sha256'] = readFileSync(join(dir, 'manifest.sha256'), 'utf8').split('\n').filter((l) => !l.endsWith('  meta.json')).join('\n');
    }
  }
  return t;
}

/** Every object under a prefix with its SHA-256; meta.json without its creation time, and the manifest without meta.json's line. */
export async function objects(uri: string): Promise<Record<string, string>> {
  const d = locate(uri);
  const out: Record<string, string> = {};
  for await (const e of d.storage.list(d.key)) {
    if (e.isPrefix) continue;
    const rel = e.key.slice(d.key.length + 1);
    const bytes = Buffer.from(await d.storage.readSmall(e.key, 1 << 30));
    if (rel === 'meta.json') {
      const doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
      delete doc.created_at_secs;
      out[rel] = JSON.stringify(doc);
    } else if (rel === 'manifest.sha256') {
      out[rel] = bytes.toString('utf8').split('\n').filter((l) => !l.endsWith('  meta.json')).join('\n');
    } else out[rel] = createHash('sha256').update(bytes).digest('hex');
  }
  return out;
}
