import { KspError } from '../errors.js';
import { runHash, runPlace, runRoute } from './route-pass.js';
import type { Unit, UnitResult } from './units.js';

/** Runs one unit in this thread: what a pool worker does with each message. */
export async function runUnit<U extends Unit>(unit: U): Promise<UnitResult<U>> {
  switch (unit.kind) {
    case 'route':
      return (await runRoute(unit)) as UnitResult<U>;
    case 'place':
      return (await runPlace(unit)) as UnitResult<U>;
    case 'hash':
      return (await runHash(unit)) as UnitResult<U>;
    case 'rewrite': {
      // Loaded on first use: a thread that only routes never compiles the decoders and codecs.
      const { runRewrite } = await import('./rewrite-unit.js');
      return (await runRewrite(unit)) as UnitResult<U>;
    }
  }
  throw new Error(`unknown unit ${(unit as Unit).kind}`);
}

/**
 * What a failed unit reports, wherever it ran: a KspError as it is, a system
 * error (ENOSPC, EACCES: it has a syscall) as STORAGE_IO naming its path,
 * anything else as INTERNAL.
 */
export function unitError(e: unknown): KspError {
  if (e instanceof KspError) return e;
  const err = e as Error & { syscall?: unknown; path?: unknown };
  if (typeof err?.syscall === 'string') {
    const file = typeof err.path === 'string' ? err.path : undefined;
    return new KspError('STORAGE_IO', `${file ?? 'write'}: ${err.message} (for a full disk, free space or write elsewhere)`, file ? { file } : {}, { cause: e });
  }
  return new KspError('INTERNAL', err?.message ?? String(e), {}, { cause: e });
}
