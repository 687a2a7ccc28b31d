/**
 * Entry point of the Register Lambda function (a Step Functions task). Receives the whole
 * RunState and returns only the RegisterResult (stored at $.register). Typed errors propagate
 * so the state machine's Retry/Catch can match their names.
 */
import type { RegisterResult, RunState } from '../core/contracts';
import { defaultS3 } from '../core/aws';
import { keyringFromEnv } from '../core/crypto';
import { ENV, optionalEnv, requireEnv } from '../core/env';
import { logger as rootLogger } from '../core/logger';
import { registerRun } from './register';
import { version as packageVersion } from '../../package.json';

const logger = rootLogger.createChild({ serviceName: 'register' });
// Built on first use and kept while warm.
let keyring: ReturnType<typeof keyringFromEnv> | undefined;

export const handler = async (event: RunState): Promise<RegisterResult> => {
  const result = await registerRun({
    s3: defaultS3(),
    dataBucket: optionalEnv(ENV.dataBucket) ?? event.bucket,
    modelBucket: requireEnv(ENV.modelBucket),
    keyring: (keyring ??= keyringFromEnv()),
    state: event,
    codeVersion: optionalEnv(ENV.codeVersion) ?? packageVersion,
  });
  logger.info('Registered', { runId: event.runId, ...result });
  return result;
};
