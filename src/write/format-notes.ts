import type { TaskFormat, TaskRef } from '../model/savepoint.js';

/**
 * Plan notes about task bodies the write commands carry rather than rewrite
 * (src/formats/task-format/FORMAT.md): window-join documents are copied byte
 * for byte by every command (migrations, renames inside entries and convert
 * do not apply to them; rescale refuses them); state.bin v2 tasks are always
 * rewritten as v1, the only version the engine's restore decodes.
 */
export function formatNotes(tasks: readonly TaskRef[], formats: ReadonlyMap<number, TaskFormat>, stripTtl = false): string[] {
  const notes: string[] = [];
  const native = tasks.filter((t) => formats.get(t.index)?.kind === 'native');
  if (stripTtl && native.length) {
    notes.push(`--ttl-prefix strip: the first 8 bytes (the TTL expiry, i64 LE ms) of every value of ${native.length} native task(s) are removed; expired entries are kept`);
  }
  const joins = tasks.filter((t) => formats.get(t.index)?.kind === 'window-join');
  if (joins.length) {
    notes.push(`${joins.length} window-join task(s) (${list(joins)}) hold a JSON document of buffered join events, not key/value entries: copied unchanged; migrations, entry renames and convert leave them as they are, and rescale refuses them`);
  }
  const v2 = tasks.filter((t) => { const f = formats.get(t.index); return f?.kind === 'canonical' && f.version === 2; });
  if (v2.length) {
    notes.push(`${v2.length} task(s) (${list(v2)}) are state.bin version 2 (disaggregated backend): they are rewritten as version 1, the only version the engine's restore (decode_snapshot_entries) decodes`);
  }
  return notes;
}

function list(ts: TaskRef[]): string {
  const names = ts.slice(0, 3).map((t) => `${t.operatorId}/${t.taskId}`);
  return names.join(', ') + (ts.length > 3 ? `, … ${ts.length - 3} more` : '');
}
