import { KspError } from '../../errors.js';
import { JsonObject, parseJson } from '../json/json-text.js';

/**
 * Operator rename maps in the engine's two shapes (FORMAT.md beside this
 * file): `{"old": "new", …}` or `[{"old"|"from": …, "new"|"to": …}, …]`.
 * Returned as ordered pairs; an id renamed twice is an error.
 */
export function parseRenameMap(bytes: Uint8Array | string, file = 'rename map'): Array<[string, string]> {
  const doc = parseJson(bytes, file, { allowBom: true });
  const pairs: Array<[string, string]> = [];
  const fail = (why: string, field?: string): never => {
    throw new KspError('USAGE', `${file}: ${field ? `${field}: ` : ''}${why}`, { file, ...(field ? { field } : {}) });
  };
  if (doc instanceof JsonObject) {
    for (const [k, v] of doc.members) {
      if (typeof v !== 'string') fail(`expected the new id as a string`, k);
      pairs.push([k, v as string]);
    }
  } else if (Array.isArray(doc)) {
    doc.forEach((item, i) => {
      if (!(item instanceof JsonObject)) return fail('expected an object {old|from, new|to}', `[${i}]`);
      const from = item.get('old') ?? item.get('from');
      const to = item.get('new') ?? item.get('to');
      if (typeof from !== 'string') fail('expected "old" (or "from") as a string', `[${i}]`);
      if (typeof to !== 'string') fail('expected "new" (or "to") as a string', `[${i}]`);
      pairs.push([from as string, to as string]);
    });
  } else {
    fail('expected an object {"old": "new"} or an array of {old|from, new|to}');
  }
  const seen = new Set<string>();
  for (const [a, b] of pairs) {
    if (a === '' || b === '') fail('operator ids must not be empty');
    // The engine's rename-map check refuses a no-op rename as a likely typo
    // (krishiv-state/src/savepoint_rename.rs, SavepointRenameMap::validate).
    if (a === b) fail(`operator ${JSON.stringify(a)} is renamed to itself (a no-op, likely a typo; the engine refuses it too)`);
    if (seen.has(a)) fail(`operator ${JSON.stringify(a)} is renamed twice`);
    seen.add(a);
  }
  return pairs;
}
