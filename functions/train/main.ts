/**
 * Entry point of the training container (AWS Batch, and the local runtime's Batch stand-in,
 * which runs this file as a child process with the same environment).
 *
 * Exit codes: 0 done; 2 a typed error a retry will not fix (bad spec, bad data, bad
 * config); 1 anything else (S3 unavailable, out of memory, ...). The last stderr line of a
 * failed job is one JSON object {"event":"error","name","message"} that the runners read.
 * The job definition's retry strategy can retry on exit code 1 and on Spot reclaims and
 * exit on 2: https://docs.aws.amazon.com/batch/latest/APIReference/API_EvaluateOnExit.html
 */
import { defaultS3 } from '../core/aws';
import { ENV, requireEnv } from '../core/env';
import { ConfigError, DataError, describeError, ManifestError, NotFoundError, TrainingError, UnsupportedLayerError } from '../core/errors';
import { trainRun } from './train';

export const EXIT_OK = 0;
export const EXIT_RETRYABLE = 1;
export const EXIT_PERMANENT = 2;

/** The exit code for an error: 2 when retrying the same input cannot help. */
export function exitCodeOf(error: unknown): number {
  const permanent = [ConfigError, ManifestError, DataError, TrainingError, UnsupportedLayerError, NotFoundError];
  return permanent.some((type) => error instanceof type) ? EXIT_PERMANENT : EXIT_RETRYABLE;
}

export async function main(env: NodeJS.ProcessEnv = process.env): Promise<number> {
  try {
    const runId = requireEnv(ENV.runId, env);
    const bucket = requireEnv(ENV.dataBucket, env);
    await trainRun({ s3: defaultS3(), bucket, runId });
    return EXIT_OK;
  } catch (error) {
    const { name, message } = describeError(error);
    if (error instanceof Error && error.stack !== undefined && exitCodeOf(error) === EXIT_RETRYABLE) process.stderr.write(`${error.stack}\n`);
    process.stderr.write(`${JSON.stringify({ event: 'error', name, message })}\n`);
    return exitCodeOf(error);
  }
}

if (require.main === module) {
  // Exit explicitly: the S3 client's keep-alive sockets would otherwise hold the process open.
  void main().then((code) => process.exit(code));
}
