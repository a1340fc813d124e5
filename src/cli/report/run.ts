import { KspError } from '../../errors.js';
import { Savepoint } from '../../model/savepoint.js';
import { checkSourceIntegrity } from '../../model/source-integrity.js';
import { gatherReport } from '../../report/data.js';
import { renderReport } from '../../report/html.js';
import { locate } from '../../storage/uri.js';
import { setExit } from '../exit.js';
import { bytes, err, json, out, shown } from '../output.js';
import { Progress } from '../progress.js';
import { allowRoots } from '../source-options.js';
import type { ReportArgs } from './command.js';

/** Parallelism a rescale accepts at most: one key group per task. */
const MAX_PARALLELISM = 32768;

export async function run(args: ReportArgs): Promise<void> {
  const p = args.whatIfParallelism;
  if (p !== undefined && (!Number.isInteger(p) || p < 1 || p > MAX_PARALLELISM)) {
    throw new KspError('USAGE', `--what-if-parallelism: expected a whole number from 1 to ${MAX_PARALLELISM}, found ${p}`, { found: p });
  }
  if (args.tasks !== undefined && (!Number.isInteger(args.tasks) || args.tasks < 0)) throw new KspError('USAGE', `--tasks: expected a whole number >= 0, found ${args.tasks}`, { found: args.tasks });
  const target = locate(args.out);
  if (!args.overwrite && (await target.storage.stat(target.key))) {
    throw new KspError('TARGET_NOT_EMPTY', `${args.out}: exists; pass --overwrite to replace it`, { file: args.out });
  }
  const sp = await Savepoint.open(args.savepoint, { allowRoots: allowRoots(args) });
  // As inspect: the source's integrity first (--trust-source to look inside a damaged one).
  const integrity = await checkSourceIntegrity(sp, args.trustSource === true);
  if (!args.quiet) for (const w of integrity.warnings) err(`ksp: warning: ${shown(w)}`);
  const progress = new Progress('report', args.progress !== false && !args.quiet);
  const data = await gatherReport(sp, {
    hashes: integrity.hashes, threads: args.threads, allowRoots: allowRoots(args), verify: args.verify !== false,
    tasks: args.tasks ?? 1000, onBytes: progress.add, onTotal: (n) => progress.setTotal(n),
  });
  progress.end();
  const html = Buffer.from(renderReport({ ...data, warnings: integrity.warnings, whatIfParallelism: p }), 'utf8');
  await target.storage.write(target.key, html);
  const s = data.summary;
  if (args.json) {
    await out(json({ file: target.storage.uriOf(target.key), bytes: html.length, operators: s.totals.operators, tasks: s.totals.tasks, entries: s.totals.entries, verified: data.verify?.ok ?? null }));
  } else {
    await out(`wrote ${shown(target.storage.uriOf(target.key))} (${bytes(html.length)}): ${s.totals.operators} operator(s), ${s.totals.tasks} task(s)${data.verify ? `; verify: ${data.verify.ok ? 'ok' : 'FAILED'}` : ''}\n`);
  }
  const errors = s.operators.reduce((n, o) => n + o.errorTasks, 0);
  if (errors && !args.quiet) err(`ksp: ${errors} task(s) could not be read; the page lists them`);
  setExit(errors ? 3 : 0);
}
