import { KspError } from '../errors.js';
import { optionName } from '../option-names.js';
import { epochDirName } from '../formats/metadata/metadata.js';
import { checkId } from '../formats/stored-path.js';
import { checkpointPrefix, engineLayoutOf } from '../model/layout.js';
import type { Savepoint } from '../model/savepoint.js';
import { child, locate, uriOf, type Location } from '../storage/uri.js';

/**
 * Where a written savepoint goes and how its stored paths look
 * (../model/FORMAT.md §1 and §11):
 *
 * - relative: every stored path is relative to the savepoint directory and
 *   every file lives inside it; `meta.json` (with `ksp.mode = "relative"`)
 *   sits in the directory. Copy the directory anywhere and it still verifies.
 * - engine: `{base}/{job}/savepoints/{epoch:020}/`, snapshot paths of the
 *   form `{job}/checkpoints/{epoch:020}/{op}/{task}/state.bin`, native files
 *   under `{base}/{job}/incr/…`, and the record at
 *   `{base}/{job}/savepoints/{savepoint_id}/meta.json`, as the engine lays
 *   them out, so its restore accepts the result as is.
 */

export type OutputMode = 'relative' | 'engine';

export interface TargetOptions {
  mode?: OutputMode;
  jobId?: string;
  epoch?: bigint;
  /** Engine mode: the storage base (else taken from `dst`). */
  base?: string;
}

export interface StoredFile {
  /** The path as stored in metadata, pointer blobs or SST manifests. */
  stored: string;
  location: Location;
  /** Path relative to the savepoint directory, when inside it (manifest form). */
  relPath: string | null;
}

export class Target {
  private constructor(
    readonly mode: OutputMode,
    readonly dir: Location,
    readonly base: Location | null,
    readonly jobId: string,
    readonly epoch: bigint,
    readonly savepointId: string,
    readonly metaLocation: Location,
    /** Why this mode, in words, for the plan (the default depends on the source and the target). */
    readonly modeReason: string,
  ) {}

  get uri(): string {
    return uriOf(this.dir);
  }

  /**
   * Resolves `dst` (and options) against the source. In engine mode `dst` is
   * either the savepoint directory itself, in the engine's layout, or a
   * storage base under which the layout is made.
   */
  static resolve(dst: string | Location | undefined, source: Savepoint, options: TargetOptions = {}): Target {
    const given = dst === undefined ? null : typeof dst === 'string' ? locate(dst) : dst;
    const { mode, reason } = chooseMode(given, source, options);
    let jobId = options.jobId ?? source.jobId;
    let epoch = options.epoch ?? source.epoch;
    if (mode === 'relative') {
      if (options.base !== undefined) throw new KspError('USAGE', '--base applies to engine mode only (relative mode writes everything inside the target directory)');
      if (dst === undefined) throw new KspError('USAGE', 'name the target directory');
      const dir = typeof dst === 'string' ? locate(dst) : dst;
      const spId = source.meta?.value.savepoint_id ?? epoch.toString();
      checkId(jobId, 'job id');
      return new Target(mode, dir, null, jobId, epoch, spId, child(dir, 'meta.json'), reason);
    }
    let dir: Location;
    let base: Location;
    const layout = given ? engineLayoutOf(given) : null;
    if (given && layout && options.base === undefined) {
      if (layout.kind !== 'savepoint') throw new KspError('USAGE', `${uriOf(given)}: a savepoint is written under {job}/savepoints/, not ${layout.kind}s/`);
      if (options.jobId !== undefined && options.jobId !== layout.jobId) throw new KspError('USAGE', `--job-id ${options.jobId} disagrees with the target directory's job ${layout.jobId}`);
      if (options.epoch !== undefined && options.epoch !== layout.epoch) throw new KspError('USAGE', `--epoch ${options.epoch} disagrees with the target directory's epoch ${layout.epoch}`);
      ({ jobId, epoch, base } = { jobId: layout.jobId, epoch: layout.epoch, base: layout.base });
      dir = given;
    } else {
      if (options.base !== undefined && given) {
        throw new KspError('USAGE', 'engine mode: give either the target savepoint directory ({base}/{job}/savepoints/{epoch:020}) or --base, not both');
      }
      const b = options.base !== undefined ? locate(options.base) : given;
      if (!b) throw new KspError('USAGE', 'engine mode: name the target savepoint directory or --base');
      checkId(jobId, 'job id');
      base = b;
      dir = child(base, jobId, 'savepoints', epochDirName(epoch));
    }
    // The engine's record is keyed by savepoint id. A bare number would be
    // listed as a savepoint epoch by the engine's `list_savepoints`, which
    // keeps every folder name that parses as u64 (model FORMAT.md,
    // "Savepoint records"), so the id is `ksp-{epoch}`: never a number, and
    // found by ksp without listing.
    const spId = savepointIdFor(epoch);
    return new Target(mode, dir, base, jobId, epoch, spId, child(base, jobId, 'savepoints', spId, 'meta.json'), reason);
  }

