import { ENV, requireEnv } from '../core/env';
import { SfnExecutionStarter, startRunFromEvent, type S3ObjectCreatedEvent, type TriggerResult } from './core';

let starter: SfnExecutionStarter | undefined;

/** EventBridge "Object Created" on the data bucket -> StartExecution. */
export const handler = async (event: S3ObjectCreatedEvent): Promise<TriggerResult> => {
  starter ??= new SfnExecutionStarter(requireEnv(ENV.stateMachineArn));
  return startRunFromEvent(event, starter);
};
