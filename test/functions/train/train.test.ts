import * as tf from '@tensorflow/tfjs';
import { ManifestError } from '../../../functions/core/errors';
import { preparedKeys, runKeys } from '../../../functions/core/layout';
import type { DatasetManifest } from '../../../functions/core/manifest';
import { getJson, listObjects, putJson } from '../../../functions/core/s3';
import { loadModelFromS3 } from '../../../functions/core/tfjs-io';
import { seededRandom } from '../../../functions/core/random';
import { trainRun, type TrainEvent, type TrainHistory } from '../../../functions/train/train';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';
import { writePrepared, type RawSplit } from './prepared-fixture';

/** 6x6x1 images whose class (0..2) is the brightest third of the rows, plus noise. */
function images(rows: number, seed: number): RawSplit {
  const random = seededRandom(seed);
  const x: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < rows; i++) {
    const label = i % 3;
    x.push(Array.from({ length: 36 }, (_, p) => (Math.floor(Math.floor(p / 6) / 2) === label ? 1 : 0) + random() * 0.8));
    y.push(label);
  }
  return { x, y };
}

/** y = 2a - b + noise. */
function table(rows: number, seed: number): RawSplit {
  const random = seededRandom(seed);
  const x = Array.from({ length: rows }, () => [random() * 4, random() * 4]);
  return { x, y: x.map(([a, b]) => 2 * a - b + random() * 0.1) };
}

const manifest = (overrides: Partial<DatasetManifest>): DatasetManifest => ({ name: 'shapes', task: 'classification', format: 'csv', label: 'label', ...overrides });

