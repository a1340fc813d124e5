import { spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeStateBinToBuffer } from '../../src/formats/state-bin/encoder.js';
import { buildManifest } from '../../src/formats/manifest/manifest.js';
import { MetadataDoc } from '../../src/formats/metadata/metadata.js';
import { fromPlain } from '../../src/formats/json/json-text.js';
import type { StateEntry } from '../../src/formats/state-bin/decoder.js';
import { tempDir } from '../support/env.js';
import { BIN, ksp } from '../support/cli.js';

// Over the 16 MiB below which scans run inline: the built binary uses worker threads here.
const tmp = tempDir();
const SP = join(tmp.path, 'big', 'savepoints', '00000000000000000003');
const TASKS = 3;
const PER_TASK = 60_000;

beforeAll(async () => {
  const manifest = [];
  const snaps = [];
  for (let t = 0; t < TASKS; t++) {
    const pool = randomFillSync(Buffer.alloc(PER_TASK * 116));
    const entries: StateEntry[] = Array.from({ length: PER_TASK }, (_, i) => ({
      operatorId: 'op', stateName: i % 2 ? 'a' : 'b', key: pool.subarray(i * 116, i * 116 + 16), value: pool.subarray(i * 116 + 16, i * 116 + 116),
    }));
    const rel = `op/task-${t}/state.bin`;
    mkdirSync(join(SP, 'op', `task-${t}`), { recursive: true });
    const bytes = await encodeStateBinToBuffer(entries);
    writeFileSync(join(SP, rel), bytes);
    manifest.push({ path: rel, sha256: createHash('sha256').update(bytes).digest('hex') });
    snaps.push({ operator_id: 'op', task_id: `task-${t}`, snapshot_path: `big/checkpoints/00000000000000000003/${rel}` });
  }
  // A version-1 metadata file (no v2/v3 members) is accepted too.
  const md = MetadataDoc.fromJson(fromPlain({ version: 1, epoch: 3, job_id: 'big', fencing_token: 1, timestamp_ms: 1, source_offsets: [], operator_snapshots: snaps, is_savepoint: true, savepoint_label: null })).encode();
  writeFileSync(join(SP, 'metadata.json'), md);
  manifest.push({ path: 'metadata.json', sha256: createHash('sha256').update(md).digest('hex') });
  writeFileSync(join(SP, 'manifest.sha256'), buildManifest(manifest));
});
afterAll(() => tmp.cleanup());

describe('verify and inspect on all cores (worker threads)', () => {
  it('verify gives the full counts, as a file:// URI too', async () => {
    const r = await ksp(['verify', pathToFileURL(SP).href, '--json'], { KSP_THREADS: '2' });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, totals: { files: TASKS + 1, tasks: TASKS, entries: TASKS * PER_TASK } });
  });
  it('inspect summary counts every entry and key group', async () => {
    const r = await ksp(['inspect', SP, '--json'], { KSP_THREADS: '2' });
    const s = JSON.parse(r.stdout);
    expect(s.totals.entries).toBe(TASKS * PER_TASK);
    expect(s.operators[0].keyGroups.distinct).toBeGreaterThan(32000);
  });
  it('a corrupt file found by a worker is reported with its offset', async () => {
    const f = join(SP, 'op', 'task-1', 'state.bin');
    const orig = readFileSync(f);
    const b = Buffer.from(orig);
    // Entries are 151 bytes (8+2, 8+1, 8+16, 8+100): the key length of entry 1000.
    b.writeUInt32LE(0xffffffff, 12 + 1000 * 151 + 19);
    writeFileSync(f, b);
    try {
      const r = await ksp(['verify', SP, '--json'], { KSP_THREADS: '2' });
      expect(r.code).toBe(1);
      const codes = JSON.parse(r.stdout).findings.map((x: { code: string }) => x.code);
      expect(codes).toEqual(expect.arrayContaining(['HASH_MISMATCH', 'STATE_BIN_LENGTH']));
    } finally {
      writeFileSync(f, orig);
    }
  });
});

describe('progress', () => {
  const hasScript = spawnSync('sh', ['-c', 'command -v script'], { encoding: 'utf8' }).stdout.trim() !== '';
  it.skipIf(!hasScript)('is drawn on stderr when it is a terminal', () => {
    const env = { ...process.env };
    delete env.CI;
    const cmd = `stty cols 100; ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} verify ${JSON.stringify(SP)} --threads 1`;
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env });
    // The rate and ETA show after about a second of data (test/cli/progress.test.ts checks them on a larger savepoint);
    // a fast run may end before that, with only the dashes.
    expect(r.stdout).toMatch(/verify · state  [\d.]+ (B|KiB|MiB) \/ [\d.]+ MiB  \d+%  (?:[\d.]+ (KiB|MiB|GiB)\/s  ETA \d|–\/s  ETA –)/);
    expect(r.stdout).toMatch(/(^|\x1b\[K)OK /m); // the progress line is cleared before the report
  });
  it('is never written into pipes', async () => {
    const r = await ksp(['verify', SP, '--threads', '1'], { CI: '' });
    expect(r.stderr).toBe('');
    expect(r.stdout).not.toMatch(/\r/);
  });
});
