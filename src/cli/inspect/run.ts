import type { NativeInfo } from '../../model/native-state.js';
import type { WindowJoinSummary } from '../../formats/task-format/index.js';
import { KspError, preview } from '../../errors.js';
import { exportEntries } from '../../export/export.js';
import { jsonlLine } from '../../export/jsonl.js';
import { specsOf, type DecodeStats, type ExportCodecs, type ExportSpecs } from '../../export/columns.js';
import { checkFilterNames, checkNames } from '../../model/filter-names.js';
import { inspectSavepoint, type InspectSummary } from '../../model/inspect.js';
import { sizeTasks } from '../../model/read-bytes.js';
import { tasksForKey } from '../../model/key-lookup.js';
import { checkSourceIntegrity, type HashLookup } from '../../model/source-integrity.js';
import { Savepoint, type EntryFilter, type EntryRow } from '../../model/savepoint.js';
import { checkSpecStates, codecSpec } from '../../model/value-codecs.js';
import type { ViewCodec } from '../../model/value-codecs.js';
import { locate } from '../../storage/uri.js';
import { setExit } from '../exit.js';
import { bytes, count, err, json, out, shown, table } from '../output.js';
import { Progress } from '../progress.js';
import { allowRoots } from '../source-options.js';
import type { InspectArgs } from './command.js';

function hexArg(name: string, v: string): Buffer {
  const h = v.startsWith('0x') ? v.slice(2) : v;
  if (!/^([0-9a-fA-F]{2})*$/.test(h)) throw new KspError('USAGE', `--${name}: ${JSON.stringify(v)} is not hex (pairs of 0-9a-f); use --${name}-utf8 for text`, { found: v });
  return Buffer.from(h, 'hex');
}

