import { createHash } from 'node:crypto';
import { Float64, Int64, Table, Utf8, tableToIPC, vectorFromArray, type Vector } from 'apache-arrow';
import { buildManifest } from '../formats/manifest/manifest.js';
import { MetadataDoc, epochDirName } from '../formats/metadata/metadata.js';
import { fromPlain } from '../formats/json/json-text.js';
import { encodeStateBinToBuffer } from '../formats/state-bin/encoder.js';

/**
 * A small savepoint holding window-join state (fixtures/window-join/), in the
 * engine's layout: operator `join` with two tasks whose `state.bin` is the
 * JSON document of `WatermarkWindowJoinOperator::snapshot_bytes`
 * (krishiv-dataflow/src/watermark_join.rs), one with buffered events (each
 * a one-row Arrow IPC stream, as `snapshot_buffered_events` writes them in
 * krishiv-dataflow/src/interval_join.rs) and one with none; and operator
 * `counts` with ordinary state.bin v1 entries. Deterministic: a rerun writes
 * the same bytes.
 */

export const WINDOW_JOIN_JOB = 'clicks';
const EPOCH = 5n;
const T0 = 1760000000000n;

interface JoinEvent {
  key: string;
  side: 'l' | 'r';
  ts: bigint;
  row: Record<string, string | number | bigint>;
}

/** One event's row as an Arrow IPC stream (schema + one record batch). */
function ipcOf(e: JoinEvent): Buffer {
  const cols: Record<string, Vector> = {};
  for (const [name, v] of Object.entries(e.row)) {
    cols[name] = typeof v === 'bigint' ? vectorFromArray([v], new Int64()) : typeof v === 'number' ? vectorFromArray([v], new Float64()) : vectorFromArray([v], new Utf8());
  }
  return Buffer.from(tableToIPC(new Table(cols), 'stream'));
}

/** The document as serde_json writes it: members sorted by name (no preserve_order), no whitespace. */
export function windowJoinDocument(watermarkMs: bigint, events: JoinEvent[]): Buffer {
  const buffered = '[' + events.map((e) => `{"ipc":${JSON.stringify(ipcOf(e).toString('base64'))},"key":${JSON.stringify(e.key)},"side":${JSON.stringify(e.side)},"ts":${e.ts}}`).join(',') + ']';
  const spec = '{"left_key_column":"user","right_key_column":"user","time_column":"ts","window_ms":5000}';
  return Buffer.from(`{"buffered_b64":${JSON.stringify(Buffer.from(buffered).toString('base64'))},"spec":${spec},"watermark_ms":${watermarkMs}}`);
}

export async function buildWindowJoinFixture(root = 'window-join'): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const job = WINDOW_JOIN_JOB;
  const dir = `${root}/${job}/savepoints/${epochDirName(EPOCH)}`;
  const stored = (op: string, task: string): string => `${job}/checkpoints/${epochDirName(EPOCH)}/${op}/${task}/state.bin`;
  const put = (op: string, task: string, data: Buffer): void => void files.set(`${dir}/${op}/${task}/state.bin`, data);

  put('join', 'task-0', windowJoinDocument(T0, [
    { key: 'user-1', side: 'l', ts: T0 - 1200n, row: { ts: T0 - 1200n, user: 'user-1', amount: 12.5 } },
    { key: 'user-1', side: 'r', ts: T0 - 800n, row: { ts: T0 - 800n, user: 'user-1', page: '/cart' } },
    { key: 'user-2', side: 'l', ts: T0 - 300n, row: { ts: T0 - 300n, user: 'user-2', amount: 3 } },
  ]));
  put('join', 'task-1', windowJoinDocument(T0, []));
  put('counts', 'task-0', await encodeStateBinToBuffer([
    { operatorId: 'counts', stateName: 'clicks', key: Buffer.from('user-1'), value: Buffer.from('0200000000000000', 'hex') },
    { operatorId: 'counts', stateName: 'clicks', key: Buffer.from('user-2'), value: Buffer.from('0100000000000000', 'hex') },
  ]));
  const snaps = [['join', 'task-0'], ['join', 'task-1'], ['counts', 'task-0']].map(([op, task]) => ({ operator_id: op!, task_id: task!, snapshot_path: stored(op!, task!) }));
  files.set(`${dir}/metadata.json`, Buffer.from(MetadataDoc.fromJson(fromPlain({
    version: 3, epoch: EPOCH, job_id: job, fencing_token: 1, coordinator_id: 'coordinator-a', timestamp_ms: T0,
    source_offsets: [{ partition_id: 'clicks-0', offset: 77 }],
    operator_snapshots: snaps, is_savepoint: true, savepoint_label: 'with-join', streaming_profile: 'low-latency',
  })).encode()));
  const entries = [...files].filter(([k]) => k.startsWith(dir + '/')).map(([k, v]) => ({ path: k.slice(dir.length + 1), sha256: createHash('sha256').update(v).digest('hex') }));
  files.set(`${dir}/manifest.sha256`, Buffer.from(buildManifest(entries)));
  return files;
}
