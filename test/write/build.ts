import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildManifest } from '../../src/formats/manifest/manifest.js';
import { MetadataDoc } from '../../src/formats/metadata/metadata.js';
import { fromPlain } from '../../src/formats/json/json-text.js';
import { encodeStateBinToBuffer } from '../../src/formats/state-bin/encoder.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';

/** Writes a small relative-layout savepoint (no meta.json) from tasks of entries: what property tests start from. */
export async function buildSavepoint(dir: string, operators: Array<{ id: string; tasks: StateEntry[][] }>): Promise<void> {
  const snaps = [];
  const hashes = [];
  for (const op of operators) {
    for (let i = 0; i < op.tasks.length; i++) {
      const rel = `${op.id}/task-${i}/state.bin`;
      const bytes = await encodeStateBinToBuffer(op.tasks[i]!.length ? op.tasks[i]! : null);
      mkdirSync(join(dir, op.id, `task-${i}`), { recursive: true });
      writeFileSync(join(dir, rel), bytes);
      hashes.push({ path: rel, sha256: createHash('sha256').update(bytes).digest('hex') });
      snaps.push({ operator_id: op.id, task_id: `task-${i}`, snapshot_path: rel });
    }
  }
  const md = MetadataDoc.fromJson(fromPlain({
    version: 3, epoch: 5, job_id: 'prop', fencing_token: 1, timestamp_ms: 1, source_offsets: [],
    operator_snapshots: snaps, is_savepoint: true, savepoint_label: null,
  })).encode();
  writeFileSync(join(dir, 'metadata.json'), md);
  hashes.push({ path: 'metadata.json', sha256: createHash('sha256').update(md).digest('hex') });
  writeFileSync(join(dir, 'manifest.sha256'), buildManifest(hashes));
}
