import { KspError } from '../../errors.js';
import { loadMigrations } from '../../migrate/load.js';
import type { SavepointWriter } from '../../write/writer.js';
import type { MigrateArgs } from './command.js';

function versions(list: string[] | undefined, flag: string): Record<string, number> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, number> = {};
  for (const item of list) {
    const m = /^(.+)=(\d+)$/.exec(item);
    if (!m) throw new KspError('USAGE', `${flag} ${JSON.stringify(item)}: expected operator=version`);
    out[m[1]!] = Number(m[2]);
  }
  return out;
}

export async function migrateOperations(w: SavepointWriter, args: MigrateArgs): Promise<SavepointWriter> {
  const registry = await loadMigrations(args.migrations);
  return w.migrate(registry, {
    fromVersions: versions(args['from-version'], '--from-version'),
    toVersions: versions(args['to-version'], '--to-version'),
    onCollision: args['on-collision'],
    allowUnmatched: args['allow-unmatched'],
  });
}
