/**
 * The writing commands allocate and free many large buffers (sort runs,
 * blocks, read and write chunks). glibc's malloc answers a freed large
 * buffer by raising its mmap threshold, and then keeps freed memory instead
 * of returning it: RSS climbs by 100 MB and more over a run. A fixed trim
 * threshold (which also fixes the mmap threshold) makes it give memory back.
 * glibc reads it only at start-up, so `bin/ksp.js` starts these commands in
 * a child process with it set; other libcs ignore the variable.
 */

export const WRITING_COMMANDS = new Set(['migrate', 'rescale', 'relocate', 'edit', 'convert', 'import', 'work']);

export const MALLOC_ENV = { MALLOC_TRIM_THRESHOLD_: String(1024 * 1024) };

/** True when `argv` (without node and script) runs a writing command in a process that lacks the setting. */
export function needsMallocEnv(argv: string[], env: NodeJS.ProcessEnv = process.env): boolean {
  const command = argv.find((a) => !a.startsWith('-'));
  return process.platform === 'linux' && command !== undefined && WRITING_COMMANDS.has(command) && env.MALLOC_TRIM_THRESHOLD_ === undefined;
}

/**
 * V8 flags of that child. A young generation of 4 MiB semi-spaces instead
 * of V8's 16: a write of 200,000 tasks kept ~30 MB of young-generation
 * pages through its re-verify (issue 12's 256 MB budget), and a 2M-entry
 * migrate peaked at 182 MB instead of 233 MB, at the same CPU time
 * (rescale and migrate measured side by side). A flag the user gives
 * (in NODE_OPTIONS or on node's command line) wins.
 */
export const WRITER_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

/** WRITER_NODE_FLAGS the user has not set already. */
export function writerNodeFlags(execArgv: readonly string[] = process.execArgv, env: NodeJS.ProcessEnv = process.env): string[] {
  const given = [...execArgv, ...(env.NODE_OPTIONS ?? '').split(/\s+/)];
  return WRITER_NODE_FLAGS.filter((f) => !given.some((g) => g.startsWith(f.slice(0, f.indexOf('=')))));
}
