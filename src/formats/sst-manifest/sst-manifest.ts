import { z } from 'zod';
import { KspError } from '../../errors.js';
import { JsonObject, fromPlain, parseJson, stringifyPretty, type JsonValue } from '../json/json-text.js';
import { u64, validateObject } from '../json/schema.js';

/**
 * `sst_manifest.json`, the file list of one native (RocksDB) task at one
 * epoch (FORMAT.md beside this file). Read losslessly, so a rewrite changes
 * only the paths it means to change.
 */

const fileName = z.string().min(1, 'must not be empty').refine((s) => !s.includes('/') && s !== '.' && s !== '..', 'must be a plain file name');
const sstFile = z.looseObject({ filename: fileName, size_bytes: u64, sha256_hex: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits'), storage_path: z.string().min(1) });
const metaFile = z.looseObject({ filename: fileName, storage_path: z.string().min(1) });
const schema = z.looseObject({
  epoch: u64,
  sst_files: z.array(sstFile),
  meta_files: z.array(metaFile),
  manifest_storage_path: z.string().min(1),
});

export type SstManifest = z.output<typeof schema>;
export type SstFileRef = z.output<typeof sstFile>;
export type MetaFileRef = z.output<typeof metaFile>;

/** Big enough for tens of thousands of files; refuses runaway input. */
export const SST_MANIFEST_MAX_SIZE = 16 * 1024 * 1024;

export class SstManifestDoc {
  private constructor(readonly doc: JsonObject, readonly value: SstManifest) {}

  static decode(bytes: Uint8Array | string, file = 'sst_manifest.json'): SstManifestDoc {
    return SstManifestDoc.fromJson(parseJson(bytes, file), file);
  }

  static fromJson(json: JsonValue, file = 'sst_manifest.json'): SstManifestDoc {
    const { doc, value } = validateObject(schema, json, file, 'SST_MANIFEST_INVALID');
    const seen = new Set<string>();
    for (const f of [...value.sst_files, ...value.meta_files]) {
      if (seen.has(f.filename)) {
        throw new KspError('SST_MANIFEST_INVALID', `${file}: file name ${JSON.stringify(f.filename)} is listed twice; restoring would overwrite one with the other`, { file, found: f.filename });
      }
      seen.add(f.filename);
    }
    return new SstManifestDoc(doc, value);
  }

  /** A new manifest, members in the engine's order. */
  static create(m: { epoch: bigint; sstFiles: Array<{ filename: string; size: number; sha256: string; storagePath: string }>; metaFiles: Array<{ filename: string; storagePath: string }>; manifestPath: string }): SstManifestDoc {
    return SstManifestDoc.fromJson(fromPlain({
      epoch: m.epoch,
      sst_files: m.sstFiles.map((f) => ({ filename: f.filename, size_bytes: f.size, sha256_hex: f.sha256, storage_path: f.storagePath })),
      meta_files: m.metaFiles.map((f) => ({ filename: f.filename, storage_path: f.storagePath })),
      manifest_storage_path: m.manifestPath,
    }));
  }

  encode(): Uint8Array {
    return Buffer.from(stringifyPretty(this.doc), 'utf8');
  }

  /**
   * A copy whose stored paths are replaced: `pathOf(filename)` gives each
   * file's new `storage_path`, `manifestPath` the manifest's own. Every other
   * member, known or not, is kept as read.
   */
  withPaths(pathOf: (filename: string) => string, manifestPath: string): SstManifestDoc {
    const remap = (list: JsonValue | undefined): JsonValue[] =>
      (list as JsonValue[]).map((f) => {
        const o = f as JsonObject;
        return o.with('storage_path', pathOf(o.get('filename') as string));
      });
    let doc = this.doc.with('sst_files', remap(this.doc.get('sst_files')));
    doc = doc.with('meta_files', remap(doc.get('meta_files')));
    doc = doc.with('manifest_storage_path', fromPlain(manifestPath));
    return SstManifestDoc.fromJson(doc);
  }
}
