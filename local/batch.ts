/**
 * The AWS Batch stand-in for `arn:aws:states:::batch:submitJob.sync`: the training container's
 * entry point runs as a child process with the job definition's environment plus the task's
 * container overrides. Its exit status and log come back the way Step Functions reports a
 * Batch job: the DescribeJobs job on success, `States.TaskFailed` with that job as the cause
 * on failure (https://docs.aws.amazon.com/step-functions/latest/dg/connect-batch.html).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';

export interface KeyValue {
  readonly Name: string;
  readonly Value: string;
}

/** The Parameters of a submitJob task, resolved. */
export interface SubmitJobParameters {
  readonly JobName: string;
  readonly JobQueue: string;
  readonly JobDefinition: string;
  readonly ContainerOverrides?: { readonly Environment?: KeyValue[]; readonly Command?: string[] };
  readonly Parameters?: Record<string, string>;
  readonly Timeout?: { readonly AttemptDurationSeconds?: number };
  readonly RetryStrategy?: RetryStrategy;
}

export interface EvaluateOnExit {
  readonly Action: string;
  readonly OnExitCode?: string;
  readonly OnReason?: string;
  readonly OnStatusReason?: string;
}

export interface RetryStrategy {
  readonly Attempts?: number;
  readonly EvaluateOnExit?: EvaluateOnExit[];
}

/** What the runner needs of a job definition, already resolved from the template. */
export interface LocalJobDefinition {
  readonly environment: Record<string, string>;
  readonly retryStrategy?: RetryStrategy;
  readonly attemptDurationSeconds?: number;
}

/** One line the container printed. */
export interface JobLine {
  readonly jobName: string;
  readonly jobId: string;
  readonly stream: 'stdout' | 'stderr';
  readonly line: string;
  /** The line parsed, when it is a JSON object. */
  readonly json?: Record<string, unknown>;
}

export interface LocalBatchProps {
  /** The container's entry point (TypeScript, run through tsx's loader). */
  readonly entry: string;
  readonly cwd: string;
  /** Variables the local runtime adds on top of the job definition's (endpoint, key file, region). */
  readonly localEnvironment: Record<string, string>;
  /** Folder for the job logs (CloudWatch Logs in AWS). */
  readonly logDirectory: string;
  readonly jobDefinition: (arn: string) => LocalJobDefinition;
  readonly onLine?: (line: JobLine) => void;
  /** Seconds between SIGTERM and SIGKILL when a job is stopped. @default 30 - ECS's default stop timeout */
  readonly stopTimeoutSeconds?: number;
}

export interface JobAttempt {
  readonly Container: { readonly ExitCode?: number; readonly LogStreamName: string; readonly Reason?: string };
  readonly StartedAt: number;
  readonly StoppedAt: number;
  readonly StatusReason: string;
}

/** The DescribeJobs job as Step Functions returns it (PascalCase). */
export interface JobDescription {
  readonly JobArn: string;
  readonly JobId: string;
  readonly JobName: string;
  readonly JobQueue: string;
  readonly JobDefinition: string;
  readonly Status: 'SUCCEEDED' | 'FAILED';
  readonly StatusReason?: string;
  readonly CreatedAt: number;
  readonly StartedAt: number;
  readonly StoppedAt: number;
  readonly Attempts: JobAttempt[];
  readonly Container: {
    readonly Command: string[];
    readonly Environment: KeyValue[];
    readonly ExitCode?: number;
    readonly LogStreamName: string;
    readonly Reason?: string;
  };
  readonly Parameters: Record<string, string>;
  readonly RetryStrategy?: RetryStrategy;
  readonly DependsOn: unknown[];
  readonly Tags: Record<string, string>;
  /** Local only: the file holding the job's log (a CloudWatch log stream in AWS). */
  readonly LogFile: string;
}

/** A failed `.sync` job: Step Functions names it States.TaskFailed; its cause is the job description. */
export class BatchJobFailedError extends Error {
  override readonly name = 'States.TaskFailed';
  constructor(readonly job: JobDescription) {
    super(JSON.stringify(job));
  }
}

const ESSENTIAL_EXITED = 'Essential container in task exited';
const TIMED_OUT = 'Job attempt duration exceeded timeout';

