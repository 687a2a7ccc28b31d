import * as tf from '@tensorflow/tfjs';
import { loadModelFromS3, saveModelToS3 } from '../../../functions/core/tfjs-io';
import { listObjects } from '../../../functions/core/s3';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';

describe('tfjs-io', () => {
  let fx: S3Fixture;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    fx = await localS3Fixture();
  });
  afterAll(async () => fx.close());

  test('a layers model saved to S3 loads back with the same predictions', async () => {
    // Given a small model with random weights
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 4, activation: 'relu' }), tf.layers.dense({ units: 2, activation: 'softmax' })] });
    const x = tf.tensor2d([[1, 2, 3], [-1, 0.5, 2]]);
    // When
    await saveModelToS3(tf, model, fx.s3, DATA_BUCKET, 'runs/r1/model/');
    const loaded = await loadModelFromS3(tf, fx.s3, DATA_BUCKET, 'runs/r1/model/');
    // Then
    expect((await listObjects(fx.s3, DATA_BUCKET, 'runs/r1/model/')).map((o) => o.key).sort()).toEqual(['runs/r1/model/model.json', 'runs/r1/model/weights.bin']);
    const a = (model.predict(x) as tf.Tensor).dataSync();
    const b = (loaded.predict(x) as tf.Tensor).dataSync();
    expect(Array.from(b)).toEqual(Array.from(a));
  });
});
