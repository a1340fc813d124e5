/**
 * The hostile-input corpus: cases BUILT at test time from valid savepoints
 * (the bundled fixtures, one made by real RocksDB with a live WAL, and SSTs
 * made by ksp's own table writer), each a small mutation of one of them.
 *
 * Every case has an id, a description and what every command must do with it:
 *   reject  every command fails with a typed error (exit 1–6 and a [CODE]),
 *           or fails as it does on the valid base (a command that does not
 *           apply there);
 *   accept  every command does what it does on the valid base (documented
 *           acceptance: JSON layout, unsorted manifest lines, …);
 *   typed   either; the case checks only the universal properties (no
 *           INTERNAL, no stack trace, no hang, bounded memory, the source
 *           unchanged, nothing written outside the target).
 * `isolate` cases (FIFOs, sparse files, bombs, huge metadata, /dev/zero)
 * run in a child process with a kill timeout and a heap cap.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDeflateRaw } from 'node:zlib';
import { FIXTURES } from '../support/env.js';
import { Table } from '../../src/rocksdb/table.js';
import { fileAt } from '../../src/rocksdb/file.js';
import { locate } from '../../src/storage/uri.js';
import { loadChecksums, ChecksumType } from '../../src/rocksdb/checksum.js';
import { TableWriter } from '../../src/rocksdb/table-writer.js';
import { encodeManifest } from '../../src/rocksdb/db-writer.js';
import { encodeNativeKey } from '../../src/formats/native-key/native-key.js';
import { readLog } from '../../src/rocksdb/log-reader.js';
import { edit, manifestSet, put, refreshManifest, replaceWithFifo, replaceWithSymlink, sandboxPaths, sha, sparse, type Sandbox } from './sandbox.js';

export type Cmd = 'verify' | 'inspect' | 'relocate' | 'rescale' | 'migrate' | 'convert-canonical' | 'convert-native' | 'edit';
export const COMMANDS: Cmd[] = ['verify', 'inspect', 'relocate', 'rescale', 'migrate', 'convert-canonical', 'convert-native', 'edit'];
export const WRITERS: Cmd[] = ['relocate', 'rescale', 'migrate', 'convert-canonical', 'convert-native', 'edit'];

export type Expect = 'reject' | 'accept' | 'typed';
export type BaseName = 'rel' | 'engine' | 'native' | 'wal';

export interface HostileCase {
  id: string;
  category: string;
  description: string;
  base: BaseName;
  expect: Expect;
  /** Per-command expectations that differ from `expect`. */
  perCommand?: Partial<Record<Cmd, Expect>>;
  /** Only these commands (default: all). */
  commands?: Cmd[];
  /** Run in a child process (may block, allocate or run long). */
  isolate?: boolean;
  timeoutMs?: number;
  apply(sb: Sandbox): void | Promise<void>;
  /** Writing commands: prepare the target and return its path (default root/out-<cmd>). */
  target?(sb: Sandbox, cmd: Cmd): string;
  /** The source path given to ksp (default: the savepoint directory). */
  source?(sb: Sandbox): string;
  /** Extra arguments for the writing commands (e.g. --overwrite). */
  writeArgs?: string[];
  /** A check of its own after each run; returns problems. */
  after?(sb: Sandbox, cmd: Cmd, out: string): string[];
}

export interface Base {
  name: BaseName;
  layout: 'relative' | 'engine';
  template: string;
}

/** Where things sit inside each base, relative to the savepoint directory (sp) or the storage base. */
const NATIVE_TASK = 'shop/incr/windows/task-0';
const NATIVE_EPOCH = `${NATIVE_TASK}/epochs/00000000000000000007`;

const MIGRATIONS = `export default (m, codecs) => {
  m.value('orders-agg', 1, 2, codecs.raw, codecs.raw, (v) => v);
};
`;

function outsideFiles(root: string, sp: string): void {
  const o = join(root, 'outside');
  mkdirSync(o, { recursive: true });
  writeFileSync(join(o, 'secret.txt'), 'AWS_SECRET_ACCESS_KEY=not-a-real-key\n');
  // Copies of the savepoint's own files: a symlink to them passes every hash check.
  cpSync(join(sp, 'orders-agg'), join(o, 'orders-agg'), { recursive: true });
  cpSync(join(sp, 'metadata.json'), join(o, 'metadata.json'));
  cpSync(join(sp, 'orders-agg', 'task-1', 'state.bin'), join(o, 'state.bin'));
  mkdirSync(join(root, 'tmp'), { recursive: true });
  writeFileSync(join(root, 'migrate.mjs'), MIGRATIONS);
}

/** Builds the templates: one directory per base, copied for every run. */
export async function buildBases(work: string): Promise<Base[]> {
  const bases: Base[] = [];
  const make = (name: BaseName, layout: 'relative' | 'engine', fill: (root: string) => void): void => {
    const root = join(work, 'templates', name);
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    fill(root);
    outsideFiles(root, sandboxPaths(root, layout).sp);
    bases.push({ name, layout, template: root });
  };
  make('rel', 'relative', (root) => cpSync(join(FIXTURES, 'relative-savepoint'), join(root, 'sp'), { recursive: true }));
  make('engine', 'engine', (root) => cpSync(join(FIXTURES, 'base'), join(root, 'base'), { recursive: true }));
  make('native', 'engine', (root) => {
    cpSync(join(FIXTURES, 'native'), join(root, 'base'), { recursive: true });
    const o = join(root, 'outside');
    mkdirSync(o, { recursive: true });
    cpSync(join(root, 'base', NATIVE_TASK, 'sst'), join(o, 'sst'), { recursive: true });
  });
  const wal = await walBase(work);
  if (wal) make('wal', 'engine', (root) => cpSync(wal, join(root, 'base'), { recursive: true }));
  return bases;
}

/**
 * A native savepoint made by real RocksDB (rocksdb-native, a dev
 * dependency): flushed tables plus unflushed writes left in the WAL, laid
 * out by the test helper that mirrors the engine's incremental checkpointer.
 * Absent (and its cases skipped) when rocksdb-native cannot load.
 */
async function walBase(work: string): Promise<string | null> {
  const base = join(work, 'wal-base');
  if (existsSync(join(base, 'shop'))) return base;
  try {
    createRequire(import.meta.url).resolve('rocksdb-native');
  } catch {
    return null;
  }
  const { nativeWrite } = await import('../rocksdb/native-lib.js');
  const { nativeSavepoint } = await import('../rocksdb/native-savepoint.js');
  const db = join(work, 'wal-db');
  rmSync(db, { recursive: true, force: true });
  mkdirSync(db, { recursive: true });
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
  const key = (op: string, k: string): string => hex(encodeNativeKey(op, 'count', Buffer.from(k)));
  const ops = [];
  for (let i = 0; i < 40; i++) ops.push({ put: [key('windows', `tw:flushed-${i}`), hex(Buffer.from(`v${i}`))] as [string, string] });
  ops.push({ flush: true as const });
  for (let i = 0; i < 30; i++) ops.push({ put: [key('windows', `tw:wal-${i}`), hex(Buffer.from(`w${i}`))] as [string, string] });
  ops.push({ del: key('windows', 'tw:flushed-3') });
  nativeWrite(db, ops);
  const entries = [{ operatorId: 'orders-agg', stateName: 'totals', key: Buffer.from('customer-1'), value: Buffer.from('x') }];
  await nativeSavepoint(base, 'shop', 7, [{ op: 'windows', task: 'task-0', db }, { op: 'orders-agg', task: 'task-0', entries }, { op: 'orders-agg', task: 'task-1', entries: [] }]);
  return base;
}

// ---------------------------------------------------------------- helpers

const REL_STATE = 'orders-agg/task-1/state.bin';

/** Field boundaries of a state.bin: header fields, then each field's length and data of the first entries. */
function stateBinBoundaries(b: Buffer, maxEntries: number): Array<{ at: number; what: string; lenField?: boolean }> {
  const out: Array<{ at: number; what: string; lenField?: boolean }> = [
    { at: 0, what: 'empty file' }, { at: 2, what: 'inside version' }, { at: 4, what: 'after version' }, { at: 8, what: 'inside entry_count' }, { at: 12, what: 'after header' },
  ];
  const names = ['operator_id', 'state_name', 'key', 'value'];
  let p = 12;
  const count = Number(b.readBigUInt64LE(4));
  for (let e = 0; e < Math.min(count, maxEntries); e++) {
    for (const f of names) {
      const len = Number(b.readBigUInt64LE(p));
      out.push({ at: p, what: `entry ${e} ${f} length field`, lenField: true });
      out.push({ at: p + 4, what: `inside entry ${e} ${f} length` });
      if (len > 0) out.push({ at: p + 8 + Math.floor(len / 2), what: `inside entry ${e} ${f}` });
      p += 8 + len;
    }
    out.push({ at: p, what: `after entry ${e}` });
  }
  out.push({ at: b.length - 1, what: 'last byte missing' });
  // One case per offset: a length field starts where the previous entry ends.
  const seen = new Map<number, { at: number; what: string; lenField?: boolean }>();
  for (const x of out) {
    const prev = seen.get(x.at);
    seen.set(x.at, prev ? { at: x.at, what: `${prev.what} / ${x.what}`, lenField: prev.lenField || x.lenField } : x);
  }
  return [...seen.values()];
}

/** Positions just after each structural JSON token ({ [ , :) and just before each } ]. */
function jsonBoundaries(text: string, max: number): number[] {
  const at: number[] = [];
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') { inString = false; at.push(i + 1); }
      continue;
    }
    if (c === '"') { at.push(i); inString = true; } else if ('{[,:'.includes(c)) at.push(i + 1);
    else if ('}]'.includes(c)) at.push(i);
  }
  const uniq = [...new Set(at)].filter((p) => p > 0 && p < text.length);
  if (uniq.length <= max) return uniq;
  const step = uniq.length / max;
  return Array.from({ length: max }, (_, i) => uniq[Math.floor(i * step)]!);
}

function spFile(sb: Sandbox, rel: string): string {
  return join(sb.sp, rel);
}
function baseFile(sb: Sandbox, rel: string): string {
  return join(sb.base, rel);
}

