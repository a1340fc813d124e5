import { KspError } from '../errors.js';
import { ChecksumType, loadChecksums } from './checksum.js';
import type { RandomAccessFile } from './file.js';
import { compareInternal, seqGreater, ValueType, type InternalEntry } from './internal-key.js';
import { readLog } from './log-reader.js';
import { Table, type RangeTombstone, type TableInfo } from './table.js';
import type { FileMeta } from './version-edit.js';
import { replayManifest, type VersionState } from './version-set.js';
import { replayBatch, type ReplayTarget } from './write-batch.js';

/**
 * A RocksDB directory image opened for reading its live key/value set
 * (FORMAT.md §3.4, §4.5, §5.3): CURRENT → MANIFEST → the live SSTs of the
 * default column family, plus the WALs not yet flushed. `entries()` streams
 * the newest visible value of every user key, in key order.
 *
 * Each level ≥ 1 is one sorted run (its files do not overlap), each L0 file
 * and the replayed WAL are runs of their own; the runs are merged with a
 * heap. Memory: one data block and one read-ahead window per run, plus the
 * WAL's entries (capped) and the range tombstones.
 */

export interface KeyValue {
  key: Buffer;
  value: Buffer;
}

export interface DbImage {
  /** Printable name for errors (the task, or the directory). */
  name: string;
  /** Files by name, as RocksDB would find them in its directory. */
  files: Map<string, RandomAccessFile>;
}

export interface LevelSummary {
  level: number;
  files: number;
  bytes: number;
}

export interface DbSummary {
  manifest: string;
  nextFileNumber: number;
  lastSequence: string;
  logNumber: number;
  levels: LevelSummary[];
  tables: TableInfo[];
  wals: Array<{ name: string; bytes: number }>;
  /** Column families other than default: reported, not read. */
  otherColumnFamilies: string[];
}

export interface DbOptions {
  /** Read-ahead per run (default 1 MiB). */
  windowSize?: number;
  /** Cap on WAL data held in memory (default 256 MiB). */
  maxWalBytes?: number;
}

interface Run {
  name: string;
  batches: AsyncIterator<InternalEntry[]>;
  batch: InternalEntry[];
  i: number;
  /** Lower is newer (tie-break between runs). */
  rank: number;
}

export class RocksDb {
  private constructor(
    readonly image: DbImage,
    readonly version: VersionState,
    readonly tables: Array<{ meta: FileMeta; table: Table }>,
    readonly wals: Array<{ number: number; file: RandomAccessFile }>,
    private readonly options: DbOptions,
  ) {}

