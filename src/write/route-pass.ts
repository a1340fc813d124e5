import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { KspError } from '../errors.js';
import { SEED_A, SEED_B, murmur32At } from '../bytes/key-multiset.js';
import { keyGroupAt, ownerTable } from '../model/key-group.js';
import { windowGroupKeyAt } from '../model/routing.js';
import { BROADCAST, type HashResult, type HashUnit, type PlaceResult, type PlaceUnit, type RouteResult, type RouteUnit } from './units.js';

/**
 * The two passes of a rescale over canonical `state.bin` v1 files (their
 * layout: ../formats/state-bin/FORMAT.md), written for speed: entries are
 * never objects, only offsets into large read buffers; a key's group is
 * hashed where the key lies (model/key-group.ts `keyGroupAt`); output bytes
 * go through one large buffer per output task.
 *
 * The route pass reads a source once and records each entry's output task,
 * so the output sizes and entry counts (the state.bin header) are known
 * before anything is written: each output is then written once, its header
 * first, with no spill. The place pass reads the source again and writes
 * its entries at their final offsets. Anything unexpected in a file (another
 * version or format, a bad length or UTF-8, a hash mismatch) makes the route
 * pass answer `fallback`, and the caller takes the streaming path, whose
 * decoder reports the exact error; so the checks here only need to be as
 * strict as the decoder's, never to word its errors.
 */

const READ_CHUNK = 8 * 1024 * 1024;
/** Bytes buffered per output task in the place pass. */
const OUT_BUFFER = 1024 * 1024;
/** A field ksp handles in one piece (the decoder's MAX_FIELD). */
const MAX_FIELD = 0x7fff_ffff;
/** Broadcast bytes one route pass may collect (the streaming path's limit, in raw bytes). */
export const BROADCAST_LIMIT_BYTES = 64 * 1024 * 1024;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Sequential reads of one file into a reused buffer; `ensure(n)` makes n bytes available at `pos`. */
class Reader {
  buf: Buffer;
  /** Valid bytes in buf. */
  end = 0;
  pos = 0;
  /** File offset of buf[0]. */
  base = 0;
  eof = false;
  constructor(private readonly fh: fsp.FileHandle, private readonly onData?: (b: Buffer) => void, buf?: Buffer) {
    this.buf = buf ?? Buffer.allocUnsafe(READ_CHUNK);
  }

  /** False when the file ends before n bytes are there. */
  async ensure(n: number): Promise<boolean> {
    if (this.end - this.pos >= n) return true;
    // Move the unread tail to the front (grown when one entry is larger than the buffer), then fill.
    const tail = this.end - this.pos;
    if (n > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(n, this.buf.length * 2));
      this.buf.copy(grown, 0, this.pos, this.end);
      this.buf = grown;
    } else if (this.pos > 0) {
      this.buf.copyWithin(0, this.pos, this.end);
    }
    this.base += this.pos;
    this.pos = 0;
    this.end = tail;
    while (this.end < n && !this.eof) {
      const { bytesRead } = await this.fh.read(this.buf, this.end, this.buf.length - this.end, this.base + this.end);
      if (bytesRead === 0) {
        this.eof = true;
        break;
      }
      this.onData?.(this.buf.subarray(this.end, this.end + bytesRead));
      this.end += bytesRead;
    }
    return this.end >= n;
  }

  /** True when the file holds bytes past those read and not consumed. */
  async more(): Promise<boolean> {
    if (this.end > this.pos) return true;
    return this.ensure(1);
  }
}

/** The fields of the entry scanEntry last read: offsets into the reader's buffer, and lengths. */
const F_OFF = new Float64Array(4);
const F_LEN = new Float64Array(4);

/** Size of the entry at r.pos, -n when n bytes from r.pos are needed first, or NaN when a length is out of bounds. */
function scanEntry(r: Reader, fileSize: number): number {
  const b = r.buf;
  const end = r.end;
  const p0 = r.pos;
  let q = p0;
  for (let f = 0; f < 4; f++) {
    if (end - q < 8) return -(q - p0 + 8);
    const lo = (b[q]! | (b[q + 1]! << 8) | (b[q + 2]! << 16) | (b[q + 3]! << 24)) >>> 0;
    const hi = b[q + 4]! | b[q + 5]! | b[q + 6]! | b[q + 7]!;
    if (hi !== 0 || lo > MAX_FIELD || r.base + q + 8 + lo > fileSize) return NaN;
    F_OFF[f] = q + 8;
    F_LEN[f] = lo;
    q += 8 + lo;
    if (q > end) return -(q - p0 + (f < 3 ? 8 : 0));
  }
  return q - p0;
}

