import { register } from 'node:module';

/**
 * TypeScript migrations: Node 20 cannot run `.ts` files, so ksp registers a
 * module hook (ts-hooks.ts) that strips type annotations with `amaro`, the
 * stripper Node itself uses in later versions. Only erasable syntax is
 * supported (no enums or namespaces), exactly as in Node's own type
 * stripping. The same hook resolves `import … from 'ksp'` to the running ksp
 * when the importing module has none of its own (a migrations file outside
 * any project). Library users get the same with `node --import ksp/ts-loader`.
 */
let registered = false;

export function registerTsLoader(): void {
  if (registered) return;
  registered = true;
  register(new URL('./ts-hooks.js', import.meta.url).href);
}

// Imported for its effect (`node --import ksp/ts-loader`): register at once.
registerTsLoader();
