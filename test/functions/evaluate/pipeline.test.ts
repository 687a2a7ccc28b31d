/**
 * Evaluate on what the pipeline really produces: MNIST digits preprocessed, trained by
 * functions/train, exported by functions/export, then evaluated from the ONNX file.
 */
import { loadTf } from '../../../functions/core/backend';
import { runKeys } from '../../../functions/core/layout';
import { loadSplit, loadStats } from '../../../functions/core/prepared';
import { getJson, getText } from '../../../functions/core/s3';
import { loadModelFromS3 } from '../../../functions/core/tfjs-io';
import { evaluate, type EvaluationRecord } from '../../../functions/evaluate/core';
import { exportRun } from '../../../functions/export/core';
import { preprocess } from '../../../functions/preprocess/core';
import { trainRun } from '../../../functions/train/train';
import { DATA_BUCKET, MODEL_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';
import { uploadMnistDataset } from '../../support/mnist-csv';

let fx: S3Fixture;
beforeAll(async () => {
  fx = await localS3Fixture();
});
afterAll(async () => fx.close());

test('preprocess -> train -> export -> evaluate on 1,500 MNIST digits: ONNX metrics agree with TF.js', async () => {
  // Given a trained and exported MLP
  const upload = await uploadMnistDataset(fx.s3, DATA_BUCKET, {
    count: 1500,
    manifest: {
      model: [{ type: 'flatten' }, { type: 'dense', units: 32, activation: 'relu' }, { type: 'dense', units: 10, activation: 'softmax' }],
      training: { epochs: 3, batchSize: 64, learningRate: 0.001 },
    },
  });
  const input = { ...upload, runId: 'e2e-mnist' };
  const preprocessed = await preprocess(fx.s3, input);
  const loaded = await loadTf();
  await trainRun({ s3: fx.s3, bucket: DATA_BUCKET, runId: input.runId, loaded, log: () => undefined });
  const exported = await exportRun({ ...input, preprocess: preprocessed }, { s3: fx.s3, tf: loaded.tf });
  // When
  const result = await evaluate(fx.s3, { ...input, preprocess: preprocessed, export: exported }, { modelBucket: MODEL_BUCKET });
  // Then the accuracy is what TF.js gets on the same test rows
  const stats = await loadStats(fx.s3, DATA_BUCKET, input.runId);
  const test = await loadSplit(fx.s3, DATA_BUCKET, stats, 'test');
  const model = await loadModelFromS3(loaded.tf, fx.s3, DATA_BUCKET, runKeys.model(input.runId));
  const predicted = loaded.tf.tidy(() => (model.predict(loaded.tf.tensor(test.x, [test.rows, 28, 28, 1])) as import('@tensorflow/tfjs').Tensor).argMax(-1).dataSync());
  const tfjsAccuracy = Array.from(predicted).filter((p, i) => p === test.y[i]).length / test.rows;
  expect(result.metrics.accuracy).toBeCloseTo(tfjsAccuracy, 2);
  expect(result.metrics.accuracy).toBeGreaterThan(0.75);
  expect(result.promote).toBe(true);
  const record = (await getJson<EvaluationRecord>(fx.s3, { bucket: DATA_BUCKET, key: result.evaluationKey })).value;
  expect(record.testRows).toBe(300);
  // and the report draws the curves of the history Train wrote
  const html = (await getText(fx.s3, { bucket: DATA_BUCKET, key: result.reportKey })).text;
  expect(html).toMatch(/<path class="series" data-series="loss" d="M[\d.]+,[\d.]+ L[\d.]+,[\d.]+ L[\d.]+,[\d.]+"/);
  expect(html).toMatch(/<path class="series" data-series="val_loss" d="M/);
  expect(html).toMatch(/<path class="series" data-series="acc" d="M/);
  expect(html).toContain(`ONNX parity: max |ONNX − TF.js| = `);
}, 120_000);
