import { z } from 'zod';
import { KspError, type ErrorCode } from '../../errors.js';
import { JsonObject, toPlain, type JsonValue } from './json-text.js';

/** zod building blocks for the engine's integer types, read as bigint (exact above 2^53). */
export const U64_MAX = (1n << 64n) - 1n;
export const u64 = z.bigint({ error: 'expected an unsigned integer' }).min(0n, 'expected an unsigned integer').max(U64_MAX, 'exceeds u64');
export const i64 = z.bigint({ error: 'expected an integer' }).min(-(1n << 63n), 'below i64').max((1n << 63n) - 1n, 'exceeds i64');
export const u32 = z.bigint({ error: 'expected an unsigned integer' }).min(0n, 'expected an unsigned integer').max(0xffffffffn, 'exceeds u32').transform(Number);
export const u8 = z.bigint({ error: 'expected a byte value' }).min(0n, 'expected 0..255').max(255n, 'expected 0..255').transform(Number);
export const id = z.string({ error: 'expected a string' }).min(1, 'must not be empty');

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'bigint') return `the integer ${v}`;
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  return `${typeof v === 'object' ? 'an object' : typeof v}`;
}

function valueAt(root: unknown, path: PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const p of path) cur = cur != null && typeof cur === 'object' ? (cur as Record<PropertyKey, unknown>)[p] : undefined;
  return cur;
}

function fieldName(path: PropertyKey[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`;
  return s || '(top level)';
}

/** Validates a parsed document (found at path `at` of its file); errors name the field, what was expected and what was found. */
export function validate<T extends z.ZodType>(schema: T, doc: JsonValue, file: string, code: ErrorCode, at: PropertyKey[] = []): z.output<T> {
  const plain = toPlain(doc);
  const r = schema.safeParse(plain);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const field = fieldName([...at, ...issue.path]);
  const found = valueAt(plain, issue.path);
  const foundText = issue.code === 'invalid_type' && found === undefined ? 'it is missing' : `found ${describe(found)}`;
  const more = r.error.issues.length > 1 ? ` (and ${r.error.issues.length - 1} more problem(s))` : '';
  throw new KspError(code, `${file}: field ${field}: ${issue.message}; ${foundText}${more}`, {
    file, field, found: typeof found === 'bigint' ? found.toString() : found === undefined ? null : describe(found),
  });
}

/** A top-level JSON object validated against `schema`: the document (kept for rewriting) and its typed value. */
export function validateObject<T extends z.ZodType>(schema: T, doc: JsonValue, file: string, code: ErrorCode): { doc: JsonObject; value: z.output<T> } {
  if (!(doc instanceof JsonObject)) throw new KspError(code, `${file}: expected a JSON object at the top level`, { file });
  return { doc, value: validate(schema, doc, file, code) };
}
