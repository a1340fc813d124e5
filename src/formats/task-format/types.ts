import type { StateEntry } from '../state-bin/decoder.js';
import type { Pointer } from '../pointer/pointer.js';
import type { NativeFileRef } from '../../model/native-state.js';
import type { WindowJoinSummary } from './window-join.js';

/** The task-format interface and what every body module shares (FORMAT.md beside this file). */

export type TaskBodyKind = 'empty' | 'state-bin-v1' | 'state-bin-v2' | 'window-join' | 'native';

/** Bytes detection looks at: enough for the `INCR-SST-V1|` magic and a v1/v2 header. */
export const HEAD_BYTES = 12;

/** A task body to read: its size (from stat) and its bytes from the start, read once. */
export interface BodySource {
  /** Names the file in errors. */
  name: string;
  size: number;
  read(): AsyncIterable<Uint8Array>;
}

export interface OpenContext {
  /** A native task's RocksDB files, resolved from its pointer (only the native body needs them). */
  native?: (pointer: Pointer) => Promise<NativeFileRef[]> | NativeFileRef[];
  /** Check each SST's SHA-256 against its sst_manifest.json (default true). */
  checkHashes?: boolean;
  onBytes?: (n: number) => void;
  /** Check what the body carries beyond its structure (a window join's Arrow IPC streams), as verify and inspect do. */
  checkContent?: boolean;
  /** Entries per batch of a state.bin body (the decoder's default when absent). */
  batchSize?: number;
}

export interface TaskReader {
  body: TaskBodyKind;
  /** Entries, when the body states them up front (state.bin v1/v2, empty); null for native tasks and opaque bodies. */
  count: number | null;
  /**
   * True for a body that holds state but no (operator, state, key, value)
   * entries (window join): `batches()` yields nothing, and whoever would
   * rewrite the task from its entries must refuse instead.
   */
  opaque: boolean;
  batches(): AsyncGenerator<StateEntry[]>;
  /** Native body: where its sst_manifest.json is. */
  pointer?: Pointer;
  /** Window-join body: what it holds. */
  windowJoin?: WindowJoinSummary;
  /** State.bin bodies: the header's version. */
  version?: 1 | 2;
}

export interface TaskBodyFormat<W> {
  readonly kind: TaskBodyKind;
  /** Does a body starting with `head` (its first HEAD_BYTES bytes, fewer when the file is shorter) and of `size` bytes belong to this format? */
  detect(head: Uint8Array, size: number): boolean;
  open(src: BodySource, ctx?: OpenContext): Promise<TaskReader>;
  /** The body's bytes for `input` (entries for state.bin, the document for a window join, the pointer for native). */
  write(input: W): AsyncIterable<Uint8Array>;
}

/** Whole body in memory: for the small ones (pointer blobs) and for window-join documents, which the engine also parses whole. */
export async function readAll(src: BodySource): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of src.read()) parts.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
  return Buffer.concat(parts);
}

export async function* noBatches(): AsyncGenerator<StateEntry[]> {}

