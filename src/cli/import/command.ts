import type { CommandModule } from 'yargs';
import { KspError } from '../../errors.js';
import type { GlobalArgs } from '../main.js';
import { WRITE_EPILOG, writeOptions, type WriteArgs } from '../write/options.js';

interface ImportArgs extends WriteArgs {
  rows: string;
  into?: string;
  like?: string;
  parallelism?: number;
  operator?: string[];
  format?: 'parquet' | 'arrow' | 'arrows' | 'jsonl';
  'key-codec'?: string;
  'value-codec'?: string;
  to?: 'canonical' | 'native';
}

export const command: CommandModule<GlobalArgs, ImportArgs> = {
  command: 'import <rows> [dst]',
  describe: 'Build a savepoint from rows (Parquet, Arrow IPC, JSON Lines in the columns inspect --out writes), or apply rows to one',
  builder: (y) =>
    writeOptions(y)
      .positional('rows', { type: 'string', demandOption: true, describe: 'Rows file: .parquet, .arrow/.arrows (Arrow IPC file/stream) or .jsonl (local)' })
      .option('into', { type: 'string', describe: 'Apply the rows to this savepoint: upserts, and deletes where a change column says delete; operators without rows are copied' })
      .option('like', { type: 'string', describe: 'The rows are the whole state, written in the task layout (operators, task ids), job and epoch of this savepoint' })
      .option('parallelism', { alias: 'p', type: 'number', describe: 'A new savepoint (with --job-id and --epoch): tasks of each operator the rows name; with --like/--into: of operators the layout lacks' })
      .option('operator', { type: 'string', array: true, describe: 'A new operator and its layout, ID=PARALLELISM (repeatable)' })
      .option('format', { choices: ['parquet', 'arrow', 'arrows', 'jsonl'] as const, describe: 'Format of the rows file (default: from its name)' })
      .option('key-codec', { type: 'string', describe: 'Encode key_decoded back with this codec (utf8, hex, json, msgpack, i64le, u64le, f64le), or per state STATE=CODEC,…,*=CODEC' })
      .option('value-codec', { type: 'string', describe: 'Encode value_decoded back with this codec, as --key-codec; where value_decoded is null, the raw value column is used' })
      .option('to', { choices: ['canonical', 'native'] as const, describe: 'canonical (default): state.bin files; native: RocksDB databases in the engine\'s incremental layout, as ksp convert --to native writes them' })
      .example('ksp inspect ./sp --out rows.parquet && ksp import rows.parquet ./copy --like ./sp', 'export and import back: the same state files')
      .example('ksp import fixed.parquet ./sp-fixed --into ./sp', 'apply edited rows (upsert; delete where change = \'delete\')')
      .example('ksp import rows.jsonl ./new --job-id shop --epoch 1 --parallelism 4', 'a new savepoint: every operator the rows name at 4 tasks')
      .example('ksp import rows.parquet ./sp2 --into ./sp --operator enrich=2 --value-codec msgpack', 'add a new operator of 2 tasks; value_decoded (JSON) packed as msgpack')
      .epilog(`Columns (those ksp inspect --out writes): operator_id and state_name are required;
entry_operator defaults to operator_id; the key comes from key (binary), key_hex, key_utf8, or
key_decoded with --key-codec, the value likewise; key_group is ignored (derived); change
(upsert | delete) is optional, upsert without it. The last row for a key wins.

Entries are routed as the engine routes them: a window-layout key (tw:/sw:/ses:) goes to the task
owning its group key's key group; another key to the row's task_id when it names a task, else a
watermark (wm:) to every task and any other key to the owner of its own key group.

Every row is checked before anything is written: a missing column, a value that does not encode
or an operator the layout lacks is an error naming the row (exit 3), and nothing is written. Rows
are spilled to --temp-dir per task, never held in memory.\n\n${WRITE_EPILOG}`) as never,
  handler: async (args) => {
    const modes = [args.into !== undefined, args.like !== undefined].filter(Boolean).length;
    if (modes > 1) throw new KspError('USAGE', 'give one of --into and --like');
    const fresh = modes === 0;
    if (fresh && (args['job-id'] === undefined || args.epoch === undefined || args.parallelism === undefined)) {
      throw new KspError('USAGE', 'a new savepoint needs --job-id, --epoch and --parallelism (or take a layout with --like, or apply the rows to a savepoint with --into)');
    }
    const operators: Record<string, number> = {};
    for (const o of args.operator ?? []) {
      const m = /^(.+)=(\d+)$/.exec(o);
      if (!m) throw new KspError('USAGE', `--operator ${JSON.stringify(o)}: expected ID=PARALLELISM`, { found: o });
      operators[m[1]!] = Number(m[2]);
    }
    const { codecSpec } = await import('../../model/value-codecs.js');
    const { Progress } = await import('../progress.js');
    // The rows are read once, while the write is planned: that phase first, then the write's.
    const progress = Progress.for('import', args);
    const rows = {
      ...(progress.enabled ? { progress: { start: () => progress.phase('read rows', undefined, 'entries'), total: progress.setTotal, rows: progress.add } } : {}),
      file: args.rows,
      ...(args.format ? { format: args.format } : {}),
      ...(args['key-codec'] ? { keyCodec: await codecSpec(args['key-codec'], 'key') } : {}),
      ...(args['value-codec'] ? { valueCodec: await codecSpec(args['value-codec'], 'value') } : {}),
    };
    const native = (w: import('../../write/writer.js').SavepointWriter) => (args.to === 'native' ? w.convert('native') : w);
    const { runWrite } = await import('../write/run.js');
    if (!fresh) {
      args.src = (args.into ?? args.like)!;
      const mode = args.into !== undefined ? 'into' as const : 'like' as const;
      await runWrite(args, (w) => native(w.apply(rows, { mode, operators, ...(args.parallelism !== undefined ? { parallelism: args.parallelism } : {}), ...(args['temp-dir'] ? { tempDir: args['temp-dir'] } : {}) })), undefined, progress);
      return;
    }
    const { freshImport } = await import('../../import/fresh.js');
    const { identityOptions } = await import('../write/run.js');
    const f = await freshImport(rows, { jobId: args['job-id']!, epoch: identityOptions(args).epoch!, parallelism: args.parallelism!, operators, ...(args['temp-dir'] ? { tempDir: args['temp-dir'] } : {}) });
    try {
      await runWrite(args, (w) => w, async () => native(f.writer), progress);
    } finally {
      f.dispose();
    }
  },
};
