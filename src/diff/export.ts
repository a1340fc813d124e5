import type * as Arrow from 'apache-arrow';
import { arrowIpcChunks } from '../export/arrow-ipc.js';
import { arrowModule, decodedType } from '../export/arrow-batches.js';
import { rowKeyGroup, specsOf, tryDecode, tryWindow, WINDOW_COLUMNS, type DecodeStats, type ExportCodecs, type ExportSpecs } from '../export/columns.js';
import { formatFromPath, type ExportFormat, type ExportResult } from '../export/export.js';
import { hex, i64, jsonOf } from '../export/jsonl.js';
import { parquetChunks, type ParquetCompression } from '../export/parquet.js';
import type { WindowKey } from '../model/window-key.js';
import { uriOf, type Location } from '../storage/uri.js';
import type { DiffRow } from './diff.js';

/**
 * `ksp diff --out`: one row per difference, to Parquet, Arrow IPC or JSON
 * Lines, with inspect's codecs (--key-codec, --value-codec, per state) and
 * its writers (export/). Columns: operator_id, entry_operator, state_name,
 * change (added, removed, changed), key, old_value, new_value (null on the
 * side that has none), key_group; key_decoded, old_value_decoded and
 * new_value_decoded when a codec decodes them; the window columns when the
 * key codec is `window` (read with the new value, else the old).
 * Differences are few next to the entries, so batches are built with
 * Arrow's own builders rather than export's zero-copy ones.
 */

const MAX_ROWS = 8192;

interface Decoded {
  key: ReturnType<typeof tryDecode>;
  oldValue: ReturnType<typeof tryDecode>;
  newValue: ReturnType<typeof tryDecode>;
  window: WindowKey | null;
}

function decodeRow(r: DiffRow, specs: ExportSpecs, stats: DecodeStats): Decoded {
  const kc = specs.key?.for(r.stateName);
  const vc = specs.value?.for(r.stateName);
  return {
    key: specs.key?.column ? tryDecode(kc, r.key, stats, 'key') : null,
    oldValue: specs.value?.column && r.oldValue ? tryDecode(vc, r.oldValue, stats, 'value', r.key) : null,
    newValue: specs.value?.column && r.newValue ? tryDecode(vc, r.newValue, stats, 'value', r.key) : null,
    window: specs.key?.window ? tryWindow(kc, r.key, (r.newValue ?? r.oldValue)!, stats) : null,
  };
}

export function diffSchema(A: typeof Arrow, codecs: ExportCodecs): Arrow.Schema {
  const specs = specsOf(codecs);
  const fields: Arrow.Field[] = [
    new A.Field('operator_id', new A.Utf8(), false),
    new A.Field('entry_operator', new A.Utf8(), false),
    new A.Field('state_name', new A.Utf8(), false),
    new A.Field('change', new A.Utf8(), false),
    new A.Field('key', new A.Binary(), false),
    new A.Field('old_value', new A.Binary(), true),
    new A.Field('new_value', new A.Binary(), true),
    new A.Field('key_group', new A.Int32(), false),
  ];
  if (specs.key?.column) fields.push(new A.Field('key_decoded', decodedType(A, specs.key.column), true));
  if (specs.value?.column) {
    fields.push(new A.Field('old_value_decoded', decodedType(A, specs.value.column), true));
    fields.push(new A.Field('new_value_decoded', decodedType(A, specs.value.column), true));
  }
  if (specs.key?.window) for (const w of WINDOW_COLUMNS) fields.push(new A.Field(w, w === 'window_kind' || w === 'group_key' ? new A.Utf8() : new A.Int64(), true));
  return new A.Schema(fields);
}

/** A column's value as its Arrow builder takes it (decoded integers arrive as bigint or number). */
function cell(A: typeof Arrow, type: Arrow.DataType, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (A.DataType.isInt(type) && type.bitWidth === 64) return typeof v === 'bigint' ? v : BigInt(v as number);
  if (A.DataType.isUtf8(type)) return String(v);
  return v;
}