export async function run(args: InspectArgs): Promise<void> {
  const sp = await Savepoint.open(args.savepoint, { allowRoots: allowRoots(args) });
  const key = args.key !== undefined ? hexArg('key', args.key) : args.keyUtf8 !== undefined ? Buffer.from(args.keyUtf8, 'utf8') : undefined;
  const keyPrefix = args.keyPrefix !== undefined ? hexArg('key-prefix', args.keyPrefix) : args.keyPrefixUtf8 !== undefined ? Buffer.from(args.keyPrefixUtf8, 'utf8') : undefined;
  const entriesMode = args.entries || key !== undefined || keyPrefix !== undefined || args.limit !== undefined || args.out !== undefined;
  if (args.limit !== undefined && (!Number.isInteger(args.limit) || args.limit < 0)) throw new KspError('USAGE', `--limit: expected a whole number >= 0, found ${args.limit}`);
  if (args.distributed && args.out === undefined) throw new KspError('USAGE', '--distributed applies to --out FOLDER only (a sharded export)');
  if (args.shards !== undefined && !args.distributed) throw new KspError('USAGE', '--shards applies with --distributed only');
  // The source's integrity first, as the writers check it (--trust-source to look inside a damaged one).
  const integrity = await checkSourceIntegrity(sp, args.trustSource === true);
  if (!args.quiet) for (const w of integrity.warnings) err(`ksp: warning: ${shown(w)}`);
  if (!entriesMode) return summary(sp, args, integrity.hashes);

  const filter: EntryFilter = { operator: args.operator, state: args.state, key, keyPrefix };
  // An unknown --operator/--state is an error naming the valid ones, before anything is written.
  await checkFilterNames(sp, filter);
  const candidates = sp.candidateTasks(filter);
  let pruned: { read: number; of: number } | null = null;
  if (key && !args.allTasks) {
    const plan = tasksForKey(sp, key, candidates);
    filter.tasks = new Set(plan.tasks.map((t) => t.index));
    if (plan.tasks.length < candidates.length) pruned = { read: plan.tasks.length, of: candidates.length };
    if (args.verbose) err(`reading ${plan.tasks.length} of ${candidates.length} task(s) that can hold the key${plan.unpruned.length ? ` (all tasks of ${plan.unpruned.join(', ')}: only some of their tasks were asked for)` : ''}`);
  }
  if (args.distributed) return (await import('../distributed/export-run.js')).runExportPlan(sp, args, filter);
  const codecs: ExportSpecs = {
    key: args.keyCodec ? await codecSpec(args.keyCodec, 'key') : undefined,
    value: args.valueCodec ? await codecSpec(args.valueCodec, 'value') : undefined,
  };
  // A state named in a per-state spec must exist: said before anything is written.
  await checkSpecStates([{ flag: '--key-codec', spec: codecs.key }, { flag: '--value-codec', spec: codecs.value }], sp.entries(filter));
  // An export draws progress in source bytes read; entries to stdout draw none.
  const progress = args.out !== undefined ? Progress.for('export', args) : null;
  let rows = sp.entries(filter, { onBytes: progress?.hooks.onBytes });
  const limit = args.limit ?? (args.out === undefined && process.stdout.isTTY && !args.json ? 100 : undefined);
  if (limit !== undefined) rows = limited(rows, limit);

  if (args.out !== undefined) {
    const target = locate(args.out);
    if (!args.overwrite && (await target.storage.stat(target.key))) {
      throw new KspError('TARGET_NOT_EMPTY', `${args.out}: exists; pass --overwrite to replace it`, { file: args.out });
    }
    // The total is added up beside the export (a stat per task); with --limit the read stops early, so none is shown.
    let exported = false;
    if (progress?.enabled && limit === undefined) void sizeTasks(sp, sp.candidateTasks(filter), progress.setTotal, () => exported).catch(() => undefined);
    const r = await exportEntries(rows, target, { codecs, compression: args.compression as never }).finally(() => {
      exported = true;
      progress?.end();
    });
    if (args.json) await out(json(r));
    else await out(`wrote ${count(r.rows)} entries to ${shown(r.file)} (${r.format}, ${bytes(r.bytes)})\n`);
    warnDecode(r.decode, args);
    return;
  }

  const stats: DecodeStats = { keyFailures: 0, valueFailures: 0 };
  let n = 0;
  for await (const batch of rows) {
    let s = '';
    for (const r of batch) s += args.json ? jsonlLine(r, codecs, stats, codecs) : humanEntry(r, codecs, stats);
    n += batch.length;
    await out(s);
  }
  if (!args.json && !args.quiet) {
    err(`${count(n)} entr${n === 1 ? 'y' : 'ies'}${limit !== undefined && n >= limit ? ` (limit ${limit}${args.limit === undefined ? '; --limit N for more' : ''})` : ''}`);
  }
  if (n === 0 && pruned && !args.quiet) {
    // Say it even with --json (on stderr): a silent empty answer here has hidden misplaced entries before.
    err(`ksp: no entry found in the ${pruned.read} of ${pruned.of} task(s) that own the key's key group; an entry left on another task (by an older tool or a key migration) is found with --all-tasks`);
  }
  warnDecode(stats, args);
  setExit(0);
}

async function* limited(rows: AsyncIterable<EntryRow[]>, limit: number): AsyncGenerator<EntryRow[]> {
  let left = limit;
  if (left === 0) return;
  for await (const b of rows) {
    if (b.length >= left) {
      yield b.slice(0, left);
      return;
    }
    left -= b.length;
    yield b;
  }
}

function warnDecode(s: DecodeStats, args: InspectArgs): void {
  if (args.quiet) return;
  if (s.keyFailures) err(`note: ${count(s.keyFailures)} key(s) could not be decoded as ${args.keyCodec}; their key_decoded (or window columns) is null`);
  if (s.valueFailures) err(`note: ${count(s.valueFailures)} value(s) could not be decoded as ${args.valueCodec}; their value_decoded is null`);
}

