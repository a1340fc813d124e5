import { nativeLine, windowJoinLine } from '../inspect/run.js';
import { errorCount, verifySavepoint, type VerifyReport } from '../../model/verify.js';
import { setExit } from '../exit.js';
import { bytes, count, err, json, out, shown } from '../output.js';
import { Progress } from '../progress.js';
import type { VerifyArgs } from './command.js';
import { allowRoots } from '../source-options.js';

export async function run(args: VerifyArgs): Promise<void> {
  const progress = Progress.for('verify', args);
  const report = await verifySavepoint(args.savepoint, { ...progress.hooks, threads: args.threads, allowRoots: allowRoots(args),
    // Per-file and per-task records only where they are shown (see human()).
    records: args.json || args.verbose ? true : LISTED_TASKS,
  });
  progress.end();
  await out(args.json ? json(report) : shown(human(report, args.verbose ?? false)));
  if (!report.ok && !args.json && !args.quiet) err(`ksp: ${shown(report.uri)} does NOT verify (${errorCount(report)} error(s))`);
  setExit(report.ok ? 0 : 1);
}

/** Tasks listed without --verbose. */
const LISTED_TASKS = 20;

export function human(r: VerifyReport, verbose: boolean): string {
  const lines: string[] = [];
  lines.push(`${r.ok ? 'OK  ' : 'FAIL'} ${r.uri}`);
  if (r.jobId !== undefined) lines.push(`     ${r.kind} of job ${r.jobId}, epoch ${r.epoch}${r.label ? `, label ${JSON.stringify(r.label)}` : ''}`);
  lines.push(`     ${count(r.totals.files)} file(s) hashed (${bytes(r.totals.bytes)}), ${count(r.totals.tasks)} task(s), ${count(r.totals.entries)} entries decoded${r.totals.nativeTasks ? `, ${r.totals.nativeTasks} native task(s)` : ''}`);
  for (const t of r.tasks) {
    if (!verbose && r.totals.tasks > LISTED_TASKS) break;
    const what = t.windowJoin ? `window-join: ${windowJoinLine(t.windowJoin)}` : t.format === 'canonical' ? `${count(t.entries)} entries${t.version === 2 ? ' (state.bin v2)' : ''}` : t.format === 'native' ? (t.native ? `native, ${count(t.entries)} entries; ${nativeLine(t.native)}${t.native.metaBlocksChecked ? `; ${t.native.metaBlocksChecked} filter/meta block(s) checked` : ''}` : `native (pointer to ${t.pointer})`) : t.format;
    lines.push(`     - ${t.operator}/${t.task}: ${what}`);
  }
  if (!verbose && r.totals.tasks > LISTED_TASKS) lines.push(`     (${r.totals.tasks} tasks; --verbose lists them)`);
  const order = { error: 0, warning: 1, info: 2 } as const;
  for (const f of [...r.findings].sort((a, b) => order[a.severity] - order[b.severity])) {
    // Notes say what could not be checked (e.g. key-group placement): shown always, never silent.
    lines.push(`  ${(f.severity === 'info' ? 'NOTE' : f.severity.toUpperCase()).padEnd(7)} [${f.code}] ${f.message}`);
  }
  return lines.join('\n') + '\n';
}