  static async open(image: DbImage, options: DbOptions = {}): Promise<RocksDb> {
    // The MANIFEST and WALs are CRC32C-framed; each table loads its own block checksum (Table.open).
    await loadChecksums([ChecksumType.CRC32c]);
    const current = image.files.get('CURRENT');
    if (!current) throw new KspError('ROCKSDB_CORRUPT', `${image.name}: no CURRENT file; not a RocksDB directory`, { file: image.name });
    const text = (await current.read(0, Math.min(current.size, 4096))).toString('latin1');
    if (!text.endsWith('\n')) throw new KspError('ROCKSDB_CORRUPT', `${current.name}: CURRENT does not end with a newline`, { file: current.name, found: text });
    const manifestName = text.slice(0, -1);
    if (!/^MANIFEST-\d+$/.test(manifestName)) throw new KspError('ROCKSDB_CORRUPT', `${current.name}: names ${JSON.stringify(manifestName)}, not a MANIFEST-NNNNNN file`, { file: current.name, found: manifestName });
    const manifest = image.files.get(manifestName);
    if (!manifest) throw new KspError('ROCKSDB_CORRUPT', `${image.name}: CURRENT names ${manifestName}, which is not in the directory`, { file: current.name, found: manifestName });
    const version = await replayManifest(manifest);
    const cf = version.columnFamilies.get(0);
    if (!cf) throw new KspError('ROCKSDB_CORRUPT', `${manifest.name}: the default column family was dropped`, { file: manifest.name });
    if (cf.comparator !== null && cf.comparator !== 'leveldb.BytewiseComparator') {
      throw new KspError('ROCKSDB_UNSUPPORTED', `${manifest.name}: the default column family uses comparator ${JSON.stringify(cf.comparator)}; only leveldb.BytewiseComparator is supported`, { file: manifest.name, found: cf.comparator });
    }
    if (cf.blobFiles > 0) throw new KspError('ROCKSDB_UNSUPPORTED', `${manifest.name}: the default column family has blob files (BlobDB); they are not supported`, { file: manifest.name });

    const metas = [...cf.files.values()].sort((a, b) => a.level - b.level || a.number - b.number);
    const tables: Array<{ meta: FileMeta; table: Table }> = [];
    for (const meta of metas) {
      const file = tableFile(image, meta.number);
      if (!file) throw new KspError('ROCKSDB_CORRUPT', `${manifest.name}: lists table file ${sstName(meta.number)} (level ${meta.level}), which is not in ${image.name}`, { file: manifest.name, found: sstName(meta.number) });
      if (file.size !== meta.size) {
        throw new KspError('ROCKSDB_CORRUPT', `${file.name}: size ${file.size} differs from ${meta.size} recorded in ${manifestName}`, { file: file.name, expected: meta.size, found: file.size });
      }
      tables.push({ meta, table: await Table.open(file, { windowSize: options.windowSize, largestSeqno: meta.largestSeqno }) });
    }
    // WALs still holding data: at or above both the DB's minimum log to keep
    // and the default column family's log number.
    const minLog = Math.max(version.minLogNumberToKeep, cf.logNumber);
    const wals = [...image.files]
      .map(([name, file]) => ({ m: /^(\d+)\.log$/.exec(name), file }))
      .filter((w) => w.m && Number(w.m[1]) >= minLog)
      .map((w) => ({ number: Number(w.m![1]), file: w.file }))
      .sort((a, b) => a.number - b.number);
    return new RocksDb(image, version, tables, wals, options);
  }

  get summary(): DbSummary {
    const cf = this.version.columnFamilies.get(0)!;
    const levels = new Map<number, LevelSummary>();
    for (const { meta } of this.tables) {
      const l = levels.get(meta.level) ?? { level: meta.level, files: 0, bytes: 0 };
      l.files++;
      l.bytes += meta.size;
      levels.set(meta.level, l);
    }
    return {
      manifest: this.version.manifest,
      nextFileNumber: this.version.nextFileNumber,
      lastSequence: this.version.lastSequence.toString(),
      logNumber: cf.logNumber,
      levels: [...levels.values()].sort((a, b) => a.level - b.level),
      tables: this.tables.map((t) => t.table.info),
      wals: this.wals.map((w) => ({ name: w.file.name, bytes: w.file.size })),
      otherColumnFamilies: [...this.version.columnFamilies.values()].filter((c) => c.id !== 0).map((c) => c.name),
    };
  }

  /** The live key/value set in key order, in batches. */
  async *entries(batchSize = 4096): AsyncGenerator<KeyValue[]> {
    const { runs, tombstones } = await this.runs();
    tombstones.sort((a, b) => Buffer.compare(a.start, b.start));
    let out: KeyValue[] = [];
    let prevKey: Buffer | null = null;
    // Range tombstones: a sweep over the ascending keys.
    let next = 0;
    let active: RangeTombstone[] = [];
    const covered = (e: InternalEntry): boolean => {
      while (next < tombstones.length && Buffer.compare(tombstones[next]!.start, e.userKey) <= 0) active.push(tombstones[next++]!);
      if (active.length === 0) return false;
      active = active.filter((t) => Buffer.compare(t.end, e.userKey) > 0);
      return active.some((t) => Buffer.compare(t.start, e.userKey) <= 0 && seqGreater(t, e));
    };
    for await (const batch of mergeRuns(runs)) {
      for (const e of batch) {
        // Newest version first: older versions of the same key are shadowed.
        if (prevKey !== null && e.userKey.equals(prevKey)) continue;
        prevKey = e.userKey;
        if (tombstones.length > 0 && covered(e)) continue;
        if ((e.lo & 0xff) !== ValueType.Value) continue; // deletion or single deletion
        out.push({ key: e.userKey, value: e.value });
      }
      if (out.length >= batchSize) {
        yield out;
        out = [];
      }
    }
    if (out.length > 0) yield out;
  }

