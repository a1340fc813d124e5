import { KspError } from '../errors.js';

/**
 * Files a source refers to that do not exist, collected while planning so
 * one error names them all, but bounded: the first few are kept and the rest
 * only counted (a metadata.json of 200,000 snapshots must not make a
 * 200,000-line error, nor hold 200,000 strings).
 */
export const MISSING_SHOWN = 20;

export class MissingFiles {
  readonly shown: string[] = [];
  count = 0;

  /** Array-like `push`, so code that collects into a string[] can collect here. */
  push(...items: string[]): number {
    for (const it of items) {
      this.count++;
      if (this.shown.length < MISSING_SHOWN) this.shown.push(it);
    }
    return this.count;
  }

  get length(): number {
    return this.count;
  }

  /** FILES_MISSING naming the first file on its first line, then at most MISSING_SHOWN, then how many more. */
  error(): KspError {
    const more = this.count - this.shown.length;
    const list = this.shown.join('\n  ') + (more > 0 ? `\n  and ${more} more` : '');
    return new KspError('FILES_MISSING', `${this.shown[0]}: missing; ${this.count} file(s) the source refers to are missing, so nothing was written:\n  ${list}`, {
      file: this.shown[0]?.replace(/ \(.*\)$/, ''), count: this.count, missing: this.shown,
    });
  }
}
