import { KspError } from '../errors.js';
import { optionName } from '../option-names.js';
import { MetadataDoc } from '../formats/metadata/metadata.js';
import { MetaDoc } from '../formats/meta/meta.js';
import { JsonObject } from '../formats/json/json-text.js';
import type { StateEntry } from '../formats/state-bin/decoder.js';
import { openBody, probeTask, type TaskFormat } from '../formats/task-format/index.js';
import { checkId, checkRelativePath, idUnsafeReason, unsafeReason } from '../formats/stored-path.js';
import { MANIFEST_NAME } from '../formats/manifest/manifest.js';
import { createHash } from 'node:crypto';
import { eachLimited, ReadRoots } from './read-roots.js';
import { relativeTo } from '../storage/paths.js';
import { nativeFileRefs, type ImageOptions } from './native-state.js';
import { child, isAbsoluteUri, locate, nameOf, parent, uriOf, type Location } from '../storage/uri.js';
import { checkpointPrefix, engineLayoutOf, type EngineLayout } from './layout.js';

/**
 * A task of the metadata. Its file's place is resolved again when asked for
 * (by the same rules, checked when the savepoint was opened), not held: a
 * Location, its key and the relative path were ~110 bytes a task, 22 MB at
 * 200,000 tasks, and a write holds two savepoints (source and the output it
 * re-verifies). Fields other than the metadata's own are private (`#`), so
 * a task copies and prints as plain data.
 */
class Task implements TaskRef {
  readonly #sp: Savepoint;

  constructor(readonly index: number, readonly operatorId: string, readonly taskId: string, readonly snapshotPath: string, sp: Savepoint) {
    this.#sp = sp;
  }

  get location(): Location {
    return this.#sp.placeOf(this.snapshotPath)?.location ?? this.#sp.outsidePlace(this.index);
  }

  get relPath(): string | null {
    return this.#sp.placeOf(this.snapshotPath)?.relPath ?? relPathOf(this.#sp, this.#sp.outsidePlace(this.index));
  }
}

/** A task as a plain object with every field (a Task's place is a getter, which a spread does not copy). */
export function taskData(t: TaskRef): TaskRef {
  return { index: t.index, operatorId: t.operatorId, taskId: t.taskId, snapshotPath: t.snapshotPath, location: t.location, relPath: t.relPath };
}

function relPathOf(sp: Savepoint, loc: Location): string | null {
  return loc.storage === sp.dir.storage ? relativeTo(sp.dir.key, loc.key) : null;
}

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

export interface OpenOptions {
  /** More folders (local or s3://bucket/prefix) the savepoint may read from (`--allow-root`). */
  allowRoots?: readonly string[];
}

