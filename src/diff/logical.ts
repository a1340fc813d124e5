import { SEED_A, murmur32At } from '../bytes/key-multiset.js';
import type { EntryFilter, Savepoint } from '../model/savepoint.js';
import { KeySorter, runBytesDefault, MERGE_BYTES } from '../write/key-sorter.js';
import { mergedBroadcastValue } from '../write/repartition.js';

/**
 * One side of a diff as the engine would load it: its live entries per
 * (operator, entry operator, state, key), in one byte order whatever the
 * tasks, parallelism or format, streamed through an external key sort
 * (write/key-sorter.ts) so memory is bounded at any state size.
 *
 * The sort key is `u32be(hash) name(operator) name(entry operator)
 * name(state) name(key) u32be(task index)` with `name(x) = u32be(len) x`:
 * lengths first, so one key's copies in different tasks sort next to each
 * other (a raw key followed by the task would let the key `ab` fall between
 * the copies of `a`). Both sides only need the same order, not a readable
 * one: the leading hash (MurmurHash3 of the rest, before the task) lets the
 * sort order almost every pair by its first 4 bytes (key-sorter.ts), about
 * 4x faster than by names that are mostly equal. Differences come out in
 * that order.
 *
 * - A key repeated within one task: the sorter keeps the last added, as the
 *   engine's load keeps the last (model/repeated-keys.ts); each is counted.
 * - A key held by several tasks (a broadcast watermark, a misplaced entry):
 *   merged as rescale merges broadcast entries (write/repartition.ts), so a
 *   rescaled copy reads the same; values that cannot merge are counted as
 *   conflicts and the first task's (metadata order) is kept, as rescale's
 *   first-seen order would.
 */

/** A state of one side: where its counts go. */
export interface SideState {
  operator: string;
  entryOperator: string;
  state: string;
}

export interface LogicalEntry {
  /** The sort key without the task suffix: identifies (operator, entry operator, state, key). */
  id: Buffer;
  /** End of the id's (operator, entry operator, state) names. */
  groupLength: number;
  key: Buffer;
  value: Uint8Array;
}

export interface SideNotes {
  /** Entries superseded by a later one with the same key in the same task, per state (groupName). */
  repeated: Map<string, { count: number; example: Buffer }>;
  /** Keys held by several tasks with values that cannot merge, per state (groupName). */
  conflicts: Map<string, { count: number; example: Buffer }>;
  entries: number;
}

const TASK_SUFFIX = 4;
/** The hash in front of the names. */
export const HASH_BYTES = 4;

/** End of the (operator, entry operator, state) names of a sort key (after the hash). */
export function groupLengthOf(id: Uint8Array): number {
  let at = HASH_BYTES;
  for (let i = 0; i < 3; i++) at += 4 + readU32(id, at);
  return at;
}

/** The names of a sort key's (operator, entry operator, state). */
export function groupOf(id: Uint8Array): SideState {
  const names: string[] = [];
  let at = HASH_BYTES;
  for (let i = 0; i < 3; i++) {
    const n = readU32(id, at);
    names.push(Buffer.from(id.buffer, id.byteOffset + at + 4, n).toString('utf8'));
    at += 4 + n;
  }
  return { operator: names[0]!, entryOperator: names[1]!, state: names[2]! };
}

function readU32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

/** Sort keys are built in one buffer, grown as needed (the sorter copies each). */
class KeyBuilder {
  private buf = Buffer.allocUnsafe(1024);
  private used = 0;
  private texts = new Map<string, Buffer>();

