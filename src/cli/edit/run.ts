import { readFileSync } from 'node:fs';
import { KspError } from '../../errors.js';
import { parseRenameMap } from '../../formats/rename-map/rename-map.js';
import type { SavepointWriter } from '../../write/writer.js';

export function editOperations(w: SavepointWriter, args: { rename?: string[]; 'rename-map'?: string; remove?: string[] }): SavepointWriter {
  const pairs: Array<[string, string]> = [];
  for (const r of args.rename ?? []) {
    const i = r.indexOf('=');
    if (i <= 0 || i === r.length - 1) throw new KspError('USAGE', `--rename ${JSON.stringify(r)}: expected old=new`);
    pairs.push([r.slice(0, i), r.slice(i + 1)]);
  }
  if (args['rename-map']) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(args['rename-map']);
    } catch {
      throw new KspError('NOT_FOUND', `${args['rename-map']}: rename map not found`, { file: args['rename-map'] });
    }
    pairs.push(...parseRenameMap(bytes, args['rename-map']));
  }
  if (!pairs.length && !args.remove?.length) throw new KspError('USAGE', 'nothing to edit: give --rename, --rename-map or --remove');
  for (const [a, b] of pairs) w = w.renameOperator(a, b);
  for (const id of args.remove ?? []) w = w.removeOperator(id);
  return w;
}
