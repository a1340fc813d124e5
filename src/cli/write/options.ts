import type { Argv } from 'yargs';
import type { GlobalArgs } from '../main.js';
import { sourceOptions, type SourceArgs } from '../source-options.js';

/** Options every mutating command shares (migrate, rescale, relocate, edit). */
export interface WriteArgs extends GlobalArgs, SourceArgs {
  src: string;
  dst?: string;
  'dry-run'?: boolean;
  overwrite?: boolean;
  'force-unlock'?: boolean;
  mode?: 'relative' | 'engine';
  'job-id'?: string;
  epoch?: string;
  base?: string;
  'temp-dir'?: string;
  link?: boolean;
  threads?: number;
  'fencing-token'?: string;
  'trust-source'?: boolean;
}

export function writeOptions<T>(y: Argv<T>): Argv<T & WriteArgs> {
  return sourceOptions(y)
    .positional('src', { type: 'string', demandOption: true, describe: 'Source savepoint or checkpoint directory (local, file:// or s3://); never modified' })
    .positional('dst', { type: 'string', describe: 'Target directory; in engine mode the savepoint directory ({base}/{job}/savepoints/{epoch:020}) or a storage base' })
    .option('dry-run', { type: 'boolean', describe: 'Print the plan (files copied, rewritten, metadata edits) and write nothing' })
    .option('overwrite', { type: 'boolean', describe: 'Replace a target that exists and is not empty; deletes only files a ksp write or the savepoint layout put there (anything else is an error naming it)' })
    .option('force-unlock', { type: 'boolean', describe: 'Take over the target\'s lock (.ksp-lock) left by a run that died; a lock whose owner still runs on this host is never taken' })
    .option('mode', { choices: ['relative', 'engine'] as const, describe: 'relative: self-contained, written at dst; engine: the engine\'s layout. Default: engine when the source is in that layout and dst is a savepoint directory in it ({job}/savepoints/{epoch:020}), the source\'s storage base, --base, --job-id or --epoch; else relative (the plan says which and why)' })
    .option('job-id', { type: 'string', describe: 'Engine mode: job id of the output (default: the source\'s)' })
    .option('epoch', { type: 'string', describe: 'Engine mode: epoch of the output (default: the source\'s)' })
    .option('base', { type: 'string', describe: 'Engine mode: storage base to write {job}/savepoints/{epoch:020} under (instead of dst)' })
    .option('temp-dir', { type: 'string', describe: 'Local folder for spill files: rescale, key migrations, the key sort of convert --to native (default: KSP_TMPDIR or the OS temp dir)' })
    .option('link', { type: 'boolean', describe: 'Hard-link unchanged local files instead of copying them (same file system only)' })
    .option('threads', { type: 'number', describe: 'Threads for the rewritten tasks and the final verification (default: one per core); the output does not depend on it' })
    .option('fencing-token', { type: 'string', describe: "fencing_token of the output (default 1: the engine refuses a restore whose token is above its live coordinator's, and a fresh cluster's is 1)" })
    .option('trust-source', { type: 'boolean', describe: 'Use a source whose manifest.sha256 is missing, malformed or disagrees with its files (each problem becomes a warning); by default it is refused' }) as unknown as Argv<T & WriteArgs>;
}

export const WRITE_EPILOG = `Every mutating command plans first (--dry-run prints the plan), writes state files, then
metadata.json and meta.json, then manifest.sha256 last, and re-verifies the result as ksp verify
does, before manifest.sha256 is written. The source is never written. One run writes a target at a
time (.ksp-lock). A failure or SIGINT/SIGTERM/SIGHUP leaves no manifest at the target and removes
what was written. Exit codes: 0 written and verified, 1 the output failed verification (removed),
2 usage, 3 bad input, 4 not found, 5 storage, 6 unsupported, 129/130/143 interrupted by
SIGHUP/SIGINT/SIGTERM (rolled back).`;
