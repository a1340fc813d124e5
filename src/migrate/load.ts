import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { KspError } from '../errors.js';
import { codecs } from './codecs.js';
import { MigrationBuilder, MigrationRegistry } from './registry.js';

/**
 * Loads a migrations module: ESM JavaScript, or TypeScript (`.ts`/`.mts`)
 * through ksp's type-stripping loader (ts-loader.ts). Its default export is
 * a registry made by `defineMigrations`, or a function `(m, codecs) => void`
 * that registers steps on `m`, so a module needs no import of ksp at all;
 * one that imports 'ksp' gets the running ksp when it has none of its own.
 */
export async function loadMigrations(file: string): Promise<MigrationRegistry> {
  const path = resolve(file);
  if (!existsSync(path)) throw new KspError('NOT_FOUND', `${file}: migrations module not found`, { file });
  // The loader hooks strip a .ts module's types, and let any module outside a
  // project `import … from 'ksp'` (the running ksp); registered per thread.
  const ts = /\.m?ts$/.test(path);
  try {
    const { registerTsLoader } = await import('./ts-loader.js');
    registerTsLoader();
  } catch (e) {
    // Run from the TypeScript sources (a test runner), the hook file is not
    // built: a JavaScript module still loads, it only cannot rely on the hook.
    if (ts) throw e;
  }
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
  } catch (e) {
    if (e instanceof KspError) throw e;
    throw new KspError('MIGRATIONS_MODULE', `${file}: could not load the migrations module: ${(e as Error).message}`, { file }, { cause: e });
  }
  const d = mod.default;
  if (d instanceof MigrationRegistry || (d && typeof d === 'object' && typeof (d as MigrationRegistry).chain === 'function')) {
    // A registry object the module built. It stays in this thread (no `module`):
    // write threads split one run's entries, and steps that keep state across
    // entries would see only their share. Another process (a distributed
    // shard, write/distributed/entry-map.ts) may load it again from the file
    // (`source`), as it does a function export, whose steps can close over
    // module state just the same: a step must give the same output for the
    // same entry, which the plan's pinned module hash and the one-process
    // bytes comparison in the tests hold it to.
    const registry = d as MigrationRegistry;
    registry.source ??= path;
    return registry;
  }
  if (typeof d === 'function') {
    const b = new MigrationBuilder();
    try {
      await (d as (m: MigrationBuilder, c: typeof codecs) => unknown)(b, codecs);
    } catch (e) {
      if (e instanceof KspError) throw e;
      throw new KspError('MIGRATIONS_MODULE', `${file}: the default export threw while registering steps: ${(e as Error).message}`, { file }, { cause: e });
    }
    const registry = new MigrationRegistry(b.steps);
    // Registering steps again from the file gives the same steps: write threads may.
    // TypeScript modules need the loader hook, registered per thread: they stay in this one.
    if (!/\.m?ts$/.test(path)) registry.module = path;
    registry.source = path;
    return registry;
  }
  throw new KspError('MIGRATIONS_MODULE', `${file}: the default export must be defineMigrations(...) or a function (m, codecs) => { m.value(...) }`, { file });
}
