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
    this.tick(n, (done, rate) => {
      const pct = this.total ? ` ${((100 * done) / this.total).toFixed(0)}%` : '';
      const eta = this.total && rate > 0 ? `  ETA ${Math.max(0, (this.total - done) / rate).toFixed(0)}s` : '';
      return `${bytes(done)}${this.total ? ' / ' + bytes(this.total) : ''}${pct}  ${bytes(rate)}/s${eta}`;
    });
  };

  /** Same, counting rows instead of bytes. */
  rows = (n: number): void => {
    this.tick(n, (done, rate) => `${done.toLocaleString('en-US')} entries  ${Math.round(rate).toLocaleString('en-US')}/s`);
  };

  private tick(n: number, render: (done: number, ratePerSec: number) => string): void {
    this.done += n;
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 250) return;
    this.last = now;
    const rate = this.done / Math.max((now - this.start) / 1000, 0.001);
    const text = `${this.label}: ${render(this.done, rate)}`;
    process.stderr.write(`\r${text.slice(0, (process.stderr.columns ?? 80) - 1)}\x1b[K`);
  }

  end(): void {
    if (this.enabled && this.last) process.stderr.write('\r\x1b[K');
  }
}
