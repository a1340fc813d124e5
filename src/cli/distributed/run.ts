import { KspError } from '../../errors.js';
import { commitDistributed } from '../../write/distributed/commit.js';
import { parseShard, runShard } from '../../write/distributed/shard.js';
import { distributedStatus } from '../../write/distributed/status.js';
import { setExit } from '../exit.js';
import { bytes, count, err, json, out, shown, table } from '../output.js';
import { Progress } from '../progress.js';
import type { CommitArgs } from './commit-command.js';
import type { StatusArgs } from './status-command.js';
import type { WorkArgs } from './work-command.js';

export async function runWork(args: WorkArgs): Promise<void> {
  const { index, count: n } = parseShard(args.shard);
  if (args.concurrency !== undefined && (!Number.isInteger(args.concurrency) || args.concurrency < 1)) throw new KspError('USAGE', `--concurrency must be a positive integer, got ${args.concurrency}`);
  const progress = Progress.for(`shard ${index}/${n}`, args);
  const say = (m: string): void => {
    if (!args.quiet && (args.verbose || !args.json)) err(`ksp: shard ${index}/${n}: ${shown(m)}`);
  };
  const r = await runShard(args.target, {
    index, count: n, tempDir: args['temp-dir'], concurrency: args.concurrency, onBytes: progress.add,
    onUnit: (u, what, detail) => {
      if (args.verbose || what === 'fail') say(`${what} ${u.id}${detail ? `: ${detail}` : ''}`);
    },
  });
  progress.end();
  if (args.json) await out(json(r));
  else if (r.committed) await out(`${shown(r.target)}: already committed; nothing to do\n`);
  else await out(shown(`shard ${r.shard} of ${r.target}: ${r.ran.length} unit(s) run, ${r.skipped.length} already done, ${r.helped.length} run for other shards; ${bytes(r.bytes)} read in ${r.seconds.toFixed(1)} s\n`));
  setExit(0);
}

export async function runCommit(args: CommitArgs): Promise<void> {
  const r = await commitDistributed(args.target, {
    threads: args.threads, forceUnlock: args['force-unlock'], fullVerify: args['full-verify'],
    onPhase: (p) => { if (args.verbose && !args.quiet) err(`ksp: commit: ${p}`); },
  });
  if (r.verifyReport) {
    // A distributed `ksp verify`: the merged report, as ksp verify prints it, and its exit code.
    const { human } = await import('../verify/run.js');
    await out(args.json ? json(r.verifyReport) : shown(human(r.verifyReport, args.verbose ?? false)));
    setExit(r.verifyReport.ok ? 0 : 1);
    return;
  }
  if (args.json) await out(json(r));
  else if (r.export) {
    const x = r.export;
    await out(shown(`committed export ${r.target}\n  ${count(x.rows)} row(s) in ${count(x.parts)} ${x.format} part(s), ${bytes(x.bytes)}; _SUCCESS written (${r.seconds.toFixed(1)} s)\n`));
    if (!args.quiet && x.keyFailures) err(`note: ${count(x.keyFailures)} key(s) could not be decoded; their key_decoded is null`);
    if (!args.quiet && x.valueFailures) err(`note: ${count(x.valueFailures)} value(s) could not be decoded; their value_decoded is null`);
  } else if (r.alreadyCommitted) await out(`${shown(r.target)}: already committed; the reserved folder was cleaned up\n`);
  else {
    await out(shown(`committed ${r.target}\n  ${count(r.units)} unit(s), ${count(r.files)} file(s), ${bytes(r.bytes)}\n  verified OK${r.verify.sharded ? ' (by the shards, in shares)' : ''}: ${count(r.verify.files)} file(s) hashed, ${count(r.verify.entries)} entries decoded${r.verify.warnings.length ? `, ${r.verify.warnings.length} warning(s)` : ''} (${r.seconds.toFixed(1)} s)\n`));
    if (args.verbose) for (const w of r.verify.warnings) err(`ksp: warning [${w.code}] ${shown(w.message)}`);
  }
  setExit(0);
}

export async function runStatus(args: StatusArgs): Promise<void> {
  const s = await distributedStatus(args.target);
  const open = s.units.total - s.units.done;
  if (args.json) {
    await out(json(s));
  } else if (s.committed) {
    await out(`${shown(s.target)}: committed\n`);
  } else {
    const u = s.units;
    const lines = [
      `${s.target}: ${s.command} from ${s.source} (planned ${s.created})`,
      `units: ${u.done}/${u.total} done, ${u.running} running, ${u.stalled} stalled, ${u.missing} missing, ${u.failed} failed`,
      `bytes: ${bytes(s.bytes.done)} of ${bytes(s.bytes.planned)} read, ${bytes(s.bytes.written)} written${s.etaSeconds !== null && open ? `; ETA ${s.etaSeconds} s` : ''}`,
    ];
    const shown_ = args.verbose ? s.list : s.list.filter((x) => x.state !== 'done').slice(0, 30);
    let text = lines.join('\n') + '\n';
    if (shown_.length) text += table(['unit', 'state', 'shard', 'what'], shown_.map((x) => [x.id, x.state, x.shard ?? '', `${x.what}${x.error ? `  [${x.error.code}] ${x.error.message}` : ''}`]));
    if (!open) text += 'every unit is done: run ksp commit\n';
    await out(shown(text));
  }
  setExit(s.committed || open === 0 ? 0 : 1);
}
