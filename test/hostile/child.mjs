// Runs one ksp command in this process (for the corpus cases that may block,
// allocate or run long): the parent kills it on timeout and reads its peak RSS.
import { fileURLToPath } from 'node:url';
const { main } = await import(new URL('../../dist/cli/main.js', import.meta.url).href);
const code = await main(process.argv.slice(2));
const maxRss = process.resourceUsage().maxRSS * 1024;
process.stderr.write(`\n@@ksp-child ${JSON.stringify({ code, maxRss })}\n`, () => process.exit(code));
void fileURLToPath;
