import { tmpdir } from 'node:os';
import { preview } from '../errors.js';
import { Savepoint, type EntryFilter, type OpenOptions } from '../model/savepoint.js';
import type { Location } from '../storage/uri.js';
import { groupName, groupOf, HASH_BYTES, LogicalSide, type LogicalEntry, type SideNotes } from './logical.js';
import { metadataChanges, type MetadataChange } from './metadata.js';

/**
 * `ksp diff A B`: the logical content of two savepoints compared, entry by
 * entry (issue 15). Each side's live entries are sorted by (operator, entry
 * operator, state, key) through a spilling sort (logical.ts), then the two
 * sorted streams are merged: memory is the two sorters' buffers and a batch
 * of differences, whatever the state size. Tasks, parallelism, format
 * (canonical v1/v2, native), storage and path mode do not show: a savepoint
 * and its rescaled, relocated or converted copy have no differences.
 */

export type Change = 'added' | 'removed' | 'changed';

/**
 * One difference: an entry only in B (added), only in A (removed), or in both
 * with other values (changed). Its bytes are views of the sort's buffers,
 * valid while its batch is being handled: copy them to keep them.
 */
export interface DiffRow {
  operatorId: string;
  entryOperator: string;
  stateName: string;
  key: Uint8Array;
  change: Change;
  /** A's value; null when added. */
  oldValue: Uint8Array | null;
  /** B's value; null when removed. */
  newValue: Uint8Array | null;
}

export interface DiffExample {
  change: Change;
  key: string;
  keyHex: string;
  oldSize: number | null;
  newSize: number | null;
}

export interface StateDiff {
  operator: string;
  /** The operator id stored in the entries, when it is not the metadata's. */
  entryOperator: string;
  state: string;
  added: number;
  removed: number;
  changed: number;
  unchanged: number;
  /** Entries superseded by a later one with the same key in the same task (the engine keeps the last): in A, in B. */
  repeated: { a: number; b: number };
  /** Keys held by several tasks with values that cannot be merged (the first task's is compared): in A, in B. */
  conflicts: { a: number; b: number };
  examples: DiffExample[];
}

export interface DiffReport {
  a: string;
  b: string;
  /** True when the entries and the logical metadata are the same. */
  same: boolean;
  totals: { added: number; removed: number; changed: number; unchanged: number; entriesA: number; entriesB: number };
  states: StateDiff[];
  /** Metadata compared field by field; `logical` ones count as differences, the others (task counts, format, paths) are notes. */
  metadata: MetadataChange[];
}

export interface DiffOptions extends OpenOptions {
  /** Only this operator (the metadata's id, or the id stored in entries). */
  operator?: string;
  state?: string;
  /** Local folder for the sort's spill files (default: KSP_TMPDIR or the OS temp dir). */
  tempDir?: string;
  /** Examples kept per state (default 3). */
  examples?: number;
  /** Entries read so far, both sides (progress). */
  onEntries?: (n: number) => void;
  /** Progress per side: `onSide('a' | 'b', sp)` as its read starts, then the bytes it reads (Savepoint.entries' onBytes). */
  onSide?: (side: 'a' | 'b', sp: Savepoint) => void;
  onBytes?: (n: number) => void;
}

const BATCH = 1024;

/** A position in one side's batches of logical entries. */
class Cursor {
  private batch: LogicalEntry[] = [];
  private i = 0;
  constructor(private readonly it: AsyncIterator<LogicalEntry[]>) {}

  /** The current entry; undefined at the end. */
  get entry(): LogicalEntry | undefined {
    return this.batch[this.i];
  }

  /** Moves on within the batch; false when the next batch must be fetched (fill). */
  step(): boolean {
    return ++this.i < this.batch.length;
  }

  async fill(): Promise<void> {
    while (this.i >= this.batch.length) {
      const r = await this.it.next();
      if (r.done) {
        this.batch = [];
        this.i = 0;
        return;
      }
      this.batch = r.value;
      this.i = 0;
    }
  }
}

function newState(id: Uint8Array): StateDiff {
  const g = groupOf(id);
  return { operator: g.operator, entryOperator: g.entryOperator, state: g.state, added: 0, removed: 0, changed: 0, unchanged: 0, repeated: { a: 0, b: 0 }, conflicts: { a: 0, b: 0 }, examples: [] };
}

/**
 * A diff of two savepoints: `rows()` streams the differences in batches
 * (once), and fills `report()` as it goes. `diffSavepoints` runs it to the end.
 */
export class SavepointDiff {
  private readonly states = new Map<string, StateDiff>();
  private done = false;

  private constructor(readonly a: Savepoint, readonly b: Savepoint, private readonly options: DiffOptions) {}

  static async open(a: string | Location | Savepoint, b: string | Location | Savepoint, options: DiffOptions = {}): Promise<SavepointDiff> {
    const open = (x: string | Location | Savepoint): Promise<Savepoint> => (x instanceof Savepoint ? Promise.resolve(x) : Savepoint.open(x, options));
    return new SavepointDiff(await open(a), await open(b), options);
  }

  /** States met so far, with their names' bytes: a diff has few, and a compare in place allocates nothing per entry. */
  private readonly recent: Array<{ names: Buffer; state: StateDiff }> = [];

