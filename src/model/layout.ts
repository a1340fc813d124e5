import { parent, nameOf, type Location } from '../storage/uri.js';
import { epochDirName } from '../formats/metadata/metadata.js';

/**
 * The engine's storage layout (FORMAT.md §1):
 *   {base}/{job_id}/checkpoints/{epoch:020}/...
 *   {base}/{job_id}/savepoints/{epoch:020}/...
 */

export interface EngineLayout {
  base: Location;
  jobId: string;
  kind: 'checkpoint' | 'savepoint';
  /** Epoch from the directory name. */
  epoch: bigint;
}

const EPOCH_DIR = /^\d{20}$/;

/** The layout a directory sits in, or null when it is not in the engine's layout. */
export function engineLayoutOf(dir: Location): EngineLayout | null {
  const epochName = nameOf(dir);
  if (!EPOCH_DIR.test(epochName)) return null;
  const kindDir = parent(dir);
  const kindName = nameOf(kindDir);
  if (kindName !== 'checkpoints' && kindName !== 'savepoints') return null;
  const jobDir = parent(kindDir);
  const jobId = nameOf(jobDir);
  if (jobId === '') return null;
  return { base: parent(jobDir), jobId, kind: kindName === 'checkpoints' ? 'checkpoint' : 'savepoint', epoch: BigInt(epochName) };
}

/** `{job}/checkpoints/{epoch:020}/`: the prefix of engine snapshot paths. */
export function checkpointPrefix(jobId: string, epoch: bigint): string {
  return `${jobId}/checkpoints/${epochDirName(epoch)}/`;
}
