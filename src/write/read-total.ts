import type { Location } from '../storage/uri.js';
import type { Job, SourceTask } from './jobs.js';
import { pool } from './pool.js';

/**
 * The source bytes a write's jobs read, counted as the executor's `onBytes`
 * counts them: each copied file whole, each rewritten or rescaled task's
 * state file and (native) its tables. Sizes the plan already knows are used
 * as they are; the others are statted, a bounded number at once. Only for
 * progress (ExecuteOptions.onTotal): a run without it never pays the stats.
 */
export async function bytesToRead(jobs: readonly Job[]): Promise<number> {
  let total = 0;
  const unknown: Location[] = [];
  const file = (loc: Location, size: number | undefined): void => {
    if (size === undefined) unknown.push(loc);
    else total += size;
  };
  const source = (t: SourceTask): void => {
    file(t.location, undefined);
    // Tables whose size sst_manifest.json gives are the ones read and counted (model/native-read.ts openImage).
    for (const r of t.native ?? []) total += r.size ?? 0;
  };
  for (const j of jobs) {
    if (j.kind === 'copies') j.tasks.forEach((t, i) => file(t.location, j.sizes[i]));
    else if (j.kind === 'copy') file(j.from, j.size);
    else if (j.kind === 'rewrite') source(j.source);
    else if (j.kind === 'repartition' && j.import) {
      // An import reads its sources only with --into, and its routed rows (import/apply.ts importOperator).
      if (j.import.keepSource) j.sources.forEach(source);
      for (const b of j.import.routed?.bytes ?? []) total += b;
    } else if (j.kind === 'repartition') j.sources.forEach(source);
    else for (const f of j.files) file(f.location, f.size);
  }
  await pool(unknown, 16, async (loc) => {
    const size = (await loc.storage.stat(loc.key))?.size ?? 0;
    total += size;
  });
  return total;
}
