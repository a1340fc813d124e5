import { KspError } from '../errors.js';
import { optionName } from '../option-names.js';
import { MetadataDoc } from '../formats/metadata/metadata.js';
import { MetaDoc, SAVEPOINT_FORMAT_VERSION } from '../formats/meta/meta.js';
import { JsonObject, fromPlain, type JsonValue } from '../formats/json/json-text.js';
import type { MigrationRegistry, Step } from '../migrate/registry.js';
import { Savepoint, taskData, type TaskFormat, type TaskRef } from '../model/savepoint.js';
import { attachNative, fileRefs } from '../model/native-state.js';
import { windowGroupKey, isWatermarkKey, type Routing } from '../model/routing.js';
import { scanFiles } from '../model/scan-pool.js';
import type { ScanRequest } from '../model/scan-file.js';
import { child, locate, uriOf, type Location } from '../storage/uri.js';
import { VERSION } from '../version.js';
import { compose, migrationMap, renameMap, type EntryMap, type StepCount } from './entry-maps.js';
import { executePlan, type WriteReport, type ExecuteOptions } from './execute.js';
import { formatNotes } from './format-notes.js';
import type { TtlPrefixMode } from '../formats/task-format/ttl.js';
import { refuseOpaque } from './repartition.js';
import type { CopyBatch, Job, OutputTask, RunJob, SourceTask } from './jobs.js';
import { eachJob } from './each-job.js';
import { nativeFilesOf, type NativeTaskFiles } from '../model/native-files.js';
import { checkSourceIntegrity, type HashLookup } from '../model/source-integrity.js';
import { deepFreeze, type OperationRecord, type OperatorPlan, type PlannedFile, type WritePlan } from './plan.js';
import type { CollisionPolicy } from './spill.js';
import { Target, within, type OutputMode, type StoredFile } from './target.js';
import { SourceGuard, checkTargetEmpty } from './target-files.js';
import { checkNativeFolders } from './native-names.js';
import { MissingFiles } from './missing.js';
import { describeNative, nativeLayout, nativeOptions, type NativeWriteOptions } from './native-output.js';
import { ImportPlanner, type ImportOptions } from '../import/plan.js';
import type { RowsSource } from '../import/rows.js';

/**
 * The write side of the library, in the spirit of Flink's savepoint writer:
 *
 *   const sp = await openSavepoint(src);
 *   await SavepointWriter.from(sp).migrate(registry).rescale(8).renameOperator('a', 'b').write(dst, { mode: 'relative' });
 *
 * Each method returns a new writer with one more operation; nothing touches
 * storage before `plan()` (reads only) or `write()`. Operations apply in the
 * order given: ids named by a later operation are the ids after the earlier
 * ones (rename a→b, then migrate b).
 */

export interface MigrateOptions {
  /** Source version per operator (default: meta.json's operator_versions, else 1). */
  fromVersions?: Record<string, number>;
  /** Target version per operator (default: the highest registered). */
  toVersions?: Record<string, number>;
  onCollision?: CollisionPolicy;
  /**
   * Allow registered steps that match no entry (an operator the savepoint
   * does not have, or a state name no entry carries). Off by default: such a
   * step is almost always a typo, and running it would stamp the new version
   * on data still in the old shape.
   */
  allowUnmatched?: boolean;
}

export interface RescaleOptions {
  /** Operators to rescale (default: every operator holding entries). */
  operators?: string[];
  /**
   * `window` (default) is what the engine's own rescale does: window-layout
   * keys by their group key, everything else broadcast. `state-key` routes
   * every key by itself; the engine never uses it.
   */
  routing?: Routing;
  /** New task ids, `{i}` replaced by 0..N-1 (default: the source's pattern, e.g. `task-{i}`). */
  taskIds?: string;
}

export interface WriteOptions {
  mode?: OutputMode;
  jobId?: string;
  epoch?: bigint;
  base?: string;
  overwrite?: boolean;
  /**
   * `fencing_token` of the output (default 1). The engine refuses a restore
   * whose token is above its live coordinator's, and a fresh cluster's is 1
   * (model FORMAT.md, "Fencing token").
   */
  fencingToken?: bigint;
  /** Take over the target's lock even when its owner cannot be checked (another host); never one whose owner runs here. */
  forceUnlock?: boolean;
  /**
   * Use the source although its manifest.sha256 is missing, malformed or
   * disagrees with a file read (`--trust-source`): each problem becomes a
   * warning, and no hash is taken from the manifest.
   */
  trustSource?: boolean;
  /** Threads for the plan's scan of the source (the census of ids and states); `write` passes its own. */
  threads?: number;
}

type Operation =
  | { kind: 'migrate'; registry: MigrationRegistry; options: MigrateOptions }
  | { kind: 'rescale'; parallelism: number; options: RescaleOptions }
  | { kind: 'rename'; from: string; to: string }
  | { kind: 'remove'; id: string }
  | { kind: 'relocate' }
  | { kind: 'convert'; to: 'canonical' | 'native'; native?: NativeWriteOptions; ttlPrefix?: TtlPrefixMode }
  | { kind: 'import'; rows: string | RowsSource; options: ImportOptions };

/** A plan with what the executor needs; only `plan` is public data. */
export interface PreparedWrite {
  plan: WritePlan;
  source: Savepoint;
  target: Target;
  /**
   * The units of work. The executor lets them go once they ran (and the
   * plan's file list, made from them, with them) unless the report keeps
   * its records: 200,000 tasks' jobs are ~50 MB that the re-verify does not need.
   */
  jobs: Job[];
  metadata: MetadataDoc;
  meta: MetaDoc;
  /**
   * The source manifest's hash of a file, looked up when it is copied: a
   * hex string per copy job held from plan to copy was 16 MB at 200,000 tasks.
   */
  sourceHash: (file: Location) => string | undefined;
  /**
   * Lets the jobs, the output task list and the plan's file list go (the
   * executor calls it once metadata.json is written, when the report keeps
   * no records). Encoding the metadata again after it is an internal error.
   */
  release: () => void;
  /** Replace a non-empty target (checked at plan time otherwise). */
  overwrite: boolean;
  /** Counters of the migration steps, filled as the jobs run. */
  stepCounts: StepCount[];
  forceUnlock: boolean;
  /** The source's directory and files by real path: nothing the run writes or deletes may resolve into them. */
  guard: SourceGuard;
}

