/** Runs functions/train/main.ts as the Batch runner does: a child process with the job's environment. */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..', '..');

export interface ChildRun {
  readonly child: ChildProcess;
  /** Parsed JSON lines of stdout so far. */
  readonly events: Array<Record<string, unknown>>;
  /** Resolves when the process ends. */
  readonly done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; events: Array<Record<string, unknown>> }>;
}

export function startMain(env: Record<string, string>): ChildRun {
  // `node --import tsx` keeps main.ts in this one process, so SIGKILL hits the trainer itself (npx would leave it orphaned).
  const child = spawn(process.execPath, ['--import', 'tsx', join('functions', 'train', 'main.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...env, NODE_NO_WARNINGS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const events: Array<Record<string, unknown>> = [];
  let buffered = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith('{')) events.push(JSON.parse(line) as Record<string, unknown>);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; events: Array<Record<string, unknown>> }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr, events }));
  });
  return { child, events, done };
}

/** The last non-empty stderr line, parsed. */
export function lastErrorLine(stderr: string): unknown {
  const lines = stderr.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}
