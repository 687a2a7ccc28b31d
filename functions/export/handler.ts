import { defaultS3 } from '../core/aws';
import { loadTf } from '../core/backend';
import type { ExportResult } from '../core/contracts';
import { ENV, optionalEnv } from '../core/env';
import { exportRun, parseExportEvent } from './core';

/**
 * Export Lambda: Step Functions passes the whole RunState; the result lands at $.export.
 * UnsupportedLayerError and ParityError propagate by name for the state machine's Catch.
 */
export const handler = async (event: unknown): Promise<ExportResult> => {
  const state = parseExportEvent(event);
  const { tf } = await loadTf();
  return exportRun(state, { s3: defaultS3(), tf }, { codeVersion: optionalEnv(ENV.codeVersion) });
};
