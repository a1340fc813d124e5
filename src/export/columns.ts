import { keyGroup, keyGroupAt } from '../model/key-group.js';
import { windowGroupKey, windowGroupKeyAt } from '../model/routing.js';
import type { EntryRow } from '../model/savepoint.js';
import type { Decoded, ViewCodec } from '../model/value-codecs.js';

/**
 * The export row model shared by every format. `key_group` is the key group
 * of the entry's routing key: the embedded group key for keys in window
 * layout (tw:/sw:/ses:), the whole key otherwise.
 */

export interface ExportCodecs {
  key?: ViewCodec;
  value?: ViewCodec;
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
export function tryDecode(codec: ViewCodec, bytes: Uint8Array, stats: DecodeStats, which: 'key' | 'value'): Decoded {
  try {
    return codec.decode(bytes);
  } catch {
    if (which === 'key') stats.keyFailures++;
    else stats.valueFailures++;
    return null;
  }
}

export type RowSource = AsyncIterable<EntryRow[]>;
