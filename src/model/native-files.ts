import { epochDirName } from '../formats/metadata/metadata.js';
import type { Pointer } from '../formats/pointer/pointer.js';
import { SST_MANIFEST_MAX_SIZE, SstManifestDoc } from '../formats/sst-manifest/sst-manifest.js';
import type { Savepoint, TaskRef } from './savepoint.js';
import { uriOf, type Location } from '../storage/uri.js';

/**
 * The files behind a native task: its pointer names an `sst_manifest.json`,
 * which lists the SST files (with SHA-256) and the meta files (CURRENT,
 * MANIFEST-*, OPTIONS-*, WAL) that together make its RocksDB directory.
 */

export interface NativeFile {
  filename: string;
  kind: 'sst' | 'meta';
  location: Location;
  /** From the SST manifest (SST files only). */
  sha256?: string;
  size?: number;
}

export interface NativeTaskFiles {
  task: TaskRef;
  pointer: Pointer;
  manifestLocation: Location;
  manifest: SstManifestDoc;
  files: NativeFile[];
  /** `epochs/{epoch:020}` folder name the meta files and manifest live in. */
  epochDir: string;
}

/** Reads the SST manifest a pointer names; a missing manifest is reported through `missing`, not thrown. */
export async function nativeFilesOf(sp: Savepoint, task: TaskRef, pointer: Pointer, missing: { push(item: string): unknown }): Promise<NativeTaskFiles | null> {
  const field = `${uriOf(task.location)} (pointer)`;
  const { location } = sp.resolve(pointer.manifestPath, field);
  await sp.roots.checkFile(location, field);
  if (!(await location.storage.stat(location.key))) {
    missing.push(`${uriOf(location)} (sst_manifest.json of ${task.operatorId}/${task.taskId})`);
    return null;
  }
  const file = uriOf(location);
  const manifest = SstManifestDoc.decode(await location.storage.readSmall(location.key, SST_MANIFEST_MAX_SIZE), file);
  const files: NativeFile[] = [];
  manifest.value.sst_files.forEach((f, i) => {
    const r = sp.resolve(f.storage_path, `${file}: sst_files[${i}].storage_path`);
    files.push({ filename: f.filename, kind: 'sst', location: r.location, sha256: f.sha256_hex, size: Number(f.size_bytes) });
  });
  manifest.value.meta_files.forEach((f, i) => {
    const r = sp.resolve(f.storage_path, `${file}: meta_files[${i}].storage_path`);
    files.push({ filename: f.filename, kind: 'meta', location: r.location });
  });
  // Every file is checked before any is opened (read-roots.ts).
  for (const f of files) await sp.roots.checkFile(f.location, `${file}: ${f.filename}`);
  return { task, pointer, manifestLocation: location, manifest, files, epochDir: `epochs/${epochDirName(manifest.value.epoch)}` };
}
