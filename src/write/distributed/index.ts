/**
 * Distributed runs (FORMAT.md beside this file): plan once, run N shards
 * anywhere that sees the target storage, commit once.
 */
export { distributedPlan, writeDistributedPlan, type PlanOptions } from './make-plan.js';
export { assign, parseShard, runShard, type ShardOptions, type ShardReport } from './shard.js';
export { commitDistributed, type CommitOptions, type CommitReport } from './commit.js';
export { distributedStatus, type DistributedStatus, type UnitStatus, type UnitState } from './status.js';
export { writeExportPlan, isSealed, SUCCESS_NAME, type ExportPlanOptions } from './export-plan.js';
export { RESERVED, readPlan, type DistributedPlan, type DistUnit, type DoneRecord } from './plan-file.js';

import { locate, type Location } from '../../storage/uri.js';
import { runShard, type ShardOptions, type ShardReport } from './shard.js';

/** N shards in this process, at once: the same units and files as N machines (what tests drive). */
export async function runShardsInProcess(target: string | Location, count: number, o: Omit<ShardOptions, 'index' | 'count'> = {}): Promise<ShardReport[]> {
  const dir = typeof target === 'string' ? locate(target) : target;
  return Promise.all(Array.from({ length: count }, (_, index) => runShard(dir, { ...o, index, count })));
}
