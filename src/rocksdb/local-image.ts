import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { locate } from '../storage/uri.js';
import type { DbImage } from './db.js';
import { fileAt, type RandomAccessFile } from './file.js';

/** A RocksDB directory on local disk as an image (tools and tests). */
export function localImage(dir: string): DbImage {
  const files = new Map<string, RandomAccessFile>();
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isFile()) files.set(name, fileAt(locate(p), st.size));
  }
  return { name: dir, files };
}
