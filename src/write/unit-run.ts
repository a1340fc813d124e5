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
