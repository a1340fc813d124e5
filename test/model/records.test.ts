/**
 * What verify and inspect keep per file and task (issue 12: 200,000 tasks
 * within 256 MB): with `records` limited, totals and verdicts are those of
 * a full report, the per-task callbacks see every task, and only what is
 * printed is kept.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inspectSavepoint } from '../../src/model/inspect.js';
import { verifySavepoint, type FileCheck, type TaskCheck } from '../../src/model/verify.js';
import { MetadataDoc } from '../../src/formats/metadata/metadata.js';
import { Savepoint } from '../../src/model/savepoint.js';
import { generateLargeMetadata } from '../../src/tools/bench-large-metadata.js';
import { useTempDirs } from '../write/support.js';

const tmp = useTempDirs('ksp-records-');

describe('records kept for large savepoints', () => {
  it('verify: without records, the same verdict and totals, every task and file seen by the callbacks', async () => {
    const sp = await generateLargeMetadata(tmp(), 1200);
    const full = await verifySavepoint(sp);
    const tasks: TaskCheck[] = [];
    const files: FileCheck[] = [];
    const lean = await verifySavepoint(sp, { records: 20, onTask: (t) => tasks.push(t), onFile: (f) => files.push(f) });
    expect(lean.ok).toBe(true);
    expect(lean.files).toEqual([]);
    expect(lean.tasks).toEqual([]);
    expect(lean.totals).toEqual(full.totals);
    expect(lean.findings).toEqual(full.findings);
    expect(tasks.map((t) => `${t.operator}/${t.task}:${t.entries}`).sort()).toEqual(full.tasks.map((t) => `${t.operator}/${t.task}:${t.entries}`).sort());
    expect(files.map((f) => f.path).sort()).toEqual(full.files.map((f) => f.path).sort());
    // A limit above the task count keeps them all.
    expect((await verifySavepoint(sp, { records: 5000 })).tasks).toHaveLength(1200);
  }, 120_000);

  it('inspect: a few task summaries per operator, every task counted, errors counted past those listed', async () => {
    const sp = await generateLargeMetadata(tmp(), 1200);
    // Two tasks of op-3 lose their files: errors, kept beyond the limit.
    for (const t of [40, 90]) rmSync(join(sp, 'op-3', `task-${t}`, 'state.bin'));
    const full = await inspectSavepoint(sp);
    const lean = await inspectSavepoint(sp, { records: 16 });
    expect(lean.totals).toEqual(full.totals);
    for (const [i, o] of lean.operators.entries()) {
      const f = full.operators[i]!;
      expect(o.taskCount).toBe(120);
      expect(f.tasks).toHaveLength(120);
      expect({ ...o, tasks: [] }).toEqual({ ...f, tasks: [] });
      expect(o.tasks.slice(0, 16)).toEqual(f.tasks.slice(0, 16));
    }
    const op3 = lean.operators.find((o) => o.id === 'op-3')!;
    expect(op3.errorTasks).toBe(2);
    expect(op3.tasks).toHaveLength(18);
    expect(op3.tasks.slice(16).map((t) => [t.id, t.error?.code])).toEqual([['task-40', 'NOT_FOUND'], ['task-90', 'NOT_FOUND']]);
  }, 120_000);

  it('a savepoint lets its metadata\'s snapshot objects go and gives the same document back', async () => {
    const sp = await generateLargeMetadata(tmp(), 2000);
    const opened = await Savepoint.open(sp);
    const again = MetadataDoc.decode(opened.metadata.encode());
    expect(again.value.operator_snapshots).toHaveLength(2000);
    expect(opened.metadata.value.operator_snapshots[1234]).toEqual(again.value.operator_snapshots[1234]);
    expect(opened.tasks[1234]!.snapshotPath).toBe(again.value.operator_snapshots[1234]!.snapshot_path);
    expect(opened.metadata.with({ savepoint_label: 'x' }).value.operator_snapshots).toHaveLength(2000);
  }, 120_000);
});
