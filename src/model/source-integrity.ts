import { KspError } from '../errors.js';
import { optionName } from '../option-names.js';
import { MANIFEST_NAME, parseManifestIndex, type ManifestIndex } from '../formats/manifest/manifest.js';
import { child, uriOf } from '../storage/uri.js';
import type { Savepoint } from './savepoint.js';
import { eachLimited } from './read-roots.js';

/**
 * The source's integrity, before anything is read from it (every command
 * that uses a savepoint's state: the writers and `inspect`): its manifest
 * must exist, parse, list metadata.json (with the hash of the bytes read)
 * and every state file inside the directory. The hashes it returns let the
 * caller check each state file as it is read. `trust` (`--trust-source`)
 * turns each refusal into a warning and returns no hashes.
 */
export interface SourceIntegrity {
  /** SHA-256 per file URI, from the source's manifest (empty when trusted). */
  hashes: HashLookup;
  warnings: string[];
}

/** SHA-256 (lowercase hex) by file URI; a ReadonlyMap is one. */
export interface HashLookup {
  readonly size: number;
  has(uri: string): boolean;
  get(uri: string): string | undefined;
}

/**
 * The manifest's hashes looked up by the URI of a file in the directory:
 * one URI string per listed file (200,000 for a large job) is not built,
 * the directory's prefix is stripped from the URI asked about instead.
 */
class DirHashes implements HashLookup {
  private readonly prefix: string;
  constructor(private readonly index: ManifestIndex, dir: Savepoint['dir']) {
    const probe = uriOf(child(dir, 'x'));
    this.prefix = probe.slice(0, -1);
  }
  get size(): number {
    return this.index.size;
  }
  has(uri: string): boolean {
    return uri.startsWith(this.prefix) && this.index.has(uri.slice(this.prefix.length));
  }
  get(uri: string): string | undefined {
    return uri.startsWith(this.prefix) ? this.index.get(uri.slice(this.prefix.length)) : undefined;
  }
}

export async function checkSourceIntegrity(sp: Savepoint, trust: boolean): Promise<SourceIntegrity> {
  const out: SourceIntegrity = { hashes: new Map(), warnings: [] };
  const loc = child(sp.dir, MANIFEST_NAME);
  const file = uriOf(loc);
  const refuse = (e: KspError): void => {
    if (!trust) throw e;
    out.warnings.push(`${optionName('trustSource')}: ${e.message}`);
  };
  if (!(await loc.storage.stat(loc.key))) {
    refuse(new KspError('MANIFEST_MISSING', `${file}: the source has no manifest.sha256, so its files cannot be checked; it may be incomplete (pass ${optionName('trustSource')} to use it anyway)`, { file }));
    return out;
  }
  let listed: ManifestIndex;
  try {
    listed = parseManifestIndex(await loc.storage.readSmall(loc.key), file).index;
  } catch (e) {
    if (!(e instanceof KspError) || !trust) throw e;
    out.warnings.push(`${optionName('trustSource')}: ${e.message}`);
    return out;
  }
  const mdFile = uriOf(child(sp.dir, 'metadata.json'));
  const mdHash = listed.get('metadata.json');
  if (mdHash === undefined) {
    refuse(new KspError('MANIFEST_INCOMPLETE', `${file}: does not list metadata.json${listed.size === 0 ? ' (the manifest is empty)' : ''}, so the source's metadata cannot be checked (pass ${optionName('trustSource')} to use it anyway)`, { file }));
  } else if (mdHash !== sp.metadataSha256) {
    refuse(new KspError('HASH_MISMATCH', `${mdFile}: SHA-256 ${sp.metadataSha256} differs from ${mdHash} in the source's manifest.sha256 (pass ${optionName('trustSource')} to use it anyway)`, { file: mdFile, expected: mdHash, found: sp.metadataSha256 }));
  }
  if (sp.metaSha256 !== null && sp.metaLocation && sp.metaLocation.key === child(sp.dir, 'meta.json').key) {
    const h = listed.get('meta.json');
    const mf = uriOf(sp.metaLocation);
    if (h !== undefined && h !== sp.metaSha256) refuse(new KspError('HASH_MISMATCH', `${mf}: SHA-256 ${sp.metaSha256} differs from ${h} in the source's manifest.sha256 (pass ${optionName('trustSource')} to use it anyway)`, { file: mf, expected: h, found: sp.metaSha256 }));
  }
  for (const t of sp.tasks) {
    if (t.relPath !== null && !listed.has(t.relPath)) {
      refuse(new KspError('MANIFEST_INCOMPLETE', `${file}: does not list ${t.relPath} (state of ${t.operatorId}/${t.taskId}), so it cannot be checked (pass ${optionName('trustSource')} to use it anyway)`, { file, path: t.relPath }));
      break;
    }
  }
  // Every listed file must exist, as the engine's manifest check demands
  // (model FORMAT.md §3); state files are looked at by the command itself.
  // meta.json counts as looked at only when it was read from this directory:
  // a listed but missing one is a missing file like any other.
  const ownMeta = sp.metaSha256 !== null && sp.metaLocation?.key === child(sp.dir, 'meta.json').key;
  const known = new Set<string>(['metadata.json', ...(ownMeta ? ['meta.json'] : [])]);
  for (const t of sp.tasks) if (t.relPath !== null) known.add(t.relPath);
  const others = listed.paths().filter((p) => !known.has(p));
  known.clear();
  const gone: string[] = [];
  await eachLimited(others, 16, async (p) => {
    const at = child(sp.dir, p);
    if (!(await at.storage.stat(at.key).catch(() => null))) gone.push(p);
  });
  if (gone.length) {
    const first = gone.sort()[0]!;
    refuse(new KspError('FILES_MISSING', `${file}: lists ${first.length > 200 ? `${first.slice(0, 200)}…` : first}, which does not exist${gone.length > 1 ? ` (and ${gone.length - 1} more)` : ''}; the engine refuses a manifest whose files are missing (pass ${optionName('trustSource')} to use it anyway)`, { file, missing: gone.slice(0, 20), count: gone.length }));
  }
  if (!trust) out.hashes = new DirHashes(listed, sp.dir);
  return out;
}
