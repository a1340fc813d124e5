import type { EntryRow } from '../model/savepoint.js';
import type { ViewCodec } from '../model/value-codecs.js';
import { rowKeyGroup, specsOf, tryDecode, tryWindow, type DecodeStats, type ExportCodecs, type ExportSpecs, type RowSource } from './columns.js';

/**
 * JSON Lines: one object per entry. Binary columns are lowercase hex
 * (`key_hex`, `value_hex`); decoded JSON/msgpack values are embedded as JSON,
 * 64-bit integers outside the exact double range as strings.
 */

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** A decoded value as JSON text (`embed`: the codec's output is JSON already). */
export function jsonOf(v: string | bigint | number | null, embed: boolean): string {
  if (v === null) return 'null';
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? v.toString() : JSON.stringify(v.toString());
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : JSON.stringify(String(v));
  return embed ? v : JSON.stringify(v);
}

export function i64(v: bigint | null | undefined): string {
  return v === null || v === undefined ? 'null' : jsonOf(v, false);
}

/** `specs`: the codecs as specs (specsOf), made once per export rather than per line. */
export function jsonlLine(r: EntryRow, codecs: ExportCodecs, stats: DecodeStats, specs: ExportSpecs = specsOf(codecs)): string {
  const kc: ViewCodec | undefined = specs.key?.for(r.stateName);
  const vc: ViewCodec | undefined = specs.value?.for(r.stateName);
  let s = `{"operator_id":${JSON.stringify(r.task.operatorId)},"task_id":${JSON.stringify(r.task.taskId)},"entry_operator":${JSON.stringify(r.operatorId)},"state_name":${JSON.stringify(r.stateName)},"key_hex":"${hex(r.key)}","value_hex":"${hex(r.value)}","key_group":${rowKeyGroup(r.key)}`;
  if (specs.key?.column) s += `,"key_decoded":${jsonOf(tryDecode(kc, r.key, stats, 'key'), kc?.embed === true)}`;
  if (specs.value?.column) s += `,"value_decoded":${jsonOf(tryDecode(vc, r.value, stats, 'value', r.key), vc?.embed === true)}`;
  if (specs.key?.window) {
    const w = tryWindow(kc, r.key, r.value, stats);
    s += `,"window_kind":${w ? JSON.stringify(w.kind) : 'null'},"group_key":${w?.groupKey != null ? JSON.stringify(w.groupKey) : 'null'},"window_start":${i64(w?.start)},"window_end":${i64(w?.end)},"watermark":${i64(w?.watermark)}`;
  }
  return s + '}\n';
}

export async function* jsonlChunks(rows: RowSource, codecs: ExportCodecs, stats: DecodeStats): AsyncGenerator<Uint8Array> {
  const specs = specsOf(codecs);
  for await (const batch of rows) {
    let s = '';
    for (const r of batch) s += jsonlLine(r, codecs, stats, specs);
    yield Buffer.from(s, 'utf8');
  }
}
