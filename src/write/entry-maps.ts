import { KspError, preview } from '../errors.js';
import type { StateEntry } from '../formats/state-bin/decoder.js';
import { StepError, type Step } from '../migrate/registry.js';

/**
 * Per-entry rewrites applied while a task streams through: migration steps
 * and operator renames. Each is a plain function of one entry, so they
 * compose, and the stream never holds more than a batch.
 */

export interface EntryContext {
  /** Metadata operator id of the source task. */
  operator: string;
  task: string;
  /** Entry index in the source task's file. */
  index: number;
}

export type EntryMap = (e: StateEntry, ctx: EntryContext) => StateEntry;

/** What one registered step did: entries it transformed, and entries of its operator it passed through (another state). */
export interface StepCount {
  operator: string;
  step: string;
  transformed: number;
  passed: number;
}

export function compose(maps: readonly EntryMap[]): EntryMap | null {
  if (maps.length === 0) return null;
  if (maps.length === 1) return maps[0]!;
  return (e, ctx) => {
    for (const m of maps) e = m(e, ctx);
    return e;
  };
}

/** Renames entry operator ids (`old → new`). */
export function renameMap(renames: ReadonlyMap<string, string>): EntryMap {
  return (e) => {
    const to = renames.get(e.operatorId);
    return to === undefined ? e : { operatorId: to, stateName: e.stateName, key: e.key, value: e.value };
  };
}

/**
 * Runs a chain of migration steps (one list per version step) over an entry.
 * Within a step, every registered transform whose state matches applies, in
 * the order registered. Failures become typed errors naming operator, state,
 * task, entry index and a key preview.
 */
export function migrationMap(chain: readonly Step[][], counts?: ReadonlyMap<Step, StepCount>): EntryMap {
  return (e, ctx) => {
    let key = e.key;
    let value = e.value;
    for (const list of chain) {
      for (const step of list) {
        const n = counts?.get(step);
        if (step.state !== undefined && step.state !== e.stateName) {
          if (n) n.passed++;
          continue;
        }
        if (n) n.transformed++;
        try {
          ({ key, value } = step.apply(key, value));
        } catch (err) {
          throw stepFailure(err, step, e, ctx);
        }
      }
    }
    return key === e.key && value === e.value ? e : { operatorId: e.operatorId, stateName: e.stateName, key, value };
  };
}

function stepFailure(err: unknown, step: Step, e: StateEntry, ctx: EntryContext): KspError {
  const where = `operator ${ctx.operator}, state ${e.stateName}, task ${ctx.task}, entry #${ctx.index} (key ${preview(e.key)})`;
  const data = { operator: ctx.operator, state: e.stateName, task: ctx.task, entry: ctx.index, key: preview(e.key), step: step.describe };
  const phase = err instanceof StepError ? err.phase : 'step';
  const why = err instanceof StepError ? err.message : err instanceof Error ? err.message : String(err);
  const cause = err instanceof StepError ? err.cause : err;
  if (phase === 'decode') return new KspError('CODEC_DECODE', `migration ${step.describe}: cannot decode ${where}: ${why}`, data, { cause });
  if (phase === 'encode') return new KspError('MIGRATION_RESULT', `migration ${step.describe} returned a value its output codec cannot encode, at ${where}: ${why}`, data, { cause });
  return new KspError('MIGRATION_FAILED', `migration ${step.describe} threw at ${where}: ${why}`, data, { cause });
}

/**
 * A task's batches through `map` (or as they are), `ctx.index` the entry
 * index in the source file: the stream every rewrite of a task writes.
 */
export async function* mapBatches(batches: AsyncIterable<StateEntry[]>, map: EntryMap | null, ctx: EntryContext): AsyncGenerator<StateEntry[]> {
  if (!map) {
    let n = 0;
    for await (const batch of batches) {
      n += batch.length;
      ctx.index = n - 1;
      yield batch;
    }
    return;
  }
  let index = 0;
  for await (const batch of batches) {
    // Mapped in slices: what a step makes (decoded values, new objects,
    // encoded bytes) is handed on while still young, so the scavenger frees
    // it instead of copying and promoting a whole batch of it (on the
    // bench's msgpack step: scavenge time ~0.9 → ~0.25 s per 500K entries).
    for (let from = 0; from < batch.length; from += MAP_SLICE) {
      const to = Math.min(batch.length, from + MAP_SLICE);
      const out = new Array<StateEntry>(to - from);
      for (let i = from; i < to; i++) {
        ctx.index = index++;
        out[i - from] = map(batch[i]!, ctx);
      }
      yield out;
    }
  }
}

/** Entries mapped per yielded slice (see mapBatches). */
const MAP_SLICE = 512;

/**
 * Entries per decoded batch when a task is rewritten (write/rewrite-unit.ts,
 * execute.ts rewriteTask): small, for the same reason as MAP_SLICE; with the
 * decoder's default of 4096 the decoded batch itself survived scavenges
 * (measured on the bench's msgpack step: scavenge time ~0.45 → ~0.25 s per 500K entries).
 */
export const REWRITE_BATCH = 512;
