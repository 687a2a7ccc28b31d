import { BadRequestError, ManifestError } from '../../../functions/core/errors';
import { putJson } from '../../../functions/core/s3';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';

let fx: S3Fixture;
let handler: typeof import('../../../functions/preprocess/handler').handler;
beforeAll(async () => {
  fx = await localS3Fixture();
  // The handler's S3 client comes from the environment, as in Lambda; here it points at the local server.
  process.env.DLOPS_S3_ENDPOINT = fx.server.endpoint;
  ({ handler } = await import('../../../functions/preprocess/handler'));
});
afterAll(async () => {
  delete process.env.DLOPS_S3_ENDPOINT;
  await fx.close();
});

describe('preprocess handler', () => {
  test('an event without runId is a BadRequestError naming the field', async () => {
    const event = { dataset: 'd', bucket: DATA_BUCKET, manifestKey: 'datasets/d/dataset.json', manifestETag: '' } as never;
    await expect(handler(event)).rejects.toThrow(BadRequestError);
    await expect(handler(event)).rejects.toThrow('Preprocess event: expected "runId" to be a non-empty string, received undefined.');
  });

  test('typed errors from the core reach Step Functions by name', async () => {
    await putJson(fx.s3, { bucket: DATA_BUCKET, key: 'datasets/h/dataset.json' }, { task: 'regression', format: 'parquet', label: 'y' });
    const error = await handler({ runId: 'h1', dataset: 'h', bucket: DATA_BUCKET, manifestKey: 'datasets/h/dataset.json', manifestETag: '' }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as Error).name).toBe('ManifestError');
    expect((error as Error).message).toBe('datasets/h/dataset.json is invalid: format: expected "csv" or "jsonl", received "parquet"');
  });
});
