/**
 * stdout carries data (reports, entries, JSON) and nothing else; messages and
 * progress go to stderr. A closed pipe (`ksp inspect … | head`) ends quietly.
 */

process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

/**
 * Human output names local files relative to the working directory, as the
 * user typed them; JSON output keeps full paths.
 */
export function shown(text: string): string {
  const cwd = process.cwd();
  return cwd === '/' ? text : text.split(cwd + '/').join('');
}

/** Writes to stdout, waiting when the pipe is full so memory stays bounded. */
export async function out(text: string): Promise<void> {
  if (!process.stdout.write(text)) await new Promise<void>((r) => process.stdout.once('drain', () => r()));
}

/** Clears the progress line being drawn (progress.ts), if any. */
let statusLine: (() => void) | null = null;

/** Set by progress.ts while it has a line drawn on stderr: err() clears it before writing. */
export function setStatusLine(clear: (() => void) | null): void {
  statusLine = clear;
}

export function err(text: string): void {
  // A note or error mid-run starts on a clean line, not after the progress text.
  statusLine?.();
  process.stderr.write(text.endsWith('\n') ? text : text + '\n');
}

export function json(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint32Array ? undefined : v), 2) + '\n';
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

/** Fixed-width table for human output. */
export function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}
