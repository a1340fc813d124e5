import { setFlagsFromString } from 'node:v8';

/**
 * V8 lets its heap grow to up to four times what survived the last full
 * collection before it collects again. ksp's live memory grows with the
 * metadata (200,000 tasks hold ~100 MB), and a verify of 200,000 small
 * files makes short-lived garbage all along: with the default policy the
 * process reached 550 MB for 110 MB live. Growth of 10% keeps peak RSS near
 * what is live (issue 12's 256 MB budget, and a Kubernetes pod's memory
 * limit), at the price of more frequent collections, which measured no
 * slower here: the larger heap's collections cost as much.
 * KSP_HEAP_GROWTH_PERCENT overrides it (0 keeps V8's default).
 */
export const HEAP_GROWTH_PERCENT = 10;

export function tuneHeap(env: NodeJS.ProcessEnv = process.env): void {
  const raw = env.KSP_HEAP_GROWTH_PERCENT;
  const percent = raw === undefined || raw === '' ? HEAP_GROWTH_PERCENT : Number(raw);
  if (!Number.isInteger(percent) || percent <= 0) return;
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}
