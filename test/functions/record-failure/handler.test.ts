import { getJson } from '../../../functions/core/s3';
import type { RunStatus } from '../../../functions/core/contracts';
import { runKeys } from '../../../functions/core/layout';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';

let fx: S3Fixture;
const saved = { ...process.env };
beforeAll(async () => {
  fx = await localS3Fixture();
  process.env.DATA_BUCKET = DATA_BUCKET;
  process.env.DLOPS_S3_ENDPOINT = fx.server.endpoint;
});
afterAll(async () => {
  process.env = saved;
  await fx.close();
});

test('the handler writes the status through the environment-configured client, as the state machine calls it', async () => {
  const { handler } = await import('../../../functions/record-failure/handler');
  const out = await handler({
    executionName: 'mnist-abc',
    runId: 'mnist-abc',
    dataset: 'mnist',
    bucket: DATA_BUCKET,
    manifestKey: 'datasets/mnist/dataset.json',
    manifestETag: 'e',
    error: { Error: 'ParityError', Cause: '{"errorType":"ParityError","errorMessage":"max |diff| 0.2 > 1e-4"}' },
  });
  expect(out.key).toBe(runKeys.status('mnist-abc'));
  const { value } = await getJson<RunStatus>(fx.s3, { bucket: DATA_BUCKET, key: out.key });
  expect(value).toMatchObject({ state: 'FAILED', error: 'ParityError', cause: 'max |diff| 0.2 > 1e-4' });
});
