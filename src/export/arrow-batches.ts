import type * as Arrow from 'apache-arrow';
import type { EntryRow } from '../model/savepoint.js';
import type { ViewCodec } from '../model/value-codecs.js';
import { rowKeyGroupAt, specsOf, tryDecode, tryWindow, WINDOW_COLUMNS, type DecodeStats, type ExportCodecs, type ExportSpecs, type RowSource } from './columns.js';

/**
 * Turns entry rows into Arrow record batches built zero-copy over contiguous
 * buffers (makeData), bounded by row count and bytes so memory stays flat.
 * Every batch shares one Schema object: the IPC writer silently drops
 * batches whose schema differs from the first (apache-arrow 21).
 *
 * One builder serves every batch, its column buffers kept and only grown:
 * a builder per batch, its buffers grown by doubling, allocated ~7 MB of
 * ArrayBuffers per 16K rows, and the old-space collections they caused were
 * about a quarter of an export's CPU (--trace-gc on the bench's 2M entries:
 * 44 mark-compacts). So a batch's buffers are valid only until the next one
 * is asked for: its consumer writes or copies it first (arrow-ipc.ts,
 * parquet.ts do).
 */

const MAX_ROWS = 16384;
const MAX_BYTES = 48 * 1024 * 1024;

class Bytes {
  buf: Uint8Array;
  len = 0;
  constructor(cap: number) {
    this.buf = new Uint8Array(cap);
  }
  push(b: Uint8Array): void {
    const n = b.length;
    let len = this.len;
    if (len + n > this.buf.length) {
      const nb = new Uint8Array(Math.max(this.buf.length * 2, len + n));
      nb.set(this.buf.subarray(0, len));
      this.buf = nb;
    }
    const out = this.buf;
    if (n <= 32) {
      // Short fields (ids, keys) copied in JS: a native copy costs more than their bytes.
      for (let i = 0; i < n; i++) out[len++] = b[i]!;
      this.len = len;
    } else {
      out.set(b, len);
      this.len = len + n;
    }
  }
}

class VarCol {
  readonly offsets = new Int32Array(MAX_ROWS + 1);
  readonly data = new Bytes(64 * 1024);
  n = 0;
  push(b: Uint8Array): void {
    this.data.push(b);
    this.offsets[++this.n] = this.data.len;
  }
  reset(): void {
    this.n = 0;
    this.data.len = 0;
  }
}

class NullableCol {
  readonly valid = new Uint8Array(Math.ceil(MAX_ROWS / 8));
  nulls = 0;
  n = 0;
  mark(ok: boolean): void {
    if (ok) this.valid[this.n >> 3]! |= 1 << (this.n & 7);
    else this.nulls++;
    this.n++;
  }
  resetNulls(): void {
    this.valid.fill(0);
    this.nulls = 0;
    this.n = 0;
  }
}

export async function arrowModule(): Promise<typeof Arrow> {
  return import('apache-arrow');
}

/** The Arrow type of a decoded column (a codec's `column`). */
export function decodedType(A: typeof Arrow, column: string): Arrow.DataType {
  return column === 'int64' ? new A.Int64() : column === 'uint64' ? new A.Uint64() : column === 'float64' ? new A.Float64() : new A.Utf8();
}

export function exportSchema(A: typeof Arrow, codecs: ExportCodecs): Arrow.Schema {
  const specs = specsOf(codecs);
  const typeOf = (c: string): Arrow.DataType => decodedType(A, c);
  const fields: Arrow.Field[] = [
    new A.Field('operator_id', new A.Utf8(), false),
    new A.Field('task_id', new A.Utf8(), false),
    new A.Field('entry_operator', new A.Utf8(), false),
    new A.Field('state_name', new A.Utf8(), false),
    new A.Field('key', new A.Binary(), false),
    new A.Field('value', new A.Binary(), false),
    new A.Field('key_group', new A.Int32(), false),
  ];
  if (specs.key?.column) fields.push(new A.Field('key_decoded', typeOf(specs.key.column), true));
  if (specs.value?.column) fields.push(new A.Field('value_decoded', typeOf(specs.value.column), true));
  if (specs.key?.window) for (const w of WINDOW_COLUMNS) fields.push(new A.Field(w, typeOf(w === 'window_kind' || w === 'group_key' ? 'utf8' : 'int64'), true));
  return new A.Schema(fields);
}

class DecodedCol extends NullableCol {
  text = new VarCol();
  nums: BigInt64Array | BigUint64Array | Float64Array;
  constructor(readonly kind: 'utf8' | 'int64' | 'uint64' | 'float64') {
    super();
    this.nums = kind === 'int64' ? new BigInt64Array(MAX_ROWS) : kind === 'uint64' ? new BigUint64Array(MAX_ROWS) : new Float64Array(kind === 'float64' ? MAX_ROWS : 0);
  }
  reset(): void {
    this.resetNulls();
    this.text.reset();
  }
  add(v: string | bigint | number | null): void {
    const i = this.n;
    this.mark(v !== null);
    if (this.kind === 'utf8') this.text.push(v === null ? EMPTY : Buffer.from(String(v), 'utf8'));
    // A null's slot is zeroed: the buffers are reused, and the bytes under a null must not depend on the batch before.
    else (this.nums as unknown as Array<unknown>)[i] = v ?? (this.kind === 'float64' ? 0 : 0n);
  }
}
const EMPTY = new Uint8Array(0);

