import type { KspError } from '../../src/errors.js';

/** The error a library call is expected to refuse with (a test fails when it resolves). */
export async function refusal(p: Promise<unknown>): Promise<KspError> {
  try {
    await p;
  } catch (e) {
    return e as KspError;
  }
  throw new Error('expected an error');
}
