import * as tf from '@tensorflow/tfjs';
import { runKeys } from '../../../functions/core/layout';
import { loadShard } from '../../../functions/core/prepared';
import { getJson } from '../../../functions/core/s3';
import { loadModelFromS3 } from '../../../functions/core/tfjs-io';
import type { TrainHistory } from '../../../functions/train/train';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';
import { startMain } from './child';
import { DIGIT_CLASSES, mnistSplits, writePrepared } from './prepared-fixture';

/*
 * Issue 3's bar: the MLP 784-128-10, Adam 1e-3, batch 64, 5 epochs on 8,000 train / 2,000 test
 * stratified digits of the `mnist` package reaches about 92% in a PyTorch reference; dlops must be
 * within one point. The full 8,000/2,000 fits in this test (about 30 s with the fast CPU kernels).
 *
 * Measured through this path (per-pixel standardised shards, as Preprocess writes them): 93.35%
 * (seed 1) and 93.1% (seed 7), a little above the band. The same run on raw 0..1 pixels (mean 0,
 * std 1 in stats.json) gave 92.85%: standardising the inputs is worth about half a point, which
 * is the likely gap to a reference that feeds raw pixels. So the test holds the lower edge of the
 * band (91%) and a ceiling of 95%: well above what 5 epochs of this MLP reach, so going past it
 * would mean test rows leaked into training.
 */
const FLOOR = 0.91;
const CEILING = 0.95;

describe('MLP 784-128-10 on the mnist digits through main.ts', () => {
  let fx: S3Fixture;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    fx = await localS3Fixture();
  });
  afterAll(async () => fx.close());

  test(`reaches between ${FLOOR * 100}% and ${CEILING * 100}% test accuracy after 5 epochs`, async () => {
    // Given 8,000 / 2,000 stratified digits as prepared shards and the settings
    const stats = await writePrepared(fx.s3, DATA_BUCKET, {
      runId: 'mnist-mlp',
      task: 'classification',
      inputShape: [784],
      classNames: DIGIT_CLASSES,
      splits: mnistSplits({ train: 8000, validation: 0, test: 2000 }),
      manifest: {
        name: 'mnist',
        task: 'classification',
        format: 'csv',
        label: 'label',
        model: [
          { type: 'dense', units: 128, activation: 'relu' },
          { type: 'dense', units: 10, activation: 'softmax' },
        ],
        training: { epochs: 5, batchSize: 64, learningRate: 1e-3, optimizer: 'adam', seed: 1 },
      },
    });
    // When the training container's entry point runs
    const run = await startMain({ RUN_ID: 'mnist-mlp', DATA_BUCKET, DLOPS_S3_ENDPOINT: fx.server.endpoint }).done;
    expect(run.code).toBe(0);
    // Then the saved model classifies the held-out test split within the bar
    const model = await loadModelFromS3(tf, fx.s3, DATA_BUCKET, runKeys.model('mnist-mlp'));
    let correct = 0;
    let rows = 0;
    for (const shard of stats.shards.test) {
      const part = await loadShard(fx.s3, DATA_BUCKET, stats, shard);
      const predicted = tf.tidy(() => (model.predict(tf.tensor2d(part.x, [part.rows, 784])) as tf.Tensor).argMax(-1).dataSync());
      for (let i = 0; i < part.rows; i++) if (predicted[i] === part.y[i]) correct++;
      rows += part.rows;
    }
    const accuracy = correct / rows;
    const { value: history } = await getJson<TrainHistory>(fx.s3, { bucket: DATA_BUCKET, key: runKeys.history('mnist-mlp') });
    process.stdout.write(`mnist MLP: test accuracy ${(accuracy * 100).toFixed(2)}% on ${rows} rows; samples/s ${history.epochs.map((e) => e.samplesPerSecond).join(', ')} (${history.backend})\n`);
    expect(rows).toBe(2000);
    expect(history.epochs).toHaveLength(5);
    expect(accuracy).toBeGreaterThanOrEqual(FLOOR);
    expect(accuracy).toBeLessThanOrEqual(CEILING);
  }, 150_000);
});
