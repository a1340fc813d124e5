import { HEAD_BYTES, type BodySource, type OpenContext, type TaskReader } from './types.js';

/**
 * What a task's `state.bin` holds, behind one interface (FORMAT.md beside
 * this file): each body is recognised from its first bytes and its size,
 * opened as a reader of entries (or as an opaque body that has none), and
 * written back. The readers of the model (savepoint, scan) and of the write
 * path (repartition.openTask) go through `openBody`, so no caller branches on
 * "native or canonical" to read.
 */

import { emptyFormat } from './empty.js';
import { nativeFormat } from './native.js';
import { windowJoinFormat } from './window-join.js';
import { stateBinV1Format, stateBinV2Format } from './state-bin.js';

/** In detection order: the first that claims a body wins; state.bin v1 claims everything left (and reports what is wrong with it). */
export const TASK_BODY_FORMATS = [emptyFormat, nativeFormat, windowJoinFormat, stateBinV2Format, stateBinV1Format] as const;

export type AnyTaskBodyFormat = (typeof TASK_BODY_FORMATS)[number];

export function detectTaskBody(head: Uint8Array, size: number): AnyTaskBodyFormat {
  for (const f of TASK_BODY_FORMATS) if (f.detect(head, size)) return f;
  return stateBinV1Format;
}

/**
 * Reads the first bytes of `chunks`, detects the body, and opens it over the
 * same stream (the bytes already read are replayed): one read per task, never
 * a probe and then a read.
 */
export async function openBody(chunks: AsyncIterable<Uint8Array>, size: number, name: string, ctx: OpenContext = {}): Promise<TaskReader> {
  const it = chunks[Symbol.asyncIterator]();
  const got: Uint8Array[] = [];
  let n = 0;
  const want = Math.min(HEAD_BYTES, size);
  try {
    while (n < want) {
      const r = await it.next();
      if (r.done) break;
      if (r.value.length === 0) continue;
      got.push(r.value);
      n += r.value.length;
    }
  } catch (e) {
    await it.return?.();
    throw e;
  }
  const head = Buffer.concat(got.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength))).subarray(0, HEAD_BYTES);
  const format = detectTaskBody(head, size);
  let used = false;
  const src: BodySource = {
    name, size,
    read: () => {
      if (used) throw new Error(`${name}: a body source is read once`);
      used = true;
      return replay(got, it);
    },
  };
  return format.open(src, ctx);
}

async function* replay(first: Uint8Array[], it: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    yield* first;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  } finally {
    await it.return?.();
  }
}

export * from './types.js';
export { emptyFormat, nativeFormat, windowJoinFormat, stateBinV1Format, stateBinV2Format };
export { EMPTY_V1_SNAPSHOT } from './empty.js';
export { parseWindowJoin, checkWindowJoinRows, type WindowJoinSummary } from './window-join.js';
export { probeTask, type TaskFormat } from './probe.js';
export { likelyTtlPrefixed, TtlSniffer, stripTtlPrefix, type TtlPrefixMode } from './ttl.js';