  /**
   * The tables in key order when the live set is one sorted run with nothing
   * to merge or mask: no WAL data, no range deletions, and either a single
   * table or every table on one level ≥ 1 (non-overlapping). Such a
   * database (what a full compaction, ksp's writer, or the engine's
   * bottommost files leave) is read block by block without the merge heap
   * (BlockViews); anything else returns null and goes through `entries()`.
   */
  async singleRun(): Promise<Table[] | null> {
    if (this.tables.length === 0) return null;
    for (const { table } of this.tables) if (table.metaindex.has('rocksdb.range_del')) return null;
    const wal = await this.walEntries();
    if (wal.entries.length > 0 || wal.tombstones.length > 0) return null;
    const levels = new Set(this.tables.map((t) => t.meta.level));
    if (levels.size !== 1) return null;
    const level = this.tables[0]!.meta.level;
    if (level === 0 && this.tables.length > 1) return null;
    return this.levelInOrder(level).map((t) => t.table);
  }

  /**
   * The number of live entries, when the table properties state it exactly:
   * one sorted run (`singleRun`) whose every key is at sequence 0 (so no
   * user key has two versions) with no deletions or merge operands. Then
   * each table's `rocksdb.num.entries` counts live entries only. Null
   * otherwise (the count is known only after a full scan).
   */
  async knownCount(): Promise<number | null> {
    const run = await this.singleRun();
    if (!run) return null;
    let n = 0;
    for (const { meta, table } of this.tables) {
      const p = table.props;
      if (meta.largestSeqno !== 0n || p.deletedKeys !== 0 || p.mergeOperands !== 0 || p.rangeDeletions !== 0) return null;
      if (table.globalSeqno && (table.globalSeqno.hi !== 0 || table.globalSeqno.lo !== 0)) return null;
      n += p.numEntries;
    }
    return n;
  }

  private walReplay: Promise<ReplayTarget> | null = null;

  /** The WALs replayed once (a scan and `singleRun` share it). */
  private walEntries(): Promise<ReplayTarget> {
    this.walReplay ??= this.replayWals();
    return this.walReplay;
  }

  /** The files of one level ≥ 1 in key order, checked not to overlap. */
  private levelInOrder(level: number): Array<{ meta: FileMeta; table: Table }> {
    const files = this.tables.filter((t) => t.meta.level === level).sort((a, b) => compareBounds(a.meta.smallest, b.meta.smallest));
    for (let i = 1; i < files.length; i++) {
      if (compareBounds(files[i - 1]!.meta.largest, files[i]!.meta.smallest) >= 0) {
        throw new KspError('ROCKSDB_CORRUPT', `${this.version.manifest}: level ${level} has overlapping files ${sstName(files[i - 1]!.meta.number)} and ${sstName(files[i]!.meta.number)}`, { file: this.version.manifest });
      }
    }
    return files;
  }

  /** Checksums the blocks that a scan does not read (filters and other meta blocks). */
  async verifyMetaBlocks(): Promise<number> {
    let n = 0;
    for (const { table } of this.tables) n += await table.verifyMetaBlocks();
    return n;
  }

  private async runs(): Promise<{ runs: Run[]; tombstones: RangeTombstone[] }> {
    const wal = await this.walEntries();
    const tombstones: RangeTombstone[] = [...wal.tombstones];
    for (const { table } of this.tables) tombstones.push(...(await table.rangeTombstones()));
    const runs: Run[] = [];
    // L0: one run per file, newest (highest sequence) first.
    const l0 = this.tables.filter((t) => t.meta.level === 0).sort((a, b) => (a.meta.largestSeqno > b.meta.largestSeqno ? -1 : a.meta.largestSeqno < b.meta.largestSeqno ? 1 : b.meta.number - a.meta.number));
    if (wal.entries.length > 0) runs.push(run('WAL', (async function* () { yield wal.entries; })(), runs.length));
    for (const t of l0) runs.push(run(t.table.file.name, t.table.entries(), runs.length));
    const levels = [...new Set(this.tables.filter((t) => t.meta.level > 0).map((t) => t.meta.level))].sort((a, b) => a - b);
    for (const level of levels) runs.push(run(`level ${level}`, concat(this.levelInOrder(level).map((f) => f.table)), runs.length));
    return { runs, tombstones };
  }

