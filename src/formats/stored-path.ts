import { KspError } from '../errors.js';

/**
 * Rules for paths stored inside savepoint files (metadata, manifest, pointer
 * blobs). The engine rejects these; ksp rejects them too and never "cleans"
 * them, because a cleaned path may name a different file than the writer meant.
 */
export function unsafeReason(path: string): string | null {
  if (path.length === 0) return 'it is empty';
  if (path.startsWith('/')) return 'it starts with "/"';
  if (path.includes('\\')) return 'it contains "\\"';
  if (path.includes('\0')) return 'it contains a NUL byte';
  for (const c of path.split('/')) {
    if (c === '') return 'it has an empty component';
    if (c === '.' || c === '..') return `it has a "${c}" component`;
  }
  return null;
}

/** Throws PATH_UNSAFE unless `path` is a safe relative path. */
export function checkRelativePath(path: string, context: { file?: string; field?: string } = {}): string {
  const why = unsafeReason(path);
  if (why) {
    const where = context.file ? `${context.file}: ` : '';
    const field = context.field ? `${context.field} ` : 'path ';
    throw new KspError('PATH_UNSAFE', `${where}${field}${JSON.stringify(path)} is not a safe relative path: ${why}`, {
      ...context,
      found: path,
    });
  }
  return path;
}
