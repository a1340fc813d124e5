import type { CommandModule } from 'yargs';
import type { GlobalArgs } from '../main.js';
import { WRITE_EPILOG, writeOptions, type WriteArgs } from '../write/options.js';
import { distributedOptions, planIfDistributed, type DistributedArgs } from '../distributed/options.js';

interface EditArgs extends WriteArgs, DistributedArgs {
  rename?: string[];
  'rename-map'?: string;
  remove?: string[];
}

export const command: CommandModule<GlobalArgs, EditArgs> = {
  command: 'edit <src> [dst]',
  describe: 'Rename operators (in metadata and inside every entry) and remove operators',
  builder: (y) =>
    distributedOptions(writeOptions(y))
      .option('rename', { type: 'string', array: true, describe: 'old=new (repeatable)' })
      .option('rename-map', { type: 'string', describe: 'JSON file: {"old": "new"} or [{"old"|"from": …, "new"|"to": …}]' })
      .option('remove', { type: 'string', array: true, describe: 'Operator id to drop with its files (repeatable)' })
      .example('ksp edit ./sp ./out --rename orders=orders-v2', 'rename one operator')
      .example('ksp edit ./sp ./out --rename-map renames.json --remove legacy-sink', 'renames from a file, and drop an operator')
      .epilog(`An operator id appears in metadata.json and inside every state.bin entry (the two may differ);
every occurrence of a renamed id is rewritten. Unknown ids and renames onto an existing id are errors.\n\n${WRITE_EPILOG}`),
  handler: async (args) => {
    const { editOperations } = await import('./run.js');
    if (await planIfDistributed('edit', args, (w) => editOperations(w, args))) return;
    const { runWrite } = await import('../write/run.js');
    await runWrite(args, (w) => editOperations(w, args));
  },
};
