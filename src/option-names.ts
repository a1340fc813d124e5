/**
 * A refusal names the option that overrides it, and that name depends on the
 * caller: `--overwrite` on the command line, `{ overwrite: true }` for a
 * library user (who has no --overwrite to pass). The CLI says so once at
 * start; the setting lives in the environment so the worker threads it
 * starts (which inherit a copy) word their errors the same way.
 */

const ENV = 'KSP_OPTION_NAMES';

const NAMES = {
  overwrite: { cli: '--overwrite', library: '{ overwrite: true }' },
  forceUnlock: { cli: '--force-unlock', library: '{ forceUnlock: true }' },
  trustSource: { cli: '--trust-source', library: '{ trustSource: true }' },
  allowRoot: { cli: '--allow-root', library: "{ allowRoots: ['<folder>'] } (Savepoint.open)" },
  allowUnmatched: { cli: '--allow-unmatched', library: '{ allowUnmatched: true }' },
  epoch: { cli: '--epoch', library: '{ epoch } (write options)' },
  modeEngine: { cli: '--mode engine', library: "{ mode: 'engine' }" },
} as const;

export type OptionName = keyof typeof NAMES;

/** Called by the CLI before it does anything. */
export function useCliOptionNames(): void {
  process.env[ENV] = 'cli';
}

/** How the caller spells an option: the CLI flag, or the library option. */
export function optionName(o: OptionName): string {
  return NAMES[o][process.env[ENV] === 'cli' ? 'cli' : 'library'];
}
