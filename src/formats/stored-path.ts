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
  // A manifest line holds one path: the engine reads manifest.sha256 line by
  // line (krishiv-state checkpoint/metadata.rs, IntegrityManifest::deserialize,
  // `text.lines()`), so a path with a line break can never be listed.
  if (/[\n\r]/.test(path)) return 'it contains a line break';
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

/**
 * Why an operator, task or job id cannot be one path component, or null.
 * Ids become folder names (`{op}/{task}/state.bin`, `{job}/savepoints/…`),
 * so an id must be a safe relative path of exactly one component. The one
 * rule shared by opening a savepoint (so `verify` and `inspect` refuse what
 * the writers refuse, before any planning) and by the write side.
 */
export function idUnsafeReason(idText: string): string | null {
  return unsafeReason(idText) ?? (idText.includes('/') ? 'it contains "/"' : null);
}

/** Throws PATH_UNSAFE unless `idText` can be one path component; `context` names where it was read. */
export function checkId(idText: string, what: string, context: { file?: string; field?: string } = {}): string {
  const why = idUnsafeReason(idText);
  if (why) {
    const where = context.file ? `${context.file}: ` : '';
    const field = context.field ? `${context.field}: ` : '';
    throw new KspError('PATH_UNSAFE', `${where}${field}${what} ${JSON.stringify(idText)} cannot be a path component: ${why}`, { ...context, found: idText });
  }
  return idText;
}
