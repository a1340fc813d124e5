import { bytes } from './output.js';

/**
 * Throughput and ETA on stderr, only when stderr is a terminal (never in
 * pipes, logs or CI), redrawn at most four times a second.
 */
export class Progress {
  private done = 0;
  private total = 0;
  private readonly start = Date.now();
  private last = 0;
  private readonly enabled: boolean;

  constructor(private readonly label: string, enabled = true) {
    this.enabled = enabled && process.stderr.isTTY === true && !process.env.CI && (process.stderr.columns ?? 0) > 20;
  }

  setTotal(n: number): void {
    this.total = n;
  }

  add = (n: number): void => {
    this.done += n;
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 250) return;
    this.last = now;
    const secs = (now - this.start) / 1000;
    const rate = this.done / Math.max(secs, 0.001);
    const pct = this.total ? ` ${((100 * this.done) / this.total).toFixed(0)}%` : '';
    const eta = this.total && rate > 0 ? `  ETA ${Math.max(0, (this.total - this.done) / rate).toFixed(0)}s` : '';
    const text = `${this.label}: ${bytes(this.done)}${this.total ? ' / ' + bytes(this.total) : ''}${pct}  ${bytes(rate)}/s${eta}`;
    process.stderr.write(`\r${text.slice(0, (process.stderr.columns ?? 80) - 1)}\x1b[K`);
  };

  /** Same, counting rows instead of bytes. */
  rows = (n: number): void => {
    this.done += n;
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 250) return;
    this.last = now;
    const rate = this.done / Math.max((now - this.start) / 1000, 0.001);
    process.stderr.write(`\r${this.label}: ${this.done.toLocaleString('en-US')} entries  ${Math.round(rate).toLocaleString('en-US')}/s\x1b[K`);
  };

  end(): void {
    if (this.enabled && this.last) process.stderr.write('\r\x1b[K');
  }
}
