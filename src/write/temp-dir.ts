import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { KspError } from '../errors.js';

/**
 * A private folder for spill or sort files under `tempDir`. A folder that
 * cannot be made (missing, read-only, full) is the user's setting, not a
 * bug: it is a STORAGE_IO error that names the folder and the way to change it.
 */
export function makeTempDir(tempDir: string, prefix: string): string {
  try {
    return mkdtempSync(join(tempDir, prefix));
  } catch (e) {
    throw tempFailure(tempDir, 'cannot make a folder for temporary files', e);
  }
}

/** A failed read or write of a temporary file (ENOSPC, EIO, …) as a STORAGE_IO error naming it. */
export function tempFailure(file: string, what: string, e: unknown): KspError {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  return new KspError('STORAGE_IO', `${file}: ${what} (${(e as Error).message}); choose another place with --temp-dir or KSP_TMPDIR`, { file, found: code });
}
