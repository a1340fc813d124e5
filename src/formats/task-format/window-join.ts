import { KspError } from '../../errors.js';
import { JsonNumber, JsonObject, parseJson, type JsonValue } from '../json/json-text.js';
import { noBatches, readAll, type BodySource, type OpenContext, type TaskBodyFormat, type TaskReader } from './types.js';

/**
 * A window-join task's state: one JSON document, not state.bin entries
 * (`WatermarkWindowJoinOperator::snapshot_bytes`, krishiv-dataflow/src/watermark_join.rs):
 *
 *   {"buffered_b64": base64(JSON array of {ipc, key, side, ts}),
 *    "spec": {left_key_column, right_key_column, time_column, window_ms},
 *    "watermark_ms": i64}
 *
 * (serde_json without preserve_order: members sorted by name, no spaces).
 * Each buffered event is `{key: string, side: "l"|"r", ts: i64, ipc: base64
 * Arrow IPC stream of the event's one-row batch}` (`snapshot_buffered_events`,
 * krishiv-dataflow/src/interval_join.rs). It has no key-group routing: ksp
 * carries it byte for byte, never rewrites it, and refuses to rescale it.
 */

export interface WindowJoinSummary {
  spec: { timeColumn: string; leftKeyColumn: string; rightKeyColumn: string; windowMs: string };
  /** i64 as decimal text; null when the member is absent (the engine then restores i64::MIN: no watermark yet). */
  watermarkMs: string | null;
  /** Buffered events (one Arrow row each, as the engine writes them); `rows` counts the rows their IPC streams hold, once checked. */
  buffered: number;
  left: number;
  right: number;
  keys: number;
  /** Rows inside the Arrow IPC streams: set by checkWindowJoinRows. */
  rows?: number;
  /** False for documents of older engine builds with no `buffered_b64` (restored with empty buffers). */
  hasBuffer: boolean;
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** The document as parsed, with the base64 IPC payloads of its events (for a deeper check). */
export interface ParsedWindowJoin {
  summary: WindowJoinSummary;
  ipc: Buffer[];
}

function invalid(file: string, field: string, msg: string, found?: unknown): KspError {
  return new KspError('WINDOW_JOIN_INVALID', `${file}: window-join state: ${field} ${msg}`, { file, field, ...(found !== undefined ? { found } : {}) });
}

function strictBase64(s: string, file: string, field: string): Buffer {
  if (s.length % 4 !== 0 || !BASE64.test(s)) throw invalid(file, field, 'is not standard padded base64', `${s.length} characters`);
  return Buffer.from(s, 'base64');
}

function int64(v: JsonValue | undefined, file: string, field: string): bigint {
  if (!(v instanceof JsonNumber) || !v.isInteger) throw invalid(file, field, v === undefined ? 'is missing' : 'is not an integer', v instanceof JsonNumber ? v.text : undefined);
  const n = v.value as bigint;
  if (n < I64_MIN || n > I64_MAX) throw invalid(file, field, 'is outside the i64 range', v.text);
  return n;
}

function text(o: JsonObject, name: string, file: string, field: string): string {
  const v = o.get(name);
  if (typeof v !== 'string') throw invalid(file, `${field}.${name}`, v === undefined ? 'is missing' : 'is not a string');
  return v;
}

/** Parses and checks a window-join document: JSON, the members the engine's restore needs, base64 of the buffer and of each event. */
export function parseWindowJoin(bytes: Uint8Array, file: string): ParsedWindowJoin {
  let doc: JsonValue;
  try {
    doc = parseJson(bytes, file);
  } catch (e) {
    if (e instanceof KspError) throw new KspError('WINDOW_JOIN_INVALID', `${file}: window-join state is not valid JSON: ${e.message}`, { file, ...e.data });
    throw e;
  }
  if (!(doc instanceof JsonObject)) throw invalid(file, 'document', 'is not a JSON object');
  const spec = doc.get('spec');
  // restore_from_bytes: `spec` is required (serde fails on null); watermark_ms
  // and buffered_b64 may be absent (older builds), with defaults.
  if (!(spec instanceof JsonObject)) throw invalid(file, 'spec', spec === undefined ? 'is missing' : 'is not an object');
  const windowMs = int64(spec.get('window_ms'), file, 'spec.window_ms');
  if (windowMs < 0n) throw invalid(file, 'spec.window_ms', 'is negative (it is a u64)', windowMs.toString());
  const summary: WindowJoinSummary = {
    spec: {
      timeColumn: text(spec, 'time_column', file, 'spec'),
      leftKeyColumn: text(spec, 'left_key_column', file, 'spec'),
      rightKeyColumn: text(spec, 'right_key_column', file, 'spec'),
      windowMs: windowMs.toString(),
    },
    watermarkMs: doc.has('watermark_ms') ? int64(doc.get('watermark_ms'), file, 'watermark_ms').toString() : null,
    buffered: 0, left: 0, right: 0, keys: 0, hasBuffer: doc.has('buffered_b64'),
  };
  const ipc: Buffer[] = [];
  if (summary.hasBuffer) {
    const b64 = doc.get('buffered_b64');
    if (typeof b64 !== 'string') throw invalid(file, 'buffered_b64', 'is not a string');
    const inner = strictBase64(b64, file, 'buffered_b64');
    let events: JsonValue;
    try {
      events = parseJson(inner, `${file} (buffered_b64)`);
    } catch (e) {
      if (e instanceof KspError) throw invalid(file, 'buffered_b64', `does not decode to JSON: ${e.message}`);
      throw e;
    }
    if (!Array.isArray(events)) throw invalid(file, 'buffered_b64', 'does not decode to a JSON array of events');
    const keys = new Set<string>();
    events.forEach((ev, i) => {
      const field = `buffered_b64[${i}]`;
      if (!(ev instanceof JsonObject)) throw invalid(file, field, 'is not an object');
      const key = text(ev, 'key', file, field);
      const side = text(ev, 'side', file, field);
      // The engine puts every side other than "l" on the right; ksp asks for one of the two it writes.
      if (side !== 'l' && side !== 'r') throw invalid(file, `${field}.side`, 'is neither "l" nor "r"', side);
      int64(ev.get('ts'), file, `${field}.ts`);
      ipc.push(strictBase64(text(ev, 'ipc', file, field), file, `${field}.ipc`));
      keys.add(key);
      if (side === 'l') summary.left++;
      else summary.right++;
    });
    summary.buffered = events.length;
    summary.keys = keys.size;
  }
  return { summary, ipc };
}

/** Decodes every event's Arrow IPC stream (as the engine's restore does) and counts the rows. */
export async function checkWindowJoinRows(parsed: ParsedWindowJoin, file: string): Promise<number> {
  if (parsed.ipc.length === 0) return (parsed.summary.rows = 0);
  // Loaded on demand: only documents that hold events need Arrow.
  const { RecordBatchStreamReader } = await import('apache-arrow');
  let rows = 0;
  parsed.ipc.forEach((bytes, i) => {
    try {
      const reader = RecordBatchStreamReader.from(bytes);
      let batches = 0;
      for (const batch of reader) {
        rows += batch.numRows;
        batches++;
      }
      // The engine writes each event as one one-row batch; a stream with no
      // batch restores no row for its event.
      if (batches === 0) throw new Error('it holds no record batch');
    } catch (e) {
      throw invalid(file, `buffered_b64[${i}].ipc`, `is not an Arrow IPC stream: ${(e as Error).message}`);
    }
  });
  return (parsed.summary.rows = rows);
}

export const windowJoinFormat: TaskBodyFormat<Uint8Array> & { kind: 'window-join' } = {
  kind: 'window-join',
  // serde_json::to_vec of an object: the body's first byte is `{`. No
  // state.bin can start so: its first u32 would be a version of 123 or more.
  detect: (head, size) => size > 0 && head[0] === 0x7b,
  async open(src: BodySource, ctx: OpenContext = {}): Promise<TaskReader> {
    const parsed = parseWindowJoin(await readAll(src), src.name);
    if (ctx.checkContent) await checkWindowJoinRows(parsed, src.name);
    const summary = parsed.summary;
    return { body: 'window-join', count: null, opaque: true, windowJoin: summary, batches: noBatches };
  },
  async *write(doc: Uint8Array): AsyncGenerator<Uint8Array> {
    // Carried through unchanged: ksp has nothing to change inside it.
    yield doc;
  },
};
