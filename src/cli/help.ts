import type { Argv } from 'yargs';

/**
 * `--help` layout that keeps examples copyable. yargs puts examples in a
 * two-column table and hard-wraps every cell to the width, so a long example
 * broke mid-command; its epilog wrapping also split code lines and re-wrapped
 * our pre-broken prose into ragged lines. Here yargs renders usage, commands
 * and options as before, and ksp renders examples and epilogs itself: each
 * example on a line of its own, never broken (a terminal narrower than it
 * soft-wraps it, and copying gives it back whole), prose reflowed to the
 * width, indented (code) lines kept as they are.
 */

/** Help width: the terminal's (COLUMNS when set, e.g. by a shell, else the tty's), 100 when not a terminal; 40..110. */
export function helpWidth(): number {
  const env = Number(process.env.COLUMNS);
  const cols = Number.isInteger(env) && env > 0 ? env : process.stdout.columns || 100;
  return Math.max(40, Math.min(110, cols));
}

interface Collected {
  examples: Array<[string, string]>;
  epilog: string | undefined;
}

/**
 * Makes the parser collect `.example()` and `.epilog()` calls instead of
 * handing them to yargs. Returns `enterCommand`, to call as a command's
 * builder starts (yargs then drops the top-level epilog too), and `render`,
 * which completes yargs' help output.
 */
export function captureHelp(parser: Argv<any>): { enterCommand: () => void; render: (yargsHelp: string) => string } {
  const c: Collected = { examples: [], epilog: undefined };
  const p = parser as unknown as Record<string, unknown>;
  p.example = (cmd: string | Array<[string, string?]>, description?: string) => {
    for (const [x, d] of Array.isArray(cmd) ? cmd : [[cmd, description] as [string, string?]]) c.examples.push([x, d ?? '']);
    return parser;
  };
  p.epilog = p.epilogue = (text: string) => {
    c.epilog = c.epilog === undefined ? text : `${c.epilog}\n\n${text}`;
    return parser;
  };
  return {
    enterCommand: () => {
      c.examples = [];
      c.epilog = undefined;
    },
    render: (yargsHelp) => renderHelp(yargsHelp.replace(/\s+$/, ''), c.examples, c.epilog, helpWidth()),
  };
}

export function renderHelp(head: string, examples: Array<[string, string]>, epilog: string | undefined, width: number): string {
  const parts = [head];
  if (examples.length > 0) {
    const lines = ['Examples:'];
    examples.forEach(([cmd, desc], i) => {
      if (i > 0) lines.push('');
      if (desc) lines.push(...wrapWords(desc, width - 4).map((l) => `  # ${l}`));
      lines.push(`  ${cmd}`);
    });
    parts.push(lines.join('\n'));
  }
  if (epilog) parts.push(reflow(epilog, width));
  return parts.join('\n\n') + '\n';
}

/**
 * Paragraphs (split at blank lines) are joined and wrapped to the width;
 * lines that start with white space are code and stay as they are.
 */
export function reflow(text: string, width: number): string {
  return text.split(/\n\s*\n/).map((para) => {
    const out: string[] = [];
    let prose: string[] = [];
    const flush = (): void => {
      if (prose.length > 0) out.push(...wrapWords(prose.join(' '), width));
      prose = [];
    };
    for (const line of para.split('\n')) {
      if (/^\s/.test(line)) {
        flush();
        out.push(line.replace(/\s+$/, ''));
      } else prose.push(line.trim());
    }
    flush();
    return out.join('\n');
  }).join('\n\n');
}

/** Greedy word wrap; a word longer than the width stays whole on its own line. */
export function wrapWords(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line === '') line = word;
    else if (line.length + 1 + word.length <= width) line += ` ${word}`;
    else {
      lines.push(line);
      line = word;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}
