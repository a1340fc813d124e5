import type { Pointer } from '../formats/pointer/pointer.js';
import type { SstManifestDoc } from '../formats/sst-manifest/sst-manifest.js';
import type { TaskRef } from '../model/savepoint.js';
import type { Routing } from '../model/routing.js';
import type { Location } from '../storage/uri.js';
import type { EntryMap, StepCount } from './entry-maps.js';
import type { MigrationSpec } from './units.js';
import type { NativeFile } from '../model/native-files.js';
import type { NativeFileRef } from '../model/native-state.js';
import type { NativeWriteOptions } from './native-output.js';
import type { CollisionPolicy } from './spill.js';
import type { StoredFile } from './target.js';
import type { TtlPrefixMode } from '../formats/task-format/ttl.js';
import type { ImportJobSpec } from '../import/apply.js';

/**
 * `map` as plain data, for a write thread (units.ts `RewriteUnit`): the
 * migrations by module file and versions, then the renames; `counts` are the
 * report's per-step counters, in the order of the steps the migrations run
 * (each chain flattened), which the thread's counts are added to.
 */
export interface RewriteSpec {
  migrations: MigrationSpec[];
  renames: Array<[string, string]>;
  counts: StepCount[];
}

/**
 * `map` as plain data for another process (a distributed shard loads the
 * steps in its main thread, so a TypeScript module too): each migration by
 * its module file and versions, then the renames.
 */
export interface DistMapSpec {
  migrations: MigrationSpec[];
  renames: Array<[string, string]>;
}

/** The executor's units of work, made by the planner; internal, not part of the plan's JSON. */

/** A task to read entries from; a native task carries its RocksDB files, resolved at plan time. */
/** `sha256`: the source manifest's hash of a canonical file, checked as it is read. */
export type SourceTask = TaskRef & { native?: NativeFileRef[]; ttlPrefix?: TtlPrefixMode; sha256?: string };

export interface OutputTask {
  operatorId: string;
  taskId: string;
  file: StoredFile;
}

/**
 * State files of one operator's tasks copied byte for byte into the target
 * layout's state files, in task order: one job for the run of tasks, made
 * into one `copy` job per task only as they are run (each-job.ts). 200,000
 * copy jobs with their output records, held from plan to write, were ~90 MB.
 */
export interface CopyBatch {
  kind: 'copies';
  /** Operator id in the output. */
  operator: string;
  tasks: TaskRef[];
  /** Each task's file size, when known. */
  sizes: Array<number | undefined>;
}

/** A job as the executor runs it: batches made into their copies (each-job.ts). */
export type RunJob = Exclude<Job, CopyBatch>;

export type Job =
  | CopyBatch
  /** A file copied byte for byte (state files untouched by any operation, buffers, prepare files). */
  | { kind: 'copy'; from: Location; out: StoredFile; sha256?: string; size?: number; task?: TaskRef }
  /**
   * One task's entries streamed through `map` into one output file, or, with
   * `native`, into a RocksDB database in the engine's incremental layout.
   * `keysKept`: the map leaves every (operator, state, key) as it was.
   */
  | { kind: 'rewrite'; source: SourceTask; out: OutputTask; map: EntryMap | null; keyChange: boolean; keysKept: boolean; onCollision: CollisionPolicy; native?: NativeWriteOptions; unit?: RewriteSpec; dist?: DistMapSpec }
  /**
   * An operator's tasks re-partitioned into new tasks (native ones with
   * `native`); with routing `moved`, the same tasks with the entries whose
   * key a migration changed moved to their new owners. With `import`, the
   * outputs are written from import rows (import/apply.ts), applied to the
   * sources' entries when it keeps them.
   */
  | { kind: 'repartition'; operator: string; sources: SourceTask[]; outs: OutputTask[]; routing: Routing | 'moved'; map: EntryMap | null; keyChange: boolean; onCollision: CollisionPolicy; native?: NativeWriteOptions; dist?: DistMapSpec; import?: ImportJobSpec }
  /** A native task: its files copied, its SST manifest and pointer rewritten for their new places. */
  | { kind: 'native'; source: TaskRef; pointer: Pointer; manifest: SstManifestDoc; files: Array<NativeFile & { out: StoredFile }>; manifestOut: StoredFile; out: OutputTask };
