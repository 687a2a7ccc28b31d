import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import * as protobuf from 'protobufjs';
import type { RunState } from '../../../functions/core/contracts';
import { BadRequestError, DataError, ParityError, UnsupportedLayerError } from '../../../functions/core/errors';
import { preparedKeys, runKeys } from '../../../functions/core/layout';
import { buildModel } from '../../../functions/core/model';
import { encodeNpy } from '../../../functions/core/npy';
import { maxAbsDiff, runTfjs } from '../../../functions/core/onnx';
import type { PreparedStats, ShardRef, SplitName } from '../../../functions/core/prepared';
import { getBytes, getJson, listObjects, putBytes, putJson } from '../../../functions/core/s3';
import { saveModelToS3 } from '../../../functions/core/tfjs-io';
import { exportRun, MIN_PARITY_ROWS, parseExportEvent, type ExportRecord } from '../../../functions/export/core';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';

const INPUT_SHAPE = [6, 5, 1];
const WIDTH = 30;

/** Deterministic "normalised" rows; each split gets its own values so the sources can be told apart. */
function rows(n: number, offset: number): Float32Array {
  return Float32Array.from({ length: n * WIDTH }, (_, i) => Math.sin((i + offset) * 0.61) * 1.5);
}

/** Writes stats.json and .npy shards per the prepared-data contract; `splits` gives rows per shard. */
async function writePrepared(fx: S3Fixture, runId: string, splits: Record<SplitName, number[]>): Promise<PreparedStats> {
  const shards = {} as Record<SplitName, ShardRef[]>;
  const counts = {} as Record<SplitName, number>;
  let offset = 0;
  for (const split of ['train', 'validation', 'test'] as const) {
    shards[split] = [];
    counts[split] = 0;
    for (const [index, n] of splits[split].entries()) {
      const x = preparedKeys.shard(runId, split, 'x', index);
      const y = preparedKeys.shard(runId, split, 'y', index);
      await putBytes(fx.s3, { bucket: DATA_BUCKET, key: x }, encodeNpy({ dtype: 'float32', shape: [n, ...INPUT_SHAPE], data: rows(n, offset) }));
      await putBytes(fx.s3, { bucket: DATA_BUCKET, key: y }, encodeNpy({ dtype: 'int32', shape: [n], data: Int32Array.from({ length: n }, (_, i) => i % 3) }));
      shards[split].push({ x, y, rows: n });
      counts[split] += n;
      offset += n * WIDTH;
    }
  }
  const stats: PreparedStats = {
    task: 'classification',
    modelName: 'digits',
    label: 'label',
    inputShape: INPUT_SHAPE,
    classNames: ['a', 'b', 'c'],
    normalization: { mean: new Array(WIDTH).fill(0), std: new Array(WIDTH).fill(1) },
    counts,
    shards,
    sources: [{ key: 'datasets/digits/data/a.csv', etag: '"e"' }],
    manifestHash: 'f'.repeat(64),
    seed: 42,
  };
  await putJson(fx.s3, { bucket: DATA_BUCKET, key: preparedKeys.stats(runId) }, stats);
  return stats;
}

function stateOf(runId: string): RunState {
  return {
    runId,
    dataset: 'digits',
    bucket: DATA_BUCKET,
    manifestKey: 'datasets/digits/dataset.json',
    manifestETag: '"m"',
    preprocess: {
      modelName: 'digits',
      task: 'classification',
      preparedPrefix: preparedKeys.prefix(runId),
      statsKey: preparedKeys.stats(runId),
      inputShape: INPUT_SHAPE,
      classNames: ['a', 'b', 'c'],
      counts: { train: 0, validation: 0, test: 0 },
    },
  };
}

