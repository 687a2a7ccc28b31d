import * as ort from 'onnxruntime-node';
import { loadTf } from '../../../functions/core/backend';
import { runKeys } from '../../../functions/core/layout';
import { runTfjs } from '../../../functions/core/onnx';
import { loadSplit, loadStats } from '../../../functions/core/prepared';
import { getBytes, getJson } from '../../../functions/core/s3';
import { loadModelFromS3 } from '../../../functions/core/tfjs-io';
import { exportRun, type ExportRecord } from '../../../functions/export/core';
import { preprocess } from '../../../functions/preprocess/core';
import { trainRun } from '../../../functions/train/train';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';
import { uploadMnistDataset } from '../../support/mnist-csv';

function argmax(values: Float32Array, width: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < values.length / width; r++) {
    let best = 0;
    for (let c = 1; c < width; c++) if (values[r * width + c]! > values[r * width + best]!) best = c;
    out.push(best);
  }
  return out;
}

/** The cross-team contracts end to end: what Preprocess and Train really write is what Export reads. */
describe('Preprocess -> Train -> Export on MNIST digits (local S3)', () => {
  let fx: S3Fixture;
  beforeAll(async () => {
    fx = await localS3Fixture();
  });
  afterAll(async () => fx.close());

  test('the exported seed network predicts the same class as TF.js for every test digit', async () => {
    // Given 1,000 digits preprocessed and trained for one epoch with the default (seed) network
    const runId = 'mnist-export';
    const upload = await uploadMnistDataset(fx.s3, DATA_BUCKET, { count: 1000, manifest: { training: { epochs: 1, batchSize: 64 } } });
    await preprocess(fx.s3, { runId, ...upload });
    const loaded = await loadTf({ prefer: 'cpu' });
    await trainRun({ s3: fx.s3, bucket: DATA_BUCKET, runId, loaded, log: () => undefined });
    // When
    const result = await exportRun({ runId, ...upload }, { s3: fx.s3, tf: loaded.tf });
    // Then parity held on the test split first
    const stats = await loadStats(fx.s3, DATA_BUCKET, runId);
    const { value: record } = await getJson<ExportRecord>(fx.s3, { bucket: DATA_BUCKET, key: runKeys.exportResult(runId) });
    expect(result.parity.passed).toBe(true);
    expect(result.parity.maxAbsDiff).toBeLessThanOrEqual(1e-4);
    expect(record.parityRowSources.test).toBe(stats.counts.test);
    expect(record.operators).toEqual(expect.arrayContaining(['Conv', 'MaxPool', 'Flatten', 'MatMul', 'Softmax']));
    // And the stored ONNX model classifies the test digits exactly as the stored TF.js model
    const test = await loadSplit(fx.s3, DATA_BUCKET, stats, 'test');
    const session = await ort.InferenceSession.create((await getBytes(fx.s3, { bucket: DATA_BUCKET, key: result.onnxKey })).body);
    const onnxOut = (await session.run({ input: new ort.Tensor('float32', test.x, [test.rows, ...stats.inputShape]) })).output!.data as Float32Array;
    await session.release();
    const model = await loadModelFromS3(loaded.tf, fx.s3, DATA_BUCKET, result.tfjsPrefix);
    const tfjsOut = runTfjs(loaded.tf, model, test.x, [test.rows, ...stats.inputShape]).output;
    const classes = stats.classNames!.length;
    expect(argmax(onnxOut, classes)).toEqual(argmax(tfjsOut, classes));
    // A trained model, not a constant one: it gets well above chance (10%) after one epoch
    const labels = Array.from(test.y);
    const accuracy = argmax(onnxOut, classes).filter((c, i) => c === labels[i]).length / test.rows;
    expect(accuracy).toBeGreaterThan(0.5);
  });
});
