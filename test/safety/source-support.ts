import { createHash } from 'node:crypto';
import { cpSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect } from 'vitest';
import { KspError } from '../../src/errors.js';
import { verifySavepoint, type VerifyReport } from '../../src/model/verify.js';
import { Savepoint, type OpenOptions } from '../../src/model/savepoint.js';
import { SavepointWriter, type WriteOptions } from '../../src/write/writer.js';
import { FIXTURES } from '../support/env.js';

export const RELATIVE_SP = join(FIXTURES, 'relative-savepoint');

/** A writable copy of the relative fixture savepoint at `dir`. */
export function copySavepoint(dir: string, from = RELATIVE_SP): string {
  cpSync(from, dir, { recursive: true });
  return dir;
}

/**
 * Rewrites manifest.sha256 over every regular file reachable under `dir`
 * (symlinks followed), as a hostile author who carries the hashes of
 * outside files would.
 */
export function reseal(dir: string): void {
  const lines: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && e !== 'manifest.sha256') lines.push(`sha256:${createHash('sha256').update(readFileSync(p)).digest('hex')}  ${relative(dir, p)}\n`);
    }
  };
  walk(dir);
  lines.sort((a, b) => Buffer.compare(Buffer.from(a.slice(73)), Buffer.from(b.slice(73))));
  writeFileSync(join(dir, 'manifest.sha256'), lines.join(''));
}

/** Edits metadata.json as text (it holds u64 values above 2^53). */
export function editMetadata(dir: string, edit: (text: string) => string): void {
  const p = join(dir, 'metadata.json');
  writeFileSync(p, edit(readFileSync(p, 'utf8')));
}

export function errorCodes(r: VerifyReport): string[] {
  return r.findings.filter((f) => f.severity === 'error').map((f) => f.code);
}

/** The KspError a promise rejects with (fails the test when it resolves). */
export async function rejection(p: Promise<unknown>): Promise<KspError> {
  const e = await p.then(() => null, (x: unknown) => x);
  expect(e, 'expected a refusal').toBeInstanceOf(KspError);
  return e as KspError;
}

/** `ksp relocate` through the library. */
export async function relocate(src: string, dst: string, options: WriteOptions & OpenOptions = {}): Promise<unknown> {
  const sp = await Savepoint.open(src, { allowRoots: options.allowRoots });
  return SavepointWriter.from(sp).relocate().write(dst, { mode: 'relative', ...options });
}

export async function convertCanonical(src: string, dst: string, options: WriteOptions & OpenOptions = {}): Promise<unknown> {
  const sp = await Savepoint.open(src, { allowRoots: options.allowRoots });
  return SavepointWriter.from(sp).convert('canonical').write(dst, { mode: 'relative', ...options });
}

export { verifySavepoint };
