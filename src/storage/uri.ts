import * as nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { KspError } from '../errors.js';
import { LocalStorage } from './local.js';
import { S3Storage } from './s3.js';
import { baseName, joinKey, parentKey } from './paths.js';
import type { Storage } from './storage.js';

/** A place in some storage: a storage and a key in it. */
export interface Location {
  storage: Storage;
  key: string;
}

const local = new LocalStorage();
const buckets = new Map<string, S3Storage>();

export function isAbsoluteUri(s: string): boolean {
  return s.startsWith('/') || s.startsWith('file://') || s.startsWith('s3://');
}

/**
 * A location from a user's argument or an absolute stored path: a local path
 * (relative to `cwd`), a `file://` URI, or `s3://bucket/prefix`.
 */
export function locate(uri: string, cwd = process.cwd()): Location {
  if (uri.startsWith('s3://')) {
    const rest = uri.slice(5);
    const slash = rest.indexOf('/');
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const key = slash < 0 ? '' : rest.slice(slash + 1).replace(/\/+$/, '');
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
      throw new KspError('URI_INVALID', `${uri}: "${bucket}" is not a valid S3 bucket name`, { found: uri });
    }
    if (key.startsWith('/') || key.split('/').some((c) => c === '..' || c === '.') || key.includes('//')) {
      throw new KspError('URI_INVALID', `${uri}: S3 keys with empty, "." or ".." components are not supported`, { found: uri });
    }
    let s = buckets.get(bucket);
    if (!s) buckets.set(bucket, (s = new S3Storage(bucket)));
    return { storage: s, key };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri) && !uri.startsWith('file://')) {
    throw new KspError('URI_INVALID', `${uri}: unsupported URI scheme (use a local path, file:// or s3://)`, { found: uri });
  }
  let p: string;
  try {
    p = uri.startsWith('file://') ? fileURLToPath(uri) : nodePath.resolve(cwd, uri);
  } catch (e) {
    throw new KspError('URI_INVALID', `${uri}: not a valid file URI: ${(e as Error).message}`, { found: uri });
  }
  return { storage: local, key: nodePath.resolve(p).replace(/^\/+/, '').replace(/\/+$/, '') };
}

export function uriOf(loc: Location): string {
  return loc.storage.uriOf(loc.key);
}

export function child(loc: Location, ...parts: string[]): Location {
  return { storage: loc.storage, key: joinKey(loc.key, ...parts) };
}

export function parent(loc: Location): Location {
  return { storage: loc.storage, key: parentKey(loc.key) };
}

export function nameOf(loc: Location): string {
  return baseName(loc.key);
}
