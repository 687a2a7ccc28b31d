import { ConfigError, DataError, ManifestError } from '../../../functions/core/errors';
import { runKeys } from '../../../functions/core/layout';
import { listObjects } from '../../../functions/core/s3';
import { exitCodeOf, main } from '../../../functions/train/main';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';
import { lastErrorLine, startMain } from './child';
import { writePrepared } from './prepared-fixture';

describe('main.ts', () => {
  let fx: S3Fixture;
  beforeAll(async () => {
    fx = await localS3Fixture();
  });
  afterAll(async () => fx.close());

  test('exit code 2 for errors a retry cannot fix, 1 for the rest', () => {
    expect(exitCodeOf(new ManifestError('x'))).toBe(2);
    expect(exitCodeOf(new DataError('x'))).toBe(2);
    expect(exitCodeOf(new Error('socket hang up'))).toBe(1);
  });

  test('a missing RUN_ID fails fast with a ConfigError line on stderr', async () => {
    const written: string[] = [];
    const spy = jest.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => (written.push(String(chunk)), true));
    try {
      expect(await main({ DATA_BUCKET })).toBe(2);
    } finally {
      spy.mockRestore();
    }
    expect(JSON.parse(written[written.length - 1])).toEqual({ event: 'error', name: ConfigError.name, message: 'Environment variable RUN_ID is required but is not set.' });
  });

  test('a bad layer spec exits 2 and its last stderr line names the layer', async () => {
    // Given a run whose manifest puts conv2d on a flat input
    await writePrepared(fx.s3, DATA_BUCKET, {
      runId: 'bad-spec',
      task: 'classification',
      inputShape: [3],
      classNames: ['a', 'b'],
      splits: { train: { x: [[1, 2, 3], [3, 2, 1]], y: [0, 1] }, validation: { x: [], y: [] }, test: { x: [[1, 1, 1]], y: [0] } },
      manifest: { name: 'flat', task: 'classification', format: 'csv', label: 'y', model: [{ type: 'conv2d', filters: 2, kernelSize: 2 }, { type: 'flatten' }, { type: 'dense', units: 2, activation: 'softmax' }] },
    });
    // When the container runs
    const run = await startMain({ RUN_ID: 'bad-spec', DATA_BUCKET, DLOPS_S3_ENDPOINT: fx.server.endpoint }).done;
    // Then
    expect(run.code).toBe(2);
    expect(lastErrorLine(run.stderr)).toEqual({
      event: 'error',
      name: 'ManifestError',
      message: 'model[0] (conv2d) needs an image input of shape [height, width, channels]; it receives [3]. Give the features a 3-d shape or use dense layers.',
    });
    expect(await listObjects(fx.s3, DATA_BUCKET, runKeys.prefix('bad-spec'))).toEqual([]);
  }, 60_000);

  test('a run without prepared data exits 2 naming the missing stats.json', async () => {
    const run = await startMain({ RUN_ID: 'never-prepared', DATA_BUCKET, DLOPS_S3_ENDPOINT: fx.server.endpoint }).done;
    expect(run.code).toBe(2);
    expect(lastErrorLine(run.stderr)).toEqual({ event: 'error', name: 'NotFoundError', message: `s3://${DATA_BUCKET}/prepared/never-prepared/stats.json does not exist.` });
  }, 60_000);
});
