import { KspError } from '../../errors.js';
import type { ExportSpecs } from '../../export/columns.js';
import { SavepointDiff, type DiffReport } from '../../diff/diff.js';
import { exportDiff } from '../../diff/export.js';
import { checkSourceIntegrity } from '../../model/source-integrity.js';
import { checkSpecStates, codecSpec } from '../../model/value-codecs.js';
import { locate } from '../../storage/uri.js';
import { setExit } from '../exit.js';
import { bytes, count, err, json, out, shown, table } from '../output.js';
import { Progress } from '../progress.js';
import { allowRoots } from '../source-options.js';
import { sizeTasks } from '../../model/read-bytes.js';
import type { Savepoint } from '../../model/savepoint.js';
import type { DiffArgs } from './command.js';

export async function run(args: DiffArgs): Promise<void> {
  if (args.examples !== undefined && (!Number.isInteger(args.examples) || args.examples < 0)) throw new KspError('USAGE', `--examples: expected a whole number >= 0, found ${args.examples}`);
  if (args.out === undefined && (args.keyCodec !== undefined || args.valueCodec !== undefined)) throw new KspError('USAGE', '--key-codec and --value-codec apply with --out only');
  // Progress is the reading of each side into its sort, in source bytes (the merge after it is short):
  // one phase per side, its total summed from the task files beside the read, as inspect --out does.
  const progress = Progress.for('diff', args);
  const filter = { operator: args.operator, state: args.state };
  let reading: 'a' | 'b' | undefined;
  const diff = await SavepointDiff.open(args.a, args.b, {
    allowRoots: allowRoots(args), operator: args.operator, state: args.state, tempDir: args['temp-dir'], examples: args.examples,
    ...(progress.enabled ? {
      onBytes: progress.add,
      onSide: (side: 'a' | 'b', sp: Savepoint) => {
        reading = side;
        progress.phase(`read ${side}`);
        void sizeTasks(sp, sp.candidateTasks(filter), progress.setTotal, () => reading !== side).catch(() => undefined);
      },
    } : {}),
  });
  // Each side's integrity first, as inspect and the writers check it (--trust-source to compare a damaged one).
  for (const sp of [diff.a, diff.b]) {
    const integrity = await checkSourceIntegrity(sp, args.trustSource === true);
    if (!args.quiet) for (const w of integrity.warnings) err(`ksp: warning: ${shown(w)}`);
  }
  const rows = diff.rows();
  let r: DiffReport;
  const read = async function* <T>(it: AsyncIterable<T>): AsyncGenerator<T> {
    for await (const x of it) {
      if (reading !== undefined) { reading = undefined; progress.end(); }
      yield x;
    }
  };
  if (args.out !== undefined) {
    const codecs: ExportSpecs = {
      key: args.keyCodec ? await codecSpec(args.keyCodec, 'key') : undefined,
      value: args.valueCodec ? await codecSpec(args.valueCodec, 'value') : undefined,
    };
    await checkSpecStates([{ flag: '--key-codec', spec: codecs.key }, { flag: '--value-codec', spec: codecs.value }], (async function* () {
      yield* diff.a.entries(filter);
      yield* diff.b.entries(filter);
    })());
    const target = locate(args.out);
    if (!args.overwrite && (await target.storage.stat(target.key))) {
      throw new KspError('TARGET_NOT_EMPTY', `${args.out}: exists; pass --overwrite to replace it`, { file: args.out });
    }
    const e = await exportDiff(read(rows), target, { codecs, compression: args.compression as never });
    progress.end();
    r = diff.report();
    if (args.json) await out(json({ ...r, out: e }));
    else await out(shown(humanDiff(r)) + `wrote ${count(e.rows)} difference(s) to ${shown(e.file)} (${e.format}, ${bytes(e.bytes)})\n`);
    if (!args.quiet) {
      if (e.decode.keyFailures) err(`note: ${count(e.decode.keyFailures)} key(s) could not be decoded as ${args.keyCodec}; their key_decoded (or window columns) is null`);
      if (e.decode.valueFailures) err(`note: ${count(e.decode.valueFailures)} value(s) could not be decoded as ${args.valueCodec}; their value_decoded is null`);
    }
  } else {
    for await (const _ of read(rows));
    progress.end();
    r = diff.report();
    await out(args.json ? json(r) : shown(humanDiff(r)));
  }
  setExit(r.same ? 0 : 1);
}

function stateName(s: { operator: string; entryOperator: string; state: string }): string {
  return `${s.operator}${s.entryOperator !== s.operator ? ` [entry: ${s.entryOperator}]` : ''}/${s.state}`;
}

function size(n: number | null): string {
  return n === null ? '-' : bytes(n);
}

export function humanDiff(r: DiffReport): string {
  const L: string[] = [];
  const t = r.totals;
  L.push(`diff ${r.a}`);
  L.push(`  -> ${r.b}`);
  L.push(`${r.same ? 'same content' : 'different'}: ${count(t.added)} added, ${count(t.removed)} removed, ${count(t.changed)} changed, ${count(t.unchanged)} unchanged (${count(t.entriesA)} entries read in A, ${count(t.entriesB)} in B)`);
  if (r.states.length) {
    L.push('');
    L.push(table(['OPERATOR/STATE', 'ADDED', 'REMOVED', 'CHANGED', 'UNCHANGED'], r.states.map((s) => [stateName(s), count(s.added), count(s.removed), count(s.changed), count(s.unchanged)])).trimEnd());
  }
  const examples = r.states.filter((s) => s.examples.length);
  if (examples.length) {
    L.push('');
    L.push(table(['EXAMPLE', 'CHANGE', 'OLD VALUE', 'NEW VALUE', 'KEY'], examples.flatMap((s) => s.examples.map((e) => [stateName(s), e.change, size(e.oldSize), size(e.newSize), e.key]))).trimEnd());
  }
  for (const s of r.states) {
    for (const [side, n] of [['A', s.repeated.a], ['B', s.repeated.b]] as const) {
      if (n) L.push(`note: ${stateName(s)} in ${side}: ${count(n)} entr${n === 1 ? 'y repeats' : 'ies repeat'} a key stored later in the same task; compared as the engine loads it, the last kept (KEY_REPEATED)`);
    }
    for (const [side, n] of [['A', s.conflicts.a], ['B', s.conflicts.b]] as const) {
      if (n) L.push(`warning: ${stateName(s)} in ${side}: ${count(n)} key(s) held by several tasks with values that cannot be merged; the first task's value is compared`);
    }
  }
  const logical = r.metadata.filter((m) => m.logical);
  const notes = r.metadata.filter((m) => !m.logical);
  const line = (m: { field: string; a: string | null; b: string | null }): string => `  ${m.field}: ${m.a ?? '(absent)'} -> ${m.b ?? '(absent)'}`;
  if (logical.length) {
    L.push('');
    L.push('metadata differences:');
    for (const m of logical) L.push(line(m));
  }
  if (notes.length) {
    L.push('');
    L.push('metadata notes (not differences):');
    for (const m of notes) L.push(line(m));
  }
  return L.join('\n') + '\n';
}
