import { isKspError } from '../errors.js';
import { MetadataDoc } from '../formats/metadata/metadata.js';
import { MetaDoc } from '../formats/meta/meta.js';
import { MANIFEST_NAME } from '../formats/manifest/manifest.js';
import { child, locate, nameOf, uriOf, type Location } from '../storage/uri.js';
import { verifySavepoint } from './verify.js';

/** `ksp list`: the checkpoints and savepoints under a storage base, in the engine's layout. */

export interface ListedEpoch {
  jobId: string;
  kind: 'checkpoint' | 'savepoint';
  epoch: string;
  uri: string;
  label: string | null;
  savepointId: string | null;
  timestampMs: string | null;
  files: number;
  bytes: number;
  manifest: boolean;
  /** With `verify`: whether `ksp verify` passes. */
  verified?: boolean;
  problem?: string;
}

const EPOCH = /^\d{20}$/;

async function dirs(loc: Location): Promise<Location[]> {
  const out: Location[] = [];
  for await (const e of loc.storage.list(loc.key, { delimiter: true })) if (e.isPrefix) out.push({ storage: loc.storage, key: e.key });
  return out;
}

async function hasChild(loc: Location, name: string): Promise<boolean> {
  for (const d of await dirs(loc)) if (nameOf(d) === name) return true;
  return false;
}

export async function listStorage(base: string | Location, options: { job?: string; verify?: boolean } = {}): Promise<ListedEpoch[]> {
  const root = typeof base === 'string' ? locate(base) : base;
  // A job directory given as the base lists just that job.
  const jobs = (await hasChild(root, 'checkpoints')) || (await hasChild(root, 'savepoints')) ? [root] : await dirs(root);
  const out: ListedEpoch[] = [];
  for (const job of jobs) {
    const jobId = nameOf(job);
    if (options.job !== undefined && jobId !== options.job) continue;
    const records = await savepointRecords(child(job, 'savepoints'));
    for (const kind of ['checkpoint', 'savepoint'] as const) {
      for (const dir of await dirs(child(job, `${kind}s`))) {
        if (!EPOCH.test(nameOf(dir))) continue;
        out.push(await describe(dir, jobId, kind, records, options.verify ?? false));
      }
    }
  }
  return out;
}

/**
 * Why a listing found nothing, when the base is a level below a storage base:
 * a savepoint or checkpoint directory itself (it holds metadata.json), or a
 * job's savepoints/ or checkpoints/ folder. Null otherwise.
 */
export async function listHint(base: string | Location): Promise<string | null> {
  const root = typeof base === 'string' ? locate(base) : base;
  const metadata = child(root, 'metadata.json');
  if (await metadata.storage.stat(metadata.key)) {
    const where = typeof base === 'string' ? base : uriOf(base);
    return `${where} is a savepoint or checkpoint directory itself (it holds metadata.json), not a storage base: ` +
      `\`ksp inspect ${where}\` summarises it and \`ksp verify ${where}\` checks it; \`ksp list\` takes the storage base above {job}/savepoints/.`;
  }
  const name = nameOf(root);
  if ((name === 'savepoints' || name === 'checkpoints') && (await dirs(root)).some((d) => EPOCH.test(nameOf(d)))) {
    return `${typeof base === 'string' ? base : uriOf(base)} is a job's ${name}/ folder: list the job directory above it (or the storage base above that).`;
  }
  return null;
}

async function savepointRecords(spDir: Location): Promise<MetaDoc[]> {
  const out: MetaDoc[] = [];
  for (const d of await dirs(spDir)) {
    if (EPOCH.test(nameOf(d))) continue;
    const f = child(d, 'meta.json');
    if (!(await f.storage.stat(f.key))) continue;
    try {
      out.push(MetaDoc.decode(await f.storage.readSmall(f.key), uriOf(f)));
    } catch {
      // A broken record is reported by `verify`; the listing goes on.
    }
  }
  return out;
}

async function describe(dir: Location, jobId: string, kind: 'checkpoint' | 'savepoint', records: MetaDoc[], verify: boolean): Promise<ListedEpoch> {
  const e: ListedEpoch = {
    jobId, kind, epoch: BigInt(nameOf(dir)).toString(), uri: uriOf(dir), label: null, savepointId: null,
    timestampMs: null, files: 0, bytes: 0, manifest: false,
  };
  for await (const f of dir.storage.list(dir.key)) {
    e.files++;
    e.bytes += f.size ?? 0;
    if (f.key === child(dir, MANIFEST_NAME).key) e.manifest = true;
  }
  try {
    const md = MetadataDoc.decode(await dir.storage.readSmall(child(dir, 'metadata.json').key), uriOf(child(dir, 'metadata.json')));
    e.label = md.value.savepoint_label;
    e.timestampMs = md.value.timestamp_ms.toString();
  } catch (err) {
    e.problem = isKspError(err) ? err.message : String(err);
  }
  const own = kind === 'savepoint' ? records.find((r) => r.value.epoch.toString() === e.epoch && r.value.job_id === jobId && (e.label === null || r.value.label === e.label)) : undefined;
  if (own) {
    e.savepointId = own.value.savepoint_id;
    e.label ??= own.value.label;
  }
  if (verify) {
    try {
      const r = await verifySavepoint(dir, { records: false });
      e.verified = r.ok;
      if (!r.ok) e.problem ??= r.findings.find((f) => f.severity === 'error')?.message;
    } catch (err) {
      e.verified = false;
      e.problem ??= isKspError(err) ? err.message : String(err);
    }
  }
  return e;
}
