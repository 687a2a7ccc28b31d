/**
 * Entry point of the inference Lambda function (API Gateway REST, proxy integration).
 * Everything built here lives at module level, so a warm function reuses its S3 client, keyring,
 * alias resolutions and ONNX Runtime sessions across invocations.
 */
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { defaultS3 } from '../core/aws';
import { keyringFromEnv } from '../core/crypto';
import { ENV, optionalEnv, requireEnv } from '../core/env';
import { describeError } from '../core/errors';
import { logger as rootLogger } from '../core/logger';
import { ModelStore } from './models';
import { createInferenceService, reportLoad } from './service';

/** Settings of the inference function, read once (all optional but MODEL_BUCKET and a key). */
export const INFERENCE_ENV = {
  /** Seconds an alias resolution is reused. */
  aliasTtlSeconds: 'DLOPS_ALIAS_TTL_SECONDS',
  /** Alias served when a request names no version. */
  defaultAlias: 'DLOPS_DEFAULT_ALIAS',
  /** Largest batch per request. */
  maxBatch: 'DLOPS_MAX_BATCH',
} as const;

function positiveNumber(name: string, env: NodeJS.ProcessEnv, fallback: number): number {
  const raw = optionalEnv(name, env);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`Environment variable ${name} must be a positive number. Received "${raw}".`);
  return value;
}

/** Builds the request handler from the environment (the Lambda function, `dlops serve`, `dlops predict`). */
export function inferenceHandlerFromEnv(env: NodeJS.ProcessEnv = process.env) {
  const logger = rootLogger.createChild({ serviceName: 'inference' });
  const metrics = new Metrics({ namespace: 'dlops', serviceName: 'inference' });
  const store = new ModelStore({
    registry: { s3: defaultS3(), bucket: requireEnv(ENV.modelBucket, env), keyring: keyringFromEnv(env) },
    aliasTtlMs: positiveNumber(INFERENCE_ENV.aliasTtlSeconds, env, 30) * 1000,
    defaultAlias: optionalEnv(INFERENCE_ENV.defaultAlias, env) ?? 'production',
    onLoad: (loaded) => reportLoad(loaded, logger, metrics),
  });
  const service = createInferenceService({ store, logger, metrics, maxBatch: positiveNumber(INFERENCE_ENV.maxBatch, env, 256) });
  return { store, service, logger };
}

let built: ReturnType<typeof inferenceHandlerFromEnv> | undefined;

export const handler = async (event: APIGatewayProxyEvent, context?: Context): Promise<APIGatewayProxyResult> => {
  try {
    built ??= inferenceHandlerFromEnv();
  } catch (error) {
    // A misconfigured function is not ready: say so, keep the cause in the log.
    rootLogger.error('Inference function is misconfigured', { error: describeError(error) });
    return { statusCode: 503, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ error: 'The inference service is not configured; see the function log.' }) };
  }
  if (context !== undefined) built.logger.addContext(context);
  return built.service(event);
};