describe('trainRun', () => {
  let fx: S3Fixture;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    fx = await localS3Fixture();
  });
  afterAll(async () => fx.close());

  async function prepareImages(runId: string, m: DatasetManifest): Promise<void> {
    await writePrepared(fx.s3, DATA_BUCKET, {
      runId,
      task: 'classification',
      inputShape: [6, 6, 1],
      classNames: ['top', 'middle', 'bottom'],
      splits: { train: images(240, 1), validation: images(60, 2), test: images(30, 3) },
      manifest: m,
      shardRows: 100,
    });
  }

  test('trains the manifest model, logs one line per epoch and writes model, history and checkpoints', async () => {
    // Given an image dataset and a conv/batch-norm/dropout model
    const layers = manifest({
      model: [
        { type: 'conv2d', filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' },
        { type: 'batchNormalization' },
        { type: 'maxPooling2d', poolSize: 2 },
        { type: 'dropout', rate: 0.1 },
        { type: 'flatten' },
        { type: 'dense', units: 3, activation: 'softmax' },
      ],
      training: { epochs: 4, batchSize: 32, learningRate: 0.01, seed: 3 },
    });
    await prepareImages('run-a', layers);
    const events: TrainEvent[] = [];
    // When
    const summary = await trainRun({ s3: fx.s3, bucket: DATA_BUCKET, runId: 'run-a', log: (e) => events.push(e) });
    // Then: one epoch event per epoch, in the agreed shape
    const epochs = events.filter((e) => e.event === 'epoch');
    expect(epochs.map((e) => e.epoch)).toEqual([1, 2, 3, 4]);
    for (const e of epochs) {
      expect(Object.keys(e).sort()).toEqual(['backend', 'epoch', 'epochs', 'event', 'loss', 'metrics', 'samplesPerSecond']);
      expect(Object.keys(e.metrics as object).sort()).toEqual(['acc', 'val_acc', 'val_loss']);
      expect(e.samplesPerSecond).toBeGreaterThan(0);
      expect(e.epochs).toBe(4);
    }
    // history.json holds the same epochs, and the task is learnt
    const { value: history } = await getJson<TrainHistory>(fx.s3, { bucket: DATA_BUCKET, key: runKeys.history('run-a') });
    expect(history.epochs.map((e) => e.loss)).toEqual(epochs.map((e) => e.loss));
    expect(history.backend).toBe(summary.backend);
    expect(history.epochs[3].metrics.val_acc).toBeGreaterThan(0.9);
    // the model loads and outputs class probabilities
    const model = await loadModelFromS3(tf, fx.s3, DATA_BUCKET, runKeys.model('run-a'));
    const probs = (model.predict(tf.zeros([2, 6, 6, 1])) as tf.Tensor).arraySync() as number[][];
    expect(probs.map((row) => row.length)).toEqual([3, 3]);
    expect(probs[0].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    // only the two newest checkpoints are kept, each committed by checkpoint.json
    const keys = (await listObjects(fx.s3, DATA_BUCKET, runKeys.checkpoints('run-a'))).map((o) => o.key.slice(runKeys.checkpoints('run-a').length)).sort();
    expect(keys).toEqual([
      'epoch-00003/checkpoint.json',
      'epoch-00003/model.json',
      'epoch-00003/optimizer.bin',
      'epoch-00003/weights.bin',
      'epoch-00004/checkpoint.json',
      'epoch-00004/model.json',
      'epoch-00004/optimizer.bin',
      'epoch-00004/weights.bin',
    ]);
  });

  test('a resumed run ends with exactly the weights of an uninterrupted one (weights, Adam slots and shuffle restored)', async () => {
    const spec = manifest({ training: { epochs: 3, batchSize: 16, learningRate: 0.005, seed: 11 }, model: [{ type: 'flatten' }, { type: 'dense', units: 8, activation: 'relu' }, { type: 'dense', units: 3, activation: 'softmax' }] });
    // Given one run trained straight through, and one stopped after epoch 1 then restarted
    await prepareImages('straight', spec);
    await trainRun({ s3: fx.s3, bucket: DATA_BUCKET, runId: 'straight', log: () => undefined });
    await prepareImages('interrupted', { ...spec, training: { ...spec.training, epochs: 1 } });
    await trainRun({ s3: fx.s3, bucket: DATA_BUCKET, runId: 'interrupted', log: () => undefined });
    await putJson(fx.s3, { bucket: DATA_BUCKET, key: preparedKeys.manifest('interrupted') }, spec);
    const events: TrainEvent[] = [];
    // When it resumes
    const resumed = await trainRun({ s3: fx.s3, bucket: DATA_BUCKET, runId: 'interrupted', log: (e) => events.push(e) });
    // Then it trains only the missing epochs and lands on the same weights
    expect(events.filter((e) => e.event === 'resume').map((e) => e.fromEpoch)).toEqual([1]);
    expect(events.filter((e) => e.event === 'epoch').map((e) => e.epoch)).toEqual([2, 3]);
    expect(resumed.epochs.map((e) => e.epoch)).toEqual([1, 2, 3]);
    const a = await loadModelFromS3(tf, fx.s3, DATA_BUCKET, runKeys.model('straight'));
    const b = await loadModelFromS3(tf, fx.s3, DATA_BUCKET, runKeys.model('interrupted'));
    const flat = (m: tf.LayersModel) => m.getWeights().flatMap((w) => Array.from(w.dataSync()));
    const wa = flat(a);
    const wb = flat(b);
    expect(wb.length).toBe(wa.length);
    expect(Math.max(...wa.map((v, i) => Math.abs(v - wb[i])))).toBeLessThan(1e-6);
  });

  test('categoricalCrossentropy trains on one-hot labels', async () => {
    await prepareImages('onehot', manifest({ training: { epochs: 3, learningRate: 0.01, loss: 'categoricalCrossentropy', metrics: ['accuracy'], seed: 2 } }));
    const summary = await trainRun({ s3: fx.s3, bucket: DATA_BUCKET, runId: 'onehot', log: () => undefined });
    expect(Object.keys(summary.epochs[0].metrics).sort()).toEqual(['acc', 'val_acc', 'val_loss']);
    expect(summary.epochs[2].loss).toBeLessThan(summary.epochs[0].loss);
  });

  test('regression with the default model stops early when the validation loss stalls', async () => {
    // Given a learning rate so small that nothing improves by minDelta
    await writePrepared(fx.s3, DATA_BUCKET, {
      runId: 'reg',
      task: 'regression',
      inputShape: [2],
      splits: { train: table(200, 5), validation: table(50, 6), test: table(20, 7) },
      manifest: manifest({ task: 'regression', training: { epochs: 10, optimizer: 'sgd', learningRate: 1e-9, earlyStopping: { patience: 1, minDelta: 0.1 } } }),
    });
    const events: TrainEvent[] = [];
    // When
    const summary = await trainRun({ s3: fx.s3, bucket: DATA_BUCKET, runId: 'reg', log: (e) => events.push(e) });
    // Then
    expect(summary.stoppedEarly).toBe(true);
    expect(summary.epochs.map((e) => e.epoch)).toEqual([1, 2]);
    expect(Object.keys(summary.epochs[0].metrics).sort()).toEqual(['mae', 'val_loss', 'val_mae']);
    expect(events.find((e) => e.event === 'earlyStopping')).toMatchObject({ epoch: 2, monitor: 'val_loss', patience: 1 });
    const model = await loadModelFromS3(tf, fx.s3, DATA_BUCKET, runKeys.model('reg'));
    expect(model.outputs[0].shape).toEqual([null, 1]);
  });

  test('conv2d on flat input fails with a ManifestError naming the layer, and writes nothing under runs/', async () => {
    await writePrepared(fx.s3, DATA_BUCKET, {
      runId: 'bad',
      task: 'regression',
      inputShape: [2],
      splits: { train: table(20, 1), validation: table(0, 1), test: table(5, 1) },
      manifest: manifest({ task: 'regression', model: [{ type: 'dense', units: 4 }, { type: 'conv2d', filters: 2, kernelSize: 3 }, { type: 'dense', units: 1 }] }),
    });
    const run = trainRun({ s3: fx.s3, bucket: DATA_BUCKET, runId: 'bad', log: () => undefined });
    await expect(run).rejects.toThrow(ManifestError);
    await expect(run).rejects.toThrow(/^model\[1\] \(conv2d\) needs an image input of shape \[height, width, channels\]; it receives \[4\]/);
    expect(await listObjects(fx.s3, DATA_BUCKET, runKeys.prefix('bad'))).toEqual([]);
  });
});
