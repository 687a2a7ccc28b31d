import { defaultS3 } from '../core/aws';
import type { FailureEvent, RunStatus } from '../core/contracts';
import { ENV, requireEnv } from '../core/env';
import { recordFailure } from './core';

/** Called by the state machine's Catch path; its result is discarded so $.error reaches the Fail state. */
export const handler = async (event: FailureEvent): Promise<{ key: string; status: RunStatus }> =>
  recordFailure(defaultS3(), requireEnv(ENV.dataBucket), event);