export class Savepoint {
  private constructor(
    readonly dir: Location,
    readonly metadata: MetadataDoc,
    readonly meta: MetaDoc | null,
    readonly metaLocation: Location | null,
    readonly layout: EngineLayout | null,
    readonly pathMode: PathMode,
    readonly tasks: readonly TaskRef[],
    /** Where its files may be read from (read-roots.ts). */
    readonly roots: ReadRoots,
    /** SHA-256 of metadata.json as read, to check against the source manifest. */
    readonly metadataSha256: string,
    /** SHA-256 of the meta.json read from the directory itself, else null. */
    readonly metaSha256: string | null = null,
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

  /**
   * Opens a savepoint/checkpoint directory, or its metadata.json. Every file
   * it names is checked against its roots (read-roots.ts) and every operator
   * and task id against the id rule, here, so every command refuses the same
   * things before it reads or plans anything.
   */
  static async open(target: string | Location, options: OpenOptions = {}): Promise<Savepoint> {
    let dir = typeof target === 'string' ? locate(target) : target;
    if (nameOf(dir) === 'metadata.json') dir = parent(dir);
    const metaFile = child(dir, 'metadata.json');
    const layout = engineLayoutOf(dir);
    const roots = await ReadRoots.of(dir, layout, options.allowRoots);
    await roots.checkFile(metaFile, 'metadata.json');
    const st = await dir.storage.stat(metaFile.key);
    if (!st) {
      throw new KspError('NOT_FOUND', `${uriOf(dir)}: no metadata.json here; expected a savepoint or checkpoint directory ({base}/{job}/savepoints/{epoch:020}/) or its metadata.json`, {
        file: uriOf(metaFile),
      });
    }
    const mdBytes = await dir.storage.readSmall(metaFile.key);
    const metadata = MetadataDoc.decode(mdBytes, uriOf(metaFile));
    const mdFile = uriOf(metaFile);
    // The job id is a folder name too ({job}/savepoints/…, {job}/incr/…): every writer
    // refuses one that cannot be (write/target.ts), so every command does, here.
    checkId(metadata.value.job_id, 'job id', { file: mdFile, field: 'job_id' });
    metadata.forEachSnapshot((op, task, _path, i) => {
      // The field names are made only for a refusal: 200,000 tasks, two each.
      if (idUnsafeReason(op)) checkId(op, 'operator id', { file: mdFile, field: `operator_snapshots[${i}].operator_id` });
      if (idUnsafeReason(task)) checkId(task, 'task id', { file: mdFile, field: `operator_snapshots[${i}].task_id` });
    });
    await roots.checkFile(child(dir, MANIFEST_NAME), MANIFEST_NAME);
    const [meta, metaLocation, metaSha] = await findMeta(dir, layout, metadata, roots);
    const ksp = meta?.doc.get('ksp');
    const relative = ksp instanceof JsonObject && ksp.get('mode') === 'relative';
    const pathMode: PathMode = relative ? 'relative' : layout ? 'engine' : 'dir-relative';
    // Tasks are resolved by the savepoint's own rules, so they are filled in
    // after it exists; nothing else sees it before they are.
    const tasks: TaskRef[] = [];
    const sha = createHash('sha256').update(mdBytes).digest('hex');
    const sp = new Savepoint(dir, metadata, meta, metaLocation, layout, pathMode, tasks, roots, sha, metaSha);
    // Operator ids repeat in every task of an operator: one string each.
    const opIds = new Map<string, string>();
    metadata.forEachSnapshot((op, taskId, snapshotPath, index) => {
      let operatorId = opIds.get(op);
      if (operatorId === undefined) opIds.set(op, (operatorId = op));
      const r = sp.resolve(snapshotPath, () => `operator_snapshots[${index}].snapshot_path`);
      // Files outside this folder (absolute stored paths, a storage base) keep their resolved place.
      if (sp.placeOf(snapshotPath) === null) sp.outside.set(index, r.location);
      tasks.push(new Task(index, operatorId, taskId, snapshotPath, sp));
    });
    // The tasks hold every string of the snapshot list now.
    metadata.releaseSnapshots(() => tasks.map((t) => [t.operatorId, t.taskId, t.snapshotPath]));
    // Other stored files: resolved (and refused) now, though only writers copy them.
    const extras: Array<{ location: Location; field: string }> = [];
    metadata.value.unaligned_buffer_refs?.forEach((b, i) => {
      const field = `unaligned_buffer_refs[${i}].buffer_path`;
      if (b.buffer_path !== undefined) extras.push({ location: sp.resolve(b.buffer_path, field).location, field });
    });
    // sink_transactions[].prepare_path is a sink's staging file on an executor,
    // never read from checkpoint storage (metadata FORMAT.md): carried as a
    // string, never resolved, read or copied.
    // In order, so the first refused file is the one reported, whatever the timing.
    const problems: Array<unknown> = [];
    const n = tasks.length;
    await eachLimited(new Array<undefined>(n + extras.length), 32, async (_, i) => {
      const c = i < n ? { location: tasks[i]!.location, field: `operator_snapshots[${i}].snapshot_path` } : extras[i - n]!;
      try {
        await roots.checkFile(c.location, c.field);
      } catch (e) {
        problems[i] = e;
      }
    });
    for (const p of problems) if (p !== undefined) throw p;
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
  resolve(stored: string, fieldName: string | (() => string)): { location: Location; relPath: string | null } {
    let location: Location;
    if (isAbsoluteUri(stored)) {
      const file = uriOf(child(this.dir, 'metadata.json'));
      const field = typeof fieldName === 'string' ? fieldName : fieldName();
      const body = stored.replace(/^(s3:\/\/[^/]+|file:\/\/)\/?/, '').replace(/^\/+/, '');
      const why = unsafeReason(body);
      if (why) throw new KspError('PATH_UNSAFE', `${file}: ${field} ${JSON.stringify(stored)} is not a safe path: ${why}`, { file, field, found: stored });
      location = locate(stored);
      // An absolute path may name any file of the host or any bucket: only
      // those under the savepoint's roots are read.
      if (!this.roots.contains(location)) {
        throw new KspError('PATH_UNSAFE', `${file}: ${field} ${JSON.stringify(stored)} points outside the savepoint's roots (${this.roots.describe()}); refused, pass ${optionName('allowRoot')} to read there`, {
          file, field, found: stored, expected: this.roots.describe(),
        });
      }
    } else {
      // Names made only for a refusal: this runs once per task.
      if (unsafeReason(stored)) checkRelativePath(stored, { file: uriOf(child(this.dir, 'metadata.json')), field: typeof fieldName === 'string' ? fieldName : fieldName() });
      const prefix = checkpointPrefix(this.jobId, this.epoch);
      // Inside this directory the key is its key + the relative path, and
      // the relative path is (a slice of) the stored one: no new copy of
      // either per task (200,000 of them in a large job).
      if (this.pathMode === 'relative') return this.inside(stored);
      if (stored.startsWith(prefix) && stored.length > prefix.length) return this.inside(stored.slice(prefix.length));
      location = this.layout ? child(this.layout.base, stored) : child(this.dir, stored);
    }
    const relPath = location.storage === this.dir.storage ? relativeTo(this.dir.key, location.key) : null;
    return { location, relPath };
  }

  /**
   * Where a stored path inside this directory points, by the relative rules
   * of `resolve` (ksp's relative mode, or the engine's
   * `{job}/checkpoints/{epoch:020}/` prefix), or null for any other path. A
   * task asks again each time rather than keep the answer.
   */
  placeOf(stored: string): { location: Location; relPath: string } | null {
    if (isAbsoluteUri(stored) || unsafeReason(stored)) return null;
    if (this.pathMode === 'relative') return this.inside(stored);
    const prefix = (this.prefix ??= checkpointPrefix(this.jobId, this.epoch));
    if (stored.startsWith(prefix) && stored.length > prefix.length) return this.inside(stored.slice(prefix.length));
    return null;
  }

  private prefix: string | undefined;

  /** Where the tasks whose file lies outside this folder point, by task index (see Task). */
  private readonly outside = new Map<number, Location>();

  outsidePlace(index: number): Location {
    const l = this.outside.get(index);
    if (l === undefined) throw new KspError('INTERNAL', `task ${index}: no resolved place`);
    return l;
  }

  /** A safe relative path inside this directory. */
  private inside(rel: string): { location: Location; relPath: string } {
    this.dirSlash ??= this.dir.key === '' ? '' : `${this.dir.key}/`;
    return { location: { storage: this.dir.storage, key: this.dirSlash + rel }, relPath: rel };
  }

  private dirSlash: string | undefined;

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
    const stream = task.location.storage.read(task.location.key);
    const reader = await openBody(options.onBytes ? counted(stream, options.onBytes) : stream, st.size, file, {
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
  /** `onBytes`: the bytes read, each task's file and a native task's tables (read-bytes.ts sizes them beforehand). */
  async *entries(filter: EntryFilter = {}, options: { onBytes?: (n: number) => void } = {}): AsyncGenerator<EntryRow[]> {
    for (const task of this.candidateTasks(filter)) {
      let index = 0;
      const byTask = filter.operator !== undefined && task.operatorId === filter.operator;
      for await (const batch of this.taskBatches(task, options)) {
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

async function* counted(chunks: AsyncIterable<Uint8Array>, onBytes: (n: number) => void): AsyncGenerator<Uint8Array> {
  for await (const c of chunks) {
    onBytes(c.length);
    yield c;
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
async function findMeta(dir: Location, layout: EngineLayout | null, md: MetadataDoc, roots: ReadRoots): Promise<[MetaDoc | null, Location | null, string | null]> {
  const own = child(dir, 'meta.json');
  await roots.checkFile(own, 'meta.json');
  if (await dir.storage.stat(own.key)) {
    const bytes = await dir.storage.readSmall(own.key);
    return [MetaDoc.decode(bytes, uriOf(own)), own, createHash('sha256').update(bytes).digest('hex')];
  }
  if (!layout || layout.kind !== 'savepoint') return [null, null, null];
  const spDir = parent(dir);
  // The id ksp writes (`ksp-{epoch}`, see write/target.ts) and the bare epoch
  // number older ksp versions wrote are tried before listing.
  for (const id of [`ksp-${md.value.epoch}`, md.value.epoch.toString()]) {
    const byEpoch = child(spDir, id, 'meta.json');
    await roots.checkFile(byEpoch, 'savepoint record meta.json');
    if (!(await byEpoch.storage.stat(byEpoch.key))) continue;
    const meta = MetaDoc.decode(await byEpoch.storage.readSmall(byEpoch.key), uriOf(byEpoch));
    if (meta.value.epoch === md.value.epoch && meta.value.job_id === md.value.job_id) return [meta, byEpoch, null];
  }
  let fallback: [MetaDoc, Location] | null = null;
  for await (const e of spDir.storage.list(spDir.key, { delimiter: true })) {
    if (!e.isPrefix || /^\d{20}$/.test(nameOf({ storage: spDir.storage, key: e.key }))) continue;
    const loc: Location = { storage: spDir.storage, key: `${e.key}/meta.json` };
    await roots.checkFile(loc, 'savepoint record meta.json');
    if (!(await loc.storage.stat(loc.key))) continue;
    const meta = MetaDoc.decode(await loc.storage.readSmall(loc.key), uriOf(loc));
    if (meta.value.epoch !== md.value.epoch || meta.value.job_id !== md.value.job_id) continue;
    if (meta.value.label === md.value.savepoint_label) return [meta, loc, null];
    fallback ??= [meta, loc];
  }
  return fallback ? [...fallback, null] : [null, null, null];
}

