import { KspError, preview } from '../../errors.js';

/** The engine's RocksDB key layout (FORMAT.md beside this file). */

export interface NativeKey {
  operatorId: string;
  stateName: string;
  key: Buffer;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function encodeNativeKey(operatorId: string, stateName: string, key: Uint8Array): Buffer {
  const op = Buffer.from(operatorId, 'utf8');
  const st = Buffer.from(stateName, 'utf8');
  const out = Buffer.allocUnsafe(16 + op.length + st.length + key.length);
  out.writeBigUInt64LE(BigInt(op.length), 0);
  op.copy(out, 8);
  out.writeBigUInt64LE(BigInt(st.length), 8 + op.length);
  st.copy(out, 16 + op.length);
  out.set(key, 16 + op.length + st.length);
  return out;
}

/**
 * `encodeNativeKey` for a stream of entries: the (operator, state) prefix is
 * encoded once and reused while consecutive entries share it.
 */
export class NativeKeyEncoder {
  private operatorId = '';
  private stateName = '';
  private prefix: Buffer | null = null;

  encode(operatorId: string, stateName: string, key: Uint8Array): Buffer {
    if (this.prefix === null || operatorId !== this.operatorId || stateName !== this.stateName) {
      this.prefix = encodeNativeKey(operatorId, stateName, new Uint8Array(0));
      this.operatorId = operatorId;
      this.stateName = stateName;
    }
    const out = Buffer.allocUnsafe(this.prefix.length + key.length);
    this.prefix.copy(out, 0);
    out.set(key, this.prefix.length);
    return out;
  }
}

/**
 * Splits RocksDB keys into (operator, state, key). Consecutive keys nearly
 * always share their operator and state, so the decoder remembers the last
 * prefix and decodes the names only when it changes.
 */
export class NativeKeyDecoder {
  private prefix: Buffer = Buffer.alloc(0);
  private operatorId = '';
  private stateName = '';

  constructor(private readonly file: string) {}

  /** Operator id of the last key decoded. */
  get operator(): string {
    return this.operatorId;
  }

  /** State name of the last key decoded. */
  get state(): string {
    return this.stateName;
  }

  /**
   * Length of the (operator, state) prefix of the key buf[start, end), its
   * names then in `operator` and `state`: `decode` for scans that hold keys
   * as offsets into a block's arena, with no view made when the prefix is
   * the one before (nearly always).
   */
  prefixAt(buf: Buffer, start: number, end: number, entry: number): number {
    const p = this.prefix;
    const n = p.length;
    if (n > 0 && end - start >= n && buf.compare(p, 0, n, start, start + n) === 0) return n;
    this.decode(buf.subarray(start, end), entry);
    return this.prefix.length;
  }

  /** `entry`: index in the task's live key order, for errors. */
  decode(k: Buffer, entry: number): NativeKey {
    const p = this.prefix;
    if (p.length > 0 && k.length >= p.length && k.compare(p, 0, p.length, 0, p.length) === 0) {
      return { operatorId: this.operatorId, stateName: this.stateName, key: k.subarray(p.length) };
    }
    const bad = (why: string): KspError =>
      new KspError('ROCKSDB_KEY', `${this.file}: entry ${entry}: RocksDB key ${preview(k)} is not an engine state key: ${why}`, { file: this.file, entry, found: k.toString('hex').slice(0, 96) });
    if (k.length < 8) throw bad(`${k.length} bytes, shorter than the operator id's 8-byte length`);
    const opLen = k.readBigUInt64LE(0);
    if (opLen > BigInt(k.length - 16)) throw bad(`operator id length ${opLen} runs past the key`);
    const stAt = 8 + Number(opLen);
    const stLen = k.readBigUInt64LE(stAt);
    if (stLen > BigInt(k.length - stAt - 8)) throw bad(`state name length ${stLen} runs past the key`);
    const end = stAt + 8 + Number(stLen);
    let operatorId: string;
    let stateName: string;
    try {
      operatorId = utf8.decode(k.subarray(8, stAt));
      stateName = utf8.decode(k.subarray(stAt + 8, end));
    } catch {
      throw bad('operator id or state name is not valid UTF-8');
    }
    this.prefix = Buffer.from(k.subarray(0, end));
    this.operatorId = operatorId;
    this.stateName = stateName;
    return { operatorId, stateName, key: k.subarray(end) };
  }
}