/** Operator ids and state names seen (a few per file): checked as UTF-8 once, compared bytewise after. */
class TextCheck {
  private readonly seen: Buffer[] = [];
  ok(b: Buffer, off: number, len: number): boolean {
    for (const s of this.seen) if (s.length === len && same(s, b, off, len)) return true;
    const bytes = b.subarray(off, off + len);
    // A leading BOM is dropped by the decoder (TextDecoder), so the streaming path would not copy it as is.
    if (len >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return false;
    try {
      utf8.decode(bytes);
    } catch {
      return false;
    }
    if (this.seen.length >= 16) this.seen.shift();
    this.seen.push(Buffer.from(bytes));
    return true;
  }
}

/** Short byte strings compared in JS: a native compare costs more than the bytes. */
function same(s: Buffer, b: Buffer, off: number, len: number): boolean {
  if (len > 64) return b.compare(s, 0, len, off, off + len) === 0;
  for (let i = 0; i < len; i++) if (s[i] !== b[off + i]) return false;
  return true;
}

export async function runRoute(u: RouteUnit): Promise<RouteResult> {
  const m = Math.max(...u.owners) + 1;
  const fail = (why: string): RouteResult => ({ kind: 'route', fallback: why, entries: 0, routes: new Uint16Array(0), counts: [], bytes: [], broadcast: [], sums: new Int32Array(0), groups: new Uint32Array(0) });
  const counts = new Array<number>(m).fill(0);
  const bytes = new Array<number>(m).fill(0);
  // What the re-verify holds each output to (units.ts RouteResult): the
  // routing keys' multiset and their key groups, from the bytes hashed here.
  const sums = new Int32Array(2 * m);
  const groups = new Uint32Array(1024 * m);
  if (u.size === 0) return { kind: 'route', entries: 0, routes: new Uint16Array(0), counts, bytes, broadcast: [], sums, groups };
  if (u.size < 12) return fail('shorter than a header');
  const table = ownerTable(u.owners);
  const hash = u.sha256 ? createHash('sha256') : null;
  // O_NONBLOCK: a FIFO put where the file was must not block (the streaming path then refuses it).
  const fh = await fsp.open(u.path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile() || st.size !== u.size) return fail('not the regular file of the plan');
    const r = new Reader(fh, hash ? (c) => hash.update(c) : undefined);
    if (!(await r.ensure(12))) return fail('shorter than a header');
    const b0 = r.buf;
    if (b0.readUInt32LE(0) !== 1) return fail('not state.bin v1');
    const hi = b0.readUInt32LE(8);
    const count = b0.readUInt32LE(4) + hi * 0x1_0000_0000;
    if (hi > 0x1fffff || count > Math.floor((u.size - 12) / 32)) return fail('entry count out of bounds');
    r.pos = 12;
    const routes = new Uint16Array(count);
    const broadcast: RouteResult['broadcast'] = [];
    let broadcastBytes = 0;
    const ops = new TextCheck();
    const states = new TextCheck();
    const group = { off: 0, len: 0 };
    const window = u.routing === 'window';
    for (let e = 0; e < count; e++) {
      let n = scanEntry(r, u.size);
      while (n < 0) {
        if (!(await r.ensure(-n))) return fail('truncated');
        n = scanEntry(r, u.size);
      }
      if (Number.isNaN(n)) return fail('length out of bounds');
      const b = r.buf;
      if (!ops.ok(b, F_OFF[0]!, F_LEN[0]!) || !states.ok(b, F_OFF[1]!, F_LEN[1]!)) return fail('operator id or state name not UTF-8');
      let to: number;
      let ko = F_OFF[2]!;
      let kl = F_LEN[2]!;
      if (!window || windowGroupKeyAt(b, ko, kl, group)) {
        if (window) {
          ko = group.off;
          kl = group.len;
        }
        const kg = keyGroupAt(b, ko, kl);
        to = table[kg]!;
        groups[(to << 10) | (kg >>> 5)]! |= 1 << (kg & 31);
        sums[2 * to] = (sums[2 * to]! + murmur32At(b, ko, kl, SEED_A)) | 0;
        sums[2 * to + 1] = (sums[2 * to + 1]! + murmur32At(b, ko, kl, SEED_B)) | 0;
      } else {
        // The watermark "wm:" and every key outside the window layouts.
        to = BROADCAST;
        broadcastBytes += n;
        if (broadcastBytes > BROADCAST_LIMIT_BYTES) return fail('broadcast limit');
        broadcast.push({ index: e, raw: Buffer.from(b.subarray(r.pos, r.pos + n)) });
      }
      routes[e] = to;
      if (to !== BROADCAST) {
        counts[to]!++;
        bytes[to]! += n;
      }
      r.pos += n;
    }
    if (r.base + r.pos !== u.size || (await r.more())) return fail('trailing bytes');
    if (hash && hash.digest('hex') !== u.sha256) return fail('hash mismatch');
    return { kind: 'route', entries: count, routes, counts, bytes, broadcast, sums, groups };
  } finally {
    await fh.close();
  }
}

