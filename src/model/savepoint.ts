import { KspError } from '../errors.js';
import { MetadataDoc } from '../formats/metadata/metadata.js';
import { MetaDoc } from '../formats/meta/meta.js';
import { JsonObject } from '../formats/json/json-text.js';
import type { StateEntry } from '../formats/state-bin/decoder.js';
import { openBody, probeTask, type TaskFormat } from '../formats/task-format/index.js';
import { checkRelativePath, unsafeReason } from '../formats/stored-path.js';
import { relativeTo } from '../storage/paths.js';
import { nativeFileRefs, type ImageOptions } from './native-state.js';
import { child, isAbsoluteUri, locate, nameOf, parent, uriOf, type Location } from '../storage/uri.js';
import { checkpointPrefix, engineLayoutOf, type EngineLayout } from './layout.js';

/**
 * A savepoint or checkpoint directory, opened for reading: its metadata, its
 * savepoint record, where every stored path points, and the entries of its
 * tasks as a stream. Nothing here writes.
 */

export interface TaskRef {
  /** Position in metadata.operator_snapshots. */
  index: number;
  operatorId: string;
  taskId: string;
  /** `snapshot_path` as stored. */
  snapshotPath: string;
  location: Location;
  /** Path relative to the savepoint directory when the file is inside it (the manifest's form), else null. */
  relPath: string | null;
}

/** What a task's file is (src/formats/task-format/probe.ts). */
export type { TaskFormat };

export interface EntryRow extends StateEntry {
  task: TaskRef;
  /** Entry index inside its task's file. */
  index: number;
}

export interface EntryFilter {
  /** Matches the metadata's operator id or the operator id stored in the entry. */
  operator?: string;
  state?: string;
  key?: Uint8Array;
  keyPrefix?: Uint8Array;
  /** Restrict to these tasks (by TaskRef.index). */
  tasks?: ReadonlySet<number>;
}


export type PathMode = 'engine' | 'relative' | 'dir-relative';

export class Savepoint {
  private constructor(
    readonly dir: Location,
    readonly metadata: MetadataDoc,
    readonly meta: MetaDoc | null,
    readonly metaLocation: Location | null,
    readonly layout: EngineLayout | null,
    readonly pathMode: PathMode,
    readonly tasks: readonly TaskRef[],
  ) {}

  get uri(): string {
    return uriOf(this.dir);
  }

  get jobId(): string {
    return this.metadata.value.job_id;
  }

  get epoch(): bigint {
    return this.metadata.value.epoch;
  }

  get kind(): 'checkpoint' | 'savepoint' {
    return this.metadata.value.is_savepoint ? 'savepoint' : 'checkpoint';
  }

  get label(): string | null {
    return this.metadata.value.savepoint_label ?? (this.meta?.value.label || null);
  }

  /** Opens a savepoint/checkpoint directory, or its metadata.json. */
  static async open(target: string | Location): Promise<Savepoint> {
    let dir = typeof target === 'string' ? locate(target) : target;
    if (nameOf(dir) === 'metadata.json') dir = parent(dir);
    const metaFile = child(dir, 'metadata.json');
    const st = await dir.storage.stat(metaFile.key);
    if (!st) {
      throw new KspError('NOT_FOUND', `${uriOf(dir)}: no metadata.json here; expected a savepoint or checkpoint directory ({base}/{job}/savepoints/{epoch:020}/) or its metadata.json`, {
        file: uriOf(metaFile),
      });
    }
    const metadata = MetadataDoc.decode(await dir.storage.readSmall(metaFile.key), uriOf(metaFile));
    const layout = engineLayoutOf(dir);
    const [meta, metaLocation] = await findMeta(dir, layout, metadata);
    const ksp = meta?.doc.get('ksp');
    const relative = ksp instanceof JsonObject && ksp.get('mode') === 'relative';
    const pathMode: PathMode = relative ? 'relative' : layout ? 'engine' : 'dir-relative';
    // Tasks are resolved by the savepoint's own rules, so they are filled in
    // after it exists; nothing else sees it before they are.
    const tasks: TaskRef[] = [];
    const sp = new Savepoint(dir, metadata, meta, metaLocation, layout, pathMode, tasks);
    metadata.value.operator_snapshots.forEach((s, index) => {
      const r = sp.resolve(s.snapshot_path, `operator_snapshots[${index}].snapshot_path`);
      tasks.push({ index, operatorId: s.operator_id, taskId: s.task_id, snapshotPath: s.snapshot_path, ...r });
    });
    return sp;
  }

  /**
   * Where a stored path points. Absolute paths (`/…`, `file://…`, `s3://…`)
   * are used as they are; relative ones follow the engine's rule (strip
   * `{job}/checkpoints/{epoch:020}/` and read from this directory), else
   * resolve against the storage base, or against this directory when there
   * is no base (ksp's relative mode, or a directory moved out of the layout).
   * Unsafe paths are refused, never cleaned.
   */
  resolve(stored: string, field: string): { location: Location; relPath: string | null } {
    const file = uriOf(child(this.dir, 'metadata.json'));
    let location: Location;
    if (isAbsoluteUri(stored)) {
      const body = stored.replace(/^(s3:\/\/[^/]+|file:\/\/)\/?/, '').replace(/^\/+/, '');
      const why = unsafeReason(body);
      if (why) throw new KspError('PATH_UNSAFE', `${file}: ${field} ${JSON.stringify(stored)} is not a safe path: ${why}`, { file, field, found: stored });
      location = locate(stored);
    } else {
      checkRelativePath(stored, { file, field });
      const prefix = checkpointPrefix(this.jobId, this.epoch);
      if (this.pathMode === 'relative') location = child(this.dir, stored);
      else if (stored.startsWith(prefix) && stored.length > prefix.length) location = child(this.dir, stored.slice(prefix.length));
      else if (this.layout) location = child(this.layout.base, stored);
      else location = child(this.dir, stored);
    }
    const relPath = location.storage === this.dir.storage ? relativeTo(this.dir.key, location.key) : null;
    return { location, relPath };
  }

