import { KspError } from '../../errors.js';
import { formatFromPath, type ExportFormat } from '../../export/export.js';
import type { EntryFilter, Savepoint } from '../../model/savepoint.js';
import { checkSpecStates, codecSpec } from '../../model/value-codecs.js';
import { locate } from '../../storage/uri.js';
import { PART_EXT, writeExportPlan } from '../../write/distributed/export-plan.js';
import type { ExportSpec } from '../../write/distributed/plan-file.js';
import { setExit } from '../exit.js';
import { bytes, json, out, shown } from '../output.js';
import type { InspectArgs } from '../inspect/command.js';
import { launch } from './plan-run.js';

/**
 * `ksp inspect SP --out FOLDER --distributed`: the export planned as part
 * units in FOLDER/_ksp/plan.json (write/distributed/export-plan.ts), with the
 * filter and codecs of the one-process `inspect --out`, and the commands
 * that run it printed. Nothing else is written.
 */
export async function runExportPlan(sp: Savepoint, args: InspectArgs, filter: EntryFilter): Promise<void> {
  if (args.limit !== undefined) throw new KspError('USAGE', '--limit does not apply to a sharded export (--distributed): every part would need the rows before it');
  if (args.overwrite) throw new KspError('USAGE', '--distributed writes only into an empty folder; --overwrite is not supported with it');
  if (args.shards !== undefined && (!Number.isInteger(args.shards) || args.shards < 1 || args.shards > 100000)) throw new KspError('USAGE', `--shards must be a whole number from 1 to 100000, got ${args.shards}`);
  const folder = args.out!.replace(/\/+$/, '');
  // The part format from the folder's name (`entries.arrow/` holds .arrow parts, as Spark names folders), else Parquet.
  let format: ExportFormat = 'parquet';
  try {
    format = formatFromPath(folder);
  } catch {
    // a plain folder name: Parquet parts
  }
  const key = args.keyCodec ? await codecSpec(args.keyCodec, 'key') : undefined;
  const value = args.valueCodec ? await codecSpec(args.valueCodec, 'value') : undefined;
  await checkSpecStates([{ flag: '--key-codec', spec: key }, { flag: '--value-codec', spec: value }], sp.entries(filter));
  const tasks = sp.candidateTasks(filter);
  const sizes = await Promise.all(tasks.map(async (t) => (await t.location.storage.stat(t.location.key))?.size ?? 0));
  const read = sizes.reduce((a, b) => a + b, 0);
  const parts = args.shards ?? Math.max(1, Math.min(64, Math.ceil(read / (256 * 1024 * 1024))));
  const spec: Omit<ExportSpec, 'savepoint' | 'roots' | 'metadataSha256'> = {
    trustSource: args.trustSource === true, format, compression: (args.compression ?? 'zstd') as ExportSpec['compression'],
    ...(args.keyCodec ? { keyCodec: args.keyCodec } : {}), ...(args.valueCodec ? { valueCodec: args.valueCodec } : {}),
    ...(filter.operator !== undefined ? { operator: filter.operator } : {}), ...(filter.state !== undefined ? { state: filter.state } : {}),
    ...(filter.key ? { keyHex: Buffer.from(filter.key).toString('hex') } : {}), ...(filter.keyPrefix ? { keyPrefixHex: Buffer.from(filter.keyPrefix).toString('hex') } : {}),
  };
  const options = Object.fromEntries(Object.entries(args).filter(([k, v]) => !k.includes('-') && k !== '_' && k !== '$0' && v !== undefined));
  const plan = await writeExportPlan(sp, locate(folder), { parts, spec, tasks, options, forceUnlock: false });
  const n = plan.units.length;
  const lines = launch(plan.target.uri, n);
  const glob = `${plan.target.uri}/*.${PART_EXT[format]}`;
  const reader = format === 'parquet' ? `DuckDB: SELECT * FROM read_parquet('${glob}')` : format === 'jsonl' ? `DuckDB: SELECT * FROM read_json('${glob}')` : format === 'arrow' ? `pyarrow: pyarrow.dataset.dataset('${plan.target.uri}', format='arrow')` : 'each part an Arrow IPC stream (pyarrow.ipc.open_stream)';
  if (args.json) {
    await out(json({ plan: { target: plan.target.uri, source: plan.source.uri, sourceManifestSha256: plan.source.manifestSha256, command: plan.command, units: n, format, created: plan.created }, shards: n, launch: lines, read: glob }));
  } else {
    await out(shown([
      `planned a sharded export of ${plan.source.uri}`,
      `   → ${plan.target.uri}: ${n} ${format} part(s) of ${tasks.length} task(s), ${bytes(read)} to read; plan in ${plan.target.uri}/_ksp/plan.json`,
      `source pinned by its manifest.sha256: ${plan.source.manifestSha256 ?? '(none: --trust-source)'}`,
      `run ${n} shard(s) (one part each), on any machines that see both storages, then commit:`,
      ...lines.map((l) => `  ${l}`),
      `the folder is one table once ksp commit has written its _SUCCESS, e.g. ${reader}`,
    ].join('\n') + '\n'));
  }
  setExit(0);
}
