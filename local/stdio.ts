/**
 * In AWS, what a Lambda function prints goes to CloudWatch Logs, not to the person watching the
 * pipeline. Locally the handlers run in this process, so their output (Powertools JSON lines,
 * library warnings) is sent to a log file, and the CLI writes to the terminal through a stream
 * kept aside for it. Powertools binds its own Console to process.stdout when a logger is
 * created, so the redirection is made at the stream's `write`, which also covers loggers
 * created before it.
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export interface RedirectedOutput {
  /** The terminal: what the CLI prints goes here (a TTY when stdout is one). */
  readonly terminal: NodeJS.WriteStream;
  /** Puts stdout and stderr back. Safe to call twice. */
  restore(): void;
}

type Write = typeof process.stdout.write;

export function redirectProcessOutput(logFile: string): RedirectedOutput {
  mkdirSync(dirname(logFile), { recursive: true });
  const originalOut = process.stdout.write;
  const originalErr = process.stderr.write;
  const toFile = function write(chunk: unknown, encodingOrCallback?: unknown, callback?: unknown): boolean {
    appendFileSync(logFile, typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array));
    const done = typeof encodingOrCallback === 'function' ? encodingOrCallback : callback;
    if (typeof done === 'function') process.nextTick(done as () => void);
    return true;
  } as Write;
  // The terminal stream is stdout itself with its original write: isTTY, columns and cursor
  // control still come from process.stdout.
  const terminal = Object.create(process.stdout, {
    write: { value: originalOut.bind(process.stdout), writable: true },
  }) as NodeJS.WriteStream;
  process.stdout.write = toFile;
  process.stderr.write = toFile;
  let restored = false;
  return {
    terminal,
    restore: () => {
      if (restored) return;
      restored = true;
      process.stdout.write = originalOut;
      process.stderr.write = originalErr;
    },
  };
}