function humanEntry(r: EntryRow, codecs: ExportCodecs, stats: DecodeStats): string {
  const specs = specsOf(codecs);
  const show = (b: Uint8Array, codec: ViewCodec | undefined, which: 'key' | 'value'): string => {
    if (!codec) return preview(b, 64);
    try {
      if (codec.window) {
        const w = codec.window(b, r.value);
        if (!w) throw new Error('not a window key');
        return w.kind === 'wm' ? `wm: (watermark ${w.watermark})` : `${w.kind}: ${JSON.stringify(w.groupKey)} [${w.start}, ${w.end ?? '?'}${w.kind === 'ses' ? ' last event' : ''}]`;
      }
      const v = codec.decode(b, which === 'value' ? r.key : undefined);
      return typeof v === 'string' && codec.name === 'utf8' ? JSON.stringify(v) : String(v);
    } catch {
      if (which === 'key') stats.keyFailures++;
      else stats.valueFailures++;
      return `${preview(b, 64)} (not ${codec.name})`;
    }
  };
  const op = r.operatorId === r.task.operatorId ? r.task.operatorId : `${r.task.operatorId} [entry: ${r.operatorId}]`;
  return `${op}/${r.task.taskId}  ${r.stateName}  ${show(r.key, specs.key?.for(r.stateName), 'key')} => ${show(r.value, specs.value?.for(r.stateName), 'value')}\n`;
}

async function summary(sp: Savepoint, args: InspectArgs, hashes: HashLookup): Promise<void> {
  const progress = Progress.for('inspect', args);
  const s = await inspectSavepoint(sp, {
    ...progress.hooks, threads: args.threads, hashes,
    // Task summaries only as many as are shown (see humanSummary).
    records: args.json || args.verbose ? true : TASKS_SHOWN,
  });
  progress.end();
  const named = args.operator === undefined ? s.operators : s.operators.filter((o) => o.id === args.operator || o.states.some((x) => x.entryOperator === args.operator));
  checkNames(args, { metadataOperators: s.operators.map((o) => o.id), entryOperators: s.operators.flatMap((o) => o.states.map((x) => x.entryOperator)), states: named.flatMap((o) => o.states.map((x) => x.name)) }, sp.uri);
  s.operators = named;
  if (args.state !== undefined) for (const o of s.operators) o.states = o.states.filter((x) => x.name === args.state);
  await out(args.json ? json(s) : shown(humanSummary(s, args.verbose ?? false)));
  const broken = s.operators.flatMap((o) => o.tasks).filter((t) => t.error);
  for (const t of broken) err(`ksp: error [${t.error!.code}]: ${t.error!.message}`);
  const errors = s.operators.reduce((n, o) => n + o.errorTasks, 0);
  if (errors > broken.length) err(`ksp: ${errors - broken.length} more task(s) with errors, not listed (--verbose lists them)`);
  setExit(errors ? 3 : 0);
}

/** Source partitions listed without --verbose (a job may read thousands). */
const OFFSETS_SHOWN = 32;

/** Tasks listed per operator without --verbose. */
const TASKS_SHOWN = 16;