/** Batch's glob: a trailing `*` matches any suffix; otherwise the whole string must match. */
export function batchGlobMatches(pattern: string, value: string): boolean {
  if (pattern.endsWith('*')) return value.startsWith(pattern.slice(0, -1));
  return pattern === value;
}

/** Whether another attempt is due: EvaluateOnExit's first match decides, else retry while attempts remain. */
export function shouldRetryJob(strategy: RetryStrategy | undefined, attempt: number, exitCode: number | undefined, reason: string, statusReason: string): boolean {
  const attempts = strategy?.Attempts ?? 1;
  if (attempt >= attempts) return false;
  for (const rule of strategy?.EvaluateOnExit ?? []) {
    const codeOk = rule.OnExitCode === undefined || (exitCode !== undefined && batchGlobMatches(rule.OnExitCode, String(exitCode)));
    const reasonOk = rule.OnReason === undefined || batchGlobMatches(rule.OnReason, reason);
    const statusOk = rule.OnStatusReason === undefined || batchGlobMatches(rule.OnStatusReason, statusReason);
    if (codeOk && reasonOk && statusOk) return rule.Action.toUpperCase() === 'RETRY';
  }
  return true;
}

export class LocalBatch {
  private readonly running = new Set<ChildProcess>();
  private readonly loader = pathToFileURL(require.resolve('tsx')).href;

  constructor(private readonly props: LocalBatchProps) {}

  /** Runs the job to completion (with its retry strategy) and answers like submitJob.sync. */
  async submitJobSync(params: SubmitJobParameters, signal?: AbortSignal): Promise<JobDescription> {
    const definition = this.props.jobDefinition(params.JobDefinition);
    const retryStrategy = params.RetryStrategy ?? definition.retryStrategy;
    const timeout = params.Timeout?.AttemptDurationSeconds ?? definition.attemptDurationSeconds;
    const jobId = randomUUID();
    const jobEnv: Record<string, string> = { ...definition.environment };
    for (const { Name, Value } of params.ContainerOverrides?.Environment ?? []) jobEnv[Name] = Value;
    const createdAt = Date.now();
    const attempts: JobAttempt[] = [];
    const logFile = join(this.props.logDirectory, safeFileName(params.JobName), `${jobId}.log`);
    mkdirSync(dirname(logFile), { recursive: true });
    const log = createWriteStream(logFile, { flags: 'a' });
    try {
      for (let attempt = 1; ; attempt++) {
        const env = {
          ...baseProcessEnv(),
          ...jobEnv,
          ...this.props.localEnvironment,
          AWS_BATCH_JOB_ID: jobId,
          AWS_BATCH_JOB_ATTEMPT: String(attempt),
          AWS_BATCH_JQ_NAME: params.JobQueue.split('/').pop() ?? params.JobQueue,
          AWS_BATCH_CE_NAME: 'local',
        };
        log.write(`--- attempt ${attempt} of job ${params.JobName} (${jobId}) at ${new Date().toISOString()}\n`);
        const result = await this.runAttempt(params.JobName, jobId, env, log, timeout, signal);
        const statusReason = result.timedOut ? TIMED_OUT : ESSENTIAL_EXITED;
        attempts.push({
          Container: { ExitCode: result.exitCode, LogStreamName: `local/${params.JobName}/${jobId}`, Reason: result.reason },
          StartedAt: result.startedAt,
          StoppedAt: result.stoppedAt,
          StatusReason: statusReason,
        });
        const succeeded = result.exitCode === 0 && !result.timedOut;
        if (succeeded || signal?.aborted || !shouldRetryJob(retryStrategy, attempt, result.exitCode, result.reason ?? '', statusReason)) {
          const job = describe(params, jobId, createdAt, attempts, jobEnv, retryStrategy, logFile, succeeded);
          if (!succeeded) throw new BatchJobFailedError(job);
          return job;
        }
      }
    } finally {
      await new Promise<void>((resolve) => log.end(resolve));
    }
  }

