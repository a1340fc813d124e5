import { rmdirSync } from 'node:fs';
import { KspError } from '../errors.js';
import type { StateEntry } from '../formats/state-bin/decoder.js';
import { encodeStateBin } from '../formats/state-bin/encoder.js';
import { keyGroup, taskForKeyGroup } from '../model/key-group.js';
import { isWatermarkKey, windowGroupKey } from '../model/routing.js';
import { rangeOwnersByName } from '../model/task-ranges.js';
import { uriOf } from '../storage/uri.js';
import type { OutputTask, SourceTask } from '../write/jobs.js';
import { openTask } from '../write/repartition.js';
import { Spill, spillBufferSize } from '../write/spill.js';
import { makeTempDir, removeTempDir } from '../write/temp-dir.js';
import { importRows, type ImportRow, type RowsSource } from './rows.js';

/**
 * One operator's tasks written from import rows (`ksp import`), with the
 * write pipeline's spill files, so memory holds a buffer per task and never
 * the rows or the entries:
 *
 * 1. The rows of this operator are routed (`router`) and appended, in row
 *    order, to a change spill per output task; each change is tagged upsert
 *    or delete in an extra first byte of its value (internal to the spill).
 * 2. Per output task: its source entries (`--into`; none for a new
 *    savepoint) and then its changes go into one spill that tracks keys
 *    (with no source entries, the change spill is that spill itself);
 *    the spill's collision pass (keep-last) drops every entry a later one
 *    replaces, so the last row for an (operator, state, key) wins, as when
 *    the engine loads a task that holds a key twice. Surviving deletes are
 *    left out, and the task is written: a state.bin with its count in the
 *    header (an empty task is the 12-byte empty snapshot) or, with `native`,
 *    a RocksDB database.
 *
 * Entries keep their order: source entries where they were, changed ones
 * after them in row order. So an export imported with the layout it came
 * from gives the same state.bin bytes.
 */

/** What a repartition job carries when it is an import (jobs.ts). */
export interface ImportJobSpec {
  /** The operator's rows, routed and spilled at plan time; none when the rows do not name it. */
  routed?: RoutedRows;
  /** `--into`: the tasks' own entries are kept and the rows applied to them; otherwise the rows are the whole state. */
  keepSource: boolean;
}

export interface ImportResult {
  counts: number[];
  upserts: number;
  deletes: number;
  /** Entries an upsert or delete replaced or removed (source entries and earlier rows). */
  replaced: number;
}

const UPSERT = 0;
const DELETE = 1;
const ALL = -1;

/**
 * The engine's routing for a row (model/FORMAT.md §8): a window-layout key
 * goes to the owner of its group key's key group (range i to the i-th task
 * id in string order, as the engine's rescale and ksp's do); any other key
 * is not routed by the engine (broadcast), so it goes to the task the row
 * names (an export says where it was), else a watermark to every task, else
 * the owner of the whole key, as for generic keyed state.
 */
export function router(taskIds: readonly string[]): (r: Pick<ImportRow, 'key' | 'taskId'>) => number {
  const m = taskIds.length;
  const owners = rangeOwnersByName(taskIds);
  const index = new Map(taskIds.map((id, i) => [id, i]));
  return (r) => {
    const gk = windowGroupKey(r.key);
    if (gk) return owners[taskForKeyGroup(keyGroup(gk), m)]!;
    const named = r.taskId === null ? undefined : index.get(r.taskId);
    if (named !== undefined) return named;
    if (isWatermarkKey(r.key)) return ALL;
    return owners[taskForKeyGroup(keyGroup(r.key), m)]!;
  };
}

function tagged(value: Uint8Array, tag: number): Uint8Array {
  const b = Buffer.allocUnsafe(value.length + 1);
  b[0] = tag;
  b.set(value, 1);
  return b;
}

/**
 * One operator's rows, routed to its tasks and spilled as they are read at
 * plan time (the one read of the rows file), for importOperator to write.
 * `direct`: no source entries go first, so each change spill is its task's
 * own (keys tracked, deletes noted by ordinal as they come).
 */
export class RoutedRows {
  readonly changes: Array<Spill | null>;
  readonly deletes: number[][];
  /** Key and value bytes routed to each task: what the write phase's progress counts for them (write/read-total.ts). */
  readonly bytes: number[];
  upserts = 0;
  deleteRows = 0;
  private readonly route: ReturnType<typeof router>;

  constructor(private readonly dir: string, private readonly name: string, readonly taskIds: readonly string[], readonly direct: boolean, private readonly bufSize: number) {
    this.route = router(taskIds);
    this.changes = new Array(taskIds.length).fill(null);
    this.deletes = taskIds.map(() => []);
    this.bytes = taskIds.map(() => 0);
  }

  add(r: ImportRow): void {
    const tag = r.change === 'delete' ? DELETE : UPSERT;
    if (tag === DELETE) this.deleteRows++;
    else this.upserts++;
    const e: StateEntry = { operatorId: r.entryOperator, stateName: r.stateName, key: r.key, value: tagged(r.value, tag) };
    const to = this.route(r);
    const m = this.taskIds.length;
    for (let i = to === ALL ? 0 : to; i < (to === ALL ? m : to + 1); i++) {
      const sp = (this.changes[i] ??= new Spill(this.dir, `${this.name}-${i}`, this.bufSize, this.direct));
      if (this.direct && tag === DELETE) this.deletes[i]!.push(sp.count);
      sp.append(e, { task: r.row, index: r.row });
      this.bytes[i]! += r.key.length + r.value.length;
    }
  }

