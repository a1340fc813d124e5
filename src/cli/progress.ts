import { bytes, count, setStatusLine } from './output.js';

/**
 * One line of progress on stderr for a long command: per phase its name,
 * done / total, percent, rate and ETA, e.g.
 *
 *   rescale · write  14 MiB / 56 MiB  25%  12 MiB/s  ETA 3s
 *
 * Drawn only when stderr is a terminal (never in pipes, logs or CI, never
 * with --quiet or --no-progress), redrawn at most every
 * KSP_PROGRESS_INTERVAL_MS (default 250 ms), cleared at the end and before
 * any other stderr line (output.ts err()). stdout is never touched, so
 * --json output never mixes with it.
 *
 * Adopting it in a command (a line or two):
 *
 *   const progress = Progress.for('diff', args);       // args: --quiet, --no-progress
 *   progress.phase('read', totalBytes);                // each phase with its total; 'entries' as 3rd argument counts entries
 *   await work({ onBytes: progress.add });             // what is done, as it is done
 *   progress.end();                                    // clears the line
 *
 * or hand `progress.hooks` ({ onPhase, onTotal, onBytes }) to a library call
 * that reports its own phases and totals (verify, inspect, the writer).
 *
 * A total still being added up (a scan that sizes its files chunk by chunk
 * estimates the rest from the part sized) is given with exact = false: it
 * is shown as an estimate (~), and so are the percent and the ETA, rather
 * than as a figure that looks sure and is not.
 */
export type ProgressUnit = 'bytes' | 'entries';

export interface ProgressHooks {
  onPhase: (name: string) => void;
  onTotal: (n: number, exact?: boolean) => void;
  onBytes: (n: number) => void;
}

export class Progress {
  private name = '';
  private unit: ProgressUnit = 'bytes';
  private done = 0;
  private total: number | undefined;
  private exact = true;
  /** When the phase's first work was done (its sizing is not counted against its rate); 0 before. */
  private start = 0;
  private last = -Infinity;
  private drawn = false;
  /** False when nothing is drawn (not a terminal, CI, --quiet, --no-progress). */
  readonly enabled: boolean;
  private readonly interval: number;

  /** Progress for a command, off with --quiet or --no-progress. */
  static for(label: string, args: { quiet?: boolean; progress?: boolean }): Progress {
    return new Progress(label, args.progress !== false && !args.quiet);
  }

  constructor(private readonly label: string, enabled = true) {
    this.enabled = enabled && process.stderr.isTTY === true && !process.env.CI && width() > 20;
    const ms = Number(process.env.KSP_PROGRESS_INTERVAL_MS);
    this.interval = Number.isFinite(ms) && ms >= 0 ? ms : 250;
    this.name = label;
  }

  /** Starts a phase: its counts start from zero; `total` undefined when not known (yet). */
  phase = (name: string, total?: number, unit: ProgressUnit = 'bytes'): void => {
    this.name = name === this.label || name === '' ? this.label : `${this.label} · ${name}`;
    this.unit = unit;
    this.done = 0;
    this.total = total;
    this.exact = true;
    this.start = 0;
    this.draw(true);
  };

  /** The current phase's total; exact = false while it is an estimate. */
  setTotal = (n: number, exact = true): void => {
    this.total = n;
    this.exact = exact;
  };

  /** Work done since the last call (bytes, or entries for an 'entries' phase). */
  add = (n: number): void => {
    if (this.start === 0) this.start = performance.now();
    this.done += n;
    this.draw(false);
  };

  /**
   * For library options that report phases, totals and bytes; empty when
   * nothing is drawn, so a library spends nothing on totals nobody sees.
   */
  get hooks(): Partial<ProgressHooks> {
    return this.enabled ? { onPhase: (name) => this.phase(name), onTotal: this.setTotal, onBytes: this.add } : {};
  }

  end(): void {
    if (this.drawn) process.stderr.write('\r\x1b[K');
    this.drawn = false;
    setStatusLine(null);
  }

  private draw(force: boolean): void {
    if (!this.enabled) return;
    const now = performance.now();
    if (!force && now - this.last < this.interval) return;
    this.last = now;
    // The rate needs a moment's sample (a second, or four redraws when they come faster) before it says anything.
    const seconds = this.start === 0 ? 0 : (now - this.start) / 1000;
    const text = this.line(seconds >= Math.min(1, (4 * this.interval) / 1000) ? seconds : 0);
    process.stderr.write(`\r${text.slice(0, width() - 1)}\x1b[K`);
    if (!this.drawn) setStatusLine(() => this.end());
    this.drawn = true;
  }

  /** The text of the line after `seconds` of work in the phase (0: no rate yet). */
  line(seconds: number): string {
    const amount = this.unit === 'bytes' ? bytes : count;
    const unit = this.unit === 'bytes' ? '' : ' entries';
    const rate = seconds > 0 ? this.done / seconds : 0;
    const parts = [this.name];
    const t = this.total;
    // A phase just started, its total still being found: its name only.
    if (t === undefined && this.done === 0) return `${this.name}  …`;
    if (t === undefined) parts.push(`${amount(this.done)}${unit}`);
    else {
      const about = this.exact ? '' : '~';
      parts.push(`${amount(this.done)} / ${about}${amount(t)}${unit}`);
      parts.push(`${about}${t > 0 ? Math.min(100, Math.floor((100 * this.done) / t)) : 100}%`);
    }
    parts.push(seconds > 0 && this.done > 0 ? `${amount(Math.round(rate))}${unit}/s` : `–${unit}/s`);
    if (t !== undefined) parts.push(`ETA ${rate > 0 ? `${this.exact ? '' : '~'}${duration(Math.max(0, t - this.done) / rate)}` : '–'}`);
    return parts.join('  ');
  }
}

function width(): number {
  return process.stderr.columns || 80;
}

/** 42s, 3m05s, 2h07m. */
export function duration(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 90) return `${s}s`;
  if (s < 90 * 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