  /** Stops every running job (SIGTERM, then SIGKILL after the stop timeout), as `local up` does on Ctrl-C. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.running].map((child) => stopChild(child, this.props.stopTimeoutSeconds ?? 30)));
  }

  private runAttempt(
    jobName: string,
    jobId: string,
    env: NodeJS.ProcessEnv,
    log: NodeJS.WritableStream,
    timeoutSeconds: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ exitCode?: number; reason?: string; timedOut: boolean; startedAt: number; stoppedAt: number }> {
    return new Promise((resolve) => {
      const startedAt = Date.now();
      const child = spawn(process.execPath, ['--import', this.loader, this.props.entry], {
        cwd: this.props.cwd,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      this.running.add(child);
      let lastError: string | undefined;
      let lastStderr: string | undefined;
      let spawnError: string | undefined;
      let timedOut = false;
      const onLine = (stream: 'stdout' | 'stderr') => (line: string) => {
        log.write(`${stream === 'stderr' ? '! ' : ''}${line}\n`);
        const json = parseJsonObject(line);
        if (json?.event === 'error') lastError = line;
        if (stream === 'stderr' && line.trim() !== '') lastStderr = line;
        this.props.onLine?.({ jobName, jobId, stream, line, json });
      };
      const readers = [createInterface({ input: child.stdout! }), createInterface({ input: child.stderr! })];
      readers[0].on('line', onLine('stdout'));
      readers[1].on('line', onLine('stderr'));
      const closed = Promise.all(readers.map((r) => new Promise((done) => r.once('close', done))));
      const timer =
        timeoutSeconds !== undefined
          ? setTimeout(() => {
              timedOut = true;
              void stopChild(child, this.props.stopTimeoutSeconds ?? 30);
            }, timeoutSeconds * 1000)
          : undefined;
      const onAbort = () => void stopChild(child, this.props.stopTimeoutSeconds ?? 30);
      signal?.addEventListener('abort', onAbort, { once: true });
      child.once('error', (error) => {
        spawnError = `CannotStartContainerError: ${error.message}`;
      });
      child.once('close', (code, sig) => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.running.delete(child);
        void closed.then(() => {
          // A container killed by a signal exits 128 + the signal's number, as Docker reports it.
          const exitCode = code ?? (sig ? 128 + (signalNumbers[sig] ?? 0) : undefined);
          const reason = spawnError ?? (code === 0 ? undefined : lastError ?? lastStderr ?? (sig ? `killed by ${sig}` : undefined));
          resolve({ exitCode, reason, timedOut, startedAt, stoppedAt: Date.now() });
        });
      });
    });
  }
}

const signalNumbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

function stopChild(child: ChildProcess, stopTimeoutSeconds: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutSeconds * 1000);
    child.once('close', () => {
      clearTimeout(killer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function describe(
  params: SubmitJobParameters,
  jobId: string,
  createdAt: number,
  attempts: JobAttempt[],
  env: Record<string, string>,
  retryStrategy: RetryStrategy | undefined,
  logFile: string,
  succeeded: boolean,
): JobDescription {
  const last = attempts[attempts.length - 1];
  return {
    JobArn: `arn:aws:batch:us-east-1:000000000000:job/${jobId}`,
    JobId: jobId,
    JobName: params.JobName,
    JobQueue: params.JobQueue,
    JobDefinition: params.JobDefinition,
    Status: succeeded ? 'SUCCEEDED' : 'FAILED',
    StatusReason: succeeded ? undefined : last.StatusReason,
    CreatedAt: createdAt,
    StartedAt: attempts[0].StartedAt,
    StoppedAt: last.StoppedAt,
    Attempts: attempts,
    Container: {
      Command: params.ContainerOverrides?.Command ?? [],
      Environment: Object.entries(env).map(([Name, Value]) => ({ Name, Value })),
      ExitCode: last.Container.ExitCode,
      LogStreamName: last.Container.LogStreamName,
      Reason: last.Container.Reason,
    },
    Parameters: params.Parameters ?? {},
    RetryStrategy: retryStrategy,
    DependsOn: [],
    Tags: {},
    LogFile: logFile,
  };
}

/** The host variables a container would not see are left out; only what node needs to run stays. */
function baseProcessEnv(): NodeJS.ProcessEnv {
  const keep = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'NODE_OPTIONS', 'TZ'];
  return Object.fromEntries(keep.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
}

function parseJsonObject(line: string): Record<string, unknown> | undefined {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{')) return undefined;
  try {
    const value = JSON.parse(trimmed) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function safeFileName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_');
}
