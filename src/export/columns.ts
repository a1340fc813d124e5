import { keyGroup, keyGroupAt } from '../model/key-group.js';
import { windowGroupKey, windowGroupKeyAt } from '../model/routing.js';
import type { EntryRow } from '../model/savepoint.js';
import { isCodecSpec, uniformSpec, type CodecSpec, type Decoded, type ViewCodec } from '../model/value-codecs.js';
import type { WindowKey } from '../model/window-key.js';

/**
 * The export row model shared by every format. `key_group` is the key group
 * of the entry's routing key: the embedded group key for keys in window
 * layout (tw:/sw:/ses:), the whole key otherwise.
 *
 * Codecs are chosen per state (CodecSpec): `key_decoded` / `value_decoded`
 * exist when some state is decoded into them; the window columns
 * (`window_kind`, `group_key`, `window_start`, `window_end`, `watermark`)
 * when some state's key codec is `window`.
 */

export interface ExportCodecs {
  /** One codec for every state, or a codec per state. */
  key?: ViewCodec | CodecSpec;
  value?: ViewCodec | CodecSpec;
}

/** ExportCodecs with each side as a spec. */
export interface ExportSpecs {
  key?: CodecSpec;
  value?: CodecSpec;
}

export function specsOf(c: ExportCodecs): ExportSpecs {
  const one = (x: ViewCodec | CodecSpec | undefined): CodecSpec | undefined => (x === undefined ? undefined : isCodecSpec(x) ? x : uniformSpec(x));
  return { key: one(c.key), value: one(c.value) };
}

export const WINDOW_COLUMNS = ['window_kind', 'group_key', 'window_start', 'window_end', 'watermark'] as const;

/** The window columns of a row: null when its state is not decoded with `window`; a key that does not parse is counted and null. */
export function tryWindow(codec: ViewCodec | undefined, key: Uint8Array, value: Uint8Array, stats: DecodeStats): WindowKey | null {
  if (!codec?.window) return null;
  const w = codec.window(key, value);
  if (!w) stats.keyFailures++;
  return w;
}

export interface DecodeStats {
  keyFailures: number;
  valueFailures: number;
}

export function rowKeyGroup(key: Uint8Array): number {
  return keyGroup(windowGroupKey(key) ?? key);
}

const at = { off: 0, len: 0 };

/** rowKeyGroup, read in place: no view of the group key per row. */
export function rowKeyGroupAt(key: Uint8Array): number {
  return windowGroupKeyAt(key, 0, key.length, at) ? keyGroupAt(key, at.off, at.len) : keyGroupAt(key, 0, key.length);
}

/** Decodes with a view codec; a value the codec cannot read becomes null and is counted. */
export function tryDecode(codec: ViewCodec | undefined, bytes: Uint8Array, stats: DecodeStats, which: 'key' | 'value', key?: Uint8Array): Decoded {
  // Not decoded (raw, or a state the spec leaves out), or decoded into the window columns instead.
  if (!codec || codec.column === 'window') return null;
  try {
    return codec.decode(bytes, key);
  } catch {
    if (which === 'key') stats.keyFailures++;
    else stats.valueFailures++;
    return null;
  }
}

export type RowSource = AsyncIterable<EntryRow[]>;
