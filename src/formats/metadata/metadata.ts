import { z } from 'zod';
import { KspError } from '../../errors.js';
import { JsonObject, fromPlain, parseJson, prettyBytes, stringifyPretty, toPlain, type JsonValue } from '../json/json-text.js';
import { i64, id, u32, u64, u8, validate, validateObject } from '../json/schema.js';

/**
 * `metadata.json`, the checkpoint metadata, versions 1-3 (FORMAT.md beside
 * this file). The document keeps every member it was read with, in order, so
 * rewriting an engine file changes only what an edit changes.
 */

export const METADATA_VERSIONS = [1, 2, 3] as const;
export const METADATA_WRITE_VERSION = 3;

/** Field order of the engine's struct: edits insert new members at their place. */
const FIELD_ORDER = [
  'version', 'epoch', 'job_id', 'fencing_token', 'coordinator_id', 'timestamp_ms', 'source_offsets',
  'operator_snapshots', 'is_savepoint', 'savepoint_label', 'iceberg_snapshot_id', 'kafka_offsets',
  'unaligned_buffer_refs', 'sink_transactions', 'streaming_profile',
] as const;

const snapshotRef = z.looseObject({ operator_id: id, task_id: id, snapshot_path: z.string() });
const sourceOffset = z.looseObject({ partition_id: z.string(), offset: i64, encoded_offset: z.array(u8).optional() });
const bufferRef = z.looseObject({
  operator_id: id, channel_index: u32, record_count: u64, buffer_path: z.string().optional(),
});
// sink_id is any string: the engine never makes a path of it (krishiv-executor
// runner/executor_task_runner.rs sets it to the prepare path; krishiv-scheduler
// checkpoint.rs collect_sink_transactions keys transactions by prepare_path).
const sinkTxn = z.looseObject({ sink_id: z.string(), epoch: u64, prepare_path: z.string().optional(), committed: z.boolean() });

const schema = z.looseObject({
  version: u32,
  epoch: u64,
  job_id: id,
  fencing_token: u64,
  coordinator_id: z.string().optional(),
  timestamp_ms: u64,
  source_offsets: z.array(sourceOffset),
  operator_snapshots: z.array(snapshotRef),
  is_savepoint: z.boolean(),
  savepoint_label: z.string().nullable(),
  iceberg_snapshot_id: u64.optional(),
  kafka_offsets: z.record(z.string(), i64).optional(),
  unaligned_buffer_refs: z.array(bufferRef).optional(),
  sink_transactions: z.array(sinkTxn).optional(),
  streaming_profile: z.string().optional(),
});

export type OperatorSnapshotRef = z.output<typeof snapshotRef>;
export type UnalignedBufferRef = z.output<typeof bufferRef>;
export type SinkTransaction = z.output<typeof sinkTxn>;
export type CheckpointMetadata = z.output<typeof schema>;

/** Lists longer than this are validated element by element (see MetadataDoc.validated). */
const LONG_LIST = 1024;

/** What zod's snapshotRef accepts, checked without copying the element (the common case). */
function plainSnapshot(o: JsonValue): boolean {
  if (!(o instanceof JsonObject)) return false;
  const op = o.get('operator_id');
  const task = o.get('task_id');
  return typeof op === 'string' && op.length > 0 && typeof task === 'string' && task.length > 0 && typeof o.get('snapshot_path') === 'string';
}

/** `value[name]`, typed from the document when first read. */
function lazyMember<K extends 'source_offsets' | 'operator_snapshots'>(value: CheckpointMetadata, name: K, make: () => CheckpointMetadata[K]): void {
  let typed: CheckpointMetadata[K] | null = null;
  Object.defineProperty(value, name, { enumerable: true, configurable: true, get: () => (typed ??= make()) });
}

/** The engine's three snapshot fields, in its order (one key list shared by every remade snapshot). */
const SNAPSHOT_FIELDS: readonly string[] = ['operator_id', 'task_id', 'snapshot_path'];
const EMPTY_SNAPSHOTS = Buffer.from('\n  "operator_snapshots": []');

export class MetadataDoc {
  private constructor(private whole: JsonObject, readonly value: CheckpointMetadata) {}

