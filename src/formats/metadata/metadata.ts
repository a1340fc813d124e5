import { z } from 'zod';
import { KspError } from '../../errors.js';
import { JsonObject, fromPlain, parseJson, prettyBytes, toPlain, type JsonValue } from '../json/json-text.js';
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

export class MetadataDoc {
  private constructor(readonly doc: JsonObject, readonly value: CheckpointMetadata) {}

  static decode(bytes: Uint8Array | string, file = 'metadata.json'): MetadataDoc {
    return MetadataDoc.fromJson(parseJson(bytes, file), file);
  }

  static fromJson(json: JsonValue, file = 'metadata.json'): MetadataDoc {
    const { doc, value } = MetadataDoc.validated(json, file);
    if (!(METADATA_VERSIONS as readonly number[]).includes(value.version)) {
      throw new KspError('METADATA_VERSION', `${file}: field version: unsupported metadata version ${value.version}; expected 1, 2 or 3`, {
        file, field: 'version', expected: '1..3', found: value.version,
      });
    }
    return new MetadataDoc(doc, value);
  }

  /**
   * A long source_offsets (a source of a million partitions) is validated one
   * entry at a time and typed only when asked for: validating it whole holds
   * two more copies of it (plain and parsed), which took 1,000,000 offsets
   * past a 256 MB heap. ksp itself never reads the offsets; it carries them.
   */
  private static validated(json: JsonValue, file: string): { doc: JsonObject; value: CheckpointMetadata } {
    const offsets = json instanceof JsonObject ? json.get('source_offsets') : undefined;
    if (!(json instanceof JsonObject) || !Array.isArray(offsets) || offsets.length <= 1024) return validateObject(schema, json, file, 'METADATA_INVALID');
    offsets.forEach((o, i) => validate(sourceOffset, o, file, 'METADATA_INVALID', ['source_offsets', i]));
    const { value } = validateObject(schema, json.with('source_offsets', []), file, 'METADATA_INVALID');
    let typed: CheckpointMetadata['source_offsets'] | null = null;
    Object.defineProperty(value, 'source_offsets', {
      enumerable: true, configurable: true,
      get: () => (typed ??= offsets.map((o) => sourceOffset.parse(toPlain(o)))),
    });
    return { doc: json, value };
  }

  encode(): Uint8Array {
    return prettyBytes(this.doc);
  }

  /**
   * A copy with members set (undefined removes one). Values are plain JS
   * (bigint/number for integers, arrays, objects); the result is re-validated.
   */
  with(changes: Partial<Record<(typeof FIELD_ORDER)[number] | string, unknown>>): MetadataDoc {
    let doc = this.doc;
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
