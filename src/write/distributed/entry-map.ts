import { loadMigrations } from '../../migrate/load.js';
import type { MigrationRegistry, Step } from '../../migrate/registry.js';
import { compose, migrationMap, renameMap, type EntryMap, type StepCount } from '../entry-maps.js';
import type { MapSpec } from './plan-file.js';

/**
 * A job's entry map (`map`) rebuilt on a shard from its plain-data form:
 * each migration's steps loaded again from its module, composed in order,
 * then the renames, exactly as the planner composes them (write/writer.ts:
 * `compose([migMap, rename])`) and as a write thread rebuilds them
 * (write/rewrite-unit.ts `runRewrite`), so the entries come out the same.
 */

const registries = new Map<string, Promise<MigrationRegistry>>();

function registryOf(module: string): Promise<MigrationRegistry> {
  let r = registries.get(module);
  if (!r) registries.set(module, (r = loadMigrations(module)));
  return r;
}

export interface LoadedMap {
  map: EntryMap | null;
  /** Per step (the chains flattened, in order): entries transformed, and entries of its operator passed through. */
  steps(): Array<{ transformed: number; passed: number }>;
}

export async function loadEntryMap(spec: MapSpec | undefined): Promise<LoadedMap> {
  const counts = new Map<Step, StepCount>();
  const order: Step[] = [];
  const maps: EntryMap[] = [];
  for (const m of spec?.migrations ?? []) {
    const chain = (await registryOf(m.module)).chain(m.operator, m.from, m.to);
    for (const s of chain.flat()) {
      counts.set(s, { operator: m.operator, step: s.describe, transformed: 0, passed: 0 });
      order.push(s);
    }
    maps.push(migrationMap(chain, counts));
  }
  const migMap = maps.length ? compose(maps) : null;
  const rename = spec?.renames.length ? renameMap(new Map(spec.renames)) : null;
  return {
    map: compose([migMap, rename].filter((m): m is EntryMap => m !== null)),
    steps: () => order.map((s) => ({ transformed: counts.get(s)!.transformed, passed: counts.get(s)!.passed })),
  };
}
