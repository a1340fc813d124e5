import { KspError } from '../../errors.js';
import { encodePointer, isPointerBlob, parsePointer, POINTER_MAX_SIZE, type Pointer } from '../pointer/pointer.js';
import { nativeEntries, openImage, type NativeFileRef } from '../../model/native-state.js';
import { RocksDb } from '../../rocksdb/db.js';
import type { StateEntry } from '../state-bin/decoder.js';
import { readAll, type BodySource, type OpenContext, type TaskBodyFormat, type TaskReader } from './types.js';

/**
 * Native RocksDB state: the task's `state.bin` is a pointer blob,
 * `INCR-SST-V1|` + the path of its `sst_manifest.json`
 * (`INCREMENTAL_SNAPSHOT_MARKER`, krishiv-executor/src/runner/task_runner.rs).
 * Opening it resolves the RocksDB files (the caller knows the savepoint's
 * path rules: `OpenContext.native`) and reads the live entries in key
 * order; the count is null unless the tables state it exactly
 * (RocksDb.knownCount: one sorted run at sequence 0, no deletions).
 */

export const nativeFormat: TaskBodyFormat<Pointer> & { kind: 'native' } = {
  kind: 'native',
  detect: (head, size) => size <= POINTER_MAX_SIZE && isPointerBlob(head),
  async open(src: BodySource, ctx: OpenContext = {}): Promise<TaskReader> {
    const pointer = parsePointer(await readAll(src), src.name);
    const resolve = ctx.native;
    // Files resolved (the write path): opened now, so the count is known
    // up front when the tables state it (RocksDb.knownCount) and a
    // state.bin can be written in one pass.
    if (resolve) return { ...(await openNativeFiles(src.name, await resolve(pointer), ctx)), pointer };
    return {
      body: 'native', count: null, opaque: false, pointer,
      async *batches(): AsyncGenerator<StateEntry[]> {
        throw new KspError('NATIVE_UNSUPPORTED', `${src.name}: native state (pointer to ${pointer.manifestPath}) cannot be read here: its RocksDB files were not resolved`, { file: src.name });
      },
    };
  },
  async *write(pointer: Pointer): AsyncGenerator<Uint8Array> {
    yield encodePointer(pointer);
  },
};

/** A native task's entries from its already-resolved files (the write path resolves them at plan time). */
export async function openNativeFiles(name: string, refs: NativeFileRef[], ctx: OpenContext = {}): Promise<TaskReader> {
  const image = await openImage(name, refs, { onBytes: ctx.onBytes, checkHashes: ctx.checkHashes });
  const db = await RocksDb.open(image);
  return { body: 'native', count: await db.knownCount(), opaque: false, batches: () => nativeEntries(db, name) };
}
