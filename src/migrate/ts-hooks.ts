import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/**
 * Module hooks (run on Node's loader thread): `.ts`/`.mts` files load as ESM
 * with their types stripped, and `import … from 'ksp'` in a module that has
 * no ksp of its own to find (a migrations file outside any project, run by
 * an installed or npx'd ksp) resolves to the ksp that is running.
 */

type NextResolve = (specifier: string, context?: unknown) => Promise<{ url: string; format?: string | null; shortCircuit?: boolean }>;

/** The package's public entry points (package.json "exports"), relative to this file (dist/migrate/). */
const OWN_EXPORTS: Record<string, string> = { 'ksp': '../index.js', 'ksp/ts-loader': './ts-loader.js' };

export async function resolve(specifier: string, context: unknown, next: NextResolve): Promise<{ url: string; format?: string | null; shortCircuit?: boolean }> {
  try {
    return await next(specifier, context);
  } catch (e) {
    const own = OWN_EXPORTS[specifier];
    // Only when Node finds no package of that name: a project's own ksp (another version, say) wins.
    if (own === undefined || (e as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw e;
    return { url: new URL(own, import.meta.url).href, format: 'module', shortCircuit: true };
  }
}

type Next = (url: string, context?: unknown) => Promise<{ format?: string | null; source?: string | ArrayBuffer | Uint8Array | null; shortCircuit?: boolean }>;

export async function load(url: string, context: unknown, next: Next): Promise<{ format?: string | null; source?: string | ArrayBuffer | Uint8Array | null; shortCircuit?: boolean }> {
  if (!/\.m?ts$/.test(new URL(url).pathname) || !url.startsWith('file:')) return next(url, context);
  // amaro 0.1.9: the last release that declares no Node >= 22 (the later ones do, though the API is the same), pinned so
  // the package's engines hold on Node 20. It throws strings, not Errors, for syntax it cannot strip.
  // (Its 0.1 releases ship no types: the name is a variable so that tsc does not look for them.)
  const amaro = 'amaro';
  const { transformSync } = (await import(amaro)) as unknown as { transformSync(code: string, opts: { mode: string }): { code: string } };
  const code = await readFile(fileURLToPath(url), 'utf8');
  let out: string;
  try {
    out = transformSync(code, { mode: 'strip-only' }).code;
  } catch (e) {
    throw new Error(`${fileURLToPath(url)}: cannot strip its TypeScript types (only erasable syntax is supported): ${e instanceof Error ? e.message : String(e)}`);
  }
  return { format: 'module', source: out, shortCircuit: true };
}