  private stateOf(e: LogicalEntry): StateDiff {
    const n = e.groupLength - HASH_BYTES;
    for (const r of this.recent) {
      if (r.names.length === n && e.id.compare(r.names, 0, n, HASH_BYTES, e.groupLength) === 0) return r.state;
    }
    const name = groupName(e.id, e.groupLength);
    let s = this.states.get(name);
    if (!s) this.states.set(name, (s = newState(e.id)));
    if (this.recent.length < 16) this.recent.push({ names: Buffer.from(e.id.subarray(HASH_BYTES, e.groupLength)), state: s });
    return s;
  }

  /** The differences, in the sort's order (a hash of operator, state and key: logical.ts), not by key. */
  async *rows(): AsyncGenerator<DiffRow[]> {
    const filter: EntryFilter = { operator: this.options.operator, state: this.options.state };
    const tempDir = this.options.tempDir ?? process.env.KSP_TMPDIR ?? tmpdir();
    const max = this.options.examples ?? 3;
    const sides: LogicalSide[] = [];
    try {
      const { onEntries, onBytes, onSide } = this.options;
      onSide?.('a', this.a);
      sides.push(await LogicalSide.load(this.a, { filter, tempDir, onEntries, onBytes }));
      onSide?.('b', this.b);
      sides.push(await LogicalSide.load(this.b, { filter, tempDir, onEntries, onBytes }));
      const [sa, sb] = sides as [LogicalSide, LogicalSide];
      const ca = new Cursor(sa.batches());
      const cb = new Cursor(sb.batches());
      await ca.fill();
      await cb.fill();
      let batch: DiffRow[] = [];
      const differ = (e: LogicalEntry, change: Change, oldValue: Uint8Array | null, newValue: Uint8Array | null): void => {
        const s = this.stateOf(e);
        s[change]++;
        if (s.examples.length < max) s.examples.push({ change, key: preview(e.key, 48), keyHex: e.key.toString('hex'), oldSize: oldValue?.length ?? null, newSize: newValue?.length ?? null });
        batch.push({ operatorId: s.operator, entryOperator: s.entryOperator, stateName: s.state, key: e.key, change, oldValue, newValue });
      };
      for (;;) {
        const x = ca.entry;
        const y = cb.entry;
        if (x === undefined && y === undefined) break;
        const c = x === undefined ? 1 : y === undefined ? -1 : Buffer.compare(x.id, y.id);
        if (c < 0) differ(x!, 'removed', x!.value, null);
        else if (c > 0) differ(y!, 'added', null, y!.value);
        else if (Buffer.compare(x!.value, y!.value) === 0) this.stateOf(x!).unchanged++;
        else differ(x!, 'changed', x!.value, y!.value);
        if (c <= 0 && !ca.step()) await ca.fill();
        if (c >= 0 && !cb.step()) await cb.fill();
        if (batch.length >= BATCH) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length) yield batch;
      this.addNotes(sa.notes, 'a');
      this.addNotes(sb.notes, 'b');
      this.entries = { a: sa.notes.entries, b: sb.notes.entries };
      this.done = true;
    } finally {
      for (const s of sides) s.remove();
    }
  }

  private entries = { a: 0, b: 0 };

  private addNotes(notes: SideNotes, side: 'a' | 'b'): void {
    for (const [which, map] of [['repeated', notes.repeated], ['conflicts', notes.conflicts]] as const) {
      for (const [group, n] of map) {
        let s = this.states.get(group);
        // A state is always counted by the merge (a repeat leaves its last entry): this only keeps the count safe.
        if (!s) this.states.set(group, (s = newState(n.example)));
        s[which][side] += n.count;
      }
    }
  }

  /** The summary; complete once `rows()` has been read to the end. */
  report(): DiffReport {
    // Met in hash order: listed by name.
    const by = (s: StateDiff): string => `${s.operator}\u0000${s.entryOperator}\u0000${s.state}`;
    const states = [...this.states.values()].sort((x, y) => (by(x) < by(y) ? -1 : by(x) > by(y) ? 1 : 0));
    const totals = { added: 0, removed: 0, changed: 0, unchanged: 0, entriesA: this.entries.a, entriesB: this.entries.b };
    for (const s of states) {
      totals.added += s.added;
      totals.removed += s.removed;
      totals.changed += s.changed;
      totals.unchanged += s.unchanged;
    }
    const metadata = metadataChanges(this.a, this.b, this.options.operator);
    const same = this.done && totals.added + totals.removed + totals.changed === 0 && !metadata.some((m) => m.logical);
    return { a: this.a.uri, b: this.b.uri, same, totals, states, metadata };
  }
}

/** Compares two savepoints (paths, URIs or opened ones); `onRows` receives each batch of differences (views: copy what you keep). */
export async function diffSavepoints(a: string | Location | Savepoint, b: string | Location | Savepoint, options: DiffOptions & { onRows?: (rows: DiffRow[]) => void | Promise<void> } = {}): Promise<DiffReport> {
  const d = await SavepointDiff.open(a, b, options);
  for await (const rows of d.rows()) await options.onRows?.(rows);
  return d.report();
}
