import { defaultS3 } from '../core/aws';
import type { EvaluateResult, RunState } from '../core/contracts';
import { ENV, requireEnv } from '../core/env';
import { BadRequestError } from '../core/errors';
import { evaluate } from './core';

// Read on first use rather than at import, so the local runtime can load the module before it sets the environment.
let modelBucket: string | undefined;

/**
 * Evaluate Lambda: receives the RunState with $.preprocess and $.export; its result lands at
 * $.evaluate, where the Gate Choice reads $.evaluate.promote.
 */
export const handler = async (event: RunState): Promise<EvaluateResult> => {
  for (const field of ['runId', 'bucket'] as const) {
    if (typeof event?.[field] !== 'string' || event[field] === '') {
      throw new BadRequestError(`Evaluate event: expected "${field}" to be a non-empty string, received ${JSON.stringify(event?.[field])}.`);
    }
  }
  modelBucket ??= requireEnv(ENV.modelBucket);
  return evaluate(defaultS3(), event, { modelBucket });
};
