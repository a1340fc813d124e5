import { KspError } from '../errors.js';
import type { ExportFormat } from '../export/export.js';
import { formatFromPath } from '../export/export.js';
import type { CodecSpec } from '../model/value-codecs.js';
import { EncodeError, valueEncoder, type Encoder } from '../model/value-encoders.js';
import { MISSING, readColumns, type ColumnBatch, type RowsTotal } from './read-columns.js';

/**
 * Import rows: the columns `inspect --out` writes (export/columns.ts), read
 * back into entries. Per row:
 *
 * - `operator_id` (required): the metadata's operator, which picks the tasks;
 * - `state_name` (required); `entry_operator` (the id inside the entry;
 *   default `operator_id`); `task_id` (optional: where a broadcast entry such
 *   as a watermark goes, see route.ts); `key_group` is derived and ignored;
 * - the key from `key` (binary), `key_hex` or `key_utf8`, or `key_decoded`
 *   encoded with `--key-codec`; the value likewise (`value`, `value_hex`,
 *   `value_utf8`, `value_decoded` with `--value-codec`). A decoded column
 *   wins when its codec is given and the row's decoded value is not null:
 *   that is the column an editor changes;
 * - `change` (optional): `upsert` (default) or `delete`; a delete needs no value.
 *
 * A row that cannot become an entry is an IMPORT_ROW error naming the file,
 * the row number (1-based; JSON Lines: the line) and the column.
 */

export type Change = 'upsert' | 'delete';

export interface ImportRow {
  row: number;
  operatorId: string;
  taskId: string | null;
  entryOperator: string;
  stateName: string;
  key: Uint8Array;
  value: Uint8Array;
  change: Change;
}

/** Where rows come from: a local file, its format from its name unless given. */
export interface RowsSource {
  file: string;
  format?: ExportFormat;
  /** Codecs that encode `key_decoded` / `value_decoded` back (the export's codec names). */
  keyCodec?: CodecSpec;
  valueCodec?: CodecSpec;
  /** Progress of the one read of the rows (at plan time): its start, the rows' total as known (read-columns.ts), rows read. */
  progress?: { start(): void; total: RowsTotal; rows(n: number): void };
}

export function rowsSource(src: string | RowsSource): RowsSource {
  const s = typeof src === 'string' ? { file: src } : src;
  return { ...s, format: s.format ?? formatFromPath(s.file) };
}

type Col = ((i: number) => unknown) | undefined;

/** The columns a key or a value may come from, looked up once per batch. */
interface SideColumns {
  raw: Col;
  hex: Col;
  utf8: Col;
  decoded: Col;
}

class RowReader {
  private constructor(private readonly src: RowsSource, private readonly encoders: ReadonlyMap<string, Encoder>) {}

  /** Every codec the specs name, made once (msgpack loads its library). */
  static async of(src: RowsSource): Promise<RowReader> {
    const encoders = new Map<string, Encoder>();
    for (const spec of [src.keyCodec, src.valueCodec]) {
      for (const c of [...(spec?.byState.values() ?? []), ...(spec?.fallback ? [spec.fallback] : [])]) {
        if (c.column !== 'none' && !encoders.has(c.name)) encoders.set(c.name, await valueEncoder(c.name));
      }
    }
    return new RowReader(src, encoders);
  }

  fail(row: number, column: string | null, why: string, extra: Record<string, unknown> = {}): never {
    throw new KspError('IMPORT_ROW', `${this.src.file}: row ${row}${column ? `, column ${column}` : ''}: ${why}; nothing was written`, { file: this.src.file, row, ...(column ? { column } : {}), ...extra });
  }

  private encoder(spec: CodecSpec | undefined, state: string): { name: string; enc: Encoder } | null {
    const c = spec?.for(state);
    return c ? { name: c.name, enc: this.encoders.get(c.name)! } : null;
  }

  private text(col: Col, i: number, row: number, name: string, required: boolean): string | null {
    const v = col?.(i);
    if (v === undefined || v === MISSING || v === null) {
      if (required) this.fail(row, name, col && v !== MISSING ? 'is null' : 'missing column (the columns ksp inspect --out writes: operator_id, state_name, key, value, …)', { expected: name });
      return null;
    }
    if (typeof v !== 'string') this.fail(row, name, `expected text, found ${typeof v}`);
    return v;
  }

