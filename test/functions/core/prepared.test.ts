import { DataError } from '../../../functions/core/errors';
import { encodeNpy } from '../../../functions/core/npy';
import { iterateSplit, loadSplit, loadStats, type PreparedStats } from '../../../functions/core/prepared';
import { putBytes } from '../../../functions/core/s3';
import { preprocess } from '../../../functions/preprocess/core';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';
import { mnistDigits, uploadMnistDataset } from '../../support/mnist-csv';

let fx: S3Fixture;
beforeAll(async () => {
  fx = await localS3Fixture();
});
afterAll(async () => fx.close());

describe('prepared splits read back', () => {
  test('MNIST digits (CSV) -> shards -> loadSplit: shapes, counts, labels and normalisation agree', async () => {
    // Given 300 digits preprocessed into shards of at most 32 rows
    const upload = await uploadMnistDataset(fx.s3, DATA_BUCKET, { count: 300, dataset: 'digits-csv' });
    await preprocess(fx.s3, { ...upload, runId: 'prep-mnist' }, { rowsPerShard: 32 });
    // When
    const stats = await loadStats(fx.s3, DATA_BUCKET, 'prep-mnist');
    const train = await loadSplit(fx.s3, DATA_BUCKET, stats, 'train');
    const test = await loadSplit(fx.s3, DATA_BUCKET, stats, 'test');
    // Then
    expect(stats.inputShape).toEqual([28, 28, 1]);
    expect(stats.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    expect(stats.counts).toEqual({ train: 210, validation: 30, test: 60 });
    expect(stats.shards.train.length).toBe(7);
    expect(train.rows).toBe(210);
    expect(train.x).toHaveLength(210 * 784);
    expect(train.y).toBeInstanceOf(Int32Array);
    expect(Array.from(new Set(test.y)).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Un-normalising a training row gives back one of the source digits with its label.
    const { mean, std } = stats.normalization;
    const row = 100;
    const pixels = Array.from({ length: 784 }, (_, i) => train.x[row * 784 + i] * std[i] + mean[i]);
    const source = mnistDigits({ count: 300 }).find((d) => d.pixels.every((p, i) => Math.abs(p - pixels[i]) < 1e-4));
    expect(source?.label).toBe(train.y[row]);
    // Shards one at a time add up to the whole split.
    let rows = 0;
    for await (const part of iterateSplit(fx.s3, DATA_BUCKET, stats, 'train')) rows += part.rows;
    expect(rows).toBe(210);
  });

  test('MNIST digits as JSON Lines give the same prepared data as the CSV', async () => {
    const csv = await uploadMnistDataset(fx.s3, DATA_BUCKET, { count: 100, dataset: 'small-csv' });
    const jsonl = await uploadMnistDataset(fx.s3, DATA_BUCKET, { count: 100, dataset: 'small-jsonl', format: 'jsonl' });
    await preprocess(fx.s3, { ...csv, runId: 'prep-csv' });
    await preprocess(fx.s3, { ...jsonl, runId: 'prep-jsonl' });
    const a = await loadStats(fx.s3, DATA_BUCKET, 'prep-csv');
    const b = await loadStats(fx.s3, DATA_BUCKET, 'prep-jsonl');
    expect(b.inputShape).toEqual(a.inputShape);
    expect(b.normalization).toEqual(a.normalization);
    expect((await loadSplit(fx.s3, DATA_BUCKET, b, 'test')).x).toEqual((await loadSplit(fx.s3, DATA_BUCKET, a, 'test')).x);
  });

  test('a shard that disagrees with stats.json is a DataError naming it', async () => {
    const stats: PreparedStats = {
      task: 'classification',
      modelName: 'm',
      label: 'y',
      inputShape: [3],
      classNames: ['a', 'b'],
      normalization: { mean: [0, 0, 0], std: [1, 1, 1] },
      counts: { train: 2, validation: 0, test: 0 },
      shards: { train: [{ x: 'prepared/bad/train/x-00000.npy', y: 'prepared/bad/train/y-00000.npy', rows: 2 }], validation: [], test: [] },
      sources: [],
      manifestHash: '',
      seed: 1,
    };
    await putBytes(fx.s3, { bucket: DATA_BUCKET, key: stats.shards.train[0].x }, encodeNpy({ dtype: 'float32', shape: [2, 2], data: new Float32Array(4) }));
    await putBytes(fx.s3, { bucket: DATA_BUCKET, key: stats.shards.train[0].y }, encodeNpy({ dtype: 'int32', shape: [2], data: new Int32Array(2) }));
    await expect(loadSplit(fx.s3, DATA_BUCKET, stats, 'train')).rejects.toThrow(DataError);
    await expect(loadSplit(fx.s3, DATA_BUCKET, stats, 'train')).rejects.toThrow(
      'prepared/bad/train/x-00000.npy: expected float32 with 2 x 3 values, found float32 with shape [2, 2].',
    );
  });
});