  close(): void {
    for (const c of this.changes) c?.close();
  }

  /** Removes the spill files, and the folder once no operator's are left in it (rmdir removes only an empty one). */
  remove(): void {
    for (const c of this.changes) c?.remove();
    try {
      rmdirSync(this.dir);
    } catch {
      // Other operators' rows are still there, or it is gone already.
    }
  }
}

export async function importOperator(
  operator: string, spec: ImportJobSpec, sources: readonly SourceTask[], outs: readonly OutputTask[], tempDir: string,
  write: (out: OutputTask, data: AsyncIterable<Uint8Array>) => Promise<void>,
  writeEntries?: (out: OutputTask, entries: AsyncIterable<StateEntry[]>) => Promise<number>,
  onBytes?: (n: number) => void,
): Promise<ImportResult> {
  // A new operator has no source tasks, whatever the mode.
  if (spec.keepSource && sources.length && sources.length !== outs.length) throw new KspError('INTERNAL', `import ${operator}: ${sources.length} source tasks for ${outs.length} outputs`);
  const rows = spec.routed;
  if (rows && (rows.taskIds.length !== outs.length || rows.taskIds.some((id, i) => id !== outs[i]!.taskId))) throw new KspError('INTERNAL', `import ${operator}: rows routed to other tasks than written`);
  const m = outs.length;
  const dir = makeTempDir(tempDir, 'ksp-import-');
  const result: ImportResult = { counts: [], upserts: rows?.upserts ?? 0, deletes: rows?.deleteRows ?? 0, replaced: 0 };
  try {
    for (let i = 0; i < m; i++) {
      const own = rows?.direct ? rows.changes[i] : null;
      const merged = own ?? new Spill(dir, `task-${i}`, 1024 * 1024, true);
      try {
        let deletes = rows?.direct ? rows.deletes[i]! : [];
        const src = spec.keepSource && sources[i] ? await openTask(sources[i]!, onBytes, 'rewrite') : null;
        let index = 0;
        if (src) for await (const b of src.batches()) for (const e of b) merged.append({ ...e, value: tagged(e.value, UPSERT) }, { task: 0, index: index++ });
        const c = rows && !rows.direct ? rows.changes[i] : null;
        if (c) {
          for await (const b of c.entries()) {
            for (const e of b) {
              if (e.value[0] === DELETE) deletes.push(merged.count);
              merged.append(e, { task: 1, index: index++ });
            }
          }
          c.remove();
        }
        merged.close();
        onBytes?.(rows?.bytes[i] ?? 0);
        const { drop, report } = merged.collisions('keep-last', () => '');
        result.replaced += report.dropped;
        deletes = deletes.filter((d) => !drop.has(d));
        const count = merged.count - drop.size - deletes.length;
        // Deletes that survived the collision pass are the last word on their key: left out.
        const kept = (async function* (): AsyncGenerator<StateEntry[]> {
          for await (const b of merged.entries(drop)) {
            const out: StateEntry[] = [];
            for (const e of b) if (e.value[0] === UPSERT) out.push({ ...e, value: e.value.subarray(1) });
            if (out.length) yield out;
          }
        })();
        if (writeEntries) result.counts.push(await writeEntries(outs[i]!, kept));
        else {
          await write(outs[i]!, encodeStateBin(count, kept, uriOf(outs[i]!.file.location)));
          result.counts.push(count);
        }
      } finally {
        merged.remove();
      }
    }
    return result;
  } finally {
    rows?.remove();
    removeTempDir(dir);
  }
}

/** Per operator, its rows routed and spilled: the plan's one read of the rows file. */
export interface ImportCensus {
  rows: number;
  operators: Map<string, RoutedRows>;
}

/**
 * Reads every row once, before anything is written at the target: a bad
 * row (a missing column, a value that does not encode, an operator with no
 * layout) fails the plan, and nothing is written. Each row is routed and
 * spilled to `dir` on the way (`layoutOf` gives its operator's task ids and
 * whether source entries go first); the caller removes `dir`.
 */
export async function importCensus(rows: RowsSource, dir: string, layoutOf: (operator: string) => { taskIds: string[]; direct: boolean } | null, unknown: (r: ImportRow) => KspError, spillTasks: number): Promise<ImportCensus> {
  const census: ImportCensus = { rows: 0, operators: new Map() };
  const bufSize = spillBufferSize(spillTasks);
  try {
    for await (const batch of importRows(rows)) {
      for (const r of batch) {
        census.rows++;
        let o = census.operators.get(r.operatorId);
        if (!o) {
          const l = layoutOf(r.operatorId);
          if (!l) throw unknown(r);
          census.operators.set(r.operatorId, (o = new RoutedRows(dir, `op${census.operators.size}`, l.taskIds, l.direct, bufSize)));
        }
        o.add(r);
      }
    }
    for (const o of census.operators.values()) o.close();
  } catch (e) {
    for (const o of census.operators.values()) o.remove();
    throw e;
  }
  return census;
}
