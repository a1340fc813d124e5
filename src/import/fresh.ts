import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KspError } from '../errors.js';
import { buildManifest } from '../formats/manifest/manifest.js';
import { checkId } from '../formats/stored-path.js';
import { Savepoint } from '../model/savepoint.js';
import { SavepointWriter } from '../write/writer.js';
import { makeTempDir, removeTempDir } from '../write/temp-dir.js';
import type { RowsSource } from './rows.js';

/**
 * A new savepoint from rows alone (`ksp import rows <dst> --job-id J
 * --epoch N --parallelism P`): the write pipeline reads from a source, so
 * the source is an empty layout made for the purpose (metadata.json with no
 * task, its manifest) in a temporary folder, and the rows are imported over
 * it as the whole state, each operator they name with P tasks. meta.json and
 * the plan name the rows, not the folder.
 */

export interface FreshOptions {
  jobId: string;
  epoch: bigint;
  parallelism: number;
  /** New operators with their own layout (parallelism or task ids). */
  operators?: Record<string, number | string[]>;
  tempDir?: string;
}

export interface FreshImport {
  writer: SavepointWriter;
  /** Removes the empty layout; call once written or planned. */
  dispose(): void;
}

export async function freshImport(rows: RowsSource, options: FreshOptions): Promise<FreshImport> {
  checkId(options.jobId, 'job id');
  if (options.epoch < 0n || options.epoch > 0xffff_ffff_ffff_ffffn) throw new KspError('USAGE', `--epoch must be from 0 to 2^64-1, got ${options.epoch}`);
  const dir = makeTempDir(options.tempDir ?? process.env.KSP_TMPDIR ?? tmpdir(), 'ksp-import-');
  try {
    const metadata = Buffer.from(JSON.stringify({
      version: 3, epoch: Number(options.epoch) <= Number.MAX_SAFE_INTEGER ? Number(options.epoch) : 0, job_id: options.jobId, fencing_token: 1,
      timestamp_ms: Date.now(), source_offsets: [], operator_snapshots: [], is_savepoint: true, savepoint_label: null,
    }, null, 2));
    writeFileSync(join(dir, 'metadata.json'), metadata);
    writeFileSync(join(dir, 'manifest.sha256'), buildManifest([{ path: 'metadata.json', sha256: createHash('sha256').update(metadata).digest('hex') }]));
    const sp = await Savepoint.open(dir);
    const writer = SavepointWriter.from(sp).apply(rows, { mode: 'new', parallelism: options.parallelism, ...(options.operators ? { operators: options.operators } : {}), ...(options.tempDir ? { tempDir: options.tempDir } : {}), sourceLabel: `(new, from ${rows.file.split(/[\\/]/).pop()})` });
    return { writer, dispose: () => removeTempDir(dir) };
  } catch (e) {
    removeTempDir(dir);
    throw e;
  }
}