function convNet(seed: number): tf.Sequential {
  return buildModel(tf, {
    inputShape: INPUT_SHAPE,
    layers: [
      { type: 'conv2d', filters: 4, kernelSize: 3, padding: 'same', activation: 'relu' },
      { type: 'batchNormalization' },
      { type: 'maxPooling2d', poolSize: 2 },
      { type: 'flatten' },
      { type: 'dropout', rate: 0.1 },
      { type: 'dense', units: 3, activation: 'softmax' },
    ],
    seed,
  });
}

describe('exportRun (Export step core) against the local S3 server', () => {
  let fx: S3Fixture;
  beforeAll(async () => {
    await tf.setBackend('cpu');
    fx = await localS3Fixture();
  });
  afterAll(async () => fx.close());

  test('writes model.onnx and export.json; the ONNX model reproduces TF.js on the test rows', async () => {
    // Given a trained model and prepared data with 120 test rows in two shards
    const runId = 'run-ok';
    const model = convNet(1);
    await saveModelToS3(tf, model, fx.s3, DATA_BUCKET, runKeys.model(runId));
    await writePrepared(fx, runId, { train: [200], validation: [40], test: [70, 50] });
    // When
    const result = await exportRun(stateOf(runId), { s3: fx.s3, tf }, { parityRows: 150 });
    // Then the result follows the contract
    expect(result).toEqual({
      onnxKey: runKeys.onnx(runId),
      tfjsPrefix: runKeys.model(runId),
      opset: 13,
      parity: { rows: 150, maxAbsDiff: expect.any(Number), tolerance: 1e-4, passed: true },
    });
    expect(result.parity.maxAbsDiff).toBeLessThanOrEqual(1e-4);
    // export.json holds the result and where the parity rows came from (test first, then validation)
    const { value: record } = await getJson<ExportRecord>(fx.s3, { bucket: DATA_BUCKET, key: runKeys.exportResult(runId) });
    expect(record).toMatchObject({ ...result, parityRowSources: { test: 120, validation: 30, train: 0, synthetic: 0 } });
    expect(record.input).toEqual({ name: 'input', dtype: 'float32', shape: ['batch', 6, 5, 1] });
    expect(record.output).toEqual({ name: 'output', dtype: 'float32', shape: ['batch', 3] });
    // The stored ONNX file is what the record says and runs in ONNX Runtime like TF.js does
    const { body } = await getBytes(fx.s3, { bucket: DATA_BUCKET, key: result.onnxKey });
    expect(record.onnx.bytes).toBe(body.byteLength);
    const session = await ort.InferenceSession.create(body);
    const x = rows(50, 0);
    const out = await session.run({ input: new ort.Tensor('float32', x, [50, ...INPUT_SHAPE]) });
    await session.release();
    const expected = runTfjs(tf, model, x, [50, ...INPUT_SHAPE]).output;
    expect(maxAbsDiff(out.output!.data as Float32Array, expected)).toBeLessThanOrEqual(1e-4);
    // The file describes itself: ModelProto.metadata_props (field 14 of onnx.proto3) carries normalisation and classes
    const Meta = protobuf
      .parse('syntax = "proto3"; message Entry { string key = 1; string value = 2; } message Model { repeated Entry metadata_props = 14; }', { keepCase: true })
      .root.lookupType('Model');
    const meta = Object.fromEntries((Meta.toObject(Meta.decode(body)) as { metadata_props: Array<{ key: string; value: string }> }).metadata_props.map((e) => [e.key, e.value]));
    expect(meta['dlops.runId']).toBe(runId);
    expect(JSON.parse(meta['dlops.classNames']!)).toEqual(['a', 'b', 'c']);
    expect(JSON.parse(meta['dlops.normalization']!).mean).toHaveLength(WIDTH);
    // TF.js artifacts are left in place as the second format
    expect((await listObjects(fx.s3, DATA_BUCKET, result.tfjsPrefix)).map((o) => o.key).sort()).toEqual([`${result.tfjsPrefix}model.json`, `${result.tfjsPrefix}weights.bin`]);
  });

  test(`a dataset smaller than ${MIN_PARITY_ROWS} rows is topped up with seeded synthetic rows, and says so`, async () => {
    const runId = 'run-tiny';
    await saveModelToS3(tf, convNet(2), fx.s3, DATA_BUCKET, runKeys.model(runId));
    await writePrepared(fx, runId, { train: [20], validation: [5], test: [10] });
    const result = await exportRun(stateOf(runId), { s3: fx.s3, tf });
    expect(result.parity.rows).toBe(MIN_PARITY_ROWS);
    const { value: record } = await getJson<ExportRecord>(fx.s3, { bucket: DATA_BUCKET, key: runKeys.exportResult(runId) });
    expect(record.parityRowSources).toEqual({ test: 10, validation: 5, train: 20, synthetic: 65 });
  });

  test('an unsupported layer fails with UnsupportedLayerError naming it, and writes nothing', async () => {
    const runId = 'run-lstm';
    const model = tf.sequential({ layers: [tf.layers.reshape({ inputShape: INPUT_SHAPE, targetShape: [6, 5] }), tf.layers.lstm({ units: 3, name: 'seq_lstm' })] });
    await saveModelToS3(tf, model, fx.s3, DATA_BUCKET, runKeys.model(runId));
    await writePrepared(fx, runId, { train: [10], validation: [10], test: [100] });
    const run = exportRun(stateOf(runId), { s3: fx.s3, tf });
    await expect(run).rejects.toThrow(UnsupportedLayerError);
    await expect(exportRun(stateOf(runId), { s3: fx.s3, tf })).rejects.toThrow(/"seq_lstm" \(LSTM\)/);
    expect(await listObjects(fx.s3, DATA_BUCKET, `runs/${runId}/export/`)).toEqual([]);
  });

  test('a parity failure throws ParityError with the figure and writes nothing', async () => {
    // A tolerance below float32 rounding: ONNX Runtime and TF.js sum in different orders, so they differ by ~1e-8.
    const runId = 'run-parity';
    await saveModelToS3(tf, convNet(3), fx.s3, DATA_BUCKET, runKeys.model(runId));
    await writePrepared(fx, runId, { train: [10], validation: [10], test: [100] });
    const run = exportRun(stateOf(runId), { s3: fx.s3, tf }, { tolerance: 1e-12 });
    await expect(run).rejects.toThrow(ParityError);
    await expect(exportRun(stateOf(runId), { s3: fx.s3, tf }, { tolerance: 1e-12 })).rejects.toThrow(/differ by up to [0-9.e-]+ on 120 rows; the tolerance is 1e-12/);
    expect(await listObjects(fx.s3, DATA_BUCKET, `runs/${runId}/export/`)).toEqual([]);
  });

  test('a model whose input does not match stats.json fails with DataError naming both shapes', async () => {
    const runId = 'run-shape';
    await saveModelToS3(tf, tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3, activation: 'softmax' })] }), fx.s3, DATA_BUCKET, runKeys.model(runId));
    await writePrepared(fx, runId, { train: [10], validation: [10], test: [10] });
    const run = exportRun(stateOf(runId), { s3: fx.s3, tf });
    await expect(run).rejects.toThrow(DataError);
    await expect(exportRun(stateOf(runId), { s3: fx.s3, tf })).rejects.toThrow(/takes input \[4\] but prepared\/run-shape\/stats.json says inputShape \[6, 5, 1\]/);
  });
});

describe('parseExportEvent', () => {
  test('accepts a RunState', () => {
    expect(parseExportEvent(stateOf('r')).runId).toBe('r');
  });
  test.each([
    ['runId', { bucket: 'b' }, /"runId" to be a non-empty string, received undefined/],
    ['bucket', { runId: 'r', bucket: '' }, /"bucket" to be a non-empty string, received ""/],
  ])('names a missing %s', (_field, event, message) => {
    expect(() => parseExportEvent(event)).toThrow(BadRequestError);
    expect(() => parseExportEvent(event)).toThrow(message);
  });
});
