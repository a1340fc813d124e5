import { KspError } from '../../errors.js';
import { Savepoint } from '../../model/savepoint.js';
import type { WritePlan } from '../../write/plan.js';
import { SavepointWriter } from '../../write/writer.js';
import type { WriteReport } from '../../write/execute.js';
import { setExit } from '../exit.js';
import { bytes, count, err, json, out, shown } from '../output.js';
import { Progress } from '../progress.js';
import type { WriteArgs } from './options.js';
import { allowRoots } from '../source-options.js';

/**
 * The shell around SavepointWriter that every mutating command shares: open
 * the source, let the command add its operations, then print the plan
 * (--dry-run) or write and print what was written.
 */
/** --epoch and --fencing-token as integers, refused (USAGE) when they are not. */
export function identityOptions(args: Pick<WriteArgs, 'epoch' | 'fencing-token'>): { epoch?: bigint; fencingToken?: bigint } {
  const out: { epoch?: bigint; fencingToken?: bigint } = {};
  if (args.epoch !== undefined) {
    if (!/^\d+$/.test(args.epoch)) throw new KspError('USAGE', `--epoch must be a non-negative integer, got ${JSON.stringify(args.epoch)}`);
    out.epoch = BigInt(args.epoch);
  }
  if (args['fencing-token'] !== undefined) {
    if (!/^\d+$/.test(args['fencing-token'])) throw new KspError('USAGE', `--fencing-token must be a positive integer, got ${JSON.stringify(args['fencing-token'])}`);
    out.fencingToken = BigInt(args['fencing-token']);
  }
  return out;
}

/** `start`: the writer to use instead of one over args.src (ksp import's new savepoint has no source). */
export async function runWrite(
  args: WriteArgs, build: (w: SavepointWriter, sp: Savepoint) => Promise<SavepointWriter> | SavepointWriter, start?: () => Promise<SavepointWriter>,
  // Named after the command (`rescale · write`, `rescale · verify state`); ksp import passes the one its rows phase draws on.
  progress: Progress = Progress.for(String((args as { _?: unknown[] })._?.[0] ?? 'write'), args),
): Promise<void> {
  if (args.dst === undefined && args.base === undefined) throw new KspError('USAGE', 'name the target: <dst>, or --base in engine mode');
  const { epoch, fencingToken } = identityOptions(args);
  let writer: SavepointWriter;
  if (start) writer = await start();
  else {
    const sp = await Savepoint.open(args.src, { allowRoots: allowRoots(args) });
    writer = await build(SavepointWriter.from(sp), sp);
  }
  const options = { mode: args.mode, jobId: args['job-id'], epoch, base: args.base, overwrite: args.overwrite, fencingToken, forceUnlock: args['force-unlock'], trustSource: args['trust-source'] };
  if (args['dry-run']) {
    // Without <dst>, --base alone names where the engine layout goes.
    const plan = await writer.plan(args.dst, options);
    progress.end();
    await out(args.json ? json({ dryRun: true, plan }) : shown(humanPlan(plan, args.verbose ?? false) + 'dry run: nothing was written\n'));
    setExit(0);
    return;
  }
  const report = await writer.write(args.dst, {
    ...options, tempDir: args['temp-dir'], link: args.link, threads: args.threads,
    // Per-file and per-task records only where they are shown: a write of
    // 200,000 tasks holds them through its re-verify otherwise.
    records: args.json === true || args.verbose === true,
    ...progress.hooks,
    onNote: (m) => { if (!args.quiet) err(`ksp: ${shown(m)}`); },
  });
  progress.end();
  if (!args.quiet && !args.json) for (const w of report.plan.warnings) err(`ksp: warning: ${shown(w)}`);
  await out(args.json ? json(report) : shown(humanReport(report, args.verbose ?? false)));
  setExit(0);
}