  /** The state file of a task. */
  stateFile(operatorId: string, taskId: string): StoredFile {
    checkId(operatorId, 'operator id');
    checkId(taskId, 'task id');
    const location = child(this.dir, operatorId, taskId, 'state.bin');
    const rel = `${operatorId}/${taskId}/state.bin`;
    const stored = this.mode === 'relative' ? rel : checkpointPrefix(this.jobId, this.epoch) + rel;
    return { stored, location, relPath: rel };
  }

  /**
   * A native task's file: `sub` is `sst/{name}` or `epochs/{epoch:020}/{name}`
   * under the task's incremental folder, as the engine names them.
   */
  nativeFile(operatorId: string, taskId: string, sub: string): StoredFile {
    checkId(operatorId, 'operator id');
    checkId(taskId, 'task id');
    if (this.mode === 'relative') {
      const rel = `incr/${operatorId}/${taskId}/${sub}`;
      return { stored: rel, location: child(this.dir, rel), relPath: rel };
    }
    const stored = `${this.jobId}/incr/${operatorId}/${taskId}/${sub}`;
    return { stored, location: child(this.base!, stored), relPath: null };
  }

  /** Another stored file (unaligned buffers, sink prepare files), kept under `extra/` in the savepoint. */
  extraFile(rel: string): StoredFile {
    const path = `extra/${rel}`;
    const location = child(this.dir, path);
    return { stored: this.mode === 'relative' ? path : checkpointPrefix(this.jobId, this.epoch) + path, location, relPath: path };
  }
}

/**
 * The output mode when none is asked for. A source outside the engine layout
 * gives a relative output. From one in it, the engine layout is kept when the
 * target says so: a savepoint directory in that layout, a storage base named
 * as such (--base, or the source's own base), or an engine identity
 * (--job-id, --epoch). Any other target is taken as the directory the user
 * wants the savepoint in, so the output goes there, self-contained, rather
 * than three folders below it under {job}/savepoints/{epoch}.
 */
function chooseMode(given: Location | null, source: Savepoint, options: TargetOptions): { mode: OutputMode; reason: string } {
  if (options.mode) return { mode: options.mode, reason: `${options.mode} mode, as asked` };
  if (!source.layout) return { mode: 'relative', reason: 'relative mode: the source is not in the engine layout' };
  const engine = (why: string): { mode: OutputMode; reason: string } => ({ mode: 'engine', reason: `engine mode: ${why}` });
  if (options.base !== undefined || given === null) return engine('a storage base is given');
  if (engineLayoutOf(given)) return engine("the target is a savepoint directory in the engine's layout");
  if (options.jobId !== undefined || options.epoch !== undefined) return engine(`a job id or epoch is given, so ${uriOf(given)} is the storage base`);
  if (given.storage === source.layout.base.storage && given.key === source.layout.base.key) return engine("the target is the source's storage base");
  return {
    mode: 'relative',
    reason: `relative mode: the target is not in the engine's layout, so the savepoint is written right there, self-contained (${optionName('modeEngine')} writes it under ${uriOf(given)}/{job}/savepoints/{epoch:020} instead)`,
  };
}

/** True when `inner` is `outer` or below it, in the same storage. */
export function within(inner: Location, outer: Location): boolean {
  if (inner.storage !== outer.storage) return false;
  return outer.key === '' || inner.key === outer.key || inner.key.startsWith(outer.key + '/');
}


/** The savepoint id ksp gives a record it writes in engine mode. */
export function savepointIdFor(epoch: bigint): string {
  return `ksp-${epoch}`;
}