export async function runPlace(u: PlaceUnit): Promise<PlaceResult> {
  const m = u.outs.length;
  const fds: Array<fsp.FileHandle | null> = new Array(m).fill(null);
  // The read buffer and every output's two buffers are regions of one
  // arena, so an entry moves with one `copyWithin` on the arena: a
  // Buffer.copy per entry (argument checks, a native call) cost ~3x as much
  // (2M entries of ~150 bytes: ~120 against ~45 ns each, measured).
  const outLen = u.outs.map((o) => (o.bytes === 0 ? 0 : Math.min(OUT_BUFFER, o.bytes)));
  const arena = new Uint8Array(READ_CHUNK + 2 * outLen.reduce((a, b) => a + b, 0));
  const region = (off: number, len: number): Buffer => Buffer.from(arena.buffer, off, len);
  const bufs: Array<Buffer | null> = new Array(m).fill(null);
  const used = new Array<number>(m).fill(0);
  const at = u.outs.map((o) => o.offset);
  const written = new Array<number>(m).fill(0);
  // Per output, a second buffer and the write in flight from it: the next
  // entries are copied while the last full buffer is written (one write in
  // flight per output, so each file is written in order).
  const spare: Array<Buffer | null> = new Array(m).fill(null);
  const inFlight: Array<Promise<void> | null> = new Array(m).fill(null);
  const src = await fsp.open(u.path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const settle = async (i: number): Promise<void> => {
    const w = inFlight[i];
    if (w) {
      inFlight[i] = null;
      await w;
    }
  };
  const flush = async (i: number): Promise<void> => {
    const n = used[i]!;
    if (n === 0) return;
    await settle(i);
    const full = bufs[i]!;
    const w = writeAt(fds[i]!, full, n, at[i]!);
    w.catch(() => undefined); // awaited by settle
    inFlight[i] = w;
    at[i]! += n;
    written[i]! += n;
    used[i] = 0;
    bufs[i] = spare[i]!;
    spare[i] = full;
  };
  try {
    let next = READ_CHUNK;
    for (let i = 0; i < m; i++) {
      if (u.outs[i]!.bytes === 0) continue;
      fds[i] = await fsp.open(u.outs[i]!.path, 'r+');
      bufs[i] = region(next, outLen[i]!);
      spare[i] = region(next + outLen[i]!, outLen[i]!);
      next += 2 * outLen[i]!;
    }
    const r = new Reader(src, undefined, region(0, READ_CHUNK));
    if (u.routes.length > 0 && !(await r.ensure(12))) throw changed(u.path, 'is shorter than in the route pass');
    r.pos = 12;
    for (let e = 0; e < u.routes.length; e++) {
      let n = scanEntry(r, u.size);
      while (n < 0) {
        if (!(await r.ensure(-n))) throw changed(u.path, 'ends early');
        n = scanEntry(r, u.size);
      }
      if (Number.isNaN(n)) throw changed(u.path, 'has a bad length');
      const to = u.routes[e]!;
      if (to !== BROADCAST) {
        const out = bufs[to];
        if (!out || written[to]! + used[to]! + n > u.outs[to]!.bytes) throw changed(u.path, 'routes more bytes than in the route pass');
        // flush swaps in the output's other buffer: copy into whichever is current after it.
        if (used[to]! + n > out.length) await flush(to);
        if (n > out.length) {
          await settle(to);
          await writeAt(fds[to]!, r.buf.subarray(r.pos, r.pos + n), n, at[to]!);
          at[to]! += n;
          written[to]! += n;
        } else {
          const dst = bufs[to]!;
          // The reader's buffer leaves the arena only when an entry outgrew it.
          if (r.buf.buffer === arena.buffer) arena.copyWithin(dst.byteOffset + used[to]!, r.pos, r.pos + n);
          else r.buf.copy(dst, used[to]!, r.pos, r.pos + n);
          used[to]! += n;
        }
      }
      r.pos += n;
    }
    for (let i = 0; i < m; i++) {
      await flush(i);
      await settle(i);
      if (written[i] !== u.outs[i]!.bytes) throw changed(u.path, `gave output ${i} ${written[i]} bytes, ${u.outs[i]!.bytes} expected`);
    }
    return { kind: 'place', entries: u.routes.length };
  } finally {
    // A failure leaves no write running on a handle about to close.
    await Promise.allSettled(inFlight.map((w) => w ?? undefined));
    await src.close();
    for (const fd of fds) await fd?.close();
  }
}

async function writeAt(fh: fsp.FileHandle, b: Uint8Array, n: number, pos: number): Promise<void> {
  for (let off = 0; off < n; ) off += (await fh.write(b, off, n - off, pos + off)).bytesWritten;
}

/** The source changed between the two passes: never written silently. */
function changed(path: string, what: string): KspError {
  return new KspError('HASH_MISMATCH', `${path}: the file changed while it was read (between the route and the place pass, it ${what}); nothing was sealed`, { file: path });
}

export async function runHash(u: HashUnit): Promise<HashResult> {
  const h = createHash('sha256');
  let size = 0;
  const fh = await fsp.open(u.path, 'r');
  try {
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, size);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return { kind: 'hash', sha256: h.digest('hex'), size };
}