  private reserve(n: number): void {
    if (this.used + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + n));
    this.buf.copy(next, 0, 0, this.used);
    this.buf = next;
  }

  private name(b: Uint8Array): void {
    this.reserve(4 + b.length);
    this.buf.writeUInt32BE(b.length, this.used);
    this.buf.set(b, this.used + 4);
    this.used += 4 + b.length;
  }

  private text(s: string): void {
    let b = this.texts.get(s);
    if (!b) this.texts.set(s, (b = Buffer.from(s, 'utf8')));
    this.name(b);
  }

  build(operator: string, entryOperator: string, state: string, key: Uint8Array, task: number): Buffer {
    this.used = HASH_BYTES;
    this.text(operator);
    this.text(entryOperator);
    this.text(state);
    this.name(key);
    this.buf.writeUInt32BE(murmur32At(this.buf, HASH_BYTES, this.used - HASH_BYTES, SEED_A) >>> 0, 0);
    this.reserve(TASK_SUFFIX);
    this.buf.writeUInt32BE(task, this.used);
    this.used += TASK_SUFFIX;
    return this.buf.subarray(0, this.used);
  }
}

/** A state's name in the maps: the names of its sort key, without the hash. */
export function groupName(id: Uint8Array, groupLength = groupLengthOf(id)): string {
  return Buffer.from(id.buffer, id.byteOffset + HASH_BYTES, groupLength - HASH_BYTES).toString('latin1');
}

function note(map: Map<string, { count: number; example: Buffer }>, id: Uint8Array): void {
  const group = groupName(id);
  const n = map.get(group);
  if (n) n.count++;
  else map.set(group, { count: 1, example: Buffer.from(id.buffer, id.byteOffset, id.length) });
}

export interface SideOptions {
  filter: EntryFilter;
  tempDir: string;
  /** Bytes of the sorter's arena (default: half of a write's sort, as two sides sort at once). */
  runBytes?: number;
  onEntries?: (n: number) => void;
  /** Source bytes read (progress). */
  onBytes?: (n: number) => void;
}

/** Reads every entry of `sp` into a key sorter; `entries()` then streams the logical entries in order. */
export class LogicalSide {
  readonly notes: SideNotes = { repeated: new Map(), conflicts: new Map(), entries: 0 };
  private readonly sorter: KeySorter;

  private constructor(tempDir: string, runBytes: number) {
    // The two sides merge at the same time: each has half of one merge's read buffers
    // (with the whole of it each, a diff of 20M entries peaked 74 MB above one of 2M).
    this.sorter = new KeySorter(tempDir, runBytes, MERGE_BYTES / 2);
    this.sorter.onDuplicate = (k) => note(this.notes.repeated, k);
  }

  static async load(sp: Savepoint, options: SideOptions): Promise<LogicalSide> {
    const side = new LogicalSide(options.tempDir, options.runBytes ?? Math.max(1 << 20, Math.floor(runBytesDefault() / 2)));
    const keys = new KeyBuilder();
    try {
      for await (const batch of sp.entries(options.filter, { onBytes: options.onBytes })) {
        for (const r of batch) side.sorter.add(keys.build(r.task.operatorId, r.operatorId, r.stateName, r.key, r.task.index), r.value);
        side.notes.entries += batch.length;
        options.onEntries?.(batch.length);
      }
    } catch (e) {
      side.remove();
      throw e;
    }
    side.sorter.endInput();
    return side;
  }

  /**
   * The logical entries in ascending id order, one per id, in batches (one
   * per sorted batch: a generator step per entry cost more than the entry).
   * Call once.
   */
  async *batches(): AsyncGenerator<LogicalEntry[]> {
    let prev: LogicalEntry | null = null;
    for await (const batch of this.sorter.sorted()) {
      const out: LogicalEntry[] = [];
      for (const r of batch) {
        // The sorter's views stay valid until it is removed (key-sorter.ts): none is copied.
        const id = (r.key as Buffer).subarray(0, r.key.length - TASK_SUFFIX);
        if (prev !== null && prev.id.length === id.length && prev.id.equals(id)) {
          const merged = mergedBroadcastValue(prev.value, r.value);
          if (merged === null) note(this.notes.conflicts, id);
          else prev.value = merged;
          continue;
        }
        if (prev !== null) out.push(prev);
        const groupLength = groupLengthOf(id);
        prev = { id, groupLength, key: id.subarray(groupLength + 4), value: r.value };
      }
      if (out.length) yield out;
    }
    if (prev !== null) yield [prev];
  }

  remove(): void {
    this.sorter.remove();
  }
}