class BatchBuilder {
  readonly cols = [new VarCol(), new VarCol(), new VarCol(), new VarCol(), new VarCol(), new VarCol()];
  readonly groups = new Int32Array(MAX_ROWS);
  keyDec?: DecodedCol;
  valDec?: DecodedCol;
  /** window_kind, group_key, window_start, window_end, watermark. */
  winCols?: DecodedCol[];
  readonly specs: ExportSpecs;
  // The codecs of the last row's state: rows come state by state.
  private lastState: string | null = null;
  private keyCodec: ViewCodec | undefined;
  private valCodec: ViewCodec | undefined;
  n = 0;
  bytes = 0;
  private readonly texts = new Map<string, Buffer>();
  // The ids repeat row after row: the last string of each column and its bytes.
  private readonly lastText: string[] = ['', '', '', ''];
  private readonly lastBytes: Buffer[] = [EMPTY_BUF, EMPTY_BUF, EMPTY_BUF, EMPTY_BUF];

  constructor(codecs: ExportCodecs, readonly stats: DecodeStats) {
    this.specs = specsOf(codecs);
    if (this.specs.key?.column) this.keyDec = new DecodedCol(this.specs.key.column);
    if (this.specs.value?.column) this.valDec = new DecodedCol(this.specs.value.column);
    if (this.specs.key?.window) this.winCols = [new DecodedCol('utf8'), new DecodedCol('utf8'), new DecodedCol('int64'), new DecodedCol('int64'), new DecodedCol('int64')];
  }

  private text(col: number, s: string): void {
    let b: Buffer;
    if (s === this.lastText[col]) b = this.lastBytes[col]!;
    else {
      b = this.texts.get(s)!;
      if (!b) this.texts.set(s, (b = Buffer.from(s, 'utf8')));
      this.lastText[col] = s;
      this.lastBytes[col] = b;
    }
    this.cols[col]!.push(b);
  }

  /** Starts the next batch over the same buffers. */
  reset(): void {
    for (const c of this.cols) c.reset();
    this.keyDec?.reset();
    this.valDec?.reset();
    for (const c of this.winCols ?? []) c.reset();
    this.n = 0;
    this.bytes = 0;
  }

  add(r: EntryRow): void {
    this.text(0, r.task.operatorId);
    this.text(1, r.task.taskId);
    this.text(2, r.operatorId);
    this.text(3, r.stateName);
    this.cols[4]!.push(r.key);
    this.cols[5]!.push(r.value);
    this.groups[this.n] = rowKeyGroupAt(r.key);
    if (r.stateName !== this.lastState) {
      this.lastState = r.stateName;
      this.keyCodec = this.specs.key?.for(r.stateName);
      this.valCodec = this.specs.value?.for(r.stateName);
    }
    if (this.keyDec) this.keyDec.add(tryDecode(this.keyCodec, r.key, this.stats, 'key'));
    if (this.valDec) this.valDec.add(tryDecode(this.valCodec, r.value, this.stats, 'value', r.key));
    if (this.winCols) {
      const w = tryWindow(this.keyCodec, r.key, r.value, this.stats);
      const c = this.winCols;
      c[0]!.add(w?.kind ?? null);
      c[1]!.add(w?.groupKey ?? null);
      c[2]!.add(w?.start ?? null);
      c[3]!.add(w?.end ?? null);
      c[4]!.add(w?.watermark ?? null);
    }
    this.n++;
    this.bytes += r.key.length + r.value.length + 64;
  }

  get full(): boolean {
    return this.n >= MAX_ROWS || this.bytes >= MAX_BYTES;
  }

  /** The batch so far, as views of the builder's buffers (valid until reset). */
  build(A: typeof Arrow, schema: Arrow.Schema): Arrow.RecordBatch {
    const n = this.n;
    const fields = schema.fields;
    const varData = (i: number): Arrow.Data => {
      const col = this.cols[i]!;
      return A.makeData({ type: fields[i]!.type, length: n, nullCount: 0, valueOffsets: col.offsets.subarray(0, n + 1), data: col.data.buf.subarray(0, col.data.len) } as never);
    };
    const children: Arrow.Data[] = [0, 1, 2, 3, 4, 5].map(varData);
    children.push(A.makeData({ type: new A.Int32(), length: n, nullCount: 0, data: this.groups.subarray(0, n) }));
    let fi = 7;
    for (const d of [this.keyDec, this.valDec, ...(this.winCols ?? [])]) {
      if (!d) continue;
      const type = fields[fi++]!.type;
      const nullBitmap = d.nulls > 0 ? d.valid.subarray(0, Math.ceil(n / 8)) : undefined;
      children.push(d.kind === 'utf8'
        ? A.makeData({ type, length: n, nullCount: d.nulls, nullBitmap, valueOffsets: d.text.offsets.subarray(0, n + 1), data: d.text.data.buf.subarray(0, d.text.data.len) } as never)
        : A.makeData({ type, length: n, nullCount: d.nulls, nullBitmap, data: d.nums.subarray(0, n) } as never));
    }
    const struct = A.makeData({ type: new A.Struct(fields), length: n, nullCount: 0, children });
    return new A.RecordBatch(schema, struct);
  }
}
const EMPTY_BUF = Buffer.alloc(0);

/**
 * Record batches for the rows; `stats` counts values the codecs could not
 * decode. A batch's buffers are reused for the next one: write or copy it
 * before asking for the next.
 */
export async function* toRecordBatches(A: typeof Arrow, schema: Arrow.Schema, rows: RowSource, codecs: ExportCodecs, stats: DecodeStats): AsyncGenerator<Arrow.RecordBatch> {
  const b = new BatchBuilder(codecs, stats);
  for await (const batch of rows) {
    for (const r of batch) {
      b.add(r);
      if (b.full) {
        yield b.build(A, schema);
        b.reset();
      }
    }
  }
  if (b.n > 0) yield b.build(A, schema);
}
