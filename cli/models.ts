import type { Command } from 'commander';

/** `dlops models ...`, `dlops predict`, `dlops serve`: built in the registry and inference issue. */
export function registerModelCommands(_program: Command): void {}
