import { ConfigError } from './errors';

/**
 * Every environment variable dlops reads, in one place. The construct that owns a resource
 * sets its variable (lib/) and the local runtime sets the same names (local/).
 */
export const ENV = {
  /** Bucket with datasets, prepared data, runs and checkpoints. */
  dataBucket: 'DATA_BUCKET',
  /** Bucket with the model registry (`models/`). */
  modelBucket: 'MODEL_BUCKET',
  /** KMS key ARN for the Encryption SDK's KMS keyring (in AWS). */
  kmsKeyArn: 'KMS_KEY_ARN',
  /** Path of the raw AES key file for the local keyring (no AWS); set instead of KMS_KEY_ARN. */
  localKeyFile: 'DLOPS_LOCAL_KEY_FILE',
  /** S3 endpoint override: the local S3 server. Unset in AWS. */
  s3Endpoint: 'DLOPS_S3_ENDPOINT',
  /** State machine the trigger starts. */
  stateMachineArn: 'STATE_MACHINE_ARN',
  /** Run id (the execution name), given to the training job. */
  runId: 'RUN_ID',
  /** Code version recorded in lineage. */
  codeVersion: 'DLOPS_CODE_VERSION',
} as const;

export type EnvName = (typeof ENV)[keyof typeof ENV];

/** A required variable: fail fast with the variable's name when it is missing. */
export function requireEnv(name: EnvName | string, env: NodeJS.ProcessEnv = process.env): string {
  const value = env[name];
  if (value === undefined || value === '') {
    throw new ConfigError(`Environment variable ${name} is required but is not set.`);
  }
  return value;
}

/** An optional variable. */
export function optionalEnv(name: EnvName | string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}
