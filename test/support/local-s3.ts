import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { localS3Client } from '../../functions/core/aws';
import { startLocalS3, type LocalS3 } from '../../local/s3-server';

export const DATA_BUCKET = 'dlops-data';
export const MODEL_BUCKET = 'dlops-models';

export interface S3Fixture {
  readonly s3: S3Client;
  readonly server: LocalS3;
  readonly directory: string;
  close(): Promise<void>;
}

/** A fresh local S3 server in a temp folder with the data and model buckets. Call close() in afterAll. */
export async function localS3Fixture(): Promise<S3Fixture> {
  const directory = mkdtempSync(join(tmpdir(), 'dlops-s3-'));
  const server = await startLocalS3({ directory, buckets: [DATA_BUCKET, MODEL_BUCKET] });
  const s3 = localS3Client(server.endpoint);
  return {
    s3,
    server,
    directory,
    close: async () => {
      s3.destroy();
      await server.stop();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
