import type * as Arrow from 'apache-arrow';
import type { EntryRow } from '../model/savepoint.js';
import { rowKeyGroup, tryDecode, type DecodeStats, type ExportCodecs, type RowSource } from './columns.js';

/**
 * Turns entry rows into Arrow record batches built zero-copy over contiguous
 * buffers (makeData), bounded by row count and bytes so memory stays flat.
 * Every batch shares one Schema object: the IPC writer silently drops
 * batches whose schema differs from the first (apache-arrow 21).
 */

const MAX_ROWS = 16384;
const MAX_BYTES = 48 * 1024 * 1024;

class Bytes {
  buf: Buffer;
  len = 0;
  constructor(cap: number) {
    this.buf = Buffer.allocUnsafe(cap);
  }
  push(b: Uint8Array): void {
    if (this.len + b.length > this.buf.length) {
      const nb = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + b.length));
      this.buf.copy(nb, 0, 0, this.len);
      this.buf = nb;
    }
    this.buf.set(b, this.len);
    this.len += b.length;
  }
}

class VarCol {
  offsets = new Int32Array(MAX_ROWS + 1);
  data = new Bytes(64 * 1024);
  n = 0;
  push(b: Uint8Array): void {
    this.data.push(b);
    this.offsets[++this.n] = this.data.len;
  }
}

class NullableCol {
  valid = new Uint8Array(Math.ceil(MAX_ROWS / 8));
  nulls = 0;
  n = 0;
  mark(ok: boolean): void {
    if (ok) this.valid[this.n >> 3]! |= 1 << (this.n & 7);
    else this.nulls++;
    this.n++;
  }
}

export async function arrowModule(): Promise<typeof Arrow> {
  return import('apache-arrow');
}

export function exportSchema(A: typeof Arrow, codecs: ExportCodecs): Arrow.Schema {
  const typeOf = (c: NonNullable<ExportCodecs['key']>): Arrow.DataType =>
    c.column === 'int64' ? new A.Int64() : c.column === 'uint64' ? new A.Uint64() : c.column === 'float64' ? new A.Float64() : new A.Utf8();
  const fields: Arrow.Field[] = [
    new A.Field('operator_id', new A.Utf8(), false),
    new A.Field('task_id', new A.Utf8(), false),
    new A.Field('entry_operator', new A.Utf8(), false),
    new A.Field('state_name', new A.Utf8(), false),
    new A.Field('key', new A.Binary(), false),
    new A.Field('value', new A.Binary(), false),
    new A.Field('key_group', new A.Int32(), false),
  ];
  if (codecs.key) fields.push(new A.Field('key_decoded', typeOf(codecs.key), true));
  if (codecs.value) fields.push(new A.Field('value_decoded', typeOf(codecs.value), true));
  return new A.Schema(fields);
}

class DecodedCol extends NullableCol {
  text = new VarCol();
  nums: BigInt64Array | BigUint64Array | Float64Array;
  constructor(readonly kind: 'utf8' | 'int64' | 'uint64' | 'float64') {
    super();
    this.nums = kind === 'int64' ? new BigInt64Array(MAX_ROWS) : kind === 'uint64' ? new BigUint64Array(MAX_ROWS) : new Float64Array(kind === 'float64' ? MAX_ROWS : 0);
  }
  add(v: string | bigint | number | null): void {
    const i = this.n;
    this.mark(v !== null);
    if (this.kind === 'utf8') this.text.push(v === null ? EMPTY : Buffer.from(String(v), 'utf8'));
    else if (v !== null) (this.nums as unknown as Array<unknown>)[i] = v;
  }
}
const EMPTY = new Uint8Array(0);

class BatchBuilder {
  cols = [new VarCol(), new VarCol(), new VarCol(), new VarCol(), new VarCol(), new VarCol()];
  groups = new Int32Array(MAX_ROWS);
  keyDec?: DecodedCol;
  valDec?: DecodedCol;
  n = 0;
  bytes = 0;
  private texts = new Map<string, Buffer>();

  constructor(readonly codecs: ExportCodecs, readonly stats: DecodeStats) {
    if (codecs.key) this.keyDec = new DecodedCol(codecs.key.column);
    if (codecs.value) this.valDec = new DecodedCol(codecs.value.column);
  }

  private text(s: string): Buffer {
    let b = this.texts.get(s);
    if (!b) this.texts.set(s, (b = Buffer.from(s, 'utf8')));
    return b;
  }

  add(r: EntryRow): void {
    const c = this.cols;
    c[0]!.push(this.text(r.task.operatorId));
    c[1]!.push(this.text(r.task.taskId));
    c[2]!.push(this.text(r.operatorId));
    c[3]!.push(this.text(r.stateName));
    c[4]!.push(r.key);
    c[5]!.push(r.value);
    this.groups[this.n] = rowKeyGroup(r.key);
    if (this.keyDec) this.keyDec.add(tryDecode(this.codecs.key!, r.key, this.stats, 'key'));
    if (this.valDec) this.valDec.add(tryDecode(this.codecs.value!, r.value, this.stats, 'value'));
    this.n++;
    this.bytes += r.key.length + r.value.length + 64;
  }

  get full(): boolean {
    return this.n >= MAX_ROWS || this.bytes >= MAX_BYTES;
  }

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
    for (const d of [this.keyDec, this.valDec]) {
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

/** Record batches for the rows; `stats` counts values the codecs could not decode. */
export async function* toRecordBatches(A: typeof Arrow, schema: Arrow.Schema, rows: RowSource, codecs: ExportCodecs, stats: DecodeStats): AsyncGenerator<Arrow.RecordBatch> {
  let b = new BatchBuilder(codecs, stats);
  for await (const batch of rows) {
    for (const r of batch) {
      b.add(r);
      if (b.full) {
        yield b.build(A, schema);
        b = new BatchBuilder(codecs, stats);
      }
    }
  }
  if (b.n > 0) yield b.build(A, schema);
}