export class SavepointWriter {
  private constructor(readonly source: Savepoint, private readonly ops: readonly Operation[]) {}

  static from(sp: Savepoint): SavepointWriter {
    return new SavepointWriter(sp, []);
  }

  private and(op: Operation): SavepointWriter {
    return new SavepointWriter(this.source, [...this.ops, op]);
  }

  migrate(registry: MigrationRegistry, options: MigrateOptions = {}): SavepointWriter {
    return this.and({ kind: 'migrate', registry, options });
  }

  rescale(parallelism: number, options: RescaleOptions = {}): SavepointWriter {
    if (!Number.isSafeInteger(parallelism) || parallelism < 1 || parallelism > 32768) {
      throw new KspError('USAGE', `parallelism must be an integer from 1 to 32768 (the number of key groups), got ${parallelism}`);
    }
    return this.and({ kind: 'rescale', parallelism, options });
  }

  renameOperator(from: string, to: string): SavepointWriter {
    return this.and({ kind: 'rename', from, to });
  }

  removeOperator(id: string): SavepointWriter {
    return this.and({ kind: 'remove', id });
  }

  /** Records a relocation (paths into the chosen mode); every write relocates, this only names it in meta.json. */
  relocate(): SavepointWriter {
    return this.and({ kind: 'relocate' });
  }

  /**
   * `canonical`: native (RocksDB) tasks become `state.bin` files, as the
   * engine would write them on restore and re-snapshot; canonical tasks are
   * copied. `native`: every task holding state becomes a RocksDB database in
   * the engine's incremental layout, written with `options` (defaults: what
   * the engine's RocksDB writes, at format_version 5).
   */
  convert(to: 'canonical' | 'native', options: Partial<NativeWriteOptions> & { ttlPrefix?: TtlPrefixMode } = {}): SavepointWriter {
    // ttlPrefix (task-format/ttl.ts): `strip` drops the 8-byte expiry of TTL'd native values; `keep` (default) is what the engine's own native -> portable step does.
    if (options.ttlPrefix !== undefined && (to !== 'canonical' || !['strip', 'keep'].includes(options.ttlPrefix))) {
      throw new KspError('USAGE', `convert: ttlPrefix ${JSON.stringify(options.ttlPrefix)} applies to convert to canonical only, as 'strip' or 'keep'`, { found: options.ttlPrefix });
    }
    if (to === 'canonical') return this.and({ kind: 'convert', to, ...(options.ttlPrefix ? { ttlPrefix: options.ttlPrefix } : {}) });
    if (to === 'native') return this.and({ kind: 'convert', to, native: nativeOptions(options) });
    throw new KspError('USAGE', `convert: unknown target format ${JSON.stringify(to)} (canonical or native)`, { found: to });
  }

  /**
   * Entries from import rows (`ksp import`; import/rows.ts says which
   * columns): by default applied to the source's entries (upserts, and
   * deletes with a `change` column); with `mode: 'like'` they are the whole
   * state, in the source's task layout. Combines with `convert` only.
   */
  apply(rows: string | RowsSource, options: ImportOptions = {}): SavepointWriter {
    return this.and({ kind: 'import', rows, options });
  }

  /** Reads what it must and returns the plan; writes nothing. */
  async plan(target: string | Location | undefined, options: WriteOptions = {}): Promise<WritePlan> {
    const prepared = await this.prepare(target, options);
    // Rows an import routed for the write go: nothing will write them.
    for (const j of prepared.jobs) if (j.kind === 'repartition') j.import?.routed?.remove();
    return prepared.plan;
  }

  /** Plans, writes state files, metadata, meta.json, the manifest last, then re-verifies the output. */
  async write(target: string | Location | undefined, options: WriteOptions & ExecuteOptions = {}): Promise<WriteReport> {
    const prepared = await this.prepare(target, options);
    return executePlan(prepared, options);
  }

  /** @internal */
  async prepare(dst: string | Location | undefined, options: WriteOptions = {}): Promise<PreparedWrite> {
    return new Planner(this.source, this.ops, dst, options).run();
  }
}

interface SourceOperator {
  id: string;
  tasks: TaskRef[];
}

class Planner {
  private readonly sp: Savepoint;
  private readonly target: Target;
  private readonly warnings: string[] = [];
  private readonly missing = new MissingFiles();
  private formats = new Map<number, TaskFormat>();
  private census: Map<number, Set<string>> | null = null;
  /** Per registered step, what it did; filled while the entries stream (WriteReport.migrations). */
  private readonly stepCounts = new Map<Step, StepCount>();
  /** State names per task (by TaskRef.index), from the same census. */
  private stateCensus = new Map<number, Set<string>>();
  private manifestHashes: HashLookup = new Map<string, string>();

  constructor(sp: Savepoint, private readonly ops: readonly Operation[], dst: string | Location | undefined, private readonly options: WriteOptions) {
    this.sp = sp;
    this.target = Target.resolve(dst, sp, options);
  }

