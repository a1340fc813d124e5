import type { OutputMode } from './target.js';

/**
 * What a mutating command will do, decided before anything is written. The
 * plan is plain data (printed by `--dry-run`, human or `--json`) and frozen;
 * the executor follows it and nothing else.
 */

export type FileAction = 'copy' | 'rewrite' | 'write';

export interface PlannedFile {
  /** Where the file goes (URI). */
  target: string;
  /** Stored path as metadata, pointer or SST manifest will name it. */
  stored: string;
  action: FileAction;
  /** Source file (copy, rewrite). */
  from?: string;
  /** How a rewritten or generated file is made. */
  transform?: string;
  /** Size of the source file, when known. */
  bytes?: number;
}

export interface OperatorPlan {
  /** Operator id in the output. */
  id: string;
  /** Operator id in the source. */
  sourceId: string;
  action: 'copy' | 'rewrite' | 'rescale' | 'remove' | 'convert' | 'import';
  tasksIn: number;
  tasksOut: number;
  routing?: 'state-key' | 'window';
  /** Why the routing was chosen. */
  routingReason?: string;
  version?: { from: string; to: string };
  steps?: string[];
  native?: boolean;
}

/** One operation as recorded in the output's meta.json (`ksp.operations`). */
export type OperationRecord =
  | { op: 'migrate'; operators: Record<string, { from: string; to: string }>; onCollision: string }
  | { op: 'rescale'; parallelism: number; operators: string[]; routing: 'window' | 'state-key' }
  | { op: 'rename'; from: string; to: string }
  | { op: 'remove'; operator: string }
  | { op: 'relocate'; mode: OutputMode }
  | { op: 'import'; rows: string; mode: 'into' | 'like' | 'new'; upserts: number; deletes: number; operators: string[] }
  | { op: 'convert'; to: 'canonical'; ttl_prefix?: 'strip' | 'keep' }
  | { op: 'convert'; to: 'native'; format_version: number; compression: string; checksum: string; block_size: number; bloom_bits: number; sst_size: number };

export interface WritePlan {
  source: string;
  target: string;
  mode: OutputMode;
  /** Why this mode (the default depends on the source and the target), in words. */
  modeReason: string;
  jobId: string;
  epoch: string;
  savepointId: string;
  /** Where meta.json goes. */
  meta: string;
  /** `fencing_token` written to metadata.json. */
  fencingToken: string;
  operations: OperationRecord[];
  operators: OperatorPlan[];
  files: PlannedFile[];
  /** Changes to metadata.json and meta.json, in words. */
  metadata: string[];
  warnings: string[];
  totals: { files: number; copy: { files: number; bytes: number }; rewrite: { files: number; bytes: number }; write: { files: number } };
}

/** Freezes data members all the way down; a member made by a getter (the plan's `files`) is not called. */
export function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const d of Object.values(Object.getOwnPropertyDescriptors(v))) if ('value' in d) deepFreeze(d.value);
  }
  return v;
}
