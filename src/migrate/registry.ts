import { KspError } from '../errors.js';
import type { Codec } from './codecs.js';

/**
 * The migrations a user registers (../model/FORMAT.md §10): per operator and
 * version step `v → v+1`, value-only steps and key+value steps, each
 * optionally limited to one state name. Built with `defineMigrations`:
 *
 *   export default defineMigrations((m) => {
 *     m.value('fraud', 1, 2, codecs.msgpack, codecs.msgpack, (old) => ({ ...old, model: 2 }), { state: 'score' });
 *     m.keyValue('orders-agg', 2, 3, { key: codecs.utf8, value: codecs.raw }, { key: codecs.utf8, value: codecs.raw },
 *       (key, value) => ({ key: key.toLowerCase(), value }));
 *   });
 */

export interface StepOptions {
  /** Only entries of this state name; others pass through the step unchanged. */
  state?: string;
}

export interface KeyValue<K, V> {
  key: K;
  value: V;
}

/** One registered transform, applied to the entries it matches within its step. */
export interface Step {
  operator: string;
  from: number;
  to: number;
  state?: string;
  kind: 'value' | 'keyValue';
  /** bytes in, bytes out; throws with the step's own message. */
  apply(key: Uint8Array, value: Uint8Array): { key: Uint8Array; value: Uint8Array };
  describe: string;
}

/** Where a step failed: reading the stored bytes, in the user's function, or encoding what it returned. */
export class StepError extends Error {
  constructor(readonly phase: 'decode' | 'step' | 'encode', override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

function phase<T>(p: StepError['phase'], f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw new StepError(p, e);
  }
}

export class MigrationBuilder {
  /** @internal */
  readonly steps: Step[] = [];

  /** A value-only step: the key is kept, the value decoded, transformed and encoded. */
  value<I, O>(operator: string, from: number, to: number, input: Codec<I>, output: Codec<O>, fn: (old: I) => O, options: StepOptions = {}): this {
    checkStep(operator, from, to);
    const describe = `${operator} ${from}→${to} value ${input.name}→${output.name}${options.state !== undefined ? ` (state ${options.state})` : ''}`;
    this.steps.push({
      operator, from, to, state: options.state, kind: 'value', describe,
      // Phases caught inline, not through phase(): three closures per entry were measurable on millions of entries.
      apply: (key, value) => {
        let p: StepError['phase'] = 'decode';
        try {
          const old = input.decode(value);
          p = 'step';
          const next = fn(old);
          p = 'encode';
          return { key, value: output.encode(next) };
        } catch (e) {
          throw new StepError(p, e);
        }
      },
    });
    return this;
  }

  /** A key+value step: both are decoded, transformed together and encoded. */
  keyValue<KI, VI, KO, VO>(
    operator: string, from: number, to: number,
    input: { key: Codec<KI>; value: Codec<VI> }, output: { key: Codec<KO>; value: Codec<VO> },
    fn: (key: KI, value: VI) => KeyValue<KO, VO>, options: StepOptions = {},
  ): this {
    checkStep(operator, from, to);
    const describe = `${operator} ${from}→${to} key ${input.key.name}→${output.key.name}, value ${input.value.name}→${output.value.name}${options.state !== undefined ? ` (state ${options.state})` : ''}`;
    this.steps.push({
      operator, from, to, state: options.state, kind: 'keyValue', describe,
      apply: (key, value) => {
        const k = phase('decode', () => input.key.decode(key));
        const v = phase('decode', () => input.value.decode(value));
        const r = phase('step', () => fn(k, v));
        if (r === null || typeof r !== 'object' || !('key' in r) || !('value' in r)) {
          throw new StepError('encode', new TypeError('a key+value step must return { key, value }'));
        }
        return { key: phase('encode', () => output.key.encode(r.key)), value: phase('encode', () => output.value.encode(r.value)) };
      },
    });
    return this;
  }
}

function checkStep(operator: string, from: number, to: number): void {
  if (typeof operator !== 'string' || operator === '') throw new KspError('MIGRATIONS_MODULE', 'a migration step needs a non-empty operator id');
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0) {
    throw new KspError('MIGRATIONS_MODULE', `${operator}: versions must be non-negative integers, got ${from} → ${to}`);
  }
  if (to !== from + 1) throw new KspError('MIGRATIONS_MODULE', `${operator}: a step goes one version up (v → v+1), got ${from} → ${to}`);
}

/** Registered steps, looked up by operator and version. */
export class MigrationRegistry {
  private readonly byOperator = new Map<string, Map<number, Step[]>>();
  /**
   * The module file it was loaded from (load.ts), if any: a write thread can
   * load the same steps from it, so migrated tasks run on every core. A
   * registry made in code has none, and its steps run in the calling thread.
   */
  module?: string;
  /**
   * The module file its steps were registered from, a TypeScript one too
   * (load.ts): another process can load the same steps from it in its main
   * thread, as a distributed shard does (write/distributed/).
   */
  source?: string;

  constructor(steps: readonly Step[]) {
    for (const s of steps) {
      let m = this.byOperator.get(s.operator);
      if (!m) this.byOperator.set(s.operator, (m = new Map()));
      let list = m.get(s.from);
      if (!list) m.set(s.from, (list = []));
      list.push(s);
    }
  }

  get operators(): string[] {
    return [...this.byOperator.keys()];
  }

  /** The highest version any step of `operator` reaches, or null when none is registered. */
  highest(operator: string): number | null {
    const m = this.byOperator.get(operator);
    if (!m) return null;
    let max = -1;
    for (const list of m.values()) for (const s of list) max = Math.max(max, s.to);
    return max;
  }

  /** Steps taking `operator` from `from` to `to`, one version at a time; errors when one is missing or `to < from`. */
  chain(operator: string, from: number, to: number): Step[][] {
    if (to < from) {
      throw new KspError('MIGRATION_DOWNGRADE', `${operator}: cannot migrate down from version ${from} to ${to}`, { operator, expected: `>= ${from}`, found: to });
    }
    const out: Step[][] = [];
    for (let v = from; v < to; v++) {
      const list = this.byOperator.get(operator)?.get(v);
      if (!list) {
        throw new KspError('MIGRATION_STEP_MISSING', `${operator}: no migration step registered for version ${v} → ${v + 1} (needed to go from ${from} to ${to})`, {
          operator, expected: `${v}→${v + 1}`,
        });
      }
      out.push(list);
    }
    return out;
  }
}

export function defineMigrations(define: (m: MigrationBuilder) => void): MigrationRegistry {
  const b = new MigrationBuilder();
  define(b);
  return new MigrationRegistry(b.steps);
}