  async run(): Promise<PreparedWrite> {
    const { sp, target } = this;
    this.checkOverlap(sp.dir);
    checkTaskList(sp);
    await this.readSourceManifest();
    await this.probeTasks();

    const operators = this.sourceOperators();
    const opIds = new Set(operators.map((o) => o.id));
    const versions = this.sourceVersions(operators);
    const renames = new Map<string, string>(); // source id -> output id
    const removed = new Set<string>();
    const current = (src: string): string => renames.get(src) ?? src;
    /** The operator ids as named so far (renames applied, removals gone), for errors that list them. */
    const liveIds = (): string[] => [...opIds].filter((o) => !removed.has(o)).map(current);
    const sourceOf = (cur: string, ids: Iterable<string>): string | null => {
      for (const s of ids) if (current(s) === cur && !removed.has(s)) return s;
      return null;
    };
    const migrations: Array<{ operator: string; name: string; module?: string; source?: string; from: number; to: number; chain: ReturnType<MigrationRegistry['chain']>; keyChange: boolean; onCollision: CollisionPolicy }> = [];
    const rescale = new Map<string, { parallelism: number; routing: Routing | undefined; taskIds?: string }>();
    const records: OperationRecord[] = [];
    let convert: 'canonical' | 'native' | null = null;
    let nativeOut: NativeWriteOptions | undefined;

    if (this.ops.some((o) => o.kind === 'rename' || o.kind === 'migrate')) await this.takeCensus();
    const importOp = this.ops.find((o) => o.kind === 'import');
    const imports = importOp ? await ImportPlanner.make(importOp.rows, importOp.options, operators.map((o) => ({ id: o.id, taskIds: o.tasks.map((t) => t.taskId) })), this.ops.map((o) => o.kind)) : null;
    const entryIds = new Set<string>();
    for (const s of this.census?.values() ?? []) for (const id of s) entryIds.add(id);

    for (const op of this.ops) {
      if (op.kind === 'rename') {
        const known = new Set([...opIds, ...entryIds, ...versions.keys()]);
        const src = sourceOf(op.from, known);
        if (src === null) throw new KspError('OPERATOR_UNKNOWN', `rename ${op.from} → ${op.to}: no operator ${JSON.stringify(op.from)} in ${sp.uri} (operators: ${[...opIds].map(current).join(', ')})`, { found: op.from });
        if (op.to !== op.from && sourceOf(op.to, known) !== null) throw new KspError('OPERATOR_EXISTS', `rename ${op.from} → ${op.to}: operator ${JSON.stringify(op.to)} already exists`, { found: op.to });
        if (op.to === '') throw new KspError('USAGE', `rename ${op.from}: the new id must not be empty`);
        renames.set(src, op.to);
        records.push({ op: 'rename', from: op.from, to: op.to });
      } else if (op.kind === 'remove') {
        const src = sourceOf(op.id, opIds);
        if (src === null) throw new KspError('OPERATOR_UNKNOWN', `remove ${op.id}: no operator ${JSON.stringify(op.id)} in the metadata of ${sp.uri} (operators: ${liveIds().join(', ')})`, { found: op.id, expected: liveIds() });
        removed.add(src);
        records.push({ op: 'remove', operator: op.id });
      } else if (op.kind === 'migrate') {
        const done: Record<string, { from: string; to: string }> = {};
        const unmatched: string[] = [];
        for (const name of op.registry.operators) {
          const src = sourceOf(name, opIds);
          if (src === null) {
            unmatched.push(`operator ${JSON.stringify(name)} is not in ${sp.uri} (operators: ${[...opIds].map(current).join(', ')})`);
            continue;
          }
          const from = op.options.fromVersions?.[name] ?? Number(versions.get(src) ?? 1n);
          const to = op.options.toVersions?.[name] ?? op.registry.highest(name)!;
          const chain = op.registry.chain(name, from, to);
          unmatched.push(...this.unmatchedSteps(src, chain));
          for (const step of chain.flat()) this.stepCounts.set(step, { operator: name, step: step.describe, transformed: 0, passed: 0 });
          versions.set(src, BigInt(to));
          done[name] = { from: String(from), to: String(to) };
          if (chain.length === 0) continue;
          migrations.push({ operator: src, name, ...(op.registry.module ? { module: op.registry.module } : {}), ...(op.registry.source ? { source: op.registry.source } : {}), from, to, chain, keyChange: chain.some((l) => l.some((s) => s.kind === 'keyValue')), onCollision: op.options.onCollision ?? 'fail' });
        }
        for (const name of Object.keys({ ...op.options.fromVersions, ...op.options.toVersions })) {
          if (!op.registry.operators.includes(name)) this.warnings.push(`a version is given for operator ${name}, which has no registered steps: ignored`);
        }
        if (unmatched.length && !op.options.allowUnmatched) {
          throw new KspError('MIGRATION_MATCHED_NOTHING', `${unmatched.length} registered migration step(s) match no entry, so nothing was written (a typo in an operator or state name would otherwise stamp the new version on data in the old shape; pass ${optionName('allowUnmatched')} if this is intended):\n  ${unmatched.join('\n  ')}`, { unmatched });
        }
        for (const u of unmatched) this.warnings.push(`allowed by --allow-unmatched: ${u}`);
        records.push({ op: 'migrate', operators: done, onCollision: op.options.onCollision ?? 'fail' });
      } else if (op.kind === 'rescale') {
        const named = op.options.operators?.map((n) => {
          const src = sourceOf(n, opIds);
          if (src === null) throw new KspError('OPERATOR_UNKNOWN', `rescale: no operator ${JSON.stringify(n)} in the metadata of ${sp.uri} (operators: ${liveIds().join(', ')})`, { found: n, expected: liveIds() });
          return src;
        });
        const chosen = named ?? operators.filter((o) => !removed.has(o.id) && o.tasks.some((t) => this.formats.get(t.index)!.kind !== 'stateless')).map((o) => o.id);
        for (const id of chosen) rescale.set(id, { parallelism: op.parallelism, routing: op.options.routing, taskIds: op.options.taskIds });
        records.push({ op: 'rescale', parallelism: op.parallelism, operators: chosen.map(current), routing: op.options.routing ?? 'window' });
      } else if (op.kind === 'convert') {
        convert = op.to;
        nativeOut = op.native;
        const n = op.native;
        records.push(n ? { op: 'convert', to: 'native', format_version: n.formatVersion, compression: n.compression, checksum: n.checksum, block_size: n.blockSize, bloom_bits: n.bloomBits, sst_size: n.sstSize } : { op: 'convert', to: 'canonical', ...(op.ttlPrefix ? { ttl_prefix: op.ttlPrefix } : {}) });
      } else if (op.kind === 'import') {
        records.push(imports!.record());
      } else {
        records.push({ op: 'relocate', mode: target.mode });
      }
    }

    // Operators, in metadata order, and their jobs.
    const rename = renames.size ? renameMap(renames) : null;
    const jobs: Job[] = [];
    const opPlans: OperatorPlan[] = [];
    // In metadata order; a batch of copied tasks stands for its tasks.
    const outTasks: Array<OutputTask | CopyBatch> = [];
    for (const o of operators) {
      const outId = current(o.id);
      if (removed.has(o.id)) {
        opPlans.push({ id: outId, sourceId: o.id, action: 'remove', tasksIn: o.tasks.length, tasksOut: 0 });
        continue;
      }
      const mig = migrations.filter((m) => m.operator === o.id);
      const migMap = mig.length ? compose(mig.map((m) => migrationMap(m.chain, this.stepCounts))) : null;
      const keyChange = mig.some((m) => m.keyChange);
      const onCollision = mig.find((m) => m.keyChange)?.onCollision ?? 'fail';
      const plan: OperatorPlan = { id: outId, sourceId: o.id, action: 'copy', tasksIn: o.tasks.length, tasksOut: o.tasks.length };
      if (mig.length) {
        plan.version = { from: String(mig[0]!.from), to: String(mig[mig.length - 1]!.to) };
        plan.steps = mig.flatMap((m) => m.chain.flat().map((s) => s.describe));
      }
      const native = o.tasks.filter((t) => this.formats.get(t.index)!.kind === 'native');
      if (native.length) plan.native = true;
      const rs = rescale.get(o.id);
      const entryRenamed = (t: TaskRef): boolean => rename !== null && [...(this.census?.get(t.index) ?? [])].some((id) => renames.has(id));
      const touched = (t: TaskRef): boolean => {
        const kind = this.formats.get(t.index)!.kind;
        // A 0-byte source file becomes the 12-byte empty snapshot the engine can decode.
        if (kind === 'stateless') return this.formats.get(t.index)!.size === 0;
        if (kind === 'native') return convert !== null || migMap !== null || outId !== o.id || entryRenamed(t);
        // A v2 file is rewritten as v1: the engine's restore decodes v1 only (task-format FORMAT.md).
        const v2 = (this.formats.get(t.index) as { version?: number }).version === 2;
        return kind === 'canonical' && (v2 || convert === 'native' || migMap !== null || entryRenamed(t));
      };
      const toNative = convert === 'native' ? nativeOut : undefined;
      if (imports?.touches(o.id)) {
        const outs = o.tasks.map((t) => ({ operatorId: outId, taskId: t.taskId, file: target.stateFile(outId, t.taskId) }));
        const sources = imports.keepSource ? await Promise.all(o.tasks.map((t) => this.sourceTask(t))) : [];
        jobs.push(imports.job(outId, sources, outs, toNative));
        outTasks.push(...outs);
        opPlans.push({ ...plan, action: 'import' });
        continue;
      }
      // The map as plain data for distributed shards (write/distributed/), when every step can be loaded again from its module file.
      const dist = (migMap !== null || rename !== null) && mig.every((m) => m.source !== undefined)
        ? { dist: { migrations: mig.map((m) => ({ module: m.source!, operator: m.name, from: m.from, to: m.to })), renames: [...renames] } }
        : {};
      if (rs) {
        const routing = rs.routing ?? 'window';
        const reason = rs.routing === undefined ? "the engine's own routing" : routing === 'window' ? "as asked; the engine's own routing" : 'as asked; the engine itself never routes by state key';
        if (routing === 'window') await this.warnBroadcast(o);
        const ids = newTaskIds(o, rs.parallelism, rs.taskIds);
        const outs = ids.map((taskId) => ({ operatorId: outId, taskId, file: target.stateFile(outId, taskId) }));
        const sources = await Promise.all(o.tasks.map((t) => this.sourceTask(t)));
        jobs.push({ kind: 'repartition', operator: outId, sources, outs, routing, map: compose([migMap, rename].filter((m): m is EntryMap => m !== null)), keyChange, onCollision, ...(toNative ? { native: toNative } : {}), ...dist });
        outTasks.push(...outs);
        Object.assign(plan, { action: 'rescale', tasksOut: rs.parallelism, routing, routingReason: reason });
      } else if (keyChange && o.tasks.some((t) => this.formats.get(t.index)!.kind !== 'stateless')) {
        // Keys a migration changes can leave their task's key-group range:
        // the operator's tasks are re-partitioned in place, moving only the
        // entries whose key changed (repartition.ts, routing "moved").
        const outs = o.tasks.map((t) => ({ operatorId: outId, taskId: t.taskId, file: target.stateFile(outId, t.taskId) }));
        const sources = await Promise.all(o.tasks.map((t) => this.sourceTask(t)));
        jobs.push({ kind: 'repartition', operator: outId, sources, outs, routing: 'moved', map: compose([migMap, rename].filter((m): m is EntryMap => m !== null)), keyChange, onCollision, ...(toNative ? { native: toNative } : {}), ...dist });
        outTasks.push(...outs);
        plan.action = 'rewrite';
      } else {
        // Tasks copied as they are: one batch per run of them (eachJob makes its copies when run).
        let batch: CopyBatch | null = null;
        for (const t of o.tasks) {
          const f = this.formats.get(t.index)!;
          if (!touched(t) && f.kind !== 'native') {
            if (batch === null) {
              batch = { kind: 'copies', operator: outId, tasks: [], sizes: [] };
              jobs.push(batch);
              outTasks.push(batch);
            }
            batch.tasks.push(t);
            batch.sizes.push(f.size);
            continue;
          }
          batch = null;
          const out: OutputTask = { operatorId: outId, taskId: t.taskId, file: target.stateFile(outId, t.taskId) };
          outTasks.push(out);
          if (touched(t)) {
            const map = compose([migMap, rename].filter((m): m is EntryMap => m !== null));
            const native = toNative && f.kind !== 'stateless' ? { native: toNative } : {};
            // The same map as plain data, when every step can be loaded again from its module (write/units.ts).
            const unit = mig.every((m) => m.module !== undefined)
              ? { unit: { migrations: mig.map((m) => ({ module: m.module!, operator: m.name, from: m.from, to: m.to })), renames: [...renames], counts: mig.flatMap((m) => m.chain.flat().map((s) => this.stepCounts.get(s)!)) } }
              : {};
            jobs.push({ kind: 'rewrite', source: await this.sourceTask(t), out, map, keyChange, keysKept: rename === null && !keyChange, onCollision, ...native, ...unit, ...dist });
            if (f.kind !== 'stateless') plan.action = map === null ? 'convert' : 'rewrite';
          } else if (f.kind === 'native') {
            jobs.push(await this.nativeJob(t, f.pointer, out));
          }
        }
      }
      opPlans.push(plan);
    }

    // New operators the import adds, in the order the rows name them, each with its layout.
    for (const n of imports?.newOperators() ?? []) {
      const outs = n.taskIds.map((taskId) => ({ operatorId: n.id, taskId, file: target.stateFile(n.id, taskId) }));
      jobs.push(imports!.job(n.id, [], outs, convert === 'native' ? nativeOut : undefined));
      outTasks.push(...outs);
      versions.set(n.id, 1n);
      opPlans.push({ id: n.id, sourceId: n.id, action: 'import', tasksIn: 0, tasksOut: outs.length, ...(convert === 'native' ? { native: true } : {}) });
    }

    const extras = this.extraFiles(removed, current);
    jobs.push(...extras.jobs);
    if (this.missing.length) {
      throw this.missing.error();
    }
    for (const j of eachJob(jobs, target)) this.checkOverlapJob(j);
    const guard = this.guardSource(jobs);
    await this.checkTargetEmpty();
    const nativeNotes = await checkNativeFolders(target, jobs, this.options.overwrite ?? false);
    this.warnings.push(...nativeNotes);

    // Everything the executor keeps is made outside this method (assemble):
    // a closure made here would keep the planner's scope, and with it its
    // per-task records (formats, census, the source manifest's hashes).
    const changes = {
      job_id: target.jobId,
      epoch: target.epoch,
      is_savepoint: true,
      savepoint_label: this.sp.label,
      fencing_token: this.fencingToken,
      unaligned_buffer_refs: extras.buffers,
      sink_transactions: extras.sinks,
    };
    const outVersions = new Map<string, bigint>();
    for (const [id, v] of versions) if (!removed.has(id)) outVersions.set(current(id), v);
    const meta = this.buildMeta(outVersions, records, imports?.sourceLabel);
    const plan = {
      source: imports?.sourceLabel ?? sp.uri, target: target.uri, mode: target.mode, modeReason: target.modeReason, jobId: target.jobId, epoch: target.epoch.toString(), savepointId: target.savepointId,
      meta: uriOf(target.metaLocation), fencingToken: this.fencingToken.toString(), operations: records, operators: opPlans,
      files: [] as PlannedFile[],
      metadata: this.describeMetadata(outVersions, renames, removed),
      warnings: this.warnings,
      totals: planTotals(jobs, target),
    } satisfies WritePlan;
    return assemble(plan, { source: sp, target, jobs, meta, overwrite: this.options.overwrite ?? false, stepCounts: [...this.stepCounts.values()], forceUnlock: this.options.forceUnlock ?? false, guard }, changes, outTasks, this.manifestHashes);
  }

