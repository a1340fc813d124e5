import { KspError } from '../../errors.js';
import { STATE_BIN_VERSION, type StateEntry } from './decoder.js';

/**
 * Streaming encoder for `state.bin` v1. The header carries the entry count,
 * so the caller states it up front; the encoder checks it against what it was
 * given and fails (rather than writing a file that lies) on a mismatch.
 * Output comes in ~1 MiB chunks; memory does not depend on the entry count.
 */

const CHUNK = 1024 * 1024;

export type EntrySource = AsyncIterable<StateEntry[]> | Iterable<StateEntry[]>;

class ChunkWriter {
  private buf = Buffer.allocUnsafe(CHUNK);
  private n = 0;
  readonly out: Buffer[] = [];

  private flush(): void {
    if (this.n > 0) {
      this.out.push(this.buf.subarray(0, this.n));
      this.buf = Buffer.allocUnsafe(CHUNK);
      this.n = 0;
    }
  }

  u64(v: number): void {
    if (CHUNK - this.n < 8) this.flush();
    // Stored by hand: Buffer's writers check their arguments on every call (four u64s per entry).
    const b = this.buf;
    const n = this.n;
    const lo = v >>> 0;
    const hi = Math.floor(v / 0x1_0000_0000);
    b[n] = lo;
    b[n + 1] = lo >>> 8;
    b[n + 2] = lo >>> 16;
    b[n + 3] = lo >>> 24;
    b[n + 4] = hi;
    b[n + 5] = hi >>> 8;
    b[n + 6] = hi >>> 16;
    b[n + 7] = hi >>> 24;
    this.n = n + 8;
  }

  u32(v: number): void {
    if (CHUNK - this.n < 4) this.flush();
    this.buf.writeUInt32LE(v, this.n);
    this.n += 4;
  }

  bytes(b: Uint8Array): void {
    if (b.length > CHUNK - this.n) {
      this.flush();
      if (b.length >= CHUNK / 2) {
        this.out.push(Buffer.from(b)); // large values go out as their own chunk
        return;
      }
    }
    const len = b.length;
    if (len <= 32) {
      // Short fields (ids, keys) copied in JS: a native copy costs more than their bytes.
      const out = this.buf;
      const n = this.n;
      for (let i = 0; i < len; i++) out[n + i] = b[i]!;
    } else this.buf.set(b, this.n);
    this.n += len;
  }

  field(b: Uint8Array): void {
    this.u64(b.length);
    this.bytes(b);
  }

  /** Chunks completed so far (and, with `all`, the partial one). */
  take(all = false): Buffer[] {
    if (all) this.flush();
    return this.out.splice(0, this.out.length);
  }
}

/** Caches UTF-8 bytes of operator ids and state names, which repeat on every entry. */
class TextCache {
  private m = new Map<string, Buffer>();
  get(s: string): Buffer {
    let b = this.m.get(s);
    if (!b) {
      if (this.m.size > 1024) this.m.clear();
      this.m.set(s, (b = Buffer.from(s, 'utf8')));
    }
    return b;
  }
}

/**
 * Encodes `entryCount` entries. `entryCount === null` means a stateless task,
 * written as the 12-byte empty snapshot (header, count 0), never as a 0-byte
 * file: the engine's decoder refuses anything shorter than 12 bytes
 * (model/FORMAT.md §4, "Empty tasks"); `source` must yield nothing.
 */
export async function* encodeStateBin(entryCount: number | null, source: EntrySource, file = 'state.bin', version: 1 | 2 = STATE_BIN_VERSION): AsyncGenerator<Buffer> {
  const w = new ChunkWriter();
  const texts = new TextCache();
  w.u32(version);
  w.u64(entryCount ?? 0);
  let written = 0;
  for await (const batch of source as AsyncIterable<StateEntry[]>) {
    written += batch.length;
    if (written > (entryCount ?? 0)) break;
    for (const e of batch) {
      w.field(texts.get(e.operatorId));
      w.field(texts.get(e.stateName));
      w.field(e.key);
      w.field(e.value);
    }
    yield* w.take();
  }
  if (written !== (entryCount ?? 0)) {
    throw new KspError('STATE_BIN_COUNT', `${file}: the header declares ${entryCount ?? 0} entries but ${written > (entryCount ?? 0) ? 'more' : written} were given`, {
      file, expected: entryCount ?? 0, found: written,
    });
  }
  yield* w.take(true);
}

/** Whole-buffer convenience for small files and tests. */
export async function encodeStateBinToBuffer(entries: StateEntry[] | null): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of encodeStateBin(entries === null ? null : entries.length, entries ? [entries] : [])) parts.push(c);
  return Buffer.concat(parts);
}