  /** Set once the snapshot objects were let go (releaseSnapshots): remakes them. */
  private remake: (() => Iterable<[string, string, string]>) | null = null;

  /** The document as read, every member in order. */
  get doc(): JsonObject {
    return this.remake ? this.whole.with('operator_snapshots', Array.from(this.remake(), (v) => JsonObject.fromLists(SNAPSHOT_FIELDS, v))) : this.whole;
  }

  /**
   * Lets the document's snapshot objects go once the caller holds their
   * strings (a Savepoint's tasks): an object and a value list per snapshot
   * is 13 MB at 200,000 tasks. They are remade from `remake` when the whole
   * document is asked for. Done only when every snapshot has exactly the
   * three engine fields, so nothing a remake would lose is let go.
   */
  releaseSnapshots(remake: () => Iterable<[string, string, string]>): void {
    const snaps = this.whole.get('operator_snapshots') as JsonObject[];
    const names = snaps[0]?.keys;
    if (!names || names.length !== 3 || names.some((n, i) => n !== SNAPSHOT_FIELDS[i])) return;
    if (!snaps.every((o) => o.keys === names)) return;
    this.whole = this.whole.with('operator_snapshots', []);
    this.remake = remake;
  }

  /**
   * A copy with members set (as `with`) whose snapshot list is made by
   * `snapshots` (operator id, task id, snapshot path each) whenever the
   * document is read or encoded: a writer holds its output tasks anyway,
   * and 200,000 JSON objects built from them at plan time stayed until the
   * metadata was written. The list is not validated here: writers make it
   * from ids and paths they checked.
   */
  withSnapshots(changes: Partial<Record<(typeof FIELD_ORDER)[number] | string, unknown>>, snapshots: () => Iterable<[string, string, string]>): MetadataDoc {
    const md = this.with({ ...changes, operator_snapshots: [] });
    md.remake = snapshots;
    lazyMember(md.value, 'operator_snapshots', () => Array.from(snapshots(), ([operator_id, task_id, snapshot_path]) => ({ operator_id, task_id, snapshot_path })));
    return md;
  }

  static decode(bytes: Uint8Array | string, file = 'metadata.json'): MetadataDoc {
    return MetadataDoc.fromJson(parseJson(bytes, file), file);
  }

  static fromJson(json: JsonValue, file = 'metadata.json'): MetadataDoc {
    const lazy: Array<'source_offsets' | 'operator_snapshots'> = [];
    const { doc, value } = MetadataDoc.validated(json, file, lazy);
    if (!(METADATA_VERSIONS as readonly number[]).includes(value.version)) {
      throw new KspError('METADATA_VERSION', `${file}: field version: unsupported metadata version ${value.version}; expected 1, 2 or 3`, {
        file, field: 'version', expected: '1..3', found: value.version,
      });
    }
    const md = new MetadataDoc(doc, value);
    if (lazy.includes('source_offsets')) lazyMember(value, 'source_offsets', () => (md.doc.get('source_offsets') as JsonValue[]).map((o) => sourceOffset.parse(toPlain(o))));
    if (lazy.includes('operator_snapshots')) lazyMember(value, 'operator_snapshots', () => (md.doc.get('operator_snapshots') as JsonValue[]).map((o) => snapshotRef.parse(toPlain(o))));
    return md;
  }