  /** Replays the WALs' default-column-family records into one sorted run (and the range deletions they hold). */
  private async replayWals(): Promise<ReplayTarget> {
    const cf = this.version.columnFamilies.get(0)!;
    const into: ReplayTarget = { entries: [], tombstones: [], bytes: 0, records: 0 };
    const cap = this.options.maxWalBytes ?? 256 * 1024 * 1024;
    for (const w of this.wals) {
      for await (const rec of readLog(w.file, { logNumber: w.number })) {
        replayBatch(rec.payload, { file: w.file.name, offset: rec.offset, keep: w.number >= cf.logNumber }, into);
        if (into.bytes > cap) {
          throw new KspError('ROCKSDB_UNSUPPORTED', `${w.file.name}: the WALs hold more than ${cap} bytes of unflushed data; ksp replays WALs in memory up to that size`, { file: w.file.name, expected: `<= ${cap}` });
        }
      }
    }
    into.entries.sort(compareInternal);
    return into;
  }
}

function run(name: string, it: AsyncIterable<InternalEntry[]>, rank: number): Run {
  return { name, batches: it[Symbol.asyncIterator](), batch: [], i: 0, rank };
}

async function* concat(tables: Table[]): AsyncGenerator<InternalEntry[]> {
  for (const t of tables) yield* t.entries();
}

/** Loads the run's next non-empty batch; false at its end. */
async function fill(r: Run): Promise<boolean> {
  while (r.i >= r.batch.length) {
    const n = await r.batches.next();
    if (n.done) return false;
    r.batch = n.value;
    r.i = 0;
  }
  return true;
}

function less(a: Run, b: Run): boolean {
  const c = compareInternal(a.batch[a.i]!, b.batch[b.i]!);
  return c < 0 || (c === 0 && a.rank < b.rank);
}

/** K-way merge of sorted runs into internal-key order, in batches. */
async function* mergeRuns(runs: Run[]): AsyncGenerator<InternalEntry[]> {
  const heap: Run[] = [];
  for (const r of runs) if (await fill(r)) heap.push(r);
  if (heap.length === 1) {
    // One run (a compacted database): no heap work per entry.
    const r = heap[0]!;
    do {
      yield r.i === 0 ? r.batch : r.batch.slice(r.i);
      r.i = r.batch.length;
    } while (await fill(r));
    return;
  }
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1;
      if (l >= heap.length) return;
      const m = l + 1 < heap.length && less(heap[l + 1]!, heap[l]!) ? l + 1 : l;
      if (!less(heap[m]!, heap[i]!)) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i);
  let out: InternalEntry[] = [];
  while (heap.length > 0) {
    const top = heap[0]!;
    out.push(top.batch[top.i++]!);
    if (top.i >= top.batch.length && !(await fill(top))) {
      heap[0] = heap[heap.length - 1]!;
      heap.pop();
    }
    if (heap.length > 0) down(0);
    if (out.length >= 4096) {
      yield out;
      out = [];
    }
  }
  if (out.length > 0) yield out;
}

/** Orders MANIFEST key bounds (internal keys) as the internal comparator does. */
function compareBounds(a: Buffer, b: Buffer): number {
  if (a.length < 8 || b.length < 8) return Buffer.compare(a, b);
  const c = Buffer.compare(a.subarray(0, a.length - 8), b.subarray(0, b.length - 8));
  if (c !== 0) return c;
  const ta = a.readBigUInt64LE(a.length - 8);
  const tb = b.readBigUInt64LE(b.length - 8);
  return ta > tb ? -1 : ta < tb ? 1 : 0;
}

export function sstName(n: number): string {
  return `${String(n).padStart(6, '0')}.sst`;
}

function tableFile(image: DbImage, n: number): RandomAccessFile | undefined {
  return image.files.get(sstName(n)) ?? image.files.get(`${String(n).padStart(6, '0')}.ldb`);
}