/** Replaces the first match of `re` in a text file (the rest of the bytes kept), then optionally refreshes the manifest. */
function textEdit(file: string, re: RegExp, by: string | ((...m: string[]) => string)): void {
  edit(file, (b) => {
    const t = b.toString('utf8');
    if (!re.test(t)) throw new Error(`corpus: ${re} not found in ${file}`);
    return t.replace(re, by as (...m: string[]) => string);
  });
}

/** The first snapshot_path of metadata.json set to `value` (JSON-escaped); the manifest refreshed. */
function setSnapshotPath(sb: Sandbox, value: string, which = 1): void {
  let n = 0;
  edit(spFile(sb, 'metadata.json'), (b) => b.toString('utf8').replace(/"snapshot_path": "[^"]*"/g, (m) => (++n === which ? `"snapshot_path": ${JSON.stringify(value)}` : m)));
  refreshManifest(sb.sp);
}

function setField(sb: Sandbox, file: string, field: string, rawJson: string): void {
  textEdit(spFile(sb, file), new RegExp(`"${field}": (?:"[^"]*"|-?[0-9.eE+]+|true|false|null)`), `"${field}": ${rawJson}`);
  refreshManifest(sb.sp);
}

function insertMember(sb: Sandbox, file: string, member: string): void {
  textEdit(spFile(sb, file), /\n}\s*$/, `,\n  ${member}\n}`);
  refreshManifest(sb.sp);
}

/**
 * A written output that carries sink_transactions: its metadata.json holds
 * them unchanged, and no file of it holds what a prepare_path names.
 */
function opaqueSinkCheck(out: string, member: string): string[] {
  const md = join(out, 'metadata.json');
  if (!existsSync(md)) return [];
  const problems: string[] = [];
  const want = (JSON.parse(`{${member}}`) as { sink_transactions: unknown }).sink_transactions;
  const got = (JSON.parse(readFileSync(md, 'utf8')) as { sink_transactions?: unknown }).sink_transactions;
  if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`sink_transactions not carried unchanged: ${JSON.stringify(got)}`);
  const named = [readFileSync('/etc/passwd'), Buffer.from('AWS_SECRET_ACCESS_KEY=not-a-real-key\n')];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && named.some((b) => b.equals(readFileSync(p)))) problems.push(`${p}: a copy of a file a prepare_path names`);
    }
  };
  walk(out);
  return problems;
}

// ---------------------------------------------------------------- bombs

/** A zero-filled block of `size` bytes compressed by `codec`, framed as RocksDB stores it (format_version ≥ 2). */
async function bomb(codec: 'snappy' | 'lz4' | 'zlib' | 'zstd' | 'bzip2', size: number, declared = size): Promise<Buffer> {
  const varint = (v: number): Buffer => {
    const b: number[] = [];
    while (v >= 0x80) { b.push((v & 0x7f) | 0x80); v = Math.floor(v / 128); }
    b.push(v);
    return Buffer.from(b);
  };
  switch (codec) {
    case 'snappy': {
      // One literal zero, then copies of 64 bytes at offset 1 (3 bytes each).
      const n = Math.ceil((size - 1) / 64);
      const body = Buffer.alloc(2 + n * 3);
      body[0] = 0; body[1] = 0;
      for (let i = 0; i < n; i++) { body[2 + i * 3] = (63 << 2) | 2; body[3 + i * 3] = 1; body[4 + i * 3] = 0; }
      return Buffer.concat([varint(declared), body]);
    }
    case 'lz4': {
      // One sequence: literal 0, match at offset 1 of (size - 6) bytes; then 5 literals.
      const match = size - 1 - 5 - 4;
      const ext = Buffer.alloc(Math.floor((match - 15) / 255) + 1, 255);
      ext[ext.length - 1] = (match - 15) % 255;
      return Buffer.concat([varint(declared), Buffer.from([0x1f, 0x00, 0x01, 0x00]), ext, Buffer.from([0x50, 0, 0, 0, 0, 0])]);
    }
    case 'zlib': {
      const chunks: Buffer[] = [];
      const z = createDeflateRaw({ level: 9, windowBits: 14 });
      z.on('data', (c: Buffer) => chunks.push(c));
      const done = new Promise<void>((r) => z.on('end', () => r()));
      const zero = Buffer.alloc(1 << 20);
      for (let left = size; left > 0; left -= zero.length) {
        if (!z.write(left >= zero.length ? zero : zero.subarray(0, left))) await new Promise((r) => z.once('drain', r));
      }
      z.end();
      await done;
      return Buffer.concat([varint(declared), ...chunks]);
    }
    case 'zstd':
    case 'bzip2': {
      const tool = codec === 'zstd' ? ['zstd', ['-c', '-q', '-3', '--no-check']] : ['bzip2', ['-c', '-9']];
      const out = execFileSync('sh', ['-c', `head -c ${size} /dev/zero | ${tool[0]} ${(tool[1] as string[]).join(' ')}`], { maxBuffer: 1 << 28 });
      return Buffer.concat([varint(declared), out]);
    }
  }
}

async function cachedBomb(name: string, make: () => Promise<Buffer>): Promise<Buffer> {
  const dir = join(tmpdir(), 'ksp-hostile-bombs');
  const file = join(dir, `${name}.bin`);
  if (existsSync(file)) return readFileSync(file);
  const b = await make();
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, b);
  return b;
}

/**
 * An SST whose first data block is `stored` with compression type `type`:
 * ksp's table writer with its compressor swapped for one returning the bomb
 * once (the writer's `compress` member is private to TypeScript only).
 */
async function bombTable(type: number, stored: Buffer, fileNumber: number): Promise<{ bytes: Buffer; manifest: Buffer }> {
  await loadChecksums();
  // The writer keeps a compressed block only when it saves 1/8 of the raw
  // one: the first (only) data block is made larger than the bomb's payload.
  const value = Buffer.alloc(64 * 1024, 0x5a);
  const count = Math.ceil((stored.length * 1.25 + 8192) / value.length);
  const w = await TableWriter.create({ formatVersion: 5, compression: 'snappy', checksum: ChecksumType.CRC32c, blockSize: count * (value.length + 64) + 4096, bloomBitsPerKey: 0, fileNumber });
  let first = true;
  (w as unknown as { compress: { type: number; compress(raw: Buffer): Buffer } }).compress = {
    type,
    compress: (raw: Buffer) => {
      if (first) { first = false; return stored; }
      return Buffer.concat([raw, raw]); // never chosen: larger than raw
    },
  };
  for (let i = 0; i < count; i++) w.add(encodeNativeKey('windows', 'count', Buffer.from(`tw:bomb-${String(i).padStart(6, '0')}`)), value);
  const info = await w.finish();
  const bytes = Buffer.concat(w.take(true));
  if (first || bytes.length > stored.length + count * 256 + 64 * 1024) throw new Error(`corpus: the bomb block was not used (${bytes.length} bytes for a ${stored.length}-byte payload)`);
  const manifest = encodeManifest([{ level: 6, number: fileNumber, size: bytes.length, smallest: info.smallest, largest: info.largest, smallestSeqno: 0n, largestSeqno: 0n }], fileNumber + 1);
  return { bytes, manifest };
}

/** Puts a table in place of the native base's 000012.sst: SST, MANIFEST-000005 and sst_manifest.json (size and hash) all consistent. */
function installTable(sb: Sandbox, t: { bytes: Buffer; manifest: Buffer }): void {
  writeFileSync(baseFile(sb, `${NATIVE_TASK}/sst/000012.sst`), t.bytes);
  writeFileSync(baseFile(sb, `${NATIVE_EPOCH}/MANIFEST-000005`), t.manifest);
  fixSstManifest(sb);
}

function fixSstManifest(sb: Sandbox): void {
  const sst = readFileSync(baseFile(sb, `${NATIVE_TASK}/sst/000012.sst`));
  textEdit(baseFile(sb, `${NATIVE_EPOCH}/sst_manifest.json`), /"size_bytes": \d+,\s*"sha256_hex": "[0-9a-f]*"/, `"size_bytes": ${sst.length},\n      "sha256_hex": "${sha(sst)}"`);
}

// ---------------------------------------------------------------- the corpus