  /** Key or value bytes of row i, by the rules above; null when the row has none (a delete's value). */
  private bytes(c: SideColumns, i: number, row: number, which: 'key' | 'value', state: string): Uint8Array | null {
    const dec = c.decoded;
    const codec = this.encoder(which === 'key' ? this.src.keyCodec : this.src.valueCodec, state);
    if (codec && dec) {
      const v = dec(i);
      if (v !== null && v !== undefined && v !== MISSING) {
        try {
          return codec.enc(v);
        } catch (e) {
          if (e instanceof EncodeError) this.fail(row, `${which}_decoded`, `cannot encode as ${codec.name}: ${e.message}`, { codec: codec.name });
          throw e;
        }
      }
    }
    const raw = c.raw?.(i);
    if (raw instanceof Uint8Array) return raw;
    if (raw !== undefined && raw !== null && raw !== MISSING) this.fail(row, which, `expected binary, found ${typeof raw}`);
    const hex = c.hex?.(i);
    if (typeof hex === 'string') {
      if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) this.fail(row, `${which}_hex`, `${JSON.stringify(hex.slice(0, 40))} is not an even number of hex digits`);
      return Buffer.from(hex, 'hex');
    }
    if (hex !== undefined && hex !== null && hex !== MISSING) this.fail(row, `${which}_hex`, `expected hex text, found ${typeof hex}`);
    const utf8 = c.utf8?.(i);
    if (typeof utf8 === 'string') return Buffer.from(utf8, 'utf8');
    return null;
  }

  rows(b: ColumnBatch): ImportRow[] {
    const side = (w: 'key' | 'value'): SideColumns => ({ raw: b.column(w), hex: b.column(`${w}_hex`), utf8: b.column(`${w}_utf8`), decoded: b.column(`${w}_decoded`) });
    const keyCols = side('key');
    const valueCols = side('value');
    const cols = {
      op: b.column('operator_id'), task: b.column('task_id'), entryOp: b.column('entry_operator'), state: b.column('state_name'), change: b.column('change'),
    };
    const out: ImportRow[] = [];
    for (let i = 0; i < b.length; i++) {
      const row = b.row(i);
      const operatorId = this.text(cols.op, i, row, 'operator_id', true)!;
      if (operatorId === '') this.fail(row, 'operator_id', 'is empty');
      const stateName = this.text(cols.state, i, row, 'state_name', true)!;
      const entryOperator = this.text(cols.entryOp, i, row, 'entry_operator', false) ?? operatorId;
      const taskId = this.text(cols.task, i, row, 'task_id', false) || null;
      const c = this.text(cols.change, i, row, 'change', false);
      if (c !== null && c !== 'upsert' && c !== 'delete') this.fail(row, 'change', `${JSON.stringify(c)} is neither upsert nor delete`, { found: c, expected: ['upsert', 'delete'] });
      const change: Change = c === 'delete' ? 'delete' : 'upsert';
      const key = this.bytes(keyCols, i, row, 'key', stateName);
      if (key === null) this.fail(row, 'key', `no key: give column key (binary), key_hex or key_utf8${this.src.keyCodec ? '' : ', or key_decoded with --key-codec'}`, { expected: ['key', 'key_hex', 'key_utf8', 'key_decoded'] });
      const value = this.bytes(valueCols, i, row, 'value', stateName);
      if (value === null && change === 'upsert') this.fail(row, 'value', `no value: give column value (binary), value_hex or value_utf8${this.src.valueCodec ? '' : ', or value_decoded with --value-codec'} (a delete needs none)`, { expected: ['value', 'value_hex', 'value_utf8', 'value_decoded'] });
      out.push({ row, operatorId, taskId, entryOperator, stateName, key, value: value ?? EMPTY, change });
    }
    return out;
  }
}

const EMPTY = new Uint8Array(0);

/** The file's rows as entries, a batch at a time; the first bad row throws IMPORT_ROW. */
export async function* importRows(source: string | RowsSource): AsyncGenerator<ImportRow[]> {
  const src = rowsSource(source);
  const reader = await RowReader.of(src);
  src.progress?.start();
  for await (const b of readColumns(src.file, src.format, src.progress?.total)) {
    src.progress?.rows(b.length);
    yield reader.rows(b);
  }
}

/** IMPORT_ROW for a row whose operator the output has no layout for. */
export function unknownOperator(src: RowsSource, r: ImportRow, known: Iterable<string>): KspError {
  const list = [...known];
  return new KspError('IMPORT_ROW', `${src.file}: row ${r.row}, column operator_id: unknown operator ${JSON.stringify(r.operatorId)} (operators: ${list.join(', ') || '(none)'}); give a new operator its task layout with --operator ${r.operatorId}=PARALLELISM; nothing was written`, {
    file: src.file, row: r.row, column: 'operator_id', found: r.operatorId, expected: list,
  });
}