async function* diffBatches(A: typeof Arrow, schema: Arrow.Schema, rows: AsyncIterable<DiffRow[]>, codecs: ExportCodecs, stats: DecodeStats): AsyncGenerator<Arrow.RecordBatch> {
  const specs = specsOf(codecs);
  const fields = schema.fields;
  let cols: unknown[][] = fields.map(() => []);
  const flush = (): Arrow.RecordBatch => {
    const children = fields.map((f, i) => {
      const b = A.makeBuilder({ type: f.type, nullValues: [null] });
      for (const v of cols[i]!) b.append(cell(A, f.type, v) as never);
      return b.finish().flush();
    });
    const n = cols[0]!.length;
    cols = fields.map(() => []);
    return new A.RecordBatch(schema, A.makeData({ type: new A.Struct(fields), length: n, nullCount: 0, children }));
  };
  for await (const batch of rows) {
    for (const r of batch) {
      const d = decodeRow(r, specs, stats);
      const values: unknown[] = [r.operatorId, r.entryOperator, r.stateName, r.change, r.key, r.oldValue, r.newValue, rowKeyGroup(r.key)];
      if (specs.key?.column) values.push(d.key);
      if (specs.value?.column) values.push(d.oldValue, d.newValue);
      if (specs.key?.window) values.push(d.window?.kind ?? null, d.window?.groupKey ?? null, d.window?.start ?? null, d.window?.end ?? null, d.window?.watermark ?? null);
      values.forEach((v, i) => cols[i]!.push(v));
      if (cols[0]!.length >= MAX_ROWS) yield flush();
    }
  }
  if (cols[0]!.length) yield flush();
}

function jsonlLine(r: DiffRow, specs: ExportSpecs, stats: DecodeStats): string {
  const d = decodeRow(r, specs, stats);
  const vc = specs.value?.for(r.stateName);
  let s = `{"operator_id":${JSON.stringify(r.operatorId)},"entry_operator":${JSON.stringify(r.entryOperator)},"state_name":${JSON.stringify(r.stateName)},"change":"${r.change}","key_hex":"${hex(r.key)}","old_value_hex":${r.oldValue ? `"${hex(r.oldValue)}"` : 'null'},"new_value_hex":${r.newValue ? `"${hex(r.newValue)}"` : 'null'},"key_group":${rowKeyGroup(r.key)}`;
  if (specs.key?.column) s += `,"key_decoded":${jsonOf(d.key, specs.key.for(r.stateName)?.embed === true)}`;
  if (specs.value?.column) s += `,"old_value_decoded":${jsonOf(d.oldValue, vc?.embed === true)},"new_value_decoded":${jsonOf(d.newValue, vc?.embed === true)}`;
  if (specs.key?.window) {
    const w = d.window;
    s += `,"window_kind":${w ? JSON.stringify(w.kind) : 'null'},"group_key":${w?.groupKey != null ? JSON.stringify(w.groupKey) : 'null'},"window_start":${i64(w?.start)},"window_end":${i64(w?.end)},"watermark":${i64(w?.watermark)}`;
  }
  return s + '}\n';
}

export interface DiffExportOptions {
  format?: ExportFormat;
  codecs?: ExportCodecs;
  compression?: ParquetCompression;
}

/** Writes the differences to `out`, streamed; the format follows the name (.parquet, .arrow, .arrows, .jsonl). */
export async function exportDiff(rows: AsyncIterable<DiffRow[]>, out: Location, options: DiffExportOptions = {}): Promise<ExportResult> {
  const format = options.format ?? formatFromPath(out.key);
  const codecs = options.codecs ?? {};
  const decode: DecodeStats = { keyFailures: 0, valueFailures: 0 };
  let count = 0;
  const counted = (async function* (): AsyncGenerator<DiffRow[]> {
    for await (const b of rows) {
      count += b.length;
      yield b;
    }
  })();
  let chunks: AsyncIterable<Uint8Array>;
  if (format === 'jsonl') {
    const specs = specsOf(codecs);
    chunks = (async function* (): AsyncGenerator<Uint8Array> {
      for await (const b of counted) {
        let s = '';
        for (const r of b) s += jsonlLine(r, specs, decode);
        yield Buffer.from(s, 'utf8');
      }
    })();
  } else {
    const A = await arrowModule();
    const schema = diffSchema(A, codecs);
    const batches = diffBatches(A, schema, counted, codecs, decode);
    chunks = format === 'parquet' ? parquetChunks(A, schema, batches, options.compression) : arrowIpcChunks(A, schema, batches, format === 'arrow' ? 'file' : 'stream');
  }
  let bytes = 0;
  const sized = (async function* (): AsyncGenerator<Uint8Array> {
    for await (const c of chunks) {
      bytes += c.length;
      yield c;
    }
  })();
  await out.storage.write(out.key, sized);
  return { file: uriOf(out), format, rows: count, bytes, decode };
}
