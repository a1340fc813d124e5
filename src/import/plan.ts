import { basename } from 'node:path';
import { KspError } from '../errors.js';
import { checkId } from '../formats/stored-path.js';
import type { Job, OutputTask, SourceTask } from '../write/jobs.js';
import type { NativeWriteOptions } from '../write/native-output.js';
import type { OperationRecord } from '../write/plan.js';
import { importCensus, type ImportCensus, type ImportJobSpec } from './apply.js';
import { rowsSource, unknownOperator, type RowsSource } from './rows.js';
import { makeTempDir, removeTempDir } from '../write/temp-dir.js';
import { tmpdir } from 'node:os';

/** How `SavepointWriter.apply` takes its rows. */
export interface ImportOptions {
  /**
   * `into` (default): rows are changes to the source's entries (upsert, or
   * delete with a `change` column); operators without rows are copied.
   * `like`: the rows are the whole state, written in the source's task
   * layout; `new` is `like` over an empty layout (import/fresh.ts).
   */
  mode?: 'into' | 'like' | 'new';
  /** Operators the source lacks, each with its parallelism (tasks task-0…) or its task ids. */
  operators?: Record<string, number | string[]>;
  /** Parallelism of every operator the rows name and the layout lacks (`ksp import --parallelism`). */
  parallelism?: number;
  /** What meta.json and the plan name as the source (a new savepoint has none). */
  sourceLabel?: string;
  /** Where the rows are spilled, routed, from the plan on (default: KSP_TMPDIR or the OS temp dir). */
  tempDir?: string;
}

/** Parallelism must name whole key-group ranges: 1 to 32,768 (the number of key groups). */
function checkParallelism(p: number, what: string): void {
  if (!Number.isSafeInteger(p) || p < 1 || p > 32768) throw new KspError('USAGE', `${what}: parallelism must be an integer from 1 to 32768, got ${p}`, { found: p });
}

/** The planner's side of an import: the rows checked once, and the job per operator they write. */
export class ImportPlanner {
  private constructor(
    private readonly rows: RowsSource, private readonly options: ImportOptions, private readonly census: ImportCensus,
    private readonly existing: ReadonlySet<string>, private readonly layouts: Map<string, string[]>,
  ) {}

  static async make(rows: string | RowsSource, options: ImportOptions, sourceOperators: Array<{ id: string; taskIds: string[] }>, ops: string[]): Promise<ImportPlanner> {
    const operators = sourceOperators.map((o) => o.id);
    const other = ops.filter((k) => !['import', 'convert', 'relocate'].includes(k));
    if (other.length || ops.filter((k) => k === 'import').length > 1) throw new KspError('USAGE', `an import combines with convert only (asked: ${ops.join(', ')}); run the other operations on its output`);
    const src = rowsSource(rows);
    const existing = new Set(operators);
    const layouts = new Map<string, string[]>();
    for (const [id, l] of Object.entries(options.operators ?? {})) {
      checkId(id, 'operator id');
      if (existing.has(id)) throw new KspError('OPERATOR_EXISTS', `import: operator ${JSON.stringify(id)} is already in the source; a layout is given for new operators only`, { found: id });
      const ids = typeof l === 'number' ? (checkParallelism(l, `operator ${id}`), Array.from({ length: l }, (_, i) => `task-${i}`)) : l;
      if (!ids.length || new Set(ids).size !== ids.length) throw new KspError('USAGE', `operator ${id}: its task ids must be distinct and at least one`, { found: ids });
      for (const t of ids) checkId(t, 'task id');
      layouts.set(id, ids);
    }
    if (options.parallelism !== undefined) checkParallelism(options.parallelism, '--parallelism');
    const known = (op: string): boolean => {
      if (existing.has(op) || layouts.has(op)) return true;
      if (options.parallelism === undefined) return false;
      checkId(op, 'operator id');
      layouts.set(op, Array.from({ length: options.parallelism }, (_, i) => `task-${i}`));
      return true;
    };
    const keep = (options.mode ?? 'into') === 'into';
    const layoutOf = (op: string): { taskIds: string[]; direct: boolean } | null => {
      if (!known(op)) return null;
      const source = sourceOperators.find((o) => o.id === op);
      return source ? { taskIds: source.taskIds, direct: !keep } : { taskIds: layouts.get(op)!, direct: true };
    };
    // The routed rows live from the plan to the write, which removes each
    // operator's once written; the folder goes when the process ends (a
    // plan that is never written leaves nothing behind), or, after a
    // SIGKILL, with the next write's sweep of dead runs' folders.
    const dir = makeTempDir(options.tempDir ?? process.env.KSP_TMPDIR ?? tmpdir(), 'ksp-import-');
    process.once('exit', () => removeTempDir(dir));
    const tasks = sourceOperators.reduce((n, o) => n + o.taskIds.length, 0) + [...layouts.values()].reduce((n, l) => n + l.length, 0);
    let census: ImportCensus;
    try {
      census = await importCensus(src, dir, layoutOf, (r) => unknownOperator(src, r, [...existing, ...layouts.keys()]), Math.max(tasks, 1));
    } catch (e) {
      removeTempDir(dir);
      throw e;
    }
    return new ImportPlanner(src, options, census, existing, layouts);
  }

  get keepSource(): boolean {
    return (this.options.mode ?? 'into') === 'into';
  }

  get sourceLabel(): string | undefined {
    return this.options.sourceLabel;
  }

  /** An operator of the source whose tasks the import writes: every one when the rows are the whole state, else those the rows name. */
  touches(operator: string): boolean {
    return !this.keepSource || this.census.operators.has(operator);
  }

  /** Operators the layout adds, in the order the rows first name them (those given a layout but no rows last). */
  newOperators(): Array<{ id: string; taskIds: string[] }> {
    const order = [...this.census.operators.keys(), ...this.layouts.keys()].filter((id, i, a) => !this.existing.has(id) && a.indexOf(id) === i);
    return order.map((id) => ({ id, taskIds: this.layouts.get(id)! }));
  }

  job(operator: string, sources: SourceTask[], outs: OutputTask[], native: NativeWriteOptions | undefined): Job {
    const routed = this.census.operators.get(operator);
    const spec: ImportJobSpec = { ...(routed ? { routed } : {}), keepSource: this.keepSource };
    return { kind: 'repartition', operator, sources, outs, routing: 'window', map: null, keyChange: false, onCollision: 'keep-last', ...(native ? { native } : {}), import: spec };
  }

  record(): OperationRecord {
    let upserts = 0;
    let deletes = 0;
    for (const o of this.census.operators.values()) {
      upserts += o.upserts;
      deletes += o.deleteRows;
    }
    // The file's name only: the record is part of the output, a path of this machine is not.
    return { op: 'import', rows: basename(this.rows.file), mode: this.options.mode ?? 'into', upserts, deletes, operators: [...this.census.operators.keys()] };
  }
}