  /**
   * The two lists that grow with the job, source_offsets (a source of a
   * million partitions) and operator_snapshots (200,000 tasks), are checked
   * one element at a time when long, and typed only when asked for:
   * validating them whole holds two more copies (plain and parsed), which
   * took 1,000,000 offsets or 200,000 snapshots past a 256 MB heap. ksp
   * never reads the offsets (it carries them), and reads the snapshots
   * from the document itself (`snapshots`).
   */
  private static validated(json: JsonValue, file: string, lazy: Array<'source_offsets' | 'operator_snapshots'>): { doc: JsonObject; value: CheckpointMetadata } {
    if (!(json instanceof JsonObject)) return validateObject(schema, json, file, 'METADATA_INVALID');
    const offsets = json.get('source_offsets');
    const snaps = json.get('operator_snapshots');
    const longOffsets = Array.isArray(offsets) && offsets.length > LONG_LIST;
    const longSnaps = Array.isArray(snaps) && snaps.length > LONG_LIST;
    if (!longOffsets && !longSnaps) return validateObject(schema, json, file, 'METADATA_INVALID');
    let rest = json;
    if (longOffsets) {
      offsets.forEach((o, i) => validate(sourceOffset, o, file, 'METADATA_INVALID', ['source_offsets', i]));
      rest = rest.with('source_offsets', []);
    }
    if (longSnaps) {
      snaps.forEach((o, i) => {
        if (!plainSnapshot(o)) validate(snapshotRef, o, file, 'METADATA_INVALID', ['operator_snapshots', i]);
      });
      rest = rest.with('operator_snapshots', []);
    }
    const { value } = validateObject(schema, rest, file, 'METADATA_INVALID');
    // Typed from the document when first read (see fromJson), not from these
    // lists: a closure over them would keep them when the document lets its
    // snapshots go (releaseSnapshots).
    if (longOffsets) lazy.push('source_offsets');
    if (longSnaps) lazy.push('operator_snapshots');
    return { doc: json, value };
  }

  /**
   * Each operator snapshot's three fields, read from the document: no typed
   * copy of a 200,000-element list. Validated when decoded, so the casts hold.
   */
  forEachSnapshot(fn: (operatorId: string, taskId: string, snapshotPath: string, index: number) => void): void {
    const snaps = this.doc.get('operator_snapshots') as JsonObject[];
    snaps.forEach((o, i) => fn(o.get('operator_id') as string, o.get('task_id') as string, o.get('snapshot_path') as string, i));
  }

  encode(): Uint8Array {
    return Buffer.concat([...this.chunks()]);
  }

  /**
   * The encoded document in pieces of about a megabyte, the bytes `encode`
   * gives. A snapshot list that was let go is written one snapshot at a
   * time from its source, into the document encoded without it: 200,000
   * snapshot objects made at once, and the whole text beside them, were a
   * write's peak memory.
   */
  *chunks(): Generator<Uint8Array> {
    if (this.remake === null) return yield prettyBytes(this.whole);
    const shell = prettyBytes(this.whole);
    // The top-level member, as the pretty printer writes an empty list (two spaces in).
    const at = shell.indexOf(EMPTY_SNAPSHOTS);
    if (at < 0) throw new KspError('INTERNAL', 'metadata: no operator_snapshots member to write the snapshots into');
    const open = at + EMPTY_SNAPSHOTS.length - 2;
    let parts: string[] = [];
    let len = 0;
    let n = 0;
    for (const v of this.remake()) {
      // Each element as the pretty printer writes it four spaces in (json-text.ts prettyBytes).
      const text = `${n++ ? ',\n' : '[\n'}    ${stringifyPretty(JsonObject.fromLists(SNAPSHOT_FIELDS, v), '    ')}`;
      if (n === 1) yield shell.subarray(0, open);
      parts.push(text);
      len += text.length;
      if (len >= 1 << 20) {
        yield Buffer.from(parts.join(''), 'utf8');
        parts = [];
        len = 0;
      }
    }
    if (n === 0) return yield shell;
    parts.push('\n  ]');
    yield Buffer.from(parts.join(''), 'utf8');
    yield shell.subarray(open + 2);
  }

  /**
   * A copy with members set (undefined removes one). Values are plain JS
   * (bigint/number for integers, arrays, objects); the result is re-validated.
   */
  with(changes: Partial<Record<(typeof FIELD_ORDER)[number] | string, unknown>>): MetadataDoc {
    // A snapshot list being replaced is not remade first.
    let doc = this.remake && 'operator_snapshots' in changes ? this.whole : this.doc;
    for (const [name, value] of Object.entries(changes)) {
      if (value === undefined) {
        doc = doc.without(name);
        continue;
      }
      const at = FIELD_ORDER.indexOf(name as (typeof FIELD_ORDER)[number]);
      doc = doc.with(name, fromPlain(value), at >= 0 ? FIELD_ORDER.slice(at + 1) : []);
    }
    return MetadataDoc.fromJson(doc);
  }
}

/** `{epoch:020}`: the epoch zero-padded to 20 digits. */
export function epochDirName(epoch: bigint): string {
  return epoch.toString().padStart(20, '0');
}
