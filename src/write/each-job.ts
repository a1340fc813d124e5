import type { Job, RunJob } from './jobs.js';
import type { Target } from './target.js';

/**
 * Every job as the executor runs it, in order: a batch of copied tasks
 * (CopyBatch) becomes one `copy` job per task, made as it is asked for and
 * dropped once run, so a plan of 200,000 copied tasks holds no record per task.
 */
export function* eachJob(jobs: Iterable<Job>, target: Target): Generator<RunJob> {
  for (const j of jobs) {
    if (j.kind !== 'copies') {
      yield j;
      continue;
    }
    for (let i = 0; i < j.tasks.length; i++) {
      const t = j.tasks[i]!;
      const size = j.sizes[i];
      yield { kind: 'copy', from: t.location, out: target.stateFile(j.operator, t.taskId), task: t, ...(size !== undefined ? { size } : {}) };
    }
  }
}
