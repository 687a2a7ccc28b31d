import { createHash } from 'node:crypto';
import { SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { RunInput } from '../core/contracts';
import { BadRequestError } from '../core/errors';
import { datasetOfManifestKey } from '../core/layout';
import { logger as rootLogger } from '../core/logger';

const log = rootLogger.createChild({ serviceName: 'trigger' });

/** The EventBridge "Object Created" event of S3 (only the fields dlops reads). */
export interface S3ObjectCreatedEvent {
  readonly source?: string;
  readonly 'detail-type'?: string;
  readonly detail: {
    readonly bucket: { readonly name: string };
    readonly object: { readonly key: string; readonly etag?: string; readonly size?: number };
  };
}

/** Starts an execution; AWS uses Step Functions, the local runtime its own interpreter. */
export interface ExecutionStarter {
  /** `started: false` when an execution of that name already exists (the same upload was seen before). */
  start(name: string, input: RunInput): Promise<{ started: boolean; executionArn?: string }>;
}

export interface TriggerResult {
  /** The execution name, or undefined when the key is not a manifest. */
  readonly runId?: string;
  readonly started: boolean;
  readonly executionArn?: string;
  readonly ignored?: string;
}

/** Longest Step Functions execution name. https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html */
export const MAX_EXECUTION_NAME = 80;
const DIGEST_CHARS = 32;

/**
 * The run id: readable dataset prefix + a digest of dataset and manifest ETag. Deterministic, so
 * a re-upload of the same bytes (same ETag) yields the same name and Step Functions refuses a
 * second execution; only [A-Za-z0-9-_] and at most 80 characters (also a valid Batch job name).
 */
export function executionName(dataset: string, manifestETag: string): string {
  if (dataset === '') throw new BadRequestError('executionName: dataset must not be empty. Received "".');
  const etag = manifestETag.replace(/"/g, '');
  if (etag === '') throw new BadRequestError(`executionName: manifestETag must not be empty. Received ${JSON.stringify(manifestETag)}.`);
  const digest = createHash('sha256').update(`${dataset}\n${etag}`).digest('hex').slice(0, DIGEST_CHARS);
  const readable = dataset.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, MAX_EXECUTION_NAME - DIGEST_CHARS - 1);
  return `${readable}-${digest}`;
}

/** Turns an object-created event into a run, or ignores it (with a log line) when the key is not `datasets/<ds>/dataset.json`. */
export async function startRunFromEvent(event: S3ObjectCreatedEvent, starter: ExecutionStarter): Promise<TriggerResult> {
  const bucket = event?.detail?.bucket?.name;
  const key = event?.detail?.object?.key;
  if (typeof bucket !== 'string' || typeof key !== 'string') {
    throw new BadRequestError(`Event is not an S3 "Object Created" event: detail.bucket.name=${JSON.stringify(bucket)}, detail.object.key=${JSON.stringify(key)}.`);
  }
  const dataset = datasetOfManifestKey(key);
  if (dataset === undefined) {
    log.info('Ignored: not a dataset commit marker', { bucket, key });
    return { started: false, ignored: `s3://${bucket}/${key} is not datasets/<dataset>/dataset.json` };
  }
  const etag = event.detail.object.etag;
  if (typeof etag !== 'string' || etag === '') {
    throw new BadRequestError(`Event for s3://${bucket}/${key} has no detail.object.etag. Received ${JSON.stringify(etag)}.`);
  }
  const manifestETag = etag.replace(/"/g, '');
  const runId = executionName(dataset, manifestETag);
  const input: RunInput = { runId, dataset, bucket, manifestKey: key, manifestETag };
  const { started, executionArn } = await starter.start(runId, input);
  if (started) log.info('Run started', { runId, dataset, key, executionArn });
  else log.info('Run already exists for this manifest; nothing started', { runId, dataset, key });
  return { runId, started, executionArn };
}

/** The Step Functions starter. */
export class SfnExecutionStarter implements ExecutionStarter {
  constructor(
    private readonly stateMachineArn: string,
    private readonly client: Pick<SFNClient, 'send'> = new SFNClient({}),
  ) {}

  async start(name: string, input: RunInput): Promise<{ started: boolean; executionArn?: string }> {
    try {
      const out = await this.client.send(new StartExecutionCommand({ stateMachineArn: this.stateMachineArn, name, input: JSON.stringify(input) }));
      return { started: true, executionArn: out.executionArn };
    } catch (error) {
      // Same name as an earlier (or differently-started) execution: that upload already has its run.
      if (error instanceof Error && error.name === 'ExecutionAlreadyExists') return { started: false };
      throw error;
    }
  }
}
