import { z } from 'zod';
import { KspError } from '../../errors.js';
import { JsonObject, fromPlain, parseJson, stringifyPretty, type JsonValue } from '../json/json-text.js';
import { id, u32, u64, validateObject } from '../json/schema.js';

/** `meta.json`, the savepoint record (FORMAT.md beside this file). */

export const SAVEPOINT_FORMAT_VERSION = 1;

const schema = z.looseObject({
  format_version: u32.optional(),
  savepoint_id: id,
  label: z.string(),
  job_id: id,
  epoch: u64,
  // Blank ids too: the engine refuses `id.trim().is_empty()` (krishiv-state/src/savepoint.rs, SavepointMeta::validate).
  operator_versions: z.record(z.string().refine((id) => id.trim() !== '', 'an operator id must not be empty or blank'), u64),
  created_at_secs: u64,
});

export type SavepointMeta = z.output<typeof schema>;

export class MetaDoc {
  private constructor(readonly doc: JsonObject, readonly value: SavepointMeta) {}

  static decode(bytes: Uint8Array | string, file = 'meta.json'): MetaDoc {
    return MetaDoc.fromJson(parseJson(bytes, file), file);
  }

  static fromJson(json: JsonValue, file = 'meta.json'): MetaDoc {
    const { doc, value } = validateObject(schema, json, file, 'META_INVALID');
    const v = value.format_version ?? SAVEPOINT_FORMAT_VERSION;
    if (v !== SAVEPOINT_FORMAT_VERSION) {
      throw new KspError('META_VERSION', `${file}: field format_version: unsupported savepoint format version ${v}; expected 1`, {
        file, field: 'format_version', expected: 1, found: v,
      });
    }
    return new MetaDoc(doc, value);
  }

  /** Operator versions in file order (a Map keeps integer-like ids in place). */
  operatorVersions(): Map<string, bigint> {
    const m = new Map<string, bigint>();
    const ov = this.doc.get('operator_versions');
    if (ov instanceof JsonObject) for (const [k] of ov.members) m.set(k, this.value.operator_versions[k]!);
    return m;
  }

  encode(): Uint8Array {
    return Buffer.from(stringifyPretty(this.doc), 'utf8');
  }

  with(changes: Record<string, unknown>): MetaDoc {
    let doc = this.doc;
    for (const [k, v] of Object.entries(changes)) doc = v === undefined ? doc.without(k) : doc.with(k, fromPlain(v));
    return MetaDoc.fromJson(doc);
  }
}
