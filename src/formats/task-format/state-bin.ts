import { StateBinDecoder } from '../state-bin/decoder.js';
import { encodeStateBin, type EntrySource } from '../state-bin/encoder.js';
import type { BodySource, OpenContext, TaskBodyFormat, TaskReader } from './types.js';

/**
 * `state.bin` with a version header: v1, the portable snapshot every engine
 * restore path decodes (`decode_snapshot_entries`, krishiv-state/src/snapshot.rs),
 * and v2, written by the disaggregated backend (`DisaggregatedStateBackend::snapshot`,
 * krishiv-state/src/dfs_backend.rs) with the same entry layout: u32 version,
 * u64 count, then per entry four u64-length-prefixed fields (operator id,
 * state name, key, value). One streaming decoder reads both; it is told the
 * version the header must carry.
 */

export interface StateBinInput {
  count: number;
  entries: EntrySource;
  /** Names the file in errors. */
  file?: string;
}

function headerVersion(head: Uint8Array): number | null {
  if (head.length < 4) return null;
  return Buffer.from(head.buffer, head.byteOffset, 4).readUInt32LE(0);
}

function stateBinFormat(version: 1 | 2): TaskBodyFormat<StateBinInput> {
  const kind = version === 1 ? 'state-bin-v1' : 'state-bin-v2';
  return {
    kind,
    // v1 is the fallback (index.ts): it claims every body no other format
    // does, so a damaged file gets v1's precise error (wrong version,
    // truncated header) rather than "unknown format".
    detect: (head, size) => size > 0 && headerVersion(head) === version,
    async open(src: BodySource, ctx?: OpenContext): Promise<TaskReader> {
      const dec = new StateBinDecoder(src.read(), { size: src.size, file: src.name, version, ...(ctx?.batchSize ? { batchSize: ctx.batchSize } : {}) });
      const h = await dec.header();
      return { body: kind, count: h.entryCount, opaque: false, version, batches: () => dec.batches() };
    },
    write: (input) => encodeStateBin(input.count, input.entries, input.file, version),
  };
}

export const stateBinV1Format = stateBinFormat(1) as TaskBodyFormat<StateBinInput> & { kind: 'state-bin-v1' };
export const stateBinV2Format = stateBinFormat(2) as TaskBodyFormat<StateBinInput> & { kind: 'state-bin-v2' };