export function humanPlan(p: WritePlan, verbose: boolean): string {
  const lines: string[] = [];
  lines.push(`plan: ${p.source}`);
  lines.push(`   → ${p.target}  (${p.mode} mode, job ${p.jobId}, epoch ${p.epoch}, fencing token ${p.fencingToken})`);
  lines.push(`     ${p.modeReason}`);
  if (p.operations.length) lines.push(`operations: ${p.operations.map((o) => o.op).join(', ')}`);
  lines.push('operators:');
  for (const o of p.operators) {
    const name = o.id === o.sourceId ? o.id : `${o.sourceId} → ${o.id}`;
    let what: string = o.action;
    if (o.action === 'rescale') what = `rescale ${o.tasksIn} → ${o.tasksOut} tasks by ${o.routing} (${o.routingReason})`;
    else if (o.action === 'remove') what = `remove (${o.tasksIn} task(s) dropped)`;
    else what = `${o.action} ${o.tasksIn} task(s)`;
    if (o.version) what += `, version ${o.version.from} → ${o.version.to}`;
    if (o.native) what += ', native';
    lines.push(`  ${name}: ${what}`);
    if (verbose) for (const s of o.steps ?? []) lines.push(`      step ${s}`);
  }
  const t = p.totals;
  lines.push(`files: ${t.copy.files} copied unchanged (${bytes(t.copy.bytes)}), ${t.rewrite.files} rewritten, ${t.write.files} written new, then metadata.json, meta.json, manifest.sha256`);
  if (verbose) for (const f of p.files) lines.push(`  ${f.action.padEnd(7)} ${f.stored}${f.from ? `  ← ${f.from}` : ''}${f.transform ? `  (${f.transform})` : ''}`);
  lines.push('metadata:');
  for (const m of p.metadata) lines.push(`  - ${m}`);
  for (const w of p.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n') + '\n';
}

function humanReport(r: WriteReport, verbose: boolean): string {
  const lines: string[] = [];
  const w = r.written;
  lines.push(`wrote ${r.target}`);
  lines.push(`  ${r.plan.mode} mode, job ${r.plan.jobId}, epoch ${r.plan.epoch}: ${count(w.files)} file(s), ${bytes(w.bytes)}; ${count(w.copied)} copied unchanged, ${count(w.rewritten)} task job(s) rewritten`);
  for (const s of r.rescale) {
    lines.push(`  ${s.operator}: rescaled to ${s.counts.length} task(s), ${count(s.routed)} routed entries${s.broadcast ? `, ${s.broadcast} broadcast entr${s.broadcast === 1 ? 'y' : 'ies'} on every task (${s.mergedDuplicates} duplicate(s) merged)` : ''}; per task ${s.counts.map(count).join(', ')}`);
  }
  for (const m of r.imported) lines.push(`  ${m.operator}: imported ${count(m.upserts)} upsert(s) and ${count(m.deletes)} delete(s), ${count(m.replaced)} entr${m.replaced === 1 ? 'y' : 'ies'} replaced or removed; per task ${m.counts.map(count).join(', ')}`);
  for (const m of r.moved) lines.push(`  ${m.operator}: ${count(m.moved)} entr${m.moved === 1 ? 'y' : 'ies'} moved to the task owning the new key; per task ${m.counts.map(count).join(', ')}`);
  for (const m of r.migrations) lines.push(`  migration ${m.step}: ${count(m.transformed)} entr${m.transformed === 1 ? 'y' : 'ies'} transformed, ${count(m.passed)} passed through`);
  for (const c of r.collisions) lines.push(`  ${c.operator}${c.task ? `/${c.task}` : ''}: ${count(c.dropped)} key collision(s) on ${count(c.keys)} key(s) resolved by --on-collision`);
  if (r.native.length) {
    const tables = r.native.reduce((n, t) => n + t.tables, 0);
    lines.push(`  native: ${count(r.native.length)} task(s) written as RocksDB, ${count(tables)} table(s), ${count(r.native.reduce((n, t) => n + t.entries, 0))} entries`);
    for (const t of r.native) if (t.duplicates) lines.push(`  ${t.operator}/${t.task}: ${count(t.duplicates)} entr${t.duplicates === 1 ? 'y' : 'ies'} repeated a key; the later one was kept, as the engine's restore would`);
  }
  if (verbose) for (const t of r.tasks) lines.push(`  - ${t.operator}/${t.task}: ${count(t.entries)} entries`);
  lines.push(`  verified OK: ${count(r.verify.files)} file(s) hashed, ${count(r.verify.entries)} entries decoded${r.verify.warnings.length ? `, ${r.verify.warnings.length} warning(s)` : ''} (${r.seconds.toFixed(1)} s)`);
  for (const f of r.verify.warnings) if (verbose) lines.push(`  WARNING [${f.code}] ${f.message}`);
  return lines.join('\n') + '\n';
}
