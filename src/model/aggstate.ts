import { JsonNumber, JsonObject, parseJson, type JsonValue } from '../formats/json/json-text.js';

/**
 * The engine's window accumulator value (FORMAT.md §"Window state"): the
 * `AggState` that tumbling and sliding windows persist under `tw:`/`sw:`
 * keys, read as the engine reads it (decode_agg_state in
 * krishiv-dataflow/src/window/state_persistence.rs):
 *
 * - binary v1: u8 tag 0x01 ‖ u32 LE n ‖ n × 41-byte records
 *   (i64 value, u8 has_value, f64 avg_sum, u64 avg_count, f64 float_value,
 *   f64 sq_sum; all little-endian). Bytes after the n records are ignored,
 *   as the engine ignores them.
 * - legacy: a serde_json object (first byte `{`) of parallel arrays
 *   `values`, `has_value`, `avg_sums`, `avg_counts`, `float_values`,
 *   `sq_sums`; n is the length of `values`, elements of the wrong type are
 *   skipped and missing ones default to 0/false, as
 *   decode_agg_state_legacy_json does. Sessions (`ses:` keys, session.rs
 *   persist_to_state) store this same object with two more members.
 *
 * The result is JSON text (an array of entry objects), so it fits one
 * column of any export format; 64-bit integers keep all their digits and
 * non-finite floats become the strings "Infinity", "-Infinity", "NaN".
 */

export const AGG_STATE_BINARY_V1 = 0x01;
export const AGG_ENTRY_LEN = 41;

export interface AggEntry {
  value: bigint;
  hasValue: boolean;
  avgSum: number;
  avgCount: bigint;
  floatValue: number;
  sqSum: number;
}

/** Why bytes are not an AggState: the engine's own wording where it has one. */
export class AggStateError extends Error {}

export function decodeAggState(b: Uint8Array): AggEntry[] {
  if (b.length === 0) throw new AggStateError('empty value (unrecognized encoding tag)');
  if (b[0] === AGG_STATE_BINARY_V1) return decodeBinary(b);
  if (b[0] === 0x7b) return decodeLegacy(b);
  throw new AggStateError(`unrecognized encoding tag 0x${b[0]!.toString(16).padStart(2, '0')} (expected 0x01 or '{')`);
}

function decodeBinary(b: Uint8Array): AggEntry[] {
  if (b.length < 5) throw new AggStateError(`binary v1: missing entry count (${b.length} bytes)`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const n = v.getUint32(1, true);
  // Checked before reading: a corrupt count must not make us allocate for it.
  if (5 + n * AGG_ENTRY_LEN > b.length) throw new AggStateError(`binary v1: ${n} entries need ${5 + n * AGG_ENTRY_LEN} bytes, found ${b.length} (entry truncated)`);
  const out: AggEntry[] = [];
  for (let i = 0, o = 5; i < n; i++, o += AGG_ENTRY_LEN) {
    out.push({
      value: v.getBigInt64(o, true),
      hasValue: b[o + 8] !== 0,
      avgSum: v.getFloat64(o + 9, true),
      avgCount: v.getBigUint64(o + 17, true),
      floatValue: v.getFloat64(o + 25, true),
      sqSum: v.getFloat64(o + 33, true),
    });
  }
  return out;
}

const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const U64_MAX = (1n << 64n) - 1n;

/** serde_json's Value::as_i64 / as_u64 / as_f64 / as_bool over one array member. */
function arr<T>(o: JsonObject, name: string, pick: (v: JsonValue) => T | undefined): T[] {
  const a = o.get(name);
  if (!Array.isArray(a)) return [];
  const out: T[] = [];
  for (const x of a) {
    const p = pick(x);
    if (p !== undefined) out.push(p);
  }
  return out;
}
const asInt = (lo: bigint, hi: bigint) => (x: JsonValue): bigint | undefined => {
  if (!(x instanceof JsonNumber) || !x.isInteger) return undefined;
  const n = BigInt(x.text);
  return n >= lo && n <= hi ? n : undefined;
};
const asF64 = (x: JsonValue): number | undefined => (x instanceof JsonNumber ? Number(x.text) : undefined);
const asBool = (x: JsonValue): boolean | undefined => (typeof x === 'boolean' ? x : undefined);

function decodeLegacy(b: Uint8Array): AggEntry[] {
  let doc: JsonValue;
  try {
    doc = parseJson(b, 'value');
  } catch (e) {
    throw new AggStateError(`legacy JSON: ${(e as Error).message.replace(/^value: /, '')}`);
  }
  // serde_json's `get` on a non-object is None: every array is then empty.
  const o = doc instanceof JsonObject ? doc : new JsonObject();
  const values = arr(o, 'values', asInt(I64_MIN, I64_MAX));
  const has = arr(o, 'has_value', asBool);
  const sums = arr(o, 'avg_sums', asF64);
  const counts = arr(o, 'avg_counts', asInt(0n, U64_MAX));
  const floats = arr(o, 'float_values', asF64);
  const sq = arr(o, 'sq_sums', asF64);
  return values.map((value, i) => ({
    value, hasValue: has[i] ?? false, avgSum: sums[i] ?? 0, avgCount: counts[i] ?? 0n, floatValue: floats[i] ?? 0, sqSum: sq[i] ?? 0,
  }));
}

function num(x: number): string {
  return Number.isFinite(x) ? String(x) : JSON.stringify(String(x));
}

/** The entries as JSON text: `[{"value":…,"has_value":…,"avg_sum":…,"avg_count":…,"float_value":…,"sq_sum":…}, …]`. */
export function aggStateJson(entries: AggEntry[]): string {
  return '[' + entries.map((e) => `{"value":${e.value},"has_value":${e.hasValue},"avg_sum":${num(e.avgSum)},"avg_count":${e.avgCount},"float_value":${num(e.floatValue)},"sq_sum":${num(e.sqSum)}}`).join(',') + ']';
}

/** An AggState in the binary v1 layout (encode_agg_state): for tests and fixtures. */
export function encodeAggState(entries: AggEntry[]): Buffer {
  const out = Buffer.alloc(5 + entries.length * AGG_ENTRY_LEN);
  out[0] = AGG_STATE_BINARY_V1;
  out.writeUInt32LE(entries.length, 1);
  entries.forEach((e, i) => {
    const o = 5 + i * AGG_ENTRY_LEN;
    out.writeBigInt64LE(e.value, o);
    out[o + 8] = e.hasValue ? 1 : 0;
    out.writeDoubleLE(e.avgSum, o + 9);
    out.writeBigUInt64LE(e.avgCount, o + 17);
    out.writeDoubleLE(e.floatValue, o + 25);
    out.writeDoubleLE(e.sqSum, o + 33);
  });
  return out;
}
