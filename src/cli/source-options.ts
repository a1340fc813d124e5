import type { Argv } from 'yargs';

/** Options of every command that reads a savepoint (verify, inspect and the writing commands). */
export interface SourceArgs {
  'allow-root'?: string[];
}

export function sourceOptions<T>(y: Argv<T>): Argv<T & SourceArgs> {
  return y.option('allow-root', {
    type: 'string',
    array: true,
    requiresArg: true,
    describe: 'Also read files stored under this folder (local or s3://bucket/prefix); repeatable. By default a savepoint reads only under its storage base (or its own directory) and, on S3, its bucket',
  }) as unknown as Argv<T & SourceArgs>;
}

/** `--allow-root` values as given (yargs leaves them undefined when absent). */
export function allowRoots(args: SourceArgs): string[] {
  return (args['allow-root'] ?? []).map(String);
}
