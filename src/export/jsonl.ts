import type { EntryRow } from '../model/savepoint.js';
import { rowKeyGroup, tryDecode, type DecodeStats, type ExportCodecs, type RowSource } from './columns.js';

/**
 * JSON Lines: one object per entry. Binary columns are lowercase hex
 * (`key_hex`, `value_hex`); decoded JSON/msgpack values are embedded as JSON,
 * 64-bit integers outside the exact double range as strings.
 */

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

function jsonOf(v: string | bigint | number | null, embed: boolean): string {
  if (v === null) return 'null';
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? v.toString() : JSON.stringify(v.toString());
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : JSON.stringify(String(v));
  return embed ? v : JSON.stringify(v);
}

export function jsonlLine(r: EntryRow, codecs: ExportCodecs, stats: DecodeStats): string {
  let s = `{"operator_id":${JSON.stringify(r.task.operatorId)},"task_id":${JSON.stringify(r.task.taskId)},"entry_operator":${JSON.stringify(r.operatorId)},"state_name":${JSON.stringify(r.stateName)},"key_hex":"${hex(r.key)}","value_hex":"${hex(r.value)}","key_group":${rowKeyGroup(r.key)}`;
  if (codecs.key) s += `,"key_decoded":${jsonOf(tryDecode(codecs.key, r.key, stats, 'key'), codecs.key.name === 'json' || codecs.key.name === 'msgpack')}`;
  if (codecs.value) s += `,"value_decoded":${jsonOf(tryDecode(codecs.value, r.value, stats, 'value'), codecs.value.name === 'json' || codecs.value.name === 'msgpack')}`;
  return s + '}\n';
}

export async function* jsonlChunks(rows: RowSource, codecs: ExportCodecs, stats: DecodeStats): AsyncGenerator<Uint8Array> {
  for await (const batch of rows) {
    let s = '';
    for (const r of batch) s += jsonlLine(r, codecs, stats);
    yield Buffer.from(s, 'utf8');
  }
}
