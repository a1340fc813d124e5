import { listHint, listStorage } from '../../model/list.js';
import { setExit } from '../exit.js';
import { bytes, err, json, out, shown, table } from '../output.js';
import type { ListArgs } from './command.js';

export async function run(args: ListArgs): Promise<void> {
  const rows = await listStorage(args.base, { job: args.job, verify: args.verify });
  // Pointed one level too deep (at a savepoint, say), a listing is empty: say why.
  const hint = rows.length === 0 ? await listHint(args.base) : null;
  if (args.json) {
    await out(json(rows));
  } else if (rows.length === 0) {
    await out(`no checkpoints or savepoints under ${args.base}${args.job ? ` for job ${args.job}` : ''}\n`);
  } else {
    await out(table(
      ['JOB', 'KIND', 'EPOCH', 'LABEL', 'TIME (UTC)', 'SIZE', 'FILES', args.verify ? 'VERIFIED' : 'MANIFEST', 'ID'],
      rows.map((r) => [
        r.jobId, r.kind, r.epoch, r.label ?? '-',
        r.timestampMs ? new Date(Number(r.timestampMs)).toISOString().replace('T', ' ').slice(0, 19) : '-',
        bytes(r.bytes), String(r.files),
        args.verify ? (r.verified ? 'yes' : 'NO') : r.manifest ? 'yes' : 'NO (incomplete)',
        r.savepointId ?? '',
      ]),
    ));
    if (args.verbose) for (const r of rows) if (r.problem) await out(shown(`  ${r.uri}: ${r.problem}\n`));
  }
  if (hint && !args.quiet) err(`ksp: note: ${shown(hint)}`);
  setExit(args.verify && rows.some((r) => r.verified === false) ? 1 : 0);
}
