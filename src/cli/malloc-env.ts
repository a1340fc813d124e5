/**
 * The writing commands allocate and free many large buffers (sort runs,
 * blocks, read and write chunks). glibc's malloc answers a freed large
 * buffer by raising its mmap threshold, and then keeps freed memory instead
 * of returning it: RSS climbs by 100 MB and more over a run. A fixed trim
 * threshold (which also fixes the mmap threshold) makes it give memory back.
 * glibc reads it only at start-up, so `bin/ksp.js` starts these commands in
 * a child process with it set; other libcs ignore the variable.
 */

export const WRITING_COMMANDS = new Set(['migrate', 'rescale', 'relocate', 'edit', 'convert', 'work']);

export const MALLOC_ENV = { MALLOC_TRIM_THRESHOLD_: String(1024 * 1024) };

/** True when `argv` (without node and script) runs a writing command in a process that lacks the setting. */
export function needsMallocEnv(argv: string[], env: NodeJS.ProcessEnv = process.env): boolean {
  const command = argv.find((a) => !a.startsWith('-'));
  return process.platform === 'linux' && command !== undefined && WRITING_COMMANDS.has(command) && env.MALLOC_TRIM_THRESHOLD_ === undefined;
}