export function humanSummary(s: InspectSummary, verbose: boolean): string {
  const L: string[] = [];
  L.push(`${s.kind} ${s.uri}`);
  L.push(`  job ${s.jobId}, epoch ${s.epoch}${s.label ? `, label ${JSON.stringify(s.label)}` : ''}, taken ${new Date(Number(s.timestampMs)).toISOString()}`);
  L.push(`  metadata v${s.metadataVersion}, paths: ${s.layout}${s.savepointId ? `, savepoint id ${s.savepointId}` : ''}`);
  if (s.operatorVersions && Object.keys(s.operatorVersions).length) L.push(`  operator versions: ${Object.entries(s.operatorVersions).map(([k, v]) => `${k}=v${v}`).join(', ')}`);
  if (s.sourceOffsets.length) {
    const shownOffsets = verbose ? s.sourceOffsets : s.sourceOffsets.slice(0, OFFSETS_SHOWN);
    L.push(`  source offsets: ${shownOffsets.map((o) => `${o.partitionId}=${o.offset}${o.encodedOffset ? ` (encoded ${o.encodedOffset})` : ''}`).join(', ')}${shownOffsets.length < s.sourceOffsets.length ? `, … ${s.sourceOffsets.length - shownOffsets.length} more (--verbose)` : ''}`);
  } else L.push('  source offsets: none');
  L.push(`  ${s.totals.operators} operator(s), ${s.totals.tasks} task(s), ${count(s.totals.entries)} entries, ${bytes(s.totals.bytes)}${s.totals.nativeTasks ? `, ${s.totals.nativeTasks} native task(s)` : ''}${s.totals.statelessTasks ? `, ${s.totals.statelessTasks} stateless task(s)` : ''}${s.totals.windowJoinTasks ? `, ${s.totals.windowJoinTasks} window-join task(s)` : ''}`);
  for (const o of s.operators) {
    L.push('');
    const kg = o.keyGroups;
    L.push(`operator ${o.id}: ${o.taskCount} task(s), ${count(o.entries)} entries, ${bytes(o.bytes)}`);
    if (o.entries) L.push(`  key groups: ${count(kg.distinct)} of 32768 used, ${count(kg.minPerGroup)}..${count(kg.maxPerGroup)} entries per group${kg.windowKeys ? `; ${count(kg.windowKeys)} window-layout keys` : ''}${kg.watermarkKeys ? `; ${count(kg.watermarkKeys)} watermark keys` : ''}`);
    if (o.states.length) {
      L.push(table(['  STATE', 'ENTRY OPERATOR', 'ENTRIES', 'KEY BYTES', 'VALUE BYTES'],
        o.states.map((x) => [`  ${x.name}`, x.entryOperator, count(x.entries), bytes(x.keyBytes), bytes(x.valueBytes)])).trimEnd());
    }
    const shown = verbose ? o.tasks : o.tasks.slice(0, TASKS_SHOWN);
    L.push(table(['  TASK', 'FORMAT', 'ENTRIES', 'SIZE'], shown.map((t) => [
      `  ${t.id}`, t.error ? `${t.format} (ERROR ${t.error.code})` : t.native ? `native: ${nativeLine(t.native)}` : t.format === 'native' ? `native -> ${t.pointer}` : t.windowJoin ? `window-join: ${windowJoinLine(t.windowJoin)}` : t.version === 2 ? 'canonical v2' : t.format, count(t.entries), bytes(t.native ? t.native.sstBytes : t.size),
    ])).trimEnd());
    if (shown.length < o.taskCount) L.push(`  … ${o.taskCount - shown.length} more task(s) (--verbose)`);
    if (o.repeatedKeys) L.push(`  repeated keys: ${count(o.repeatedKeys)} entr${o.repeatedKeys === 1 ? 'y repeats' : 'ies repeat'} a key stored earlier in its task; the engine keeps the last (KEY_REPEATED)`);
    for (const t of o.tasks) for (const n of t.notes ?? []) L.push(`  ${n.severity === 'info' ? 'note' : 'warning'} [${n.code}] ${t.id}: ${n.message}`);
    if (o.omittedWithNotes) L.push(`  … ${o.omittedWithNotes} more task(s) with warnings or errors, not listed (--verbose)`);
  }
  return L.join('\n') + '\n';
}

/** One line about a window-join task: its watermark and what it buffers (entries are 0: it holds no key/value entries). */
export function windowJoinLine(w: WindowJoinSummary): string {
  const wm = w.watermarkMs === null ? 'none (absent)' : w.watermarkMs === '-9223372036854775808' ? 'none yet (i64::MIN)' : `${w.watermarkMs} (${watermarkTime(w.watermarkMs)})`;
  const rows = w.rows ?? w.buffered;
  return `watermark ${wm}, ${count(rows)} buffered row(s) (${w.left} left, ${w.right} right, ${w.keys} key(s)), window ±${w.spec.windowMs} ms on ${w.spec.leftKeyColumn}=${w.spec.rightKeyColumn}`;
}

function watermarkTime(ms: string): string {
  const n = Number(ms);
  const d = new Date(n);
  return Number.isFinite(d.getTime()) ? d.toISOString() : 'out of date range';
}

/** One line about a native task's RocksDB files. */
export function nativeLine(n: NativeInfo): string {
  const levels = n.levels.map((l) => `L${l.level}:${l.files}`).join(' ');
  return `${n.sstFiles} SST (${levels || 'none'}), format_version ${n.formatVersions.join('/') || '-'}, ${n.compressions.join('/') || '-'}, ${n.checksums.join('/') || '-'}${n.wals ? `, ${n.wals} WAL` : ''}${n.otherColumnFamilies.length ? `, ignored column families: ${n.otherColumnFamilies.join(', ')}` : ''}`;
}
