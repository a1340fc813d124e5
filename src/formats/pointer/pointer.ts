import { KspError } from '../../errors.js';

/**
 * Native-state pointer blobs (FORMAT.md beside this file): what an
 * incremental RocksDB checkpoint writes at a task's `state.bin` path instead
 * of canonical state.
 */

export const POINTER_MAGIC = Buffer.from('INCR-SST-V1|', 'ascii');
/** Pointer blobs are one short path; anything longer is not one. */
export const POINTER_MAX_SIZE = 64 * 1024;

export function isPointerBlob(head: Uint8Array): boolean {
  return head.length >= POINTER_MAGIC.length && Buffer.from(head.buffer, head.byteOffset, POINTER_MAGIC.length).equals(POINTER_MAGIC);
}

export interface Pointer {
  /** Path of the task's `sst_manifest.json`, as stored (base-relative, or absolute). */
  manifestPath: string;
}

export function parsePointer(bytes: Uint8Array, file = 'state.bin'): Pointer {
  if (!isPointerBlob(bytes)) {
    throw new KspError('POINTER_MALFORMED', `${file}: does not start with ${JSON.stringify(POINTER_MAGIC.toString())}`, { file, offset: 0 });
  }
  let path: string;
  try {
    path = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(POINTER_MAGIC.length));
  } catch {
    throw new KspError('POINTER_MALFORMED', `${file}: the pointer's path is not valid UTF-8`, { file, offset: POINTER_MAGIC.length });
  }
  if (path.length === 0) throw new KspError('POINTER_MALFORMED', `${file}: the pointer names no sst_manifest.json path`, { file, offset: POINTER_MAGIC.length });
  const bad = /[\u0000-\u001f]/.exec(path);
  if (bad) {
    throw new KspError('POINTER_MALFORMED', `${file}: control character in the pointer's path`, {
      file, offset: POINTER_MAGIC.length + Buffer.byteLength(path.slice(0, bad.index)),
    });
  }
  return { manifestPath: path };
}

export function encodePointer(p: Pointer): Buffer {
  return Buffer.concat([POINTER_MAGIC, Buffer.from(p.manifestPath, 'utf8')]);
}
