import * as tf from '@tensorflow/tfjs';
import { preparedKeys, runKeys } from '../../../functions/core/layout';
import { encodeNpy } from '../../../functions/core/npy';
import { headETag, putBytes, putJson } from '../../../functions/core/s3';
import { saveModelToS3 } from '../../../functions/core/tfjs-io';
import { handler } from '../../../functions/export/handler';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';

describe('Export Lambda handler', () => {
  let fx: S3Fixture;
  beforeAll(async () => {
    fx = await localS3Fixture();
    // The handler builds its S3 client from the environment, as in Lambda.
    process.env.DLOPS_S3_ENDPOINT = fx.server.endpoint;
  });
  afterAll(async () => {
    delete process.env.DLOPS_S3_ENDPOINT;
    await fx.close();
  });

  test('takes the RunState event and returns the ExportResult', async () => {
    // Given a regression run: a trained MLP and 100 test rows
    await tf.setBackend('cpu');
    const runId = 'run-handler';
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 8, activation: 'relu' }), tf.layers.dense({ units: 1 })] });
    await saveModelToS3(tf, model, fx.s3, DATA_BUCKET, runKeys.model(runId));
    const x = preparedKeys.shard(runId, 'test', 'x', 0);
    const y = preparedKeys.shard(runId, 'test', 'y', 0);
    await putBytes(fx.s3, { bucket: DATA_BUCKET, key: x }, encodeNpy({ dtype: 'float32', shape: [100, 3], data: Float32Array.from({ length: 300 }, (_, i) => Math.cos(i)) }));
    await putBytes(fx.s3, { bucket: DATA_BUCKET, key: y }, encodeNpy({ dtype: 'float32', shape: [100], data: new Float32Array(100) }));
    await putJson(fx.s3, { bucket: DATA_BUCKET, key: preparedKeys.stats(runId) }, {
      task: 'regression', modelName: 'houses', label: 'price', inputShape: [3],
      normalization: { mean: [0, 0, 0], std: [1, 1, 1] },
      counts: { train: 0, validation: 0, test: 100 },
      shards: { train: [], validation: [], test: [{ x, y, rows: 100 }] },
      sources: [], manifestHash: '0'.repeat(64), seed: 1,
    });
    // When
    const result = await handler({ runId, dataset: 'houses', bucket: DATA_BUCKET, manifestKey: 'datasets/houses/dataset.json', manifestETag: '"m"' });
    // Then
    expect(result).toMatchObject({ onnxKey: runKeys.onnx(runId), opset: 13, parity: { rows: 100, passed: true } });
    expect(await headETag(fx.s3, { bucket: DATA_BUCKET, key: runKeys.onnx(runId) })).toBeDefined();
  });

  test('a malformed event is refused with the field named', async () => {
    await expect(handler({ bucket: DATA_BUCKET })).rejects.toThrow(/Export event: expected "runId"/);
  });
});
