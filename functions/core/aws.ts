import { S3Client } from '@aws-sdk/client-s3';
import { ENV, optionalEnv } from './env';

/**
 * Builds an S3 client from the environment: the default credential chain in AWS, or the local
 * S3 server (path-style, fixed local credentials) when DLOPS_S3_ENDPOINT is set.
 */
export function s3ClientFromEnv(env: NodeJS.ProcessEnv = process.env): S3Client {
  const endpoint = optionalEnv(ENV.s3Endpoint, env);
  if (endpoint === undefined) return new S3Client({});
  return localS3Client(endpoint);
}

/** A client for the local S3 server (s3rver accepts its own fixed credentials). */
export function localS3Client(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    forcePathStyle: true,
    region: process.env.AWS_REGION ?? 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    // s3rver 3.7.1 does not understand the SDK's default aws-chunked uploads with trailing
    // checksums: a streamed body would fail or be stored with its chunk framing.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

let sharedS3: S3Client | undefined;

/** The process-wide default S3 client, built once on first use and reused while warm. */
export function defaultS3(): S3Client {
  sharedS3 ??= s3ClientFromEnv();
  return sharedS3;
}