  private sourceOperators(): SourceOperator[] {
    const byId = new Map<string, SourceOperator>();
    for (const t of this.sp.tasks) {
      let o = byId.get(t.operatorId);
      if (!o) byId.set(t.operatorId, (o = { id: t.operatorId, tasks: [] }));
      o.tasks.push(t);
    }
    return [...byId.values()];
  }

  private sourceVersions(operators: SourceOperator[]): Map<string, bigint> {
    const v = new Map<string, bigint>();
    if (this.sp.meta) for (const [k, x] of this.sp.meta.operatorVersions()) v.set(k, x);
    // Without a record, every operator is at version 1: the engine's current schema version.
    for (const o of operators) if (!v.has(o.id)) v.set(o.id, 1n);
    return v;
  }

  private async probeTasks(): Promise<void> {
    const tasks = [...this.sp.tasks];
    let i = 0;
    const worker = async (): Promise<void> => {
      while (i < tasks.length) {
        const t = tasks[i++]!;
        const f = await this.sp.probe(t);
        this.formats.set(t.index, f);
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, tasks.length) }, worker));
    this.warnings.push(...formatNotes(this.sp.tasks, this.formats, this.stripsTtl()));
    // In metadata order, so the first named is the first missing.
    for (const t of tasks) if (this.formats.get(t.index)!.kind === 'missing') this.missing.push(`${uriOf(t.location)} (state of ${t.operatorId}/${t.taskId})`);
  }

  /** The source's integrity first (model/source-integrity.ts); its hashes check each state file as it is read. */
  private async readSourceManifest(): Promise<void> {
    const r = await checkSourceIntegrity(this.sp, this.options.trustSource === true);
    this.warnings.push(...r.warnings);
    this.manifestHashes = r.hashes;
  }

  /** The output's fencing token: as given, else 1, which a fresh cluster accepts. */
  private get fencingToken(): bigint {
    const t = this.options.fencingToken ?? 1n;
    if (t < 1n || t > 0xffff_ffff_ffff_ffffn) throw new KspError('USAGE', `--fencing-token must be from 1 to 2^64-1 (the engine refuses 0), got ${t}`, { found: t.toString() });
    return t;
  }

  private knownHash(loc: Location): string | undefined {
    return this.manifestHashes.get(uriOf(loc));
  }

  /** Operator ids inside each canonical task's entries (needed to rename ids that live only in entries). */
  private async takeCensus(): Promise<void> {
    const tasks = this.sp.tasks.filter((t) => ['canonical', 'native'].includes(this.formats.get(t.index)!.kind));
    const reqs: ScanRequest[] = tasks.map((t) => ({ uri: uriOf(t.location), size: this.formats.get(t.index)!.size, hash: false, decode: true, keyGroups: false }));
    const nativeErrors = await attachNative(this.sp, reqs.map((req, i) => ({ req, task: tasks[i] })), false);
    for (const e of nativeErrors.values()) throw e;
    const results = await scanFiles(reqs, { threads: this.options.threads });
    this.census = new Map();
    results.forEach((r, i) => {
      if (r.error) throw new KspError(r.error.code as never, r.error.message, r.error.data);
      this.census!.set(tasks[i]!.index, new Set(r.states.map((s) => s.operator)));
      this.stateCensus.set(tasks[i]!.index, new Set(r.states.map((s) => s.state)));
    });
  }

  /**
   * Window routing broadcasts every key outside the window layouts to every
   * new task, as the engine's rescale does; when the operator's first
   * entries show such keys, the plan says so (they are copied p times, and
   * differing values for one key fail the run).
   */
  private async warnBroadcast(o: SourceOperator): Promise<void> {
    let window = 0;
    let other = 0;
    for (const t of o.tasks) {
      const kind = this.formats.get(t.index)!.kind;
      if (kind !== 'canonical' && kind !== 'native') continue;
      let seen = 0;
      for await (const batch of this.sp.taskBatches(t, { checkHashes: false })) {
        for (const e of batch) {
          if (isWatermarkKey(e.key)) continue;
          if (windowGroupKey(e.key)) window++;
          else other++;
          if (++seen >= 512) break;
        }
        break;
      }
    }
    if (other > 0) {
      this.warnings.push(`operator ${o.id}: ${other} of ${window + other} sampled keys are not in a tw:/sw:/ses: window layout; window routing (the engine's) broadcasts them to every new task, as the engine's own rescale would. Use --routing state-key to route them by key instead (the engine never does)`);
    }
  }

  /** Steps of `chain` that match no entry of operator `src` (by the census of state names). */
  private unmatchedSteps(src: string, chain: Step[][]): string[] {
    const states = new Set<string>();
    for (const t of this.sp.tasks) if (t.operatorId === src) for (const s of this.stateCensus.get(t.index) ?? []) states.add(s);
    const out: string[] = [];
    for (const step of chain.flat()) {
      if (states.size === 0) out.push(`step ${step.describe}: operator ${JSON.stringify(src)} holds no entries`);
      else if (step.state !== undefined && !states.has(step.state)) out.push(`step ${step.describe}: no entry of operator ${JSON.stringify(src)} has state ${JSON.stringify(step.state)} (states: ${[...states].join(', ')})`);
    }
    return out;
  }

  /** A native task's file list, each file checked to exist (missing ones are collected, not thrown). */
  private async nativeFiles(t: TaskRef, pointer: { manifestPath: string }): Promise<NativeTaskFiles | null> {
    const nf = await nativeFilesOf(this.sp, t, pointer, this.missing);
    if (!nf) return null;
    await Promise.all(nf.files.map(async (f) => {
      if (!(await f.location.storage.stat(f.location.key))) this.missing.push(`${uriOf(f.location)} (${f.filename} of ${t.operatorId}/${t.taskId})`);
    }));
    return nf;
  }

  /** A task to read entries from: native tasks carry their resolved RocksDB files. */
  private async sourceTask(t: TaskRef): Promise<SourceTask> {
    const f = this.formats.get(t.index)!;
    // Refused at plan time, before anything is written (repartition.ts refuseOpaque says why).
    if (f.kind === 'window-join') throw refuseOpaque(t, uriOf(t.location), 'rescale');
    // Checked against the source manifest as it is read (repartition.ts openTask).
    if (f.kind !== 'native') return { ...taskData(t), sha256: this.knownHash(t.location) };
    const nf = await this.nativeFiles(t, f.pointer);
    if (!nf) return t;
    return { ...taskData(t), native: fileRefs(nf.files), ...(this.stripsTtl() ? { ttlPrefix: 'strip' as const } : {}) };
  }

  private stripsTtl(): boolean {
    return this.ops.some((o) => o.kind === 'convert' && o.ttlPrefix === 'strip');
  }

  private async nativeJob(t: TaskRef, pointer: { manifestPath: string }, out: OutputTask): Promise<Job> {
    const nf = await this.nativeFiles(t, pointer);
    const { target } = this;
    if (!nf) return { kind: 'copy', from: t.location, out: out.file, task: t };
    const files = nf.files.map((f) => ({ ...f, out: target.nativeFile(out.operatorId, out.taskId, f.kind === 'sst' ? `sst/${f.filename}` : `${nf.epochDir}/${f.filename}`) }));
    const manifestOut = target.nativeFile(out.operatorId, out.taskId, `${nf.epochDir}/sst_manifest.json`);
    return { kind: 'native', source: t, pointer: nf.pointer, manifest: nf.manifest, files, manifestOut, out };
  }

  /**
   * Unaligned buffers: copied into the savepoint, their paths rewritten.
   * Sink transactions are carried unchanged: `prepare_path` names the sink's
   * own staging file on an executor (usually absolute), which the engine uses
   * as the transaction's key and never reads from checkpoint storage
   * (metadata FORMAT.md, "sink_transactions"), so ksp never reads, copies or
   * rewrites it.
   */
  private extraFiles(removed: Set<string>, current: (s: string) => string): { jobs: Job[]; buffers: JsonValue[] | undefined; sinks: JsonValue[] | undefined } {
    const jobs: Job[] = [];
    const rewrite = (list: JsonValue | undefined, field: string, pathField: string, keep: (o: JsonObject) => boolean, edit: (o: JsonObject) => JsonObject): JsonValue[] | undefined => {
      if (!Array.isArray(list)) return undefined;
      const out: JsonValue[] = [];
      list.forEach((v, i) => {
        let o = v as JsonObject;
        if (!keep(o)) return;
        o = edit(o);
        const p = o.get(pathField);
        if (typeof p === 'string') {
          const r = this.sp.resolve(p, `${field}[${i}].${pathField}`);
          const rel = r.relPath ?? `${field}/${i}/${r.location.key.split('/').pop()}`;
          const outFile = this.target.extraFile(rel);
          jobs.push({ kind: 'copy', from: r.location, out: outFile });
          o = o.with(pathField, outFile.stored);
        }
        out.push(o);
      });
      return out.length ? out : undefined;
    };
    const doc = this.sp.metadata.doc;
    const buffers = rewrite(doc.get('unaligned_buffer_refs'), 'unaligned_buffer_refs', 'buffer_path',
      (o) => !removed.has(o.get('operator_id') as string),
      (o) => o.with('operator_id', current(o.get('operator_id') as string)));
    const sinks = doc.get('sink_transactions');
    return { jobs, buffers, sinks: Array.isArray(sinks) && sinks.length ? sinks : undefined };
  }

  private buildMeta(versions: Map<string, bigint>, operations: OperationRecord[], sourceLabel?: string): MetaDoc {
    const { target, sp } = this;
    const ksp = { version: VERSION, mode: target.mode, source: sourceLabel ?? sp.uri, ...(sp.meta ? { source_savepoint_id: sp.meta.value.savepoint_id } : {}), operations };
    const base = sp.meta?.doc ?? new JsonObject();
    let doc = base
      .with('format_version', fromPlain(SAVEPOINT_FORMAT_VERSION))
      .with('savepoint_id', target.savepointId)
      .with('label', sp.label ?? '')
      .with('job_id', target.jobId)
      .with('epoch', fromPlain(target.epoch))
      .with('operator_versions', fromPlain(versions))
      .with('created_at_secs', fromPlain(Math.floor(Date.now() / 1000)));
    doc = doc.with('ksp', fromPlain(ksp));
    return MetaDoc.fromJson(doc, uriOf(target.metaLocation));
  }

  private describeMetadata(versions: Map<string, bigint>, renames: Map<string, string>, removed: Set<string>): string[] {
    const md = this.sp.metadata.value;
    const t = this.target;
    const lines: string[] = [];
    if (t.jobId !== md.job_id) lines.push(`job_id ${md.job_id} → ${t.jobId}`);
    if (t.epoch !== md.epoch) lines.push(`epoch ${md.epoch} → ${t.epoch}`);
    if (!md.is_savepoint) lines.push('is_savepoint false → true');
    if (md.fencing_token !== this.fencingToken) lines.push(`fencing_token ${md.fencing_token} → ${this.fencingToken} (the engine refuses a token above its live coordinator's; a fresh cluster's is 1)`);
    else lines.push(`fencing_token ${md.fencing_token} (kept)`);
    lines.push(`snapshot paths in ${t.mode} form${t.mode === 'engine' ? ` (${t.jobId}/checkpoints/…/{op}/{task}/state.bin)` : ' ({op}/{task}/state.bin)'}`);
    for (const [a, b] of renames) lines.push(`operator ${a} → ${b} (metadata, entries, operator_versions)`);
    for (const r of removed) lines.push(`operator ${r} removed`);
    const before = this.sp.meta?.operatorVersions();
    for (const [id, v] of versions) {
      const src = [...renames].find(([, b]) => b === id)?.[0] ?? id;
      const old = before?.get(src);
      if (old !== v) lines.push(`operator_versions.${id}: ${old ?? '(none)'} → ${v}`);
    }
    lines.push(`meta.json at ${uriOf(t.metaLocation)} with ksp ${VERSION} provenance`);
    return lines;
  }

  private checkOverlap(srcDir: Location): void {
    const t = this.target.dir;
    if (within(t, srcDir) || within(srcDir, t)) {
      throw new KspError('TARGET_OVERLAPS_SOURCE', `${uriOf(t)}: the target overlaps the source ${uriOf(srcDir)}; the source is never written, so choose a target outside it`, { file: uriOf(t) });
    }
  }

  private checkOverlapJob(j: RunJob): void {
    const sources: Location[] = j.kind === 'copy' ? [j.from] : j.kind === 'rewrite' ? [j.source.location] : j.kind === 'repartition' ? j.sources.map((s) => s.location) : [j.source.location, ...j.files.map((f) => f.location)];
    for (const s of sources) {
      if (within(s, this.target.dir)) throw new KspError('TARGET_OVERLAPS_SOURCE', `${uriOf(s)}: a source file lies inside the target ${this.target.uri}`, { file: uriOf(s) });
    }
  }

  private async checkTargetEmpty(): Promise<void> {
    if (this.options.overwrite) return;
    await checkTargetEmpty(this.target.dir, this.target.metaLocation, { forceUnlock: this.options.forceUnlock });
  }

  /**
   * Overlap by real path on local disk (symlinks, symlinked parent folders):
   * the target directory, the savepoint record and every file the run would
   * write must not resolve into the source directory or onto a source file.
   * A native table the target layout names at the very path the source
   * uses (engine mode, same base and job) is shared, not written.
   */
  private guardSource(jobs: Job[]): SourceGuard {
    const sources: Location[] = [];
    for (const j of eachJob(jobs, this.target)) {
      if (j.kind === 'copy') sources.push(j.from);
      else if (j.kind === 'rewrite') sources.push(j.source.location, ...(j.source.native?.map((f) => locate(f.uri)) ?? []));
      else if (j.kind === 'repartition') for (const s of j.sources) sources.push(s.location, ...(s.native?.map((f) => locate(f.uri)) ?? []));
      else sources.push(j.source.location, ...j.files.map((f) => f.location));
    }
    const guard = new SourceGuard(this.sp.dir, sources);
    guard.assertTargetApart(this.target.dir);
    guard.assertNotSource(this.target.metaLocation, 'write');
    for (const j of eachJob(jobs, this.target)) {
      const outs: Location[] = j.kind === 'copy' ? [j.out.location] : j.kind === 'rewrite' ? [j.out.file.location] : j.kind === 'repartition' ? j.outs.map((o) => o.file.location) : [j.manifestOut.location, j.out.file.location];
      if (j.kind === 'native') for (const f of j.files) if (!(f.location.storage === f.out.location.storage && f.location.key === f.out.location.key)) outs.push(f.out.location);
      for (const o of outs) guard.assertNotSource(o, 'write');
    }
    return guard;
  }
}


