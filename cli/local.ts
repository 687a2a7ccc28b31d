import type { Command } from 'commander';

/** `dlops local up`, `dlops submit`, `dlops demo`: built in the local runtime issue. */
export function registerLocalCommands(_program: Command): void {}
