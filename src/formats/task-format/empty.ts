import { noBatches, type BodySource, type TaskBodyFormat, type TaskReader } from './types.js';

/**
 * The 0-byte `state.bin`. Earlier ksp versions wrote it for a task with no
 * state; it reads as a task with no entries. The engine's own
 * restore refuses it: `decode_snapshot_entries` (krishiv-state/src/snapshot.rs)
 * rejects anything shorter than 12 bytes ("snapshot corrupt: too short"), and
 * the generic-backend path of `restore_job_from_checkpoint`
 * (krishiv-executor/src/runner/executor_task_runner.rs) decodes every
 * referenced snapshot. So verify warns (STATE_BIN_EMPTY_FILE);
 * the engine itself writes no file and no reference for an empty task
 * (krishiv-executor/src/runner/task_runner.rs, "Write snapshot if non-empty").
 */

/** The 12-byte empty v1 snapshot (`01000000 0000000000000000`): what `encode_snapshot_entries(&[])` gives; a normal empty task. */
export const EMPTY_V1_SNAPSHOT: Buffer = Buffer.from('01000000' + '0000000000000000', 'hex');

export const emptyFormat: TaskBodyFormat<null> & { kind: 'empty' } = {
  kind: 'empty',
  detect: (_head, size) => size === 0,
  async open(src: BodySource): Promise<TaskReader> {
    // Nothing to read; release the stream the caller opened.
    const it = src.read()[Symbol.asyncIterator]();
    await it.return?.();
    return { body: 'empty', count: 0, opaque: false, batches: noBatches };
  },
  async *write(): AsyncGenerator<Uint8Array> {
    // Zero bytes. Kept for reading round trips; writers reference no such
    // file (see the comment above), they omit the task or write EMPTY_V1_SNAPSHOT.
  },
};
