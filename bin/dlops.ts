#!/usr/bin/env -S npx tsx
/**
 * The dlops CLI. Commands live in cli/: models and serving (cli/models.ts) work against AWS
 * (default credential chain) or the local runtime; local runtime commands in cli/local.ts.
 */
import { Command } from 'commander';
import { registerLocalCommands } from '../cli/local';
import { registerModelCommands } from '../cli/models';

const program = new Command('dlops').description('Deep learning on AWS serverless, and on one machine.');
registerLocalCommands(program);
registerModelCommands(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  console.error(`dlops: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
