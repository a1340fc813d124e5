import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** Module hooks (run on Node's loader thread): `.ts`/`.mts` files load as ESM with their types stripped. */

type Next = (url: string, context?: unknown) => Promise<{ format?: string | null; source?: string | ArrayBuffer | Uint8Array | null; shortCircuit?: boolean }>;

export async function load(url: string, context: unknown, next: Next): Promise<{ format?: string | null; source?: string | ArrayBuffer | Uint8Array | null; shortCircuit?: boolean }> {
  if (!/\.m?ts$/.test(new URL(url).pathname) || !url.startsWith('file:')) return next(url, context);
  const { transformSync } = (await import('amaro')) as unknown as { transformSync(code: string, opts: { mode: string }): { code: string } };
  const code = await readFile(fileURLToPath(url), 'utf8');
  let out: string;
  try {
    out = transformSync(code, { mode: 'strip-only' }).code;
  } catch (e) {
    throw new Error(`${fileURLToPath(url)}: cannot strip its TypeScript types (only erasable syntax is supported): ${(e as Error).message}`);
  }
  return { format: 'module', source: out, shortCircuit: true };
}