/**
 * Totals counted file by file; the list itself is made when read (the
 * plan's `files`, from the jobs): 200,000 planned files with two URIs each
 * were ~60 MB held for the whole write.
 */
function planTotals(jobs: Job[], target: Target): WritePlan['totals'] {
  const totals: WritePlan['totals'] = { files: 2 + (target.metaLocation.key.startsWith(target.dir.key + '/') ? 1 : 0), copy: { files: 0, bytes: 0 }, rewrite: { files: 0, bytes: 0 }, write: { files: 0 } };
  for (const j of eachJob(jobs, target)) {
    for (const f of plannedFiles(j, target)) {
      totals.files++;
      if (f.action === 'write') totals.write.files++;
      else {
        totals[f.action].files++;
        totals[f.action].bytes += f.bytes ?? 0;
      }
    }
  }
  return totals;
}

/**
 * The prepared write, with its lazy parts: the output metadata's snapshot
 * list made from the output tasks when encoded (not 200,000 JSON objects
 * held from plan to write), the plan's file list made from the jobs when
 * read, and the source manifest's hashes looked up when a file is copied.
 */
function assemble(plan: WritePlan, parts: Omit<PreparedWrite, 'plan' | 'metadata' | 'sourceHash' | 'release'>, changes: Record<string, unknown>, outTasks: Array<OutputTask | CopyBatch>, sourceHashes: HashLookup): PreparedWrite {
  let released = false;
  let hashes: HashLookup | null = sourceHashes;
  // Closures here name only what they need: one naming `parts` would keep its job list.
  const target = parts.target;
  const metadata = parts.source.metadata.withSnapshots(changes, function* () {
    if (released) throw new KspError('INTERNAL', 'the output metadata was asked for after the write let its task list go');
    for (const t of outTasks) {
      if ('kind' in t) for (const x of t.tasks) yield [t.operator, x.taskId, target.stateFile(t.operator, x.taskId).stored];
      else yield [t.operatorId, t.taskId, t.file.stored];
    }
  });
  const prepared: PreparedWrite = {
    plan, metadata, ...parts,
    sourceHash: (loc) => hashes?.get(uriOf(loc)),
    release: () => {
      released = true;
      hashes = null;
      prepared.jobs = [];
      outTasks.length = 0;
    },
  };
  // Enumerable, so JSON and the dry run list the files as before.
  Object.defineProperty(plan, 'files', { enumerable: true, get: () => [...eachJob(prepared.jobs, target)].flatMap((j) => plannedFiles(j, target)) });
  deepFreeze(plan);
  return prepared;
}

