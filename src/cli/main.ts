import { constants as osConstants } from 'node:os';
import { EXIT_CODES, KspError, isKspError } from '../errors.js';
import { useCliOptionNames } from '../option-names.js';
import { takeExit } from './exit.js';
import { tuneHeap } from './heap.js';
import { captureHelp, helpWidth } from './help.js';
import { err, shown } from './output.js';

/**
 * The `ksp` command line: a thin shell over the library. Each command's
 * options live beside it (`<command>/command.ts`); its work (and the heavy
 * libraries it needs) is imported only when it runs, so `ksp --help` starts
 * fast.
 */

export { VERSION } from '../version.js';
import { VERSION } from '../version.js';

export interface GlobalArgs {
  json?: boolean;
  verbose?: boolean;
  quiet?: boolean;
  progress?: boolean;
}

const EPILOG = `Exit codes: 0 ok, 1 verification failed (ksp diff: the two differ), 2 usage, 3 bad input (corrupt or malformed files),
4 not found, 5 storage I/O, 6 unsupported (a format feature ksp does not handle, e.g. merge operands,
blob files or a compressed WAL in native RocksDB state), 70 internal error, 129/130/143 interrupted by
SIGHUP/SIGINT/SIGTERM (a write is rolled back first).

S3: s3://bucket/prefix with the standard AWS credential chain; AWS_ENDPOINT_URL selects an
S3-compatible server (path-style). Docs: README.md.`;

export async function main(argv: string[]): Promise<number> {
  tuneHeap();
  // Refusals name --flags, not library options (option-names.ts).
  useCliOptionNames();
  const { default: yargs } = await import('yargs');
  const commands = await Promise.all([
    import('./verify/command.js'), import('./inspect/command.js'), import('./list/command.js'),
    import('./migrate/command.js'), import('./rescale/command.js'), import('./relocate/command.js'), import('./edit/command.js'), import('./convert/command.js'), import('./report/command.js'),
    import('./diff/command.js'),
    import('./import/command.js'),
    // Distributed runs (planned with --distributed): one shard, the seal, and progress.
    import('./distributed/work-command.js'), import('./distributed/commit-command.js'), import('./distributed/status-command.js'),
  ]);
  // Known before parsing, so a parse error can honour them too.
  const verbose = argv.includes('--verbose') || argv.includes('-v');
  // --version --verbose: also which codec libraries this platform uses (native or the pure-JS fallbacks).
  if (verbose && argv.includes('--version')) {
    const codecs = (await import('../rocksdb/compression.js')).codecImplementations();
    process.stdout.write(`${VERSION}\n${Object.entries(codecs).map(([k, v]) => `${k}: ${v}`).join('\n')}\n`);
    return 0;
  }
  // Signals roll a write back and exit 128 + n with a ksp: line (write/interrupt.ts).
  (await import('../write/interrupt.js')).installSignalHandlers({ json: argv.includes('--json') });
  const parser = yargs(argv)
    .scriptName('ksp')
    .usage('ksp <command> [options]\n\nKrishiv State Processor: look inside, check and rewrite Krishiv savepoints and checkpoints offline.')
    .option('json', { type: 'boolean', describe: 'Machine-readable output on stdout' })
    .option('verbose', { alias: 'v', type: 'boolean', describe: 'More detail; stack traces on errors' })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'No progress or notes on stderr' })
    .option('progress', { type: 'boolean', default: true, describe: 'Progress on stderr (only when it is a terminal)' })
    .strict()
    .demandCommand(1, 'Name a command: verify, inspect, list, migrate, rescale, relocate, edit, convert, report, diff, import, work, commit or status (ksp --help).')
    .recommendCommands()
    .wrap(helpWidth())
    .version(VERSION)
    .help()
    .exitProcess(false)
    .fail((msg, e) => {
      throw e ?? new KspError('USAGE', msg);
    });
  // Examples and epilogs are laid out by ksp, so an example is never broken (help.ts).
  const help = captureHelp(parser);
  parser.epilog(EPILOG);
  for (const c of commands) {
    const builder = c.command.builder as ((y: unknown) => unknown) | undefined;
    parser.command({ ...c.command, builder: (y: unknown) => (help.enterCommand(), builder ? builder(y) : y) } as never);
  }
  try {
    await parser.parseAsync(argv, {}, (e, parsed, output) => {
      if (!e && output) process.stdout.write(parsed.help ? help.render(output) : output + '\n');
    });
    return takeExit();
  } catch (e) {
    return report(e, verbose, argv.includes('--json'));
  }
}

function report(e: unknown, verbose: boolean, asJson: boolean): number {
  // A write that stopped for a signal: the signal handler reports it and exits 128 + n.
  if (isKspError(e) && e.code === 'INTERRUPTED') return 128 + (osConstants.signals[e.data.signal as NodeJS.Signals] ?? 15);
  if (isKspError(e)) {
    if (asJson) process.stdout.write(JSON.stringify({ error: e.toJSON() }, null, 2) + '\n');
    err(`ksp: error [${e.code}]: ${shown(e.message)}`);
    if (e.family === 'usage') err('Run ksp --help (or ksp <command> --help) for usage.');
    if (verbose && e.stack) err(e.stack);
    return e.exitCode;
  }
  const msg = e instanceof Error ? e.message : String(e);
  if (asJson) process.stdout.write(JSON.stringify({ error: { code: 'INTERNAL', message: msg } }, null, 2) + '\n');
  err(`ksp: internal error: ${msg}`);
  if (verbose && e instanceof Error && e.stack) err(e.stack);
  else err('Run again with --verbose for a stack trace, and please report it.');
  return EXIT_CODES.internal;
}
