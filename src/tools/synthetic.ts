import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { join } from 'node:path';
import { buildManifest } from '../formats/manifest/manifest.js';
import { MetadataDoc, epochDirName } from '../formats/metadata/metadata.js';
import { fromPlain } from '../formats/json/json-text.js';
import { encodeStateBin } from '../formats/state-bin/encoder.js';
import type { StateEntry } from '../formats/state-bin/decoder.js';
import { locate } from '../storage/uri.js';

/**
 * Synthetic savepoints for the bench and the kill harness: one operator,
 * `entries` spread over `tasks` tasks, 16-byte keys and ~100-byte msgpack
 * values (what a migration step decodes), in the engine's layout, streamed
 * to disk with its manifest. `fill` supplies the random bytes, so a caller
 * can make the same data on every run.
 */

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

export interface SyntheticOptions {
  job: string;
  operator: string;
  entries: number;
  tasks: number;
  /** Fills a buffer with the random bytes of keys and values. */
  fill: (pool: Buffer) => void;
}

/** Writes the savepoint under `dir` (`{job}/savepoints/{epoch:020}`); returns its directory and the state bytes written. */
export async function writeSyntheticSavepoint(dir: string, o: SyntheticOptions): Promise<{ sp: string; bytes: number }> {
  const epoch = 1n;
  const sp = join(dir, o.job, 'savepoints', epochDirName(epoch));
  const snaps = [];
  const manifest = [];
  const pack = new Packr({ useRecords: false });
  let bytes = 0;
  for (let t = 0; t < o.tasks; t++) {
    const n = Math.floor(o.entries / o.tasks) + (t < o.entries % o.tasks ? 1 : 0);
    const rel = `${o.operator}/task-${t}/state.bin`;
    async function* batches(): AsyncGenerator<StateEntry[]> {
      const B = 8192;
      for (let i = 0; i < n; i += B) {
        const m = Math.min(B, n - i);
        const pool = Buffer.allocUnsafe(m * 80);
        o.fill(pool);
        const batch: StateEntry[] = new Array(m);
        for (let j = 0; j < m; j++) {
          const at = j * 80;
          const value = pack.pack({ n: i + j, sum: (i + j) * 0.5, tag: pool.subarray(at + 16, at + 80) });
          batch[j] = { operatorId: o.operator, stateName: j % 4 === 0 ? 'counts' : 'sessions', key: pool.subarray(at, at + 16), value };
        }
        yield batch;
      }
    }
    const hash = createHash('sha256');
    const out = locate(join(sp, rel));
    await out.storage.write(out.key, (async function* () {
      for await (const c of encodeStateBin(n, batches())) {
        hash.update(c);
        bytes += c.length;
        yield c;
      }
    })());
    manifest.push({ path: rel, sha256: hash.digest('hex') });
    snaps.push({ operator_id: o.operator, task_id: `task-${t}`, snapshot_path: `${o.job}/checkpoints/${epochDirName(epoch)}/${rel}` });
  }
  const md = MetadataDoc.fromJson(fromPlain({
    version: 3, epoch, job_id: o.job, fencing_token: 1, timestamp_ms: 1760000000000, source_offsets: [],
    operator_snapshots: snaps, is_savepoint: true, savepoint_label: o.job,
  })).encode();
  const mdLoc = locate(join(sp, 'metadata.json'));
  await mdLoc.storage.write(mdLoc.key, md);
  manifest.push({ path: 'metadata.json', sha256: createHash('sha256').update(md).digest('hex') });
  const mf = locate(join(sp, 'manifest.sha256'));
  await mf.storage.write(mf.key, buildManifest(manifest));
  return { sp, bytes };
}
