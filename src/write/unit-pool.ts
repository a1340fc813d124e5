import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { KspError, type ErrorCode, type ErrorData } from '../errors.js';
import { runUnit, unitError } from './unit-run.js';
import type { Unit, UnitResult } from './units.js';

/**
 * Worker threads sized to the cores (or --threads) that run plain-data units
 * (units.ts), each worker one unit at a time, the next from a shared queue.
 * With one thread, or under the TypeScript sources (tests, no compiled
 * worker), units run in this thread, one at a time. Workers start on first
 * use and end with `close()`: the re-verify that follows takes its own.
 */

interface Pending {
  unit: Unit;
  transfer: ArrayBuffer[];
  resolve: (r: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * Each thread's young generation, capped: V8's default (3 × 16 MiB semi-spaces)
 * per thread puts two rewriting threads and the main one over the memory
 * budget, for a few percent of speed (measured on migrate: 294 → 250 MB peak).
 */
const YOUNG_GENERATION_MB = 16;

function workerUrl(): URL | null {
  const url = new URL('./unit-worker.js', import.meta.url);
  return url.protocol === 'file:' && existsSync(fileURLToPath(url)) ? url : null;
}

export class UnitPool {
  readonly threads: number;
  private readonly url: URL | null;
  private readonly idle: Worker[] = [];
  private readonly all: Worker[] = [];
  private readonly queue: Pending[] = [];
  private inline: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(threads?: number) {
    this.threads = Math.max(1, Math.floor(threads ?? Number(process.env.KSP_THREADS || availableParallelism())));
    this.url = this.threads > 1 ? workerUrl() : null;
  }

  /** Runs a unit; `transfer` lists buffers handed to the worker (unusable here afterwards). */
  run<U extends Unit>(unit: U, transfer: ArrayBuffer[] = []): Promise<UnitResult<U>> {
    if (this.closed) return Promise.reject(new KspError('INTERNAL', 'unit pool used after close'));
    if (!this.url) {
      const next = this.inline.then(() => runUnit(unit)).catch((e: unknown) => {
        throw unitError(e);
      });
      this.inline = next.catch(() => undefined);
      return next;
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ unit, transfer, resolve: resolve as (r: unknown) => void, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length) {
      let w = this.idle.pop();
      if (!w) {
        if (this.all.length >= this.threads) return;
        w = new Worker(this.url!, { resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB } });
        w.unref();
        this.all.push(w);
      }
      this.start(w, this.queue.shift()!);
    }
  }

  private start(w: Worker, p: Pending): void {
    const done = (): void => {
      w.off('message', onMessage);
      w.off('error', onError);
      w.off('exit', onExit);
    };
    const onMessage = (m: { result?: unknown; error?: { message: string; code?: ErrorCode; data?: ErrorData } }): void => {
      done();
      this.idle.push(w);
      if (m.error) p.reject(new KspError(m.error.code ?? 'INTERNAL', m.error.message, m.error.data ?? {}));
      else p.resolve(m.result);
      this.pump();
    };
    // A thread that died is replaced for the units still queued.
    const lost = (): void => {
      done();
      const i = this.all.indexOf(w);
      if (i >= 0) this.all.splice(i, 1);
      if (!this.closed) this.pump();
    };
    const onError = (e: unknown): void => {
      lost();
      p.reject(e);
    };
    const onExit = (code: number): void => {
      lost();
      p.reject(new KspError('INTERNAL', `write worker exited with code ${code}`));
    };
    w.on('message', onMessage);
    w.on('error', onError);
    w.on('exit', onExit);
    w.postMessage({ id: 0, unit: p.unit }, p.transfer);
  }

  /** Ends the workers; units still queued fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.queue.splice(0)) p.reject(new KspError('INTERNAL', 'unit pool closed'));
    await Promise.all(this.all.map((w) => w.terminate()));
    this.all.length = 0;
    this.idle.length = 0;
  }
}