function plannedFiles(j: RunJob, target: Target): PlannedFile[] {
  const f = (out: StoredFile, action: PlannedFile['action'], extra: Partial<PlannedFile> = {}): PlannedFile => ({ target: uriOf(out.location), stored: out.stored, action, ...extra });
  switch (j.kind) {
    case 'copy':
      return [f(j.out, 'copy', { from: uriOf(j.from), ...(j.size !== undefined ? { bytes: j.size } : {}) })];
    case 'rewrite': {
      const from = j.source.native ? 'native RocksDB' : 'canonical state.bin';
      const to = j.native ? `native RocksDB (${describeNative(j.native)})` : 'canonical state.bin';
      const transform = [from !== to || j.native ? `${from} → ${to}` : null, j.map === null ? null : j.keyChange ? 'migrate keys and values' : 'rewrite entries (migrate/rename)'].filter(Boolean).join(', ');
      const bytes = j.source.native ? { bytes: j.source.native.reduce((n, x) => n + (x.size ?? 0), 0) } : {};
      if (!j.native) return [f(j.out.file, 'rewrite', { from: uriOf(j.source.location), transform, ...bytes })];
      return [f(j.out.file, 'rewrite', { from: uriOf(j.source.location), transform: `${transform}; this file becomes the INCR-SST-V1 pointer`, ...bytes }), ...nativeFiles(j.out, j.native, target)];
    }
    case 'repartition':
      return j.outs.flatMap((o, i) => [
        f(o.file, 'write', { transform: `${j.import ? `import rows of ${j.operator}${j.import.keepSource ? ' applied to its entries' : ''}, routed as the engine routes` : `rescale ${j.operator} ${j.sources.length}→${j.outs.length} by ${j.routing}`} (task ${i} of ${j.outs.length})${j.native ? ', as an INCR-SST-V1 pointer to native RocksDB state' : ''}` }),
        ...(j.native ? nativeFiles(o, j.native, target) : []),
      ]);
    case 'native':
      return [
        ...j.files.map((x) => f(x.out, 'copy', { from: uriOf(x.location), ...(x.size !== undefined ? { bytes: x.size } : {}) })),
        f(j.manifestOut, 'write', { transform: 'sst_manifest.json with relocated paths' }),
        f(j.out.file, 'write', { transform: 'pointer blob to the relocated sst_manifest.json' }),
      ];
  }
}

