import { defaultS3 } from '../core/aws';
import type { PreprocessResult, RunState } from '../core/contracts';
import { BadRequestError } from '../core/errors';
import { preprocess } from './core';

/**
 * Preprocess Lambda: Step Functions passes the whole RunState; the result lands at $.preprocess.
 * Typed errors (ManifestError, DataError) propagate by name for the state machine's Catch.
 */
export const handler = async (event: RunState): Promise<PreprocessResult> => {
  for (const field of ['runId', 'dataset', 'bucket', 'manifestKey'] as const) {
    if (typeof event?.[field] !== 'string' || event[field] === '') {
      throw new BadRequestError(`Preprocess event: expected "${field}" to be a non-empty string, received ${JSON.stringify(event?.[field])}.`);
    }
  }
  return preprocess(defaultS3(), event);
};
