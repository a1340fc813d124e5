import { KspError } from '../../errors.js';
import { Savepoint } from '../../model/savepoint.js';
import { writeDistributedPlan } from '../../write/distributed/make-plan.js';
import { unitBytes, type DistributedPlan } from '../../write/distributed/plan-file.js';
import type { SavepointWriter } from '../../write/writer.js';
import { setExit } from '../exit.js';
import { bytes, err, json, out, shown } from '../output.js';
import { allowRoots } from '../source-options.js';
import type { WriteArgs } from '../write/options.js';
import { identityOptions } from '../write/run.js';

/**
 * `--distributed` on a writing command: the same planner as a one-process
 * write, then the plan stored at the target as plain-data units, and the
 * commands that run it printed. Nothing but `_ksp/plan.json` is written.
 */
export async function runDistributedPlan(command: string, args: WriteArgs & { shards?: number }, build: (w: SavepointWriter, sp: Savepoint) => Promise<SavepointWriter> | SavepointWriter): Promise<void> {
  if (args.dst === undefined && args.base === undefined) throw new KspError('USAGE', 'name the target: <dst>, or --base in engine mode');
  if (args['dry-run']) throw new KspError('USAGE', '--distributed writes a plan to the target; for a plan that writes nothing use --dry-run without --distributed');
  if (args.overwrite) throw new KspError('USAGE', '--distributed writes only into an empty target; --overwrite is not supported with it');
  if (args.link) throw new KspError('USAGE', '--link does not apply to --distributed (shards copy on their own machines)');
  const { epoch, fencingToken } = identityOptions(args);
  const sp = await Savepoint.open(args.src, { allowRoots: allowRoots(args) });
  const writer = await build((await import('../../write/writer.js')).SavepointWriter.from(sp), sp);
  const prepared = await writer.prepare(args.dst, { mode: args.mode, jobId: args['job-id'], epoch, base: args.base, fencingToken, forceUnlock: args['force-unlock'], trustSource: args['trust-source'] });
  const options = Object.fromEntries(Object.entries(args).filter(([k, v]) => !k.includes('-') && k !== '_' && k !== '$0' && v !== undefined));
  const plan = await writeDistributedPlan(prepared, { command, options });
  const shards = args.shards ?? suggestedShards(plan);
  if (!args.quiet && !args.json) for (const w of plan.plan.warnings) err(`ksp: warning: ${shown(w)}`);
  await out(args.json ? json({ plan: summary(plan), shards, launch: launch(plan.target.uri, shards) }) : shown(human(plan, shards)));
  setExit(0);
}

/** One shard per 256 MiB read, at most 64 and at least 1: a starting point, not a rule. */
function suggestedShards(plan: DistributedPlan): number {
  const read = plan.units.reduce((n, u) => n + unitBytes(u), 0);
  return Math.max(1, Math.min(64, Math.ceil(read / (256 * 1024 * 1024)), plan.units.filter((u) => u.phase === 0).length));
}

function summary(plan: DistributedPlan): Record<string, unknown> {
  const kinds: Record<string, number> = {};
  for (const u of plan.units) kinds[u.kind] = (kinds[u.kind] ?? 0) + 1;
  return { target: plan.target.uri, source: plan.source.uri, sourceManifestSha256: plan.source.manifestSha256, command: plan.command, units: plan.units.length, kinds, created: plan.created };
}

export function launch(target: string, n: number): string[] {
  const t = /^[\w@%+=:,./-]+$/.test(target) ? target : `'${target.replaceAll("'", "'\\''")}'`;
  return [
    ...Array.from({ length: Math.min(n, 3) }, (_, i) => `ksp work ${t} --shard ${i}/${n}`),
    ...(n > 3 ? [`…  (ksp work ${t} --shard i/${n} for i = 0 … ${n - 1}; in a Kubernetes Indexed Job: --shard ${n} with JOB_COMPLETION_INDEX)`] : []),
    `ksp status ${t}`,
    `ksp commit ${t}`,
  ];
}

function human(plan: DistributedPlan, n: number): string {
  const s = summary(plan) as { kinds: Record<string, number>; units: number };
  const read = plan.units.reduce((x, u) => x + unitBytes(u), 0);
  const lines = [
    `planned ${plan.command} of ${plan.source.uri}`,
    `   → ${plan.target.uri}  (${plan.target.mode} mode), plan in ${plan.target.uri}/_ksp/plan.json`,
    `units: ${s.units} (${Object.entries(s.kinds).map(([k, v]) => `${v} ${k}`).join(', ')}), ${bytes(read)} to read`,
    `source pinned by its manifest.sha256: ${plan.source.manifestSha256 ?? '(none: --trust-source)'}`,
    `run ${n} shard(s), on any machines that see both storages, then commit:`,
    ...launch(plan.target.uri, n).map((l) => `  ${l}`),
    'nothing at the target verifies until ksp commit has sealed it',
  ];
  return lines.join('\n') + '\n';
}

/** `ksp verify <sp> --distributed <folder>`: the shares planned, and how to run them. */
export async function runVerifyPlan(args: { savepoint: string; distributed?: string; shards?: number; json?: boolean; quiet?: boolean; 'allow-root'?: string[] }): Promise<void> {
  const shards = args.shards ?? 8;
  if (!Number.isInteger(shards) || shards < 1) throw new KspError('USAGE', `--shards must be a positive integer, got ${args.shards}`);
  const { locate } = await import('../../storage/uri.js');
  const { writeVerifyPlan } = await import('../../write/distributed/make-plan.js');
  const sp = await Savepoint.open(args.savepoint, { allowRoots: allowRoots(args) });
  const plan = await writeVerifyPlan(sp, locate(args.distributed!), { shares: shards });
  await out(args.json ? json({ plan: summary(plan), shards, launch: launch(plan.target.uri, shards) }) : shown([
    `planned verify of ${plan.source.uri} in ${shards} share(s), plan in ${plan.target.uri}/_ksp/plan.json`,
    `source pinned by its manifest.sha256: ${plan.source.manifestSha256 ?? '(none)'}`,
    'run the shards, then commit to merge their reports:',
    ...launch(plan.target.uri, shards).map((l) => `  ${l}`),
  ].join('\n') + '\n'));
  setExit(0);
}
