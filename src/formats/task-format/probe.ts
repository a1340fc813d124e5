import { parsePointer, POINTER_MAX_SIZE, type Pointer } from '../pointer/pointer.js';
import { uriOf, type Location } from '../../storage/uri.js';
import { detectTaskBody } from './index.js';
import { HEAD_BYTES } from './types.js';

/**
 * What a task's file is, from its size and first bytes, without reading it
 * whole: the planner's view (which tasks to copy, convert, rewrite, refuse).
 * `canonical` is state.bin v1 or v2 (v1 also for a damaged header: reading
 * it reports the damage).
 */
export type TaskFormat =
  /** No entries: a 0-byte file (which the engine refuses), or the 12-byte empty v1 snapshot. */
  | { kind: 'stateless'; size: number }
  | { kind: 'canonical'; size: number; version: 1 | 2 }
  | { kind: 'native'; size: number; pointer: Pointer }
  | { kind: 'window-join'; size: number }
  | { kind: 'missing'; size: 0 };

const EMPTY_SNAPSHOT = Buffer.from('010000000000000000000000', 'hex');

export async function probeTask(loc: Location): Promise<TaskFormat> {
  const st = await loc.storage.stat(loc.key);
  if (!st) return { kind: 'missing', size: 0 };
  if (st.size === 0) return { kind: 'stateless', size: 0 };
  const head = await readHead(loc, HEAD_BYTES);
  const f = detectTaskBody(head, st.size);
  switch (f.kind) {
    case 'native':
      return { kind: 'native', size: st.size, pointer: parsePointer(await loc.storage.readSmall(loc.key, POINTER_MAX_SIZE), uriOf(loc)) };
    case 'window-join':
      return { kind: 'window-join', size: st.size };
    case 'state-bin-v2':
      return { kind: 'canonical', size: st.size, version: 2 };
    default:
      // The 12-byte empty v1 snapshot: how an empty task is written (model/FORMAT.md §4, "Empty tasks").
      if (st.size === 12 && head.equals(EMPTY_SNAPSHOT)) return { kind: 'stateless', size: 12 };
      return { kind: 'canonical', size: st.size, version: 1 };
  }
}

async function readHead(loc: Location, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of loc.storage.read(loc.key, { offset: 0, length: n })) parts.push(Buffer.from(c));
  return Buffer.concat(parts).subarray(0, n);
}
