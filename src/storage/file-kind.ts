import type { Stats } from 'node:fs';
import { KspError } from '../errors.js';

/** What a non-regular file is, for messages: a FIFO or device where a file should be says so. */
export function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

export function notRegular(path: string, field: string | undefined, st: Stats): KspError {
  return new KspError('NOT_REGULAR_FILE', `${path}: ${field ? `${field}: ` : ''}is ${kindOf(st)} where a file should be; refused without opening it`, {
    file: path, ...(field ? { field } : {}), found: kindOf(st),
  });
}

