import type { Routing } from '../model/routing.js';

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

export type Unit = RouteUnit | PlaceUnit | HashUnit;
export type UnitResult<U extends Unit> = U extends RouteUnit ? RouteResult : U extends PlaceUnit ? PlaceResult : HashResult;

/** Route of an entry copied to every output. */
export const BROADCAST = 0xffff;
