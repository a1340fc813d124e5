import type { Routing } from '../model/routing.js';
import { LocalStorage } from '../storage/local.js';
import type { Storage } from '../storage/storage.js';

/**
 * Units of write work that are plain data: file paths and specs, never
 * functions or open handles, so a pool of worker threads (unit-pool.ts) can
 * run them, and the same unit could run in another process. The main thread
 * plans them and commits what they produce (write/execute.ts); a unit never
 * decides what is sealed.
 */

/**
 * Reads one canonical `state.bin` v1 and routes every entry: the output
 * index per entry (`BROADCAST` for entries copied to every output), and per
 * output the entries and bytes it gets, so every output file's size and
 * header are known before a byte of it is written.
 */
export interface RouteUnit {
  kind: 'route';
  path: string;
  size: number;
  /** The source manifest's hash, checked when the last byte has been read. */
  sha256?: string;
  routing: Routing;
  /** Output index of each key-group range (`rangeOwnersByName`). */
  owners: number[];
}

export interface RouteResult {
  kind: 'route';
  /**
   * Why this file cannot take the fast path (not state.bin v1, malformed,
   * hash mismatch, too many broadcast bytes): the caller then runs the
   * streaming path, which reports the exact error.
   */
  fallback?: string;
  entries: number;
  routes: Uint16Array;
  counts: number[];
  bytes: number[];
  /** Broadcast entries, each its encoded bytes, in file order. */
  broadcast: Array<{ index: number; raw: Uint8Array }>;
  /**
   * Per output j: `sums[2j]`, `sums[2j + 1]` the key-multiset sums of the
   * routing keys routed to it (bytes/key-multiset.ts), and
   * `groups[1024j .. 1024j + 1024)` a bitmap of their key groups: what the
   * re-verify holds the written output to (model/scan-file.ts `PlacementProof`).
   */
  sums: Int32Array;
  groups: Uint32Array;
}

/** Copies one source's routed entries to their places in the output files, whose sizes are already fixed. */
export interface PlaceUnit {
  kind: 'place';
  path: string;
  size: number;
  routes: Uint16Array;
  /** Per output: its (temporary) file, where this source's entries start, and how many bytes they take. */
  outs: Array<{ path: string; offset: number; bytes: number }>;
}

export interface PlaceResult {
  kind: 'place';
  entries: number;
}

/** SHA-256 and size of a written file. */
export interface HashUnit {
  kind: 'hash';
  path: string;
}

export interface HashResult {
  kind: 'hash';
  sha256: string;
  size: number;
}

/** One migration, as its module file and the registry's operator name and versions. */
export interface MigrationSpec {
  module: string;
  operator: string;
  from: number;
  to: number;
}

/**
 * One task's entries rewritten through migrations and renames (keys kept,
 * so the count is the source's): the streaming rewrite of write/execute.ts,
 * run where the unit is, with the steps loaded again from their module.
 */
export interface RewriteUnit {
  kind: 'rewrite';
  source: { path: string; operatorId: string; taskId: string; sha256?: string };
  out: string;
  migrations: MigrationSpec[];
  renames: Array<[string, string]>;
}

export interface RewriteResult {
  kind: 'rewrite';
  sha256: string;
  size: number;
  /** Bytes read from the source. */
  read: number;
  entries: number;
  /** Per step, in the order of the flattened chains: entries transformed, and entries of its operator passed through. */
  steps: Array<{ transformed: number; passed: number }>;
}

export type Unit = RouteUnit | PlaceUnit | HashUnit | RewriteUnit;
export type UnitResult<U extends Unit> = U extends RouteUnit ? RouteResult : U extends PlaceUnit ? PlaceResult : U extends RewriteUnit ? RewriteResult : HashResult;

/**
 * Units read and write files by path, past the Storage interface: only on
 * local disk, and only through LocalStorage itself (a subclass may change
 * how files are written, as the tests' failing storages do).
 */
export function unitPathOf(storage: Storage, key: string): string | null {
  if (process.env.KSP_WRITE_UNITS === '0') return null;
  return storage instanceof LocalStorage && Object.getPrototypeOf(storage) === LocalStorage.prototype ? storage.pathOf(key) : null;
}

/** Route of an entry copied to every output. */
export const BROADCAST = 0xffff;
