import { KspError } from '../errors.js';
import type { Pointer } from '../formats/pointer/pointer.js';
import { uriOf } from '../storage/uri.js';
import { nativeFilesOf, type NativeFile } from './native-files.js';
import type { NativeFileRef } from './native-read.js';
import { eachLimited } from './read-roots.js';
import type { Savepoint, TaskRef } from './savepoint.js';
import type { ScanRequest } from './scan-file.js';

export { liveBlocks, LiveBlock, nativeEntries, nativeInfo, openImage, type ImageOptions, type NativeFileRef, type NativeInfo } from './native-read.js';


/**
 * A native task's state as entries: pointer → sst_manifest.json → the SST
 * and meta files (each SST's SHA-256 checked against the manifest) → the
 * RocksDB directory image → live key/value pairs → (operator, state, key,
 * value) by the engine's key layout.
 *
 * The file list travels as plain data (`NativeFileRef`) so a worker thread
 * can open the image as well as the main thread.
 */

/** The file list of a native task, resolved against its savepoint. */
export async function nativeFileRefs(sp: Savepoint, task: TaskRef, pointer: Pointer): Promise<NativeFileRef[]> {
  const missing: string[] = [];
  const nf = await nativeFilesOf(sp, task, pointer, missing);
  if (!nf) throw new KspError('NOT_FOUND', `${missing[0]}: does not exist`, { file: missing[0] });
  return fileRefs(nf.files);
}

/** Plain-data form of a native task's file list (it crosses to worker threads). */
export function fileRefs(files: NativeFile[]): NativeFileRef[] {
  return files.map((f) => ({ filename: f.filename, uri: uriOf(f.location), ...(f.sha256 ? { sha256: f.sha256 } : {}), ...(f.size !== undefined ? { size: f.size } : {}) }));
}

/**
 * Gives the scan requests of native tasks their RocksDB file lists, so the
 * scan reads their entries. A task whose list cannot be resolved keeps a
 * plain request; its error is returned by request index, for the caller to
 * report beside the scan's result.
 */
export async function attachNative(sp: Savepoint, reqs: Array<{ req: ScanRequest; task?: TaskRef }>, verify: boolean): Promise<Map<number, KspError>> {
  const errors = new Map<number, KspError>();
  // A bounded number in flight: a promise (and a file-system request) per
  // task at once costs gigabytes for metadata of 200,000 snapshots.
  await eachLimited(reqs, 32, async ({ req, task }, i) => {
    if (!task) return;
    try {
      const f = await sp.probe(task);
      // The probe's stat gives the size, so the scan need not stat again.
      if (f.kind !== 'missing' && req.size === undefined) req.size = f.size;
      if (f.kind === 'missing') req.missing = true;
      if (f.kind !== 'native') return;
      const refs = await nativeFileRefs(sp, task, f.pointer);
      req.native = refs;
      req.verifyNative = verify;
      req.work = refs.reduce((s, r) => s + (r.size ?? 0), 0);
    } catch (e) {
      if (!(e instanceof KspError)) throw e;
      errors.set(i, e);
    }
  });
  return errors;
}