/**
 * The native files of one output task, as the plan can name them: the table
 * count is known only once the entries are written, so the tables are one
 * line.
 */
function nativeFiles(out: OutputTask, options: NativeWriteOptions, target: Target): PlannedFile[] {
  const l = nativeLayout(target, out);
  const f = (s: StoredFile, transform: string): PlannedFile => ({ target: uriOf(s.location), stored: s.stored, action: 'write', transform });
  return [
    f(l.sst('*.sst'), `RocksDB tables, ${describeNative(options)}`),
    f(l.meta('MANIFEST-*'), 'RocksDB MANIFEST: every table at the bottom level'),
    f(l.meta('CURRENT'), 'RocksDB CURRENT'),
    f(l.manifest, 'sst_manifest.json: each table\'s size and SHA-256'),
  ];
}

/** New task ids for `n` tasks: the pattern given, else the source's `{prefix}{i}` pattern. */
function newTaskIds(o: SourceOperator, n: number, pattern?: string): string[] {
  if (pattern !== undefined) {
    if (!pattern.includes('{i}')) throw new KspError('TASK_IDS', `task id pattern ${JSON.stringify(pattern)} must contain {i}`, { found: pattern });
    return Array.from({ length: n }, (_, i) => pattern.replaceAll('{i}', String(i)));
  }
  const m = o.tasks.map((t) => /^(.*?)(0|[1-9]\d*)$/.exec(t.taskId));
  const prefix = m[0]?.[1];
  const ok = prefix !== undefined && m.every((x, i) => x && x[1] === prefix) && new Set(m.map((x) => Number(x![2]))).size === m.length;
  if (!ok) {
    throw new KspError('TASK_IDS', `operator ${o.id}: its task ids (${o.tasks.map((t) => t.taskId).slice(0, 4).join(', ')}) do not follow a {prefix}{number} pattern; give the new ids with --task-ids 'name-{i}'`, { operator: o.id });
  }
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`);
}


/**
 * A task listed twice, or two tasks sharing one state file, would make two
 * outputs of one name (or one output of two sources): refused with the same
 * codes `verify` reports, naming both indexes.
 */
function checkTaskList(sp: Savepoint): void {
  const file = uriOf(child(sp.dir, 'metadata.json'));
  const ids = new Map<string, number>();
  const files = new Map<string, TaskRef>();
  for (const t of sp.tasks) {
    const id = `${t.operatorId}/${t.taskId}`;
    const first = ids.get(id);
    if (first !== undefined) {
      throw new KspError('DUPLICATE_TASK', `${file}: operator_snapshots[${t.index}] repeats task ${id} (first at operator_snapshots[${first}])`, { file, field: `operator_snapshots[${t.index}]`, first, index: t.index });
    }
    ids.set(id, t.index);
    const u = uriOf(t.location);
    const other = files.get(u);
    if (other) {
      throw new KspError('SHARED_STATE_FILE', `${file}: operator_snapshots[${other.index}] and [${t.index}] (${other.operatorId}/${other.taskId} and ${id}) name the same state file ${u}`, { file, first: other.index, index: t.index, found: u });
    }
    files.set(u, t);
  }
}
