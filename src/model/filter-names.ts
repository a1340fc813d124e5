import { KspError } from '../errors.js';
import type { Savepoint } from './savepoint.js';

/**
 * `--operator` and `--state` name things a savepoint may not have; a typo
 * used to give an empty answer that looked like "no entries". These checks
 * turn an unknown name into an error listing the names there are.
 */

export interface NameFilter {
  operator?: string;
  state?: string;
}

/** The names a savepoint has: metadata operator ids, the operator ids stored in entries, and state names (of the selected operator, when one is named). */
export interface KnownNames {
  metadataOperators: Iterable<string>;
  entryOperators: Iterable<string>;
  states: Iterable<string>;
}

/** Throws OPERATOR_UNKNOWN or STATE_UNKNOWN when a filter names something `known` lacks. */
export function checkNames(filter: NameFilter, known: KnownNames, where: string): void {
  const ops = new Set([...known.metadataOperators, ...known.entryOperators]);
  if (filter.operator !== undefined && !ops.has(filter.operator)) {
    const valid = [...ops].sort();
    throw new KspError('OPERATOR_UNKNOWN', `--operator: no operator ${JSON.stringify(filter.operator)} in ${where}; operator ids: ${list(valid)}`, { field: 'operator', found: filter.operator, expected: valid });
  }
  const states = new Set(known.states);
  if (filter.state !== undefined && !states.has(filter.state)) {
    const valid = [...states].sort();
    const of = filter.operator !== undefined ? ` of operator ${JSON.stringify(filter.operator)}` : '';
    throw new KspError('STATE_UNKNOWN', `--state: no state ${JSON.stringify(filter.state)}${of} in ${where}; state names${of}: ${list(valid)}`, { field: 'state', found: filter.state, expected: valid });
  }
}

/**
 * Checks the filter's names against the savepoint before any output is
 * written. A metadata operator id needs no reading; otherwise entries are
 * read only until each name is seen, so a known name costs little and only an
 * unknown one (about to fail) reads everything.
 */
export async function checkFilterNames(sp: Savepoint, filter: NameFilter): Promise<void> {
  const { operator, state } = filter;
  const metadataOperators = new Set(sp.tasks.map((t) => t.operatorId));
  let opSeen = operator === undefined || metadataOperators.has(operator);
  let stateSeen = state === undefined;
  if (opSeen && stateSeen) return;
  const entryOperators = new Set<string>();
  const states = new Set<string>();
  // Entries come in runs of one operator and state: look at each run once.
  let lastOp: string | null = null;
  let lastState: string | null = null;
  let lastTask = -1;
  for await (const batch of sp.entries(opSeen ? { operator } : {})) {
    for (const r of batch) {
      if (r.operatorId === lastOp && r.stateName === lastState && r.task.index === lastTask) continue;
      lastOp = r.operatorId;
      lastState = r.stateName;
      lastTask = r.task.index;
      entryOperators.add(r.operatorId);
      if (r.operatorId === operator) opSeen = true;
      if (operator === undefined || r.operatorId === operator || r.task.operatorId === operator) {
        states.add(r.stateName);
        if (r.stateName === state) stateSeen = true;
      }
    }
    if (opSeen && stateSeen) return;
  }
  checkNames(filter, { metadataOperators, entryOperators, states }, sp.uri);
}

function list(names: string[]): string {
  return names.length ? names.map((n) => JSON.stringify(n)).join(', ') : '(none)';
}