  /** Stat and first bytes of a task's file: canonical (v1/v2), stateless, native, window-join or missing. */
  async probe(task: TaskRef): Promise<TaskFormat> {
    return probeTask(task.location);
  }

  /**
   * Entries of one task, in batches, whatever its body (task-format/): a
   * state.bin decoded as it streams, a native task's live RocksDB entries in
   * key order; a window-join document holds none (it is not key/value state).
   */
  async *taskBatches(task: TaskRef, options: ImageOptions = {}): AsyncGenerator<StateEntry[]> {
    const file = uriOf(task.location);
    const st = await task.location.storage.stat(task.location.key);
    if (!st) throw new KspError('NOT_FOUND', `${file}: state file of ${task.operatorId}/${task.taskId} does not exist`, { file });
    // One read: the body is detected from the first bytes of the same stream.
    const reader = await openBody(task.location.storage.read(task.location.key), st.size, file, {
      native: (pointer) => nativeFileRefs(this, task, pointer),
      checkHashes: options.checkHashes,
      onBytes: options.onBytes,
    });
    yield* reader.batches();
  }

  /** Tasks that can hold entries matching `filter`, before reading any. */
  candidateTasks(filter: EntryFilter = {}): TaskRef[] {
    let tasks = [...this.tasks];
    if (filter.tasks) tasks = tasks.filter((t) => filter.tasks!.has(t.index));
    // The metadata's operator id narrows the tasks when it names one; an id
    // that only appears inside entries needs every task read.
    if (filter.operator !== undefined && tasks.some((t) => t.operatorId === filter.operator)) {
      tasks = tasks.filter((t) => t.operatorId === filter.operator);
    }
    return tasks;
  }

  /** All entries matching `filter`, streamed task by task. */
  async *entries(filter: EntryFilter = {}): AsyncGenerator<EntryRow[]> {
    for (const task of this.candidateTasks(filter)) {
      let index = 0;
      const byTask = filter.operator !== undefined && task.operatorId === filter.operator;
      for await (const batch of this.taskBatches(task)) {
        const rows: EntryRow[] = [];
        for (const e of batch) {
          const i = index++;
          if (filter.operator !== undefined && !byTask && e.operatorId !== filter.operator) continue;
          if (filter.state !== undefined && e.stateName !== filter.state) continue;
          if (filter.key && !Buffer.from(e.key.buffer, e.key.byteOffset, e.key.byteLength).equals(filter.key)) continue;
          if (filter.keyPrefix && !startsWith(e.key, filter.keyPrefix)) continue;
          // An explicit literal (not a spread): this runs once per entry.
          rows.push({ operatorId: e.operatorId, stateName: e.stateName, key: e.key, value: e.value, task, index: i });
        }
        if (rows.length > 0) yield rows;
      }
    }
  }
}

function startsWith(b: Uint8Array, p: Uint8Array): boolean {
  if (b.length < p.length) return false;
  return Buffer.from(b.buffer, b.byteOffset, p.length).equals(p);
}

/**
 * The savepoint record: `meta.json` in the directory itself (ksp writes it
 * there), else in the engine's `{base}/{job}/savepoints/{savepoint_id}/`
 * folder whose record names this epoch.
 */
async function findMeta(dir: Location, layout: EngineLayout | null, md: MetadataDoc): Promise<[MetaDoc | null, Location | null]> {
  const own = child(dir, 'meta.json');
  if (await dir.storage.stat(own.key)) return [MetaDoc.decode(await dir.storage.readSmall(own.key), uriOf(own)), own];
  if (!layout || layout.kind !== 'savepoint') return [null, null];
  const spDir = parent(dir);
  // The id ksp writes (`ksp-{epoch}`, see write/target.ts) and the bare epoch
  // number older ksp versions wrote are tried before listing.
  for (const id of [`ksp-${md.value.epoch}`, md.value.epoch.toString()]) {
    const byEpoch = child(spDir, id, 'meta.json');
    if (!(await byEpoch.storage.stat(byEpoch.key))) continue;
    const meta = MetaDoc.decode(await byEpoch.storage.readSmall(byEpoch.key), uriOf(byEpoch));
    if (meta.value.epoch === md.value.epoch && meta.value.job_id === md.value.job_id) return [meta, byEpoch];
  }
  let fallback: [MetaDoc, Location] | null = null;
  for await (const e of spDir.storage.list(spDir.key, { delimiter: true })) {
    if (!e.isPrefix || /^\d{20}$/.test(nameOf({ storage: spDir.storage, key: e.key }))) continue;
    const loc: Location = { storage: spDir.storage, key: `${e.key}/meta.json` };
    if (!(await loc.storage.stat(loc.key))) continue;
    const meta = MetaDoc.decode(await loc.storage.readSmall(loc.key), uriOf(loc));
    if (meta.value.epoch !== md.value.epoch || meta.value.job_id !== md.value.job_id) continue;
    if (meta.value.label === md.value.savepoint_label) return [meta, loc];
    fallback ??= [meta, loc];
  }
  return fallback ?? [null, null];
}

