import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';
import { sourceOptions, type SourceArgs } from '../source-options.js';

export interface ReportArgs extends GlobalArgs, SourceArgs {
  savepoint: string;
  out: string;
  overwrite?: boolean;
  whatIfParallelism?: number;
  verify?: boolean;
  tasks?: number;
  threads?: number;
  trustSource?: boolean;
}

export const command: CommandModule<GlobalArgs, ReportArgs> = {
  command: 'report <savepoint>',
  describe: 'Write a self-contained HTML page about a savepoint: tasks, states, formats, key-group skew, largest values, repeated keys, a rescale preview',
  builder: (y) =>
    sourceOptions(y)
      .positional('savepoint', { type: 'string', demandOption: true, describe: 'Directory or its metadata.json: local path, file:// or s3://bucket/prefix' })
      .option('out', { type: 'string', demandOption: true, describe: 'The HTML file to write (local or s3://); one file, no network needed to open it' })
      .option('overwrite', { type: 'boolean', default: false, describe: 'Replace an existing --out file' })
      .option('what-if-parallelism', { type: 'number', describe: 'Also draw the entries per task each operator would have after a rescale to this many tasks (the engine\'s key-group ranges)' })
      .option('verify', { type: 'boolean', default: true, describe: 'Run ksp verify\'s checks and list its findings (--no-verify skips that read)' })
      .option('tasks', { type: 'number', default: 1000, describe: 'Tasks drawn and listed per operator (the first in metadata order; tasks with errors or notes are listed too)' })
      .option('threads', { type: 'number', describe: 'Files read at once (default: one per core)' })
      .option('trust-source', { type: 'boolean', describe: 'Report on a savepoint whose manifest.sha256 is missing, malformed or disagrees with its metadata (each problem shown as a warning on the page); refused by default' })
      .example('ksp report ./sp --out report.html', 'one page: open it from disk in any browser, or print it')
      .example('ksp report ./sp --out report.html --what-if-parallelism 12', 'also predict each operator\'s entries per task after ksp rescale --parallelism 12')
      .example('ksp report s3://bucket/job/savepoints/00000000000000000042 --out s3://bucket/reports/42.html --no-verify', 'from and to S3, without verify\'s findings (one read less)'),
  handler: async (args) => (await import('./run.js')).run(args),
};