export async function buildCorpus(bases: Base[]): Promise<HostileCase[]> {
  const cases: HostileCase[] = [];
  const has = (b: BaseName): Base | undefined => bases.find((x) => x.name === b);
  const add = (c: HostileCase): void => { cases.push(c); };

  // ---- state.bin v1: truncation at every structural boundary (manifest kept consistent: only the decoder can tell)
  for (const base of ['rel', 'engine'] as const) {
    const b = has(base)!;
    const spDir = sandboxPaths(b.template, b.layout).sp;
    const bin = readFileSync(join(spDir, REL_STATE));
    for (const { at, what, lenField } of stateBinBoundaries(bin, 2)) {
      add({
        id: `state-bin/${base}/truncate-${at}`, category: 'state.bin truncation', base,
        description: `${REL_STATE} cut at byte ${at} (${what}), manifest updated to match`,
        // A 0-byte file is a stateless task: documented acceptance (with a warning).
        expect: at === 0 ? 'typed' : 'reject',
        apply: (sb) => { edit(spFile(sb, REL_STATE), (x) => x.subarray(0, at)); refreshManifest(sb.sp); },
      });
      if (lenField && base === 'rel') {
        for (const [name, v] of [['u64-max', 0xffff_ffff_ffff_ffffn], ['2^31', 0x8000_0000n], ['size+1', BigInt(bin.length + 1)]] as const) {
          add({
            id: `state-bin/${base}/lying-length-${at}-${name}`, category: 'state.bin lying length', base,
            description: `${REL_STATE}: ${what} set to ${name} (${v}), manifest updated`,
            expect: 'reject',
            apply: (sb) => { edit(spFile(sb, REL_STATE), (x) => { const y = Buffer.from(x); y.writeBigUInt64LE(v, at); return y; }); refreshManifest(sb.sp); },
          });
        }
      }
    }
    for (const [name, v] of [['zero', 0n], ['plus-one', 24n], ['minus-one', 22n], ['u64-max', 0xffff_ffff_ffff_ffffn], ['2^32', 1n << 32n], ['huge', 1n << 40n]] as const) {
      add({
        id: `state-bin/${base}/lying-count-${name}`, category: 'state.bin lying count', base,
        description: `${REL_STATE}: entry_count set to ${v} (23 entries present), manifest updated`,
        expect: 'reject',
        apply: (sb) => { edit(spFile(sb, REL_STATE), (x) => { const y = Buffer.from(x); y.writeBigUInt64LE(v, 4); return y; }); refreshManifest(sb.sp); },
      });
    }
    for (const v of [0, 2, 3, 0x100, 0xffff_ffff]) {
      add({
        id: `state-bin/${base}/version-${v}`, category: 'state.bin version', base,
        description: `${REL_STATE}: version field set to ${v}, manifest updated`,
        // Version 2 has v1's entry layout (disaggregated backend): readable once supported.
        expect: v === 2 ? 'typed' : 'reject',
        apply: (sb) => { edit(spFile(sb, REL_STATE), (x) => { const y = Buffer.from(x); y.writeUInt32LE(v, 0); return y; }); refreshManifest(sb.sp); },
      });
    }
    const opAt = 12 + 8; // first byte of entry 0's operator_id
    const stAt = 12 + 8 + 10 + 8; // first byte of entry 0's state_name ("orders-agg" is 10 bytes)
    for (const [name, at, bytes] of [
      ['op-invalid-byte', opAt, [0xff]], ['op-lone-continuation', opAt + 2, [0x80]], ['op-overlong-nul', opAt, [0xc0, 0x80]], ['op-surrogate', opAt, [0xed, 0xa0, 0x80]],
      ['state-invalid-byte', stAt, [0xfe]], ['state-truncated-sequence', stAt + 5, [0xe2, 0x82]], ['op-nul', opAt + 3, [0x00]], ['op-newline', opAt + 3, [0x0a]],
    ] as const) {
      add({
        id: `state-bin/${base}/utf8-${name}`, category: 'state.bin bad UTF-8', base,
        description: `${REL_STATE}: entry 0 ${name.startsWith('op') ? 'operator_id' : 'state_name'} bytes overwritten with ${Buffer.from(bytes).toString('hex')}, manifest updated`,
        // NUL and newline are valid UTF-8 inside an entry's id: typed either way.
        expect: name === 'op-nul' || name === 'op-newline' ? 'typed' : 'reject',
        apply: (sb) => { edit(spFile(sb, REL_STATE), (x) => { const y = Buffer.from(x); y.set(bytes, at); return y; }); refreshManifest(sb.sp); },
      });
    }
    for (const [name, extra] of [['one-byte', Buffer.from([0])], ['header', Buffer.from('010000000000000000000000', 'hex')], ['pointer-magic', Buffer.from('INCR-SST-V1|x')]] as const) {
      add({
        id: `state-bin/${base}/trailing-${name}`, category: 'state.bin trailing bytes', base,
        description: `${REL_STATE}: ${extra.length} bytes appended after the last entry, manifest updated`,
        expect: 'reject',
        apply: (sb) => { edit(spFile(sb, REL_STATE), (x) => Buffer.concat([x, extra])); refreshManifest(sb.sp); },
      });
    }
    for (const at of [100, 200, bin.length - 3]) {
      add({
        id: `state-bin/${base}/flip-${at}`, category: 'state.bin byte flip', base,
        description: `${REL_STATE}: byte ${at} inverted, manifest updated (may land in a key or value: legitimate data)`,
        expect: 'typed',
        apply: (sb) => { edit(spFile(sb, REL_STATE), (x) => { const y = Buffer.from(x); y[at] = y[at]! ^ 0xff; return y; }); refreshManifest(sb.sp); },
      });
      add({
        id: `state-bin/${base}/stale-hash-${at}`, category: 'state.bin hash mismatch', base,
        description: `${REL_STATE}: byte ${at} inverted, manifest NOT updated: the hash no longer matches`,
        expect: 'reject',
        apply: (sb) => { edit(spFile(sb, REL_STATE), (x) => { const y = Buffer.from(x); y[at] = y[at]! ^ 0xff; return y; }); },
      });
    }
    add({
      id: `state-bin/${base}/pointer-in-canonical`, category: 'state.bin pointer where canonical', base,
      description: `${REL_STATE} replaced by a pointer blob to a missing sst_manifest.json, manifest updated`,
      expect: 'reject',
      apply: (sb) => { writeFileSync(spFile(sb, REL_STATE), 'INCR-SST-V1|shop/incr/none/sst_manifest.json'); refreshManifest(sb.sp); },
    });
  }

  // ---- metadata.json
  for (const base of ['rel', 'engine', 'native'] as const) {
    const b = has(base)!;
    const spDir = sandboxPaths(b.template, b.layout).sp;
    const text = readFileSync(join(spDir, 'metadata.json'), 'utf8');
    for (const at of jsonBoundaries(text, base === 'rel' ? 24 : 8)) {
      add({
        id: `metadata/${base}/truncate-${at}`, category: 'metadata.json truncation', base,
        description: `metadata.json cut at byte ${at} of ${text.length} (${JSON.stringify(text.slice(Math.max(0, at - 12), at))}⟂), manifest updated`,
        expect: 'reject',
        apply: (sb) => { edit(spFile(sb, 'metadata.json'), (x) => x.subarray(0, at)); refreshManifest(sb.sp); },
      });
    }
    const enc: Array<[string, string, (t: Buffer) => Buffer, Expect]> = [
      ['bom', 'a UTF-8 BOM before the document (the engine\'s serde_json refuses it)', (t) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), t]), 'reject'],
      ['utf16', 'the document as UTF-16LE with a BOM', (t) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(t.toString('utf8'), 'utf16le')]), 'reject'],
      ['latin1', 'job_id "shop" → "shöp" in Latin-1 (0xF6): not UTF-8', (t) => Buffer.from(t.toString('latin1').replace('"shop"', '"sh\u00f6p"'), 'latin1'), 'reject'],
      ['overlong', 'an overlong UTF-8 sequence (C0 AF) inside the label string', (t) => Buffer.concat([t.subarray(0, t.indexOf('"savepoint_label": "') + 20), Buffer.from([0xc0, 0xaf]), t.subarray(t.indexOf('"savepoint_label": "') + 20)]), 'reject'],
      ['lone-surrogate-escape', 'a lone surrogate escape \\ud800 in the label', (t) => Buffer.from(t.toString('utf8').replace(/"savepoint_label": "/, '"savepoint_label": "\\ud800'), 'utf8'), 'typed'],
      ['nul-byte', 'a raw NUL byte inside the label string', (t) => Buffer.from(t.toString('utf8').replace(/"savepoint_label": "/, '"savepoint_label": "\u0000'), 'utf8'), 'reject'],
      ['trailing-garbage', 'a second JSON value after the document', (t) => Buffer.concat([t, Buffer.from('\n{}')]), 'reject'],
      ['minified', 'the same document minified (layout only)', (t) => Buffer.from(t.toString('utf8').replace(/\n\s*/g, '').replace(/": /g, '":'), 'utf8'), 'accept'],
      ['crlf', 'CRLF line ends (layout only)', (t) => Buffer.from(t.toString('utf8').replace(/\n/g, '\r\n'), 'utf8'), 'accept'],
      ['deep-nesting', 'an unknown member nested 100,000 arrays deep (stack depth)', (t) => Buffer.from(t.toString('utf8').replace(/\n}\s*$/, `,\n"x_deep": ${'['.repeat(100_000)}${']'.repeat(100_000)}\n}`), 'utf8'), 'typed'],
      ['duplicate-key', 'member "epoch" given twice (7, then 8)', (t) => Buffer.from(t.toString('utf8').replace(/"epoch": 7,/, '"epoch": 7,\n  "epoch": 8,'), 'utf8'), 'reject'],
      ['empty', 'an empty file', () => Buffer.alloc(0), 'reject'],
      ['whitespace', 'only whitespace', () => Buffer.from('  \n\t\n'), 'reject'],
      ['array', 'a JSON array instead of an object', () => Buffer.from('[]'), 'reject'],
      ['null', 'the literal null', () => Buffer.from('null'), 'reject'],
    ];
    for (const [name, what, fn, expect] of enc) {
      add({
        id: `metadata/${base}/${name}`, category: name === 'minified' || name === 'crlf' ? 'metadata.json layout (accepted)' : 'metadata.json encoding', base,
        description: `metadata.json: ${what}, manifest updated`, expect,
        apply: (sb) => { edit(spFile(sb, 'metadata.json'), fn); refreshManifest(sb.sp); },
      });
    }
    const fields: Array<[string, string, string, Expect]> = [
      ['version-0', 'version', '0', 'reject'], ['version-4', 'version', '4', 'reject'], ['version-string', 'version', '"3"', 'reject'], ['version-u64', 'version', '18446744073709551616', 'reject'],
      ['epoch-negative', 'epoch', '-7', 'reject'], ['epoch-float', 'epoch', '7.5', 'reject'], ['epoch-exp', 'epoch', '1e400', 'reject'], ['epoch-u64-overflow', 'epoch', '18446744073709551616', 'reject'], ['epoch-null', 'epoch', 'null', 'reject'],
      ['job-empty', 'job_id', '""', 'reject'], ['job-number', 'job_id', '7', 'reject'], ['job-slash', 'job_id', '"../../etc"', 'reject'], ['job-absolute', 'job_id', '"/etc"', 'reject'],
      ['fencing-negative', 'fencing_token', '-1', 'reject'], ['fencing-huge', 'fencing_token', '99999999999999999999999', 'reject'], ['timestamp-string', 'timestamp_ms', '"now"', 'reject'],
      ['is-savepoint-string', 'is_savepoint', '"yes"', 'reject'], ['label-number', 'savepoint_label', '5', 'reject'],
    ];
    for (const [name, field, value, expect] of base === 'native' ? [] : fields) {
      add({
        id: `metadata/${base}/field-${name}`, category: 'metadata.json field types', base,
        description: `metadata.json: "${field}" set to ${value}, manifest updated`, expect,
        apply: (sb) => setField(sb, 'metadata.json', field, value),
      });
    }
    add({
      id: `metadata/${base}/snapshots-not-array`, category: 'metadata.json field types', base,
      description: 'metadata.json: operator_snapshots is an object', expect: 'reject',
      apply: (sb) => { textEdit(spFile(sb, 'metadata.json'), /"operator_snapshots": \[/, '"operator_snapshots": {"a": ['); textEdit(spFile(sb, 'metadata.json'), /\n  \],\n  "is_savepoint"/, '\n  ]},\n  "is_savepoint"'); refreshManifest(sb.sp); },
    });
    add({
      id: `metadata/${base}/unknown-member`, category: 'metadata.json layout (accepted)', base,
      description: 'metadata.json: an unknown member "x_future": {"a": [1, 2]} (the engine ignores unknown members)', expect: 'accept',
      apply: (sb) => insertMember(sb, 'metadata.json', '"x_future": {"a": [1, 2]}'),
    });

    // Unsafe snapshot paths.
    const unsafe: Array<[string, string]> = [
      ['absolute-etc-passwd', '/etc/passwd'], ['absolute-proc-environ', '/proc/self/environ'], ['absolute-outside', '@OUTSIDE@/state.bin'],
      ['dotdot', '../../outside/state.bin'], ['dotdot-deep', '../../../../../../../../etc/passwd'], ['dot', '.'], ['dotdot-only', '..'],
      ['nul', 'orders-agg/task-1/state.bin\u0000.txt'], ['newline', 'orders-agg/task-1/state.bin\nx'], ['backslash', 'orders-agg\\task-1\\state.bin'], ['backslash-dotdot', '..\\..\\outside\\state.bin'],
      ['file-uri', 'file:///etc/passwd'], ['file-uri-outside', 'file://@OUTSIDE@/state.bin'], ['other-bucket', 's3://other-bucket/shop/state.bin'], ['http', 'http://169.254.169.254/latest/meta-data/'],
      ['empty', ''], ['trailing-slash', 'orders-agg/task-1/'], ['double-slash', 'orders-agg//task-1/state.bin'], ['very-long', `${'a/'.repeat(3000)}state.bin`], ['dev-zero', '/dev/zero'],
    ];
    for (const [name, value] of unsafe) {
      add({
        id: `unsafe-path/${base}/snapshot-${name}`, category: 'unsafe snapshot_path', base,
        description: `metadata.json: the first operator snapshot's snapshot_path is ${JSON.stringify(value.slice(0, 80))}, manifest updated`,
        expect: name === 'double-slash' ? 'typed' : 'reject',
        isolate: name === 'dev-zero',
        apply: (sb) => setSnapshotPath(sb, value.replace('@OUTSIDE@', sb.outside), 2),
      });
    }
    // Unsafe operator and task ids: verify must refuse what the writers refuse.
    for (const [name, value] of [['abs', '/abs/x'], ['dot', '.'], ['dotdot', '..'], ['backslash-dotdot', '..\\x'], ['nul', 'a\u0000b'], ['newline', 'a\nb'], ['slash', 'a/b'], ['empty', '']] as const) {
      for (const field of base === 'native' ? [] : ['operator_id', 'task_id'] as const) {
        add({
          id: `unsafe-id/${base}/${field}-${name}`, category: 'unsafe operator/task id', base,
          description: `metadata.json: the first snapshot's ${field} is ${JSON.stringify(value)}, manifest updated`,
          expect: 'reject',
          apply: (sb) => { textEdit(spFile(sb, 'metadata.json'), new RegExp(`"${field}": "[^"]*"`), `"${field}": ${JSON.stringify(value)}`); refreshManifest(sb.sp); },
        });
      }
    }
    // Paths in other members.
    // sink_transactions are carried as opaque strings (model FORMAT.md §3): the
    // engine hands prepare_path to the sink on the executor and never reads it
    // through checkpoint storage; sink_id is an identity (the engine sets it to
    // the prepare path, so it is usually absolute) and never a path
    // (krishiv-proto checkpoint.rs plan_sink_transaction_recovery,
    // krishiv-scheduler checkpoint.rs collect_sink_transactions, metadata.rs
    // SinkTransactionRef: no validation). A documented acceptance, as long as
    // nothing they name is read or copied and the output carries them unchanged.
    const members: Array<[string, string, Expect]> = [
      ['buffer-etc-passwd', '"unaligned_buffer_refs": [{"operator_id": "orders-agg", "channel_index": 0, "record_count": 1, "buffer_path": "/etc/passwd"}]', 'reject'],
      ['buffer-environ', '"unaligned_buffer_refs": [{"operator_id": "orders-agg", "channel_index": 0, "record_count": 1, "buffer_path": "/proc/self/environ"}]', 'reject'],
      ['buffer-dotdot', '"unaligned_buffer_refs": [{"operator_id": "orders-agg", "channel_index": 0, "record_count": 1, "buffer_path": "../../outside/secret.txt"}]', 'reject'],
      ['buffer-file-uri', '"unaligned_buffer_refs": [{"operator_id": "orders-agg", "channel_index": 0, "record_count": 1, "buffer_path": "file:///etc/passwd"}]', 'reject'],
      ['prepare-etc-passwd', '"sink_transactions": [{"sink_id": "sink", "epoch": 7, "prepare_path": "/etc/passwd", "committed": false}]', 'accept'],
      ['prepare-dotdot', '"sink_transactions": [{"sink_id": "sink", "epoch": 7, "prepare_path": "../../outside/secret.txt", "committed": false}]', 'accept'],
      ['sink-id-dotdot', '"sink_transactions": [{"sink_id": "../..", "epoch": 7, "committed": true}]', 'accept'],
      ['sink-id-absolute', '"sink_transactions": [{"sink_id": "/etc", "epoch": 7, "committed": true}]', 'accept'],
    ];
    for (const [name, member, expect] of base === 'native' ? [] : members) {
      add({
        id: `unsafe-path/${base}/${name}`, category: 'unsafe buffer/prepare path or sink id', base,
        description: `metadata.json: ${member}, manifest updated${expect === 'accept' ? ' (carried opaque: documented acceptance)' : ''}`, expect,
        apply: (sb) => insertMember(sb, 'metadata.json', member),
        after: expect === 'accept' ? (_sb, _cmd, out) => opaqueSinkCheck(out, member) : undefined,
      });
    }
    // Duplicate tasks.
    add({
      id: `duplicate/${base}/same-file`, category: 'duplicate task', base,
      description: 'metadata.json: the first operator snapshot listed twice (same task, same file)', expect: 'typed',
      apply: (sb) => {
        textEdit(spFile(sb, 'metadata.json'), /"operator_snapshots": \[\n(\s*\{[^}]*\}),/, (_m: string, s: string) => `"operator_snapshots": [\n${s},\n${s},`);
        refreshManifest(sb.sp);
      },
    } as HostileCase);
    add({
      id: `duplicate/${base}/other-file`, category: 'duplicate task', base,
      description: 'metadata.json: the second snapshot renamed to the first one\'s task id (one task, two files)', expect: 'typed',
      apply: (sb) => { let n = 0; edit(spFile(sb, 'metadata.json'), (x) => x.toString('utf8').replace(/"task_id": "task-1"/g, (m) => (++n === 1 ? '"task_id": "task-0"' : m))); refreshManifest(sb.sp); },
    });
    add({
      id: `duplicate/${base}/empty-snapshots`, category: 'duplicate task', base,
      description: 'metadata.json: operator_snapshots is empty (every operator gone)', expect: 'typed',
      apply: (sb) => { textEdit(spFile(sb, 'metadata.json'), /"operator_snapshots": \[[\s\S]*?\n  \]/, '"operator_snapshots": []'); refreshManifest(sb.sp); },
    });
  }
  // Huge metadata: 200,000 snapshots (10 operators × 20,000 tasks), files absent; and one 20 MB string.
  add({
    id: 'huge/rel/200k-snapshots', category: 'huge metadata', base: 'rel', isolate: true, timeoutMs: 40_000,
    description: 'metadata.json with 200,000 operator snapshots (10 × 20,000 tasks) whose files do not exist: a bounded, typed NOT_FOUND naming the first file',
    expect: 'reject',
    apply: (sb) => {
      const snaps: string[] = [];
      for (let o = 0; o < 10; o++) for (let t = 0; t < 20_000; t++) snaps.push(`{"operator_id":"op-${o}","task_id":"task-${t}","snapshot_path":"op-${o}/task-${t}/state.bin"}`);
      textEdit(spFile(sb, 'metadata.json'), /"operator_snapshots": \[[\s\S]*?\n  \]/, `"operator_snapshots": [${snaps.join(',')}]`);
      refreshManifest(sb.sp);
    },
  });
  add({
    id: 'huge/rel/20mb-label', category: 'huge metadata', base: 'rel', isolate: true, timeoutMs: 40_000,
    description: 'metadata.json whose savepoint_label is a 20 MB string', expect: 'typed',
    apply: (sb) => setField(sb, 'metadata.json', 'savepoint_label', JSON.stringify('x'.repeat(20 << 20))),
  });
  add({
    id: 'huge/rel/1m-source-offsets', category: 'huge metadata', base: 'rel', isolate: true, timeoutMs: 40_000,
    description: 'metadata.json with 1,000,000 source_offsets', expect: 'typed',
    apply: (sb) => {
      const offs = Array.from({ length: 1_000_000 }, (_, i) => `{"partition_id":"p-${i}","offset":${i}}`);
      textEdit(spFile(sb, 'metadata.json'), /"source_offsets": \[[\s\S]*?\n  \],/, `"source_offsets": [${offs.join(',')}],`);
      refreshManifest(sb.sp);
    },
  });

  // ---- meta.json (relative base)
  {
    const text = readFileSync(join(sandboxPaths(has('rel')!.template, 'relative').sp, 'meta.json'), 'utf8');
    for (const at of jsonBoundaries(text, 12)) {
      add({
        id: `meta/rel/truncate-${at}`, category: 'meta.json truncation', base: 'rel',
        description: `meta.json cut at byte ${at} of ${text.length}, manifest updated`, expect: 'reject',
        apply: (sb) => { edit(spFile(sb, 'meta.json'), (x) => x.subarray(0, at)); refreshManifest(sb.sp); },
      });
    }
    const metaCases: Array<[string, string, (sb: Sandbox) => void, Expect]> = [
      ['bom', 'a UTF-8 BOM', (sb) => { edit(spFile(sb, 'meta.json'), (x) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), x])); refreshManifest(sb.sp); }, 'reject'],
      ['latin1', 'label in Latin-1 (0xE9)', (sb) => { edit(spFile(sb, 'meta.json'), (x) => Buffer.from(x.toString('latin1').replace('"portable"', '"port\u00e9"'), 'latin1')); refreshManifest(sb.sp); }, 'reject'],
      ['format-2', 'format_version 2', (sb) => setField(sb, 'meta.json', 'format_version', '2'), 'reject'],
      ['format-string', 'format_version "1"', (sb) => setField(sb, 'meta.json', 'format_version', '"1"'), 'reject'],
      ['version-negative', 'operator_versions.orders-agg = -1', (sb) => { textEdit(spFile(sb, 'meta.json'), /"orders-agg": 1/, '"orders-agg": -1'); refreshManifest(sb.sp); }, 'reject'],
      ['version-huge', 'operator_versions.orders-agg = 2^64', (sb) => { textEdit(spFile(sb, 'meta.json'), /"orders-agg": 1/, '"orders-agg": 18446744073709551616'); refreshManifest(sb.sp); }, 'reject'],
      ['versions-array', 'operator_versions is an array', (sb) => { textEdit(spFile(sb, 'meta.json'), /"operator_versions": \{[^}]*\}/, '"operator_versions": [1, 2]'); refreshManifest(sb.sp); }, 'reject'],
      ['epoch-mismatch', 'epoch 8 where metadata.json says 7', (sb) => setField(sb, 'meta.json', 'epoch', '8'), 'typed'],
      ['unknown-member', 'an unknown member', (sb) => insertMember(sb, 'meta.json', '"x_future": true'), 'accept'],
      ['empty', 'an empty file', (sb) => { writeFileSync(spFile(sb, 'meta.json'), ''); refreshManifest(sb.sp); }, 'reject'],
      ['missing', 'meta.json removed (manifest still lists it)', (sb) => { rmSync(spFile(sb, 'meta.json')); }, 'reject'],
      ['stale-hash', 'label changed, manifest NOT updated', (sb) => { textEdit(spFile(sb, 'meta.json'), /"portable"/, '"portablE"'); }, 'reject'],
    ];
    for (const [name, what, apply, expect] of metaCases) {
      add({ id: `meta/rel/${name}`, category: 'meta.json fields and encoding', base: 'rel', description: `meta.json: ${what}`, expect, apply });
    }
  }

  // ---- manifest.sha256
  for (const base of ['rel', 'engine'] as const) {
    const b = has(base)!;
    const text = readFileSync(join(sandboxPaths(b.template, b.layout).sp, 'manifest.sha256'), 'utf8');
    const lines = text.split('\n').filter(Boolean);
    const m = (sb: Sandbox): string => spFile(sb, 'manifest.sha256');
    const cases2: Array<[string, string, (sb: Sandbox) => void, Expect]> = [
      ['missing', 'manifest.sha256 removed', (sb) => rmSync(m(sb)), 'reject'],
      ['empty', 'manifest.sha256 empty', (sb) => writeFileSync(m(sb), ''), 'reject'],
      ['whitespace', 'manifest.sha256 only whitespace', (sb) => writeFileSync(m(sb), '  \n\n\t\n'), 'reject'],
      ['bom', 'manifest.sha256 starts with a UTF-8 BOM', (sb) => edit(m(sb), (x) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), x])), 'reject'],
      ['metadata-hash-wrong', 'the metadata.json line has a wrong hash', (sb) => manifestSet(sb.sp, 'metadata.json', '0'.repeat(64)), 'reject'],
      ['state-hash-wrong', `the ${REL_STATE} line has a wrong hash`, (sb) => manifestSet(sb.sp, REL_STATE, 'f'.repeat(64)), 'reject'],
      ['uppercase-hex', 'hashes in uppercase hex', (sb) => edit(m(sb), (x) => x.toString('utf8').replace(/[0-9a-f]{64}/g, (h) => h.toUpperCase())), 'reject'],
      ['short-hash', 'one hash 63 digits long', (sb) => edit(m(sb), (x) => x.toString('utf8').replace(/([0-9a-f]{63})[0-9a-f]/, '$1')), 'reject'],
      ['one-space', 'one line with a single space separator', (sb) => edit(m(sb), (x) => x.toString('utf8').replace('  ', ' ')), 'reject'],
      ['md5-prefix', 'a line with md5: instead of sha256:', (sb) => edit(m(sb), (x) => x.toString('utf8').replace('sha256:', 'md5:')), 'reject'],
      ['extra-missing-file', 'an extra line for a file that does not exist', (sb) => manifestSet(sb.sp, 'orders-agg/task-9/state.bin', 'a'.repeat(64)), 'reject'],
      ['line-dotdot', 'a line for ../outside/secret.txt', (sb) => edit(m(sb), (x) => x + `sha256:${'a'.repeat(64)}  ../outside/secret.txt\n`), 'reject'],
      ['line-absolute', 'a line for /etc/passwd', (sb) => edit(m(sb), (x) => x + `sha256:${'a'.repeat(64)}  /etc/passwd\n`), 'reject'],
      ['line-nul', 'a line whose path holds a NUL', (sb) => edit(m(sb), (x) => x + `sha256:${'a'.repeat(64)}  a\u0000b\n`), 'reject'],
      ['line-backslash', 'a line whose path uses backslashes', (sb) => edit(m(sb), (x) => x + `sha256:${'a'.repeat(64)}  orders-agg\\task-1\\state.bin\n`), 'reject'],
      ['duplicate-line', 'the metadata.json line twice', (sb) => edit(m(sb), (x) => x + lines.find((l) => l.endsWith('  metadata.json'))! + '\n'), 'reject'],
      ['duplicate-conflicting', 'metadata.json listed twice, the later with a wrong hash (the engine lets the later win)', (sb) => edit(m(sb), (x) => x + `sha256:${'0'.repeat(64)}  metadata.json\n`), 'reject'],
      ['missing-state-line', `no line for ${REL_STATE}`, (sb) => edit(m(sb), (x) => x.toString('utf8').split('\n').filter((l) => !l.endsWith(REL_STATE)).join('\n')), 'reject'],
      ['missing-metadata-line', 'no line for metadata.json', (sb) => edit(m(sb), (x) => x.toString('utf8').split('\n').filter((l) => !l.endsWith('  metadata.json')).join('\n')), 'reject'],
      ['crlf', 'CRLF line ends', (sb) => edit(m(sb), (x) => x.toString('utf8').replace(/\n/g, '\r\n')), 'typed'],
      ['unsorted', 'lines in reverse order (layout only: a warning)', (sb) => edit(m(sb), (x) => x.toString('utf8').split('\n').filter(Boolean).reverse().join('\n') + '\n'), 'accept'],
      ['blank-lines', 'blank lines between entries (layout only)', (sb) => edit(m(sb), (x) => x.toString('utf8').replace(/\n/g, '\n\n')), 'accept'],
      ['no-final-newline', 'no newline after the last line (layout only)', (sb) => edit(m(sb), (x) => x.subarray(0, x.length - 1)), 'accept'],
      ['long-line', 'a 1 MB line', (sb) => edit(m(sb), (x) => x + `sha256:${'a'.repeat(64)}  ${'x'.repeat(1 << 20)}\n`), 'reject'],
      ['binary', '4 KiB of random bytes', (sb) => writeFileSync(m(sb), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24))), 'reject'],
      ['self-listed', 'a line for manifest.sha256 itself', (sb) => edit(m(sb), (x) => x + `sha256:${'a'.repeat(64)}  manifest.sha256\n`), 'reject'],
    ];
    for (const [name, what, apply, expect] of cases2) {
      add({ id: `manifest/${base}/${name}`, category: expect === 'accept' ? 'manifest.sha256 layout (accepted)' : 'manifest.sha256', base, description: what, expect, apply });
    }
    // Truncation at every line boundary and mid-line.
    let off = 0;
    for (let i = 0; i < lines.length; i++) {
      const start = off;
      off += lines[i]!.length + 1;
      const where = [[start + 40, `inside the hash of line ${i + 1}`], [off, `after line ${i + 1}`]] as Array<[number, string]>;
      if (i === 0) where.push([start + 3, 'inside "sha256:" of line 1'], [start + 72, 'inside the separator of line 1'], [off - 2, 'before the last path byte of line 1']);
      for (const [cut, what] of where) {
        if (cut >= text.length) continue;
        add({
          id: `manifest/${base}/truncate-${cut}`, category: 'manifest.sha256 truncation', base,
          description: `manifest.sha256 cut at byte ${cut} (${what})`, expect: 'reject',
          apply: (sb) => edit(spFile(sb, 'manifest.sha256'), (x) => x.subarray(0, cut)),
        });
      }
    }
  }

  // ---- native: pointer blob, sst_manifest.json, SST, MANIFEST, CURRENT
  const nat = has('native')!;
  {
    const POINTER = 'windows/task-0/state.bin';
    const pointerText = readFileSync(join(sandboxPaths(nat.template, 'engine').sp, POINTER), 'latin1');
    for (const at of [0, 5, 11, 12, 13, 30, pointerText.length - 1]) {
      add({
        id: `pointer/native/truncate-${at}`, category: 'pointer blob truncation', base: 'native',
        description: `${POINTER} (pointer blob) cut at byte ${at} of ${pointerText.length}, manifest updated`,
        expect: at === 0 ? 'typed' : 'reject',
        apply: (sb) => { edit(spFile(sb, POINTER), (x) => x.subarray(0, at)); refreshManifest(sb.sp); },
      });
    }
    const targets: Array<[string, string, Expect]> = [
      ['absolute', '/etc/passwd', 'reject'], ['environ', '/proc/self/environ', 'reject'], ['dotdot', '../../../outside/secret.txt', 'reject'], ['nul', 'shop/incr/x\u0000y', 'reject'],
      ['newline', `${NATIVE_EPOCH}/sst_manifest.json\n`, 'typed'], ['backslash', NATIVE_EPOCH.replace(/\//g, '\\') + '\\sst_manifest.json', 'reject'], ['file-uri', 'file:///etc/passwd', 'reject'],
      ['other-bucket', 's3://other-bucket/shop/incr/sst_manifest.json', 'reject'], ['empty', '', 'reject'], ['missing', 'shop/incr/windows/task-9/sst_manifest.json', 'reject'],
      ['to-metadata', 'shop/savepoints/00000000000000000007/metadata.json', 'reject'], ['huge', 'a'.repeat(70 * 1024), 'reject'], ['wrong-magic', '', 'reject'],
    ];
    for (const [name, value, expect] of targets) {
      add({
        id: `pointer/native/${name}`, category: 'pointer blob paths', base: 'native',
        description: name === 'wrong-magic' ? `${POINTER}: magic INCR-SST-V2| instead of V1` : `${POINTER}: points at ${JSON.stringify(value.slice(0, 60))}, manifest updated`, expect,
        apply: (sb) => { writeFileSync(spFile(sb, POINTER), name === 'wrong-magic' ? pointerText.replace('V1|', 'V2|') : `INCR-SST-V1|${value}`, 'latin1'); refreshManifest(sb.sp); },
      });
    }

    const SM = `${NATIVE_EPOCH}/sst_manifest.json`;
    const smText = readFileSync(join(nat.template, 'base', SM), 'utf8');
    for (const at of jsonBoundaries(smText, 20)) {
      add({
        id: `sst-manifest/native/truncate-${at}`, category: 'sst_manifest.json truncation', base: 'native',
        description: `sst_manifest.json cut at byte ${at} of ${smText.length}`, expect: 'reject',
        apply: (sb) => edit(baseFile(sb, SM), (x) => x.subarray(0, at)),
      });
    }
    const smEdits: Array<[string, RegExp, string, Expect]> = [
      ['sst-path-absolute', /"storage_path": "[^"]*000012.sst"/, '"storage_path": "/etc/passwd"', 'reject'],
      ['sst-path-environ', /"storage_path": "[^"]*000012.sst"/, '"storage_path": "/proc/self/environ"', 'reject'],
      ['sst-path-dotdot', /"storage_path": "[^"]*000012.sst"/, '"storage_path": "../outside/sst/000012.sst"', 'reject'],
      ['sst-path-file-uri', /"storage_path": "[^"]*000012.sst"/, '"storage_path": "file:///etc/passwd"', 'reject'],
      ['sst-path-other-bucket', /"storage_path": "[^"]*000012.sst"/, '"storage_path": "s3://other-bucket/000012.sst"', 'reject'],
      ['sst-path-backslash', /"storage_path": "[^"]*000012.sst"/, '"storage_path": "shop\\\\incr\\\\windows\\\\task-0\\\\sst\\\\000012.sst"', 'reject'],
      ['sst-path-nul', /"storage_path": "[^"]*000012.sst"/, '"storage_path": "shop/incr/a\\u0000b.sst"', 'reject'],
      ['meta-path-absolute', /"storage_path": "[^"]*CURRENT"/, '"storage_path": "/etc/passwd"', 'reject'],
      ['meta-path-dotdot', /"storage_path": "[^"]*MANIFEST-000005"/, '"storage_path": "../../../../outside/secret.txt"', 'reject'],
      ['meta-path-environ', /"storage_path": "[^"]*CURRENT"/, '"storage_path": "/proc/self/environ"', 'reject'],
      ['size-zero', /"size_bytes": \d+/, '"size_bytes": 0', 'reject'],
      ['size-huge', /"size_bytes": \d+/, '"size_bytes": 18446744073709551615', 'reject'],
      ['size-negative', /"size_bytes": \d+/, '"size_bytes": -1', 'reject'],
      ['size-plus-one', /"size_bytes": (\d+)/, '"size_bytes": 1316', 'reject'],
      ['sha-wrong', /"sha256_hex": "[0-9a-f]*"/, `"sha256_hex": "${'0'.repeat(64)}"`, 'reject'],
      ['sha-short', /"sha256_hex": "[0-9a-f]*"/, '"sha256_hex": "abc"', 'reject'],
      ['filename-slash', /"filename": "000012.sst"/, '"filename": "../000012.sst"', 'reject'],
      ['filename-absolute', /"filename": "CURRENT"/, '"filename": "/tmp/CURRENT"', 'reject'],
      ['filename-duplicate', /"filename": "CURRENT"/, '"filename": "000012.sst"', 'reject'],
      ['filename-empty', /"filename": "000012.sst"/, '"filename": ""', 'reject'],
      ['epoch-other', /"epoch": 7/, '"epoch": 8', 'typed'],
      ['epoch-string', /"epoch": 7/, '"epoch": "7"', 'reject'],
      ['sst-files-empty', /"sst_files": \[[\s\S]*?\],\n  "meta_files"/, '"sst_files": [],\n  "meta_files"', 'reject'],
      ['meta-files-empty', /"meta_files": \[[\s\S]*?\],\n  "manifest_storage_path"/, '"meta_files": [],\n  "manifest_storage_path"', 'reject'],
      ['manifest-path-absolute', /"manifest_storage_path": "[^"]*"/, '"manifest_storage_path": "/etc/passwd"', 'typed'],
    ];
    for (const [name, re, by, expect] of smEdits) {
      add({ id: `sst-manifest/native/${name}`, category: 'sst_manifest.json fields and paths', base: 'native', description: `sst_manifest.json: ${by}`, expect, apply: (sb) => textEdit(baseFile(sb, SM), re, by) });
    }
    add({ id: 'sst-manifest/native/bom', category: 'sst_manifest.json fields and paths', base: 'native', description: 'sst_manifest.json starts with a UTF-8 BOM', expect: 'reject', apply: (sb) => edit(baseFile(sb, SM), (x) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), x])) });
    add({ id: 'sst-manifest/native/missing', category: 'sst_manifest.json fields and paths', base: 'native', description: 'sst_manifest.json removed', expect: 'reject', apply: (sb) => rmSync(baseFile(sb, SM)) });
    add({ id: 'sst-manifest/native/huge', category: 'sst_manifest.json fields and paths', base: 'native', description: 'sst_manifest.json padded to 20 MB of whitespace (over its 16 MiB cap)', expect: 'reject', isolate: true, apply: (sb) => edit(baseFile(sb, SM), (x) => Buffer.concat([x, Buffer.alloc(20 << 20, 0x20)])) });

    // SST structure.
    const SST = `${NATIVE_TASK}/sst/000012.sst`;
    const sstBytes = readFileSync(join(nat.template, 'base', SST));
    await loadChecksums();
    const table = await Table.open(fileAt(locate(join(nat.template, 'base', SST)), sstBytes.length));
    const handles: Array<[string, { offset: number; size: number }]> = [['metaindex', table.footer.metaindex]];
    for (const [k, h] of table.metaindex) handles.push([`meta block ${k}`, h]);
    let d = 0;
    for await (const h of table.dataBlockHandles()) handles.push([`data block ${d++}`, h]);
    const cuts = new Map<number, string>();
    for (const [what, h] of handles) {
      cuts.set(h.offset, `start of ${what}`);
      cuts.set(h.offset + Math.floor(h.size / 2), `inside ${what}`);
      cuts.set(h.offset + h.size, `before the trailer of ${what}`);
      cuts.set(h.offset + h.size + 1, `inside the trailer of ${what}`);
    }
    for (const [at, what] of [[0, 'empty file'], [sstBytes.length - 53, 'start of footer'], [sstBytes.length - 8, 'before the magic'], [sstBytes.length - 1, 'last byte missing']] as const) cuts.set(at, what);
    for (const [at, what] of [...cuts].sort((a, b) => a[0] - b[0])) {
      if (at < 0 || at >= sstBytes.length) continue;
      add({
        id: `sst/native/truncate-${at}`, category: 'SST truncation', base: 'native',
        description: `000012.sst cut at byte ${at} (${what}); sst_manifest.json size and hash updated to match`, expect: 'reject',
        apply: (sb) => { edit(baseFile(sb, SST), (x) => x.subarray(0, at)); fixSstManifest(sb); },
      });
    }
    for (const [what, h] of handles) {
      add({
        id: `sst/native/flip-${h.offset + 2}`, category: 'SST corruption', base: 'native',
        description: `000012.sst: a byte inside ${what} inverted; sst_manifest.json hash updated (the block checksum must catch it)`, expect: 'reject',
        apply: (sb) => { edit(baseFile(sb, SST), (x) => { const y = Buffer.from(x); y[h.offset + 2] = y[h.offset + 2]! ^ 0xff; return y; }); fixSstManifest(sb); },
      });
    }
    // Lying handles in the footer: huge varints for the metaindex handle.
    for (const [name, bytes] of [['huge-offset', [0xff, 0xff, 0xff, 0xff, 0x0f, 0x10]], ['huge-size', [0x00, 0xff, 0xff, 0xff, 0xff, 0x0f]], ['overlong-varint', [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]]] as const) {
      add({
        id: `sst/native/footer-${name}`, category: 'SST lying length', base: 'native',
        description: `000012.sst: the footer's metaindex handle overwritten with ${Buffer.from(bytes).toString('hex')}; sst_manifest.json updated`, expect: 'reject',
        apply: (sb) => { edit(baseFile(sb, SST), (x) => { const y = Buffer.from(x); const f = y.length - 53; y.set(bytes, f + (table.footer.formatVersion >= 6 ? 5 : 1)); return y; }); fixSstManifest(sb); },
      });
    }
    add({
      id: 'sst/native/not-a-table', category: 'SST corruption', base: 'native',
      description: '000012.sst replaced by 4 KiB of zeros; sst_manifest.json updated', expect: 'reject',
      apply: (sb) => { writeFileSync(baseFile(sb, SST), Buffer.alloc(4096)); fixSstManifest(sb); },
    });
    add({
      id: 'sst/native/stale-hash', category: 'SST corruption', base: 'native',
      description: '000012.sst: one byte inverted, sst_manifest.json NOT updated', expect: 'reject',
      apply: (sb) => edit(baseFile(sb, SST), (x) => { const y = Buffer.from(x); y[10] = y[10]! ^ 1; return y; }),
    });

    // Decompression bombs: a data block that inflates far beyond any budget.
    // Made on first use and kept in the OS temp dir (the 1 GiB ones take seconds to compress).
    const bombs: Array<[string, number, () => Promise<Buffer>]> = [
      ['snappy-256m', 1, () => bomb('snappy', 256 << 20)],
      ['snappy-lying-size', 1, () => bomb('snappy', 64 << 20, 4096)],
      ['lz4-1g', 4, () => bomb('lz4', 1 << 30)],
      ['lz4-lying-size', 4, () => bomb('lz4', 256 << 20, 4096)],
      ['zlib-1g', 2, () => bomb('zlib', 1 << 30)],
      ['zlib-lying-size', 2, () => bomb('zlib', 256 << 20, 4096)],
      ['zstd-1g', 7, () => bomb('zstd', 1 << 30)],
      ['zstd-lying-size', 7, () => bomb('zstd', 1 << 30, 4096)],
      ['bzip2-1g', 3, () => bomb('bzip2', 1 << 30)],
      ['bzip2-lying-size', 3, () => bomb('bzip2', 1 << 30, 4096)],
    ];
    for (const [name, type, make] of bombs) {
      let table: Promise<{ bytes: Buffer; manifest: Buffer }> | null = null;
      add({
        id: `bomb/native/${name}`, category: 'decompression bomb', base: 'native', isolate: true, timeoutMs: 30_000,
        description: `000012.sst: its first data block is a ${name} bomb (compression type ${type}); MANIFEST and sst_manifest.json consistent`,
        expect: 'reject',
        apply: async (sb) => {
          table ??= cachedBomb(name, make).then((stored) => bombTable(type, stored, 12));
          installTable(sb, await table);
        },
      });
    }

    // RocksDB MANIFEST and CURRENT.
    const MF = `${NATIVE_EPOCH}/MANIFEST-000005`;
    const mfBytes = readFileSync(join(nat.template, 'base', MF));
    const recs: number[] = [];
    for await (const r of readLog(fileAt(locate(join(nat.template, 'base', MF)), mfBytes.length))) recs.push(r.offset);
    const mcuts = new Set<number>([0, 3, 6, 7, mfBytes.length - 1, Math.floor(mfBytes.length / 2)]);
    for (const o of recs) { mcuts.add(o); mcuts.add(o + 7); mcuts.add(o + 12); }
    for (const at of [...mcuts].sort((a, b) => a - b)) {
      if (at >= mfBytes.length) continue;
      add({
        id: `rocks-manifest/native/truncate-${at}`, category: 'RocksDB MANIFEST truncation', base: 'native',
        description: `MANIFEST-000005 cut at byte ${at} of ${mfBytes.length}`, expect: 'reject',
        apply: (sb) => edit(baseFile(sb, MF), (x) => x.subarray(0, at)),
      });
    }
    for (const [name, at, bytes] of [
      ['crc', 0, [0x00]], ['length-huge', 4, [0xff, 0xff]], ['type-bad', 6, [0x09]], ['payload', 12, [0xff]], ['payload-end', mfBytes.length - 2, [0x7f]],
    ] as const) {
      add({
        id: `rocks-manifest/native/corrupt-${name}`, category: 'RocksDB MANIFEST corruption', base: 'native',
        description: `MANIFEST-000005: bytes at ${at} set to ${Buffer.from(bytes).toString('hex')}`, expect: 'reject',
        apply: (sb) => edit(baseFile(sb, MF), (x) => { const y = Buffer.from(x); y.set(bytes, Math.min(at, y.length - bytes.length)); return y; }),
      });
    }
    const CUR = `${NATIVE_EPOCH}/CURRENT`;
    for (const [name, content] of [['empty', ''], ['no-newline', 'MANIFEST-000005'], ['missing-manifest', 'MANIFEST-000099\n'], ['dotdot', '../../../../../etc/passwd\n'], ['absolute', '/etc/passwd\n'], ['nul', 'MANIFEST-000005\u0000\n'], ['long', `${'M'.repeat(100_000)}\n`], ['crlf', 'MANIFEST-000005\r\n']] as const) {
      add({
        id: `current/native/${name}`, category: 'RocksDB CURRENT', base: 'native',
        description: `CURRENT holds ${JSON.stringify(content.slice(0, 40))}`, expect: 'reject',
        apply: (sb) => writeFileSync(baseFile(sb, CUR), content),
      });
    }
  }

  // ---- WAL (a database made by real RocksDB with unflushed writes)
  const walB = has('wal');
  if (walB) {
    const epochDir = join(walB.template, 'base', 'shop', 'incr', 'windows', 'task-0', 'epochs', '00000000000000000007');
    const logName = readdirSync(epochDir).find((f) => f.endsWith('.log'));
    if (logName) {
      const LOG = `shop/incr/windows/task-0/epochs/00000000000000000007/${logName}`;
      const logBytes = readFileSync(join(walB.template, 'base', LOG));
      const recs: number[] = [];
      for await (const r of readLog(fileAt(locate(join(walB.template, 'base', LOG)), logBytes.length))) recs.push(r.offset);
      const wcuts = new Set<number>([0, 7, logBytes.length - 1]);
      for (const o of recs.slice(0, 8)) { wcuts.add(o); wcuts.add(o + 4); wcuts.add(o + 7); wcuts.add(o + 7 + 12); }
      for (const at of [...wcuts].sort((a, b) => a - b)) {
        if (at >= logBytes.length) continue;
        add({
          id: `wal/wal/truncate-${at}`, category: 'WAL truncation', base: 'wal',
          // RocksDB tolerates a torn tail of the WAL (point-in-time recovery): typed either way.
          description: `${logName} cut at byte ${at} of ${logBytes.length}`, expect: 'typed',
          apply: (sb) => edit(baseFile(sb, LOG), (x) => x.subarray(0, at)),
        });
      }
      const r0 = recs[0] ?? 0;
      for (const [name, at, bytes, expect] of [
        ['crc', r0, [0x00, 0x00], 'typed'], ['length-huge', r0 + 4, [0xff, 0xff], 'typed'], ['type-bad', r0 + 6, [0x0c], 'typed'],
        ['batch-count-huge', r0 + 7 + 8, [0xff, 0xff, 0xff, 0x7f], 'typed'], ['batch-seq-max', r0 + 7, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 'typed'],
        ['key-length-huge', r0 + 7 + 13, [0xff, 0xff, 0xff, 0xff, 0x0f], 'typed'], ['tag-merge', r0 + 7 + 12, [0x02], 'typed'], ['tag-2pc', r0 + 7 + 12, [0x09], 'typed'],
      ] as const) {
        add({
          id: `wal/wal/corrupt-${name}`, category: 'WAL corruption', base: 'wal',
          description: `${logName}: bytes at ${at} set to ${Buffer.from(bytes).toString('hex')}`, expect: expect as Expect,
          apply: (sb) => edit(baseFile(sb, LOG), (x) => { const y = Buffer.from(x); if (at + bytes.length <= y.length) y.set(bytes, at); return y; }),
        });
      }
      add({
        id: 'wal/wal/huge-sparse', category: 'WAL corruption', base: 'wal', isolate: true, timeoutMs: 60_000,
        description: `${logName} extended to 2 GiB with a sparse hole (zeros)`, expect: 'typed',
        apply: (sb) => sparse(baseFile(sb, LOG), '2G'),
      });
      add({
        id: 'wal/wal/fifo', category: 'FIFO', base: 'wal', isolate: true, timeoutMs: 30_000,
        description: `${logName} replaced by a FIFO: ksp must not block on it`, expect: 'reject',
        apply: (sb) => replaceWithFifo(baseFile(sb, LOG)),
      });
    }
  }

  // ---- symlinks, FIFOs, special files, folders where files should be
  for (const base of ['rel', 'engine'] as const) {
    const fs: Array<[string, string, (sb: Sandbox) => void, Expect, boolean?]> = [
      ['state-symlink-outside-copy', `${REL_STATE} is a symlink to an identical copy outside the savepoint (hashes match)`, (sb) => replaceWithSymlink(spFile(sb, REL_STATE), join(sb.outside, 'state.bin')), 'reject'],
      ['state-symlink-relative-outside', `${REL_STATE} is a relative symlink ../../../outside/state.bin`, (sb) => replaceWithSymlink(spFile(sb, REL_STATE), base === 'rel' ? '../../../outside/state.bin' : '../../../../../../outside/state.bin'), 'reject'],
      ['metadata-symlink-outside', 'metadata.json is a symlink to an identical copy outside', (sb) => replaceWithSymlink(spFile(sb, 'metadata.json'), join(sb.outside, 'metadata.json')), 'reject'],
      ['operator-dir-symlink-outside', 'the orders-agg folder is a symlink to an identical folder outside', (sb) => replaceWithSymlink(spFile(sb, 'orders-agg'), join(sb.outside, 'orders-agg')), 'reject'],
      ['state-symlink-etc-passwd', `${REL_STATE} is a symlink to /etc/passwd, manifest updated to its hash`, (sb) => { replaceWithSymlink(spFile(sb, REL_STATE), '/etc/passwd'); manifestSet(sb.sp, REL_STATE, sha(readFileSync('/etc/passwd'))); }, 'reject'],
      ['state-symlink-environ', `${REL_STATE} is a symlink to /proc/self/environ`, (sb) => replaceWithSymlink(spFile(sb, REL_STATE), '/proc/self/environ'), 'reject'],
      ['state-symlink-dev-null', `${REL_STATE} is a symlink to /dev/null, manifest says empty`, (sb) => { replaceWithSymlink(spFile(sb, REL_STATE), '/dev/null'); manifestSet(sb.sp, REL_STATE, sha(Buffer.alloc(0))); }, 'reject'],
      ['state-symlink-dev-zero', `${REL_STATE} is a symlink to /dev/zero (endless)`, (sb) => replaceWithSymlink(spFile(sb, REL_STATE), '/dev/zero'), 'reject', true],
      ['state-symlink-dangling', `${REL_STATE} is a dangling symlink`, (sb) => replaceWithSymlink(spFile(sb, REL_STATE), join(sb.outside, 'nothing-here')), 'reject'],
      ['state-symlink-loop', `${REL_STATE} is a symlink to itself`, (sb) => replaceWithSymlink(spFile(sb, REL_STATE), 'state.bin'), 'reject'],
      ['state-symlink-inside', `${REL_STATE} is a symlink to another task's state.bin inside the savepoint, manifest updated`, (sb) => { replaceWithSymlink(spFile(sb, REL_STATE), '../task-2/state.bin'); refreshManifest(sb.sp); }, 'typed'],
      ['state-fifo', `${REL_STATE} is a FIFO (nobody writes to it)`, (sb) => replaceWithFifo(spFile(sb, REL_STATE)), 'reject', true],
      ['metadata-fifo', 'metadata.json is a FIFO', (sb) => replaceWithFifo(spFile(sb, 'metadata.json')), 'reject', true],
      ['manifest-fifo', 'manifest.sha256 is a FIFO', (sb) => replaceWithFifo(spFile(sb, 'manifest.sha256')), 'reject', true],
      ['state-symlink-fifo-outside', `${REL_STATE} is a symlink to a FIFO outside`, (sb) => { replaceWithFifo(join(sb.outside, 'pipe')); replaceWithSymlink(spFile(sb, REL_STATE), join(sb.outside, 'pipe')); }, 'reject', true],
      ['state-is-dir', `${REL_STATE} is a folder`, (sb) => { rmSync(spFile(sb, REL_STATE)); mkdirSync(spFile(sb, REL_STATE)); }, 'reject'],
      ['metadata-is-dir', 'metadata.json is a folder', (sb) => { rmSync(spFile(sb, 'metadata.json')); mkdirSync(spFile(sb, 'metadata.json')); }, 'reject'],
      ['manifest-is-dir', 'manifest.sha256 is a folder', (sb) => { rmSync(spFile(sb, 'manifest.sha256')); mkdirSync(spFile(sb, 'manifest.sha256')); }, 'reject'],
      ['state-missing', `${REL_STATE} removed`, (sb) => rmSync(spFile(sb, REL_STATE)), 'reject'],
      ['metadata-missing', 'metadata.json removed', (sb) => rmSync(spFile(sb, 'metadata.json')), 'reject'],
      ['state-unreadable', `${REL_STATE} mode 000 (unreadable unless root)`, (sb) => execFileSync('chmod', ['000', spFile(sb, REL_STATE)]), 'typed'],
      ['state-symlink-sparse-1g', `${REL_STATE} is a symlink to a 1 GiB sparse file outside`, (sb) => { sparse(join(sb.outside, 'huge.bin'), '1G'); replaceWithSymlink(spFile(sb, REL_STATE), join(sb.outside, 'huge.bin')); }, 'reject', true],
      ['state-sparse-1g', `${REL_STATE} is itself a 1 GiB sparse file (hash mismatch)`, (sb) => { rmSync(spFile(sb, REL_STATE)); sparse(spFile(sb, REL_STATE), '1G'); }, 'reject', true],
    ];
    for (const [name, what, apply, expect, isolate] of fs) {
      add({
        id: `fs/${base}/${name}`, category: name.includes('fifo') ? 'FIFO' : name.includes('symlink') ? 'symlink' : name.includes('sparse') ? 'sparse file' : 'special file or folder', base,
        description: what, expect, isolate, timeoutMs: isolate ? 30_000 : undefined, apply,
      });
    }
    add({
      id: `fs/${base}/state-symlink-sparse-10g`, category: 'sparse file', base, isolate: true, timeoutMs: 30_000, commands: ['verify', 'inspect'],
      description: `${REL_STATE} is a symlink to a 10 GiB sparse file outside (read-only commands: a writer copying it would write 10 GB)`,
      expect: 'reject',
      apply: (sb) => { sparse(join(sb.outside, 'huge10.bin'), '10G'); replaceWithSymlink(spFile(sb, REL_STATE), join(sb.outside, 'huge10.bin')); },
    });
    add({
      id: `fs/${base}/savepoint-dir-symlink`, category: 'symlink', base,
      description: 'the savepoint directory is reached through a symlink the user typed (a documented acceptance: the root is resolved once)',
      expect: 'typed',
      apply: (sb) => { execFileSync('ln', ['-s', sb.sp, join(sb.root, 'sp-link')]); },
      source: (sb) => join(sb.root, 'sp-link'),
    });
  }
  // Native files: symlinks and FIFOs.
  for (const [name, what, apply, expect, isolate] of [
    ['sst-symlink-outside', '000012.sst is a symlink to an identical copy outside the storage base', (sb: Sandbox) => replaceWithSymlink(baseFile(sb, `${NATIVE_TASK}/sst/000012.sst`), join(sb.outside, 'sst', '000012.sst')), 'reject', false],
    ['sst-dir-symlink-outside', 'the task\'s sst/ folder is a symlink to an identical folder outside', (sb: Sandbox) => replaceWithSymlink(baseFile(sb, `${NATIVE_TASK}/sst`), join(sb.outside, 'sst')), 'reject', false],
    ['sst-fifo', '000012.sst is a FIFO', (sb: Sandbox) => replaceWithFifo(baseFile(sb, `${NATIVE_TASK}/sst/000012.sst`)), 'reject', true],
    ['sst-manifest-fifo', 'sst_manifest.json is a FIFO', (sb: Sandbox) => replaceWithFifo(baseFile(sb, `${NATIVE_EPOCH}/sst_manifest.json`)), 'reject', true],
    ['current-fifo', 'CURRENT is a FIFO', (sb: Sandbox) => replaceWithFifo(baseFile(sb, `${NATIVE_EPOCH}/CURRENT`)), 'reject', true],
    ['manifest-symlink-environ', 'MANIFEST-000005 is a symlink to /proc/self/environ', (sb: Sandbox) => replaceWithSymlink(baseFile(sb, `${NATIVE_EPOCH}/MANIFEST-000005`), '/proc/self/environ'), 'reject', false],
    ['sst-symlink-dev-zero', '000012.sst is a symlink to /dev/zero', (sb: Sandbox) => replaceWithSymlink(baseFile(sb, `${NATIVE_TASK}/sst/000012.sst`), '/dev/zero'), 'reject', true],
    ['pointer-symlink-outside', 'the pointer state.bin is a symlink to a copy outside', (sb: Sandbox) => { cpSync(spFile(sb, 'windows/task-0/state.bin'), join(sb.outside, 'pointer.bin')); replaceWithSymlink(spFile(sb, 'windows/task-0/state.bin'), join(sb.outside, 'pointer.bin')); }, 'reject', false],
    ['sst-is-dir', '000012.sst is a folder', (sb: Sandbox) => { rmSync(baseFile(sb, `${NATIVE_TASK}/sst/000012.sst`)); mkdirSync(baseFile(sb, `${NATIVE_TASK}/sst/000012.sst`)); }, 'reject', false],
    ['sst-sparse-1g', '000012.sst is a 1 GiB sparse file, sst_manifest.json size updated', (sb: Sandbox) => { rmSync(baseFile(sb, `${NATIVE_TASK}/sst/000012.sst`)); sparse(baseFile(sb, `${NATIVE_TASK}/sst/000012.sst`), '1G'); textEdit(baseFile(sb, `${NATIVE_EPOCH}/sst_manifest.json`), /"size_bytes": \d+/, '"size_bytes": 1073741824'); }, 'reject', true],
  ] as const) {
    add({
      id: `fs/native/${name}`, category: name.includes('fifo') ? 'FIFO' : name.includes('symlink') ? 'symlink' : name.includes('sparse') ? 'sparse file' : 'special file or folder', base: 'native',
      description: what, expect: expect as Expect, isolate, timeoutMs: isolate ? 30_000 : undefined, apply,
    });
  }

  // ---- targets: the writers must never reach the source through the target
  for (const base of ['rel', 'engine'] as const) {
    const t: Array<[string, string, (sb: Sandbox, cmd: Cmd) => string, string[], ((sb: Sandbox, cmd: Cmd, out: string) => string[])?]> = [
      ['symlink-to-source-overwrite', 'the target is a symlink to the source, with --overwrite', (sb) => { const l = join(sb.root, 'link'); execFileSync('ln', ['-s', sb.sp, l]); return l; }, ['--overwrite']],
      ['symlink-parent-to-source', 'the target is a new folder inside a symlink to the source', (sb) => { const l = join(sb.root, 'link'); execFileSync('ln', ['-s', sb.sp, l]); return join(l, 'nested'); }, []],
      ['source-itself-overwrite', 'the target is the source itself, with --overwrite', (sb) => sb.sp, ['--overwrite']],
      ['inside-source', 'the target is a new folder inside the source', (sb) => join(sb.sp, 'nested-out'), []],
      ['parent-of-source-overwrite', 'the target is the folder holding the source, with --overwrite', (sb) => dirnameOf(sb.sp), ['--overwrite']],
      ['foreign-file-overwrite', 'the target holds a file ksp did not write, with --overwrite (it must be refused or kept)', (sb, cmd) => { const o = join(sb.root, `out-${cmd}`); put(join(o, 'keep-me.txt'), 'user data'); return o; }, ['--overwrite'],
        (_sb, _cmd, out) => (existsSync(join(out, 'keep-me.txt')) ? [] : ['--overwrite deleted a file ksp did not write (keep-me.txt)'])],
      ['leftover-tmp-no-overwrite', 'the target holds only a leftover *.ksp-tmp-* file, no --overwrite (it is not empty)', (sb, cmd) => { const o = join(sb.root, `out-${cmd}`); put(join(o, 'metadata.json.ksp-tmp-1234'), 'partial'); return o; }, [],
        (_sb, _cmd, out) => (existsSync(join(out, 'metadata.json.ksp-tmp-1234')) || !existsSync(join(out, 'manifest.sha256')) ? [] : ['sealed a target over a leftover temporary file'])],
    ];
    for (const [name, what, target, writeArgs, after] of t) {
      add({
        id: `target/${base}/${name}`, category: 'unsafe target', base, commands: WRITERS,
        description: what, expect: name === 'leftover-tmp-no-overwrite' || name === 'foreign-file-overwrite' ? 'typed' : 'reject',
        apply: () => undefined, target, writeArgs, after,
      });
    }
  }
  return cases;
}

function dirnameOf(p: string): string {
  return join(p, '..');
}
