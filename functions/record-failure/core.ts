import type { S3Client } from '@aws-sdk/client-s3';
import type { FailureEvent, RunStatus } from '../core/contracts';
import { BadRequestError } from '../core/errors';
import { runKeys } from '../core/layout';
import { logger as rootLogger } from '../core/logger';
import { putJson } from '../core/s3';

const log = rootLogger.createChild({ serviceName: 'record-failure' });

const EXECUTION_NAME = /^[A-Za-z0-9_-]{1,80}$/;

/**
 * A Lambda error's Cause is the JSON the runtime reports ({errorType, errorMessage, trace});
 * keep the message and drop the stack trace, which names bundle paths and helps no reader.
 */
export function causeMessage(cause: string | undefined): string | undefined {
  if (cause === undefined) return undefined;
  try {
    const parsed = JSON.parse(cause) as unknown;
    if (parsed && typeof parsed === 'object' && typeof (parsed as { errorMessage?: unknown }).errorMessage === 'string') {
      return (parsed as { errorMessage: string }).errorMessage;
    }
    const job = batchJobFailure(parsed);
    if (job !== undefined) return job;
  } catch {
    // Not JSON (a Batch status reason, a States.* cause): keep it as it is.
  }
  return cause;
}

/**
 * A failed Batch job as submitJob.sync reports it (the DescribeJobs job): its exit code and the
 * container's reason, which for the training container is its last `{"event":"error"}` line.
 */
function batchJobFailure(parsed: unknown): string | undefined {
  const job = parsed as { JobName?: unknown; StatusReason?: unknown; Container?: { ExitCode?: unknown; Reason?: unknown } } | null;
  if (job === null || typeof job !== 'object' || typeof job.JobName !== 'string' || typeof job.StatusReason !== 'string') return undefined;
  const exitCode = typeof job.Container?.ExitCode === 'number' ? ` with exit code ${job.Container.ExitCode}` : '';
  let reason = typeof job.Container?.Reason === 'string' ? job.Container.Reason : job.StatusReason;
  try {
    const line = JSON.parse(reason) as { event?: unknown; name?: unknown; message?: unknown };
    if (line.event === 'error' && typeof line.message === 'string') reason = `${String(line.name ?? 'Error')}: ${line.message}`;
  } catch {
    // A plain reason ("Essential container in task exited", "Host EC2 ... terminated").
  }
  return `Training job ${job.JobName} failed${exitCode}: ${reason}`;
}

/** Writes `runs/<executionName>/status.json` (state FAILED) in the data bucket and returns the status and its key. */
export async function recordFailure(
  s3: S3Client,
  bucket: string,
  event: FailureEvent,
  now: Date = new Date(),
): Promise<{ key: string; status: RunStatus }> {
  const executionName = event?.executionName;
  if (typeof executionName !== 'string' || !EXECUTION_NAME.test(executionName)) {
    throw new BadRequestError(`executionName must be 1 to 80 characters of [A-Za-z0-9_-]. Received ${JSON.stringify(executionName)}.`);
  }
  const error = event.error;
  if (!error || typeof error.Error !== 'string') {
    throw new BadRequestError(`error.Error must be a string (the Catch puts {Error, Cause} at $.error). Received ${JSON.stringify(error)}.`);
  }
  const status: RunStatus = {
    state: 'FAILED',
    executionName,
    error: error.Error,
    cause: causeMessage(error.Cause),
    time: now.toISOString(),
  };
  const key = runKeys.status(executionName);
  await putJson(s3, { bucket, key }, status, { contentType: 'application/json' });
  log.error('Run failed', { ...status, dataset: event.dataset });
  return { key, status };
}
