/**
 * One error class for everything ksp refuses, with a stable `code` that
 * scripts can match on and structured `data` (file, offset, entry index,
 * expected, found). The CLI maps the code's family to an exit code, so a new
 * code never needs a new exit code.
 */

export type ErrorFamily = 'usage' | 'input' | 'not-found' | 'storage' | 'unsupported' | 'verify' | 'internal';

/** Every code ksp raises, with its family. Codes are stable: never rename one. */
export const ERROR_CODES = {
  USAGE: 'usage',
  PATH_UNSAFE: 'input',
  URI_INVALID: 'usage',
  NOT_FOUND: 'not-found',
  STORAGE_IO: 'storage',
  TARGET_NOT_EMPTY: 'usage',

  JSON_SYNTAX: 'input',
  METADATA_INVALID: 'input',
  METADATA_VERSION: 'input',
  META_INVALID: 'input',
  META_VERSION: 'input',
  FILE_TOO_LARGE: 'input',
  NOT_REGULAR_FILE: 'input',
  MANIFEST_MISSING: 'input',
  MANIFEST_INCOMPLETE: 'input',
  HASH_MISMATCH: 'input',
  DUPLICATE_TASK: 'input',
  SHARED_STATE_FILE: 'input',
  DECOMPRESS_LIMIT: 'input',

  MANIFEST_MALFORMED: 'input',

  STATE_BIN_TRUNCATED: 'input',
  STATE_BIN_VERSION: 'input',
  STATE_BIN_LENGTH: 'input',
  STATE_BIN_TRAILING: 'input',
  STATE_BIN_UTF8: 'input',
  STATE_BIN_COUNT: 'input',
  STATE_BIN_IS_POINTER: 'unsupported',
  WINDOW_JOIN_INVALID: 'input',
  WINDOW_JOIN_OPAQUE: 'unsupported',
  RESCALE_WINDOW_JOIN: 'unsupported',
  TTL_PREFIX_SHORT: 'input',

  POINTER_MALFORMED: 'input',
  NATIVE_UNSUPPORTED: 'unsupported',

  CODEC_UNKNOWN: 'usage',
  CODEC_DECODE: 'input',
  EXPORT_FORMAT: 'usage',
  /** ksp import: a row that cannot become an entry (a missing column, an undecodable value, an unknown operator). */
  IMPORT_ROW: 'input',

  SST_MANIFEST_INVALID: 'input',
  NATIVE_SST_HASH: 'input',

  TARGET_OVERLAPS_SOURCE: 'usage',
  TARGET_LOCKED: 'usage',
  TARGET_FOREIGN_FILE: 'usage',
  TARGET_FILE_EXISTS: 'usage',
  /** A signal stopped a write; the CLI exits 128 + the signal's number, not the family's code. */
  INTERRUPTED: 'internal',
  OPERATOR_UNKNOWN: 'usage',
  STATE_UNKNOWN: 'usage',
  OPERATOR_EXISTS: 'usage',
  TASK_IDS: 'usage',
  FILES_MISSING: 'not-found',
  MIGRATIONS_MODULE: 'usage',
  MIGRATION_STEP_MISSING: 'usage',
  MIGRATION_DOWNGRADE: 'usage',
  MIGRATION_FAILED: 'input',
  MIGRATION_RESULT: 'input',
  KEY_COLLISION: 'input',
  RESCALE_BROADCAST_CONFLICT: 'input',
  RESCALE_BROADCAST_LIMIT: 'unsupported',
  RESCALE_COUNT_MISMATCH: 'input',
  MIGRATION_MATCHED_NOTHING: 'usage',
  OUTPUT_VERIFY_FAILED: 'verify',

  ROCKSDB_CORRUPT: 'input',
  ROCKSDB_CHECKSUM: 'input',
  ROCKSDB_UNSUPPORTED: 'unsupported',
  ROCKSDB_KEY: 'input',

  DISTRIBUTED_UNSUPPORTED: 'unsupported',
  DISTRIBUTED_PLAN_MISSING: 'not-found',
  DISTRIBUTED_PLAN_INVALID: 'input',
  DISTRIBUTED_SOURCE_CHANGED: 'input',
  DISTRIBUTED_INCOMPLETE: 'verify',
  DISTRIBUTED_UNIT_FAILED: 'verify',
  DISTRIBUTED_TIMEOUT: 'storage',
  SHARD_INVALID: 'usage',

  VERIFY_FAILED: 'verify',
  INTERNAL: 'internal',
} as const satisfies Record<string, ErrorFamily>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Documented exit codes (README "Exit codes"). */
export const EXIT_CODES: Record<ErrorFamily | 'ok', number> = {
  ok: 0,
  verify: 1,
  usage: 2,
  input: 3,
  'not-found': 4,
  storage: 5,
  unsupported: 6,
  internal: 70,
};

export interface ErrorData {
  file?: string;
  offset?: number;
  entry?: number;
  line?: number;
  field?: string;
  expected?: unknown;
  found?: unknown;
  [k: string]: unknown;
}

export class KspError extends Error {
  readonly code: ErrorCode;
  readonly data: ErrorData;

  constructor(code: ErrorCode, message: string, data: ErrorData = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KspError';
    this.code = code;
    this.data = data;
  }

  get family(): ErrorFamily {
    return ERROR_CODES[this.code];
  }

  get exitCode(): number {
    return EXIT_CODES[this.family];
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.data };
  }
}

export function isKspError(e: unknown): e is KspError {
  return e instanceof KspError;
}

/** Short printable preview of binary data for error messages. */
export function preview(bytes: Uint8Array, max = 24): string {
  const slice = bytes.subarray(0, max);
  let printable = true;
  for (const b of slice) if (b < 0x20 || b > 0x7e) { printable = false; break; }
  const more = bytes.length > max ? '…' : '';
  return printable ? JSON.stringify(Buffer.from(slice).toString('latin1')) + more : `0x${Buffer.from(slice).toString('hex')}${more}`;
}
