import { KspError } from '../errors.js';
import { optionName } from '../option-names.js';
import { epochDirName } from '../formats/metadata/metadata.js';
import { isPointerBlob, parsePointer } from '../formats/pointer/pointer.js';
import { uriOf, type Location } from '../storage/uri.js';
import type { Job, OutputTask } from './jobs.js';
import type { Target } from './target.js';

/**
 * Native output in engine mode goes to folders shared with other epochs of
 * the same job, as the engine lays them out
 * (krishiv-state/src/incremental_checkpoint.rs, `upload_files`):
 *
 *   {base}/{job}/incr/{op}/{task}/sst/{filename}              every epoch's tables
 *   {base}/{job}/incr/{op}/{task}/epochs/{epoch:020}/…        one epoch's MANIFEST, CURRENT, sst_manifest.json
 *
 * The engine de-duplicates tables by file name alone (`uploaded_filenames`,
 * seeded from the previous epoch's sst_manifest.json in
 * `seed_from_prev_manifest`): a name already uploaded is never uploaded
 * again, so two different tables under one name would silently share it.
 * The restore copies each table to `{filename}` in a fresh RocksDB
 * directory (`restore_checkpoint`), and RocksDB finds tables by the number
 * in that name, so any unused `NNNNNN.sst` name works as long as the
 * database's MANIFEST uses the same number.
 *
 * So ksp never writes over a file there: tables get numbers above every
 * table already in the task's `sst/` folder, and an existing
 * `epochs/{epoch}/` folder (another savepoint's or checkpoint's of that
 * epoch) is refused, unless `--overwrite` replaces the very savepoint whose
 * pointer names it.
 */

const TABLE = /^(\d+)\.sst$/;

/** The first free table number in a shared `sst/` folder (2 when it is empty, as RocksDB starts). */
export async function nextTableNumber(sstDir: Location): Promise<number> {
  let max = 1;
  for await (const e of sstDir.storage.list(sstDir.key, { delimiter: true })) {
    const m = TABLE.exec(e.key.slice(e.key.lastIndexOf('/') + 1));
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max + 1;
}

function nativeOuts(jobs: Job[]): OutputTask[] {
  const outs: OutputTask[] = [];
  for (const j of jobs) {
    if (j.kind === 'rewrite' && j.native) outs.push(j.out);
    else if (j.kind === 'repartition' && j.native) outs.push(...j.outs);
    else if (j.kind === 'native') outs.push(j.out);
  }
  return outs;
}

/**
 * Plan-time checks of the shared folders (engine mode); returns the lines
 * the plan shows about them.
 */
export async function checkNativeFolders(target: Target, jobs: Job[], overwrite: boolean): Promise<string[]> {
  if (target.mode !== 'engine') return [];
  const outs = nativeOuts(jobs);
  if (!outs.length) return [];
  const epochDir = `epochs/${epochDirName(target.epoch)}`;
  const writes = jobs.some((j) => (j.kind === 'rewrite' || j.kind === 'repartition') && j.native);
  const notes: string[] = [];
  for (const out of outs) {
    const dir = target.nativeFile(out.operatorId, out.taskId, epochDir);
    let exists = false;
    for await (const _ of dir.location.storage.list(dir.location.key)) {
      exists = true;
      break;
    }
    if (exists && !(overwrite && (await namedByOldPointer(out, target, dir.stored)))) {
      throw new KspError('TARGET_FILE_EXISTS', `${uriOf(dir.location)}: already holds native files of epoch ${target.epoch} (another savepoint or checkpoint of job ${target.jobId}); ksp never replaces files outside the target directory, so choose another ${optionName('epoch')}${overwrite ? '' : ` (or ${optionName('overwrite')} to replace the savepoint that owns them)`}`, { file: uriOf(dir.location) });
    }
  }
  if (writes) {
    const first = outs[0]!;
    const sst = target.nativeFile(first.operatorId, first.taskId, 'sst');
    const n = await nextTableNumber(sst.location);
    notes.push(`native tables go to the job's shared incr/{op}/{task}/sst/ folders under fresh numbers above every table already there (e.g. ${first.operatorId}/${first.taskId} from ${String(n).padStart(6, '0')}.sst), so no other savepoint's table is replaced`);
  }
  return notes;
}

/** With --overwrite: the savepoint being replaced has a pointer naming this epoch folder's sst_manifest.json. */
async function namedByOldPointer(out: OutputTask, target: Target, epochStored: string): Promise<boolean> {
  const loc = target.stateFile(out.operatorId, out.taskId).location;
  try {
    const st = await loc.storage.stat(loc.key);
    if (!st || st.size > 64 * 1024) return false;
    const bytes = await loc.storage.readSmall(loc.key, 64 * 1024);
    if (!isPointerBlob(bytes)) return false;
    return parsePointer(bytes, uriOf(loc)).manifestPath === `${epochStored}/sst_manifest.json`;
  } catch {
    return false;
  }
}
