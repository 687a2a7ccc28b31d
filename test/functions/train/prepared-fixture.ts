/**
 * Writes a run's prepared data (stats.json, manifest.json, .npy shards) straight into S3, as
 * Preprocess would, so the training tests do not depend on the preprocessing step.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Task } from '../../../functions/core/contracts';
import { preparedKeys } from '../../../functions/core/layout';
import type { DatasetManifest } from '../../../functions/core/manifest';
import { encodeNpy } from '../../../functions/core/npy';
import type { PreparedStats, ShardRef, SplitName } from '../../../functions/core/prepared';
import { putBytes, putJson } from '../../../functions/core/s3';
import { mnistDigits } from '../../support/mnist-csv';

export interface RawSplit {
  /** Un-normalised rows. */
  readonly x: number[][];
  /** Class ids (classification) or values (regression). */
  readonly y: number[];
}

export interface PreparedProps {
  readonly runId: string;
  readonly task: Task;
  readonly inputShape: number[];
  readonly classNames?: string[];
  readonly splits: Readonly<Record<SplitName, RawSplit>>;
  readonly manifest: DatasetManifest;
  /** Rows per shard. @default 4096 */
  readonly shardRows?: number;
  readonly seed?: number;
}

/** Normalises with train-split statistics (std 0 -> 1, as the contract demands) and uploads everything. */
export async function writePrepared(s3: S3Client, bucket: string, props: PreparedProps): Promise<PreparedStats> {
  const width = props.inputShape.reduce((a, b) => a * b, 1);
  const train = props.splits.train.x;
  const mean = new Array<number>(width).fill(0);
  const std = new Array<number>(width).fill(0);
  for (const row of train) row.forEach((v, j) => (mean[j] += v / train.length));
  for (const row of train) row.forEach((v, j) => (std[j] += (v - mean[j]) ** 2 / train.length));
  for (let j = 0; j < width; j++) std[j] = Math.sqrt(std[j]) || 1;

  const shardRows = props.shardRows ?? 4096;
  const shards = { train: [], validation: [], test: [] } as Record<SplitName, ShardRef[]>;
  for (const split of ['train', 'validation', 'test'] as const) {
    const { x, y } = props.splits[split];
    for (let start = 0, index = 0; start < x.length; start += shardRows, index++) {
      const rows = Math.min(shardRows, x.length - start);
      const xs = new Float32Array(rows * width);
      for (let r = 0; r < rows; r++) x[start + r].forEach((v, j) => (xs[r * width + j] = (v - mean[j]) / std[j]));
      const ySlice = y.slice(start, start + rows);
      const ys = props.task === 'classification' ? { dtype: 'int32' as const, shape: [rows], data: Int32Array.from(ySlice) } : { dtype: 'float32' as const, shape: [rows], data: Float32Array.from(ySlice) };
      const xKey = preparedKeys.shard(props.runId, split, 'x', index);
      const yKey = preparedKeys.shard(props.runId, split, 'y', index);
      await putBytes(s3, { bucket, key: xKey }, encodeNpy({ dtype: 'float32', shape: [rows, ...props.inputShape], data: xs }));
      await putBytes(s3, { bucket, key: yKey }, encodeNpy(ys));
      shards[split].push({ x: xKey, y: yKey, rows });
    }
  }
  const stats: PreparedStats = {
    task: props.task,
    modelName: props.manifest.name,
    label: props.manifest.label,
    inputShape: props.inputShape,
    classNames: props.classNames,
    normalization: { mean, std },
    counts: { train: props.splits.train.x.length, validation: props.splits.validation.x.length, test: props.splits.test.x.length },
    shards,
    sources: [{ key: 'datasets/test/data/rows.csv', etag: '"fixture"' }],
    manifestHash: '0'.repeat(64),
    seed: props.seed ?? 42,
  };
  await putJson(s3, { bucket, key: preparedKeys.manifest(props.runId) }, props.manifest);
  await putJson(s3, { bucket, key: preparedKeys.stats(props.runId) }, stats);
  return stats;
}

/**
 * A stratified split of the mnist package's digits: per class, the first rows go to train,
 * the next to validation, the next to test (mnistDigits interleaves classes, so each count is
 * spread evenly over the ten digits).
 */
export function mnistSplits(counts: Readonly<Record<SplitName, number>>): Record<SplitName, RawSplit> {
  const total = counts.train + counts.validation + counts.test;
  const digits = mnistDigits({ count: total });
  const byClass: number[][][] = Array.from({ length: 10 }, () => []);
  for (const d of digits) byClass[d.label].push(d.pixels);
  const out = { train: { x: [], y: [] }, validation: { x: [], y: [] }, test: { x: [], y: [] } } as Record<SplitName, { x: number[][]; y: number[] }>;
  // Take rows class by class in round-robin so every split is balanced and its rows interleaved.
  const cursor = new Array<number>(10).fill(0);
  for (const split of ['train', 'validation', 'test'] as const) {
    for (let taken = 0, label = 0; taken < counts[split]; label = (label + 1) % 10) {
      if (cursor[label] >= byClass[label].length) continue;
      out[split].x.push(byClass[label][cursor[label]++]);
      out[split].y.push(label);
      taken++;
    }
  }
  return out;
}

export const DIGIT_CLASSES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
