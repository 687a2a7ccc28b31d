/**
 * The prepared data of a run (`prepared/<runId>/`, written by Preprocess) read back by Train,
 * Export and Evaluate: `stats.json` and the already-normalised `.npy` shards of each split.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Task } from './contracts';
import { DataError } from './errors';
import { preparedKeys } from './layout';
import { decodeNpy } from './npy';
import { getBytes, getJson } from './s3';

export type SplitName = 'train' | 'validation' | 'test';
export const SPLITS: readonly SplitName[] = ['train', 'validation', 'test'];

export interface ShardRef {
  /** Key of the float32 x shard, shape [rows, ...inputShape]. */
  readonly x: string;
  /** Key of the y shard: int32 class index [rows] (classification) or float32 [rows] (regression). */
  readonly y: string;
  readonly rows: number;
}

/** `prepared/<runId>/stats.json`, the cross-team contract (see the common brief). */
export interface PreparedStats {
  readonly task: Task;
  readonly modelName: string;
  readonly label: string;
  /** One example, no batch dimension. */
  readonly inputShape: number[];
  readonly featureNames?: string[];
  /** Index = class id. */
  readonly classNames?: string[];
  /** Per flattened feature (length = prod(inputShape)); x' = (x - mean) / std; std is never 0. */
  readonly normalization: { readonly mean: number[]; readonly std: number[] };
  readonly counts: Readonly<Record<SplitName, number>>;
  readonly shards: Readonly<Record<SplitName, ShardRef[]>>;
  readonly sources: Array<{ readonly key: string; readonly etag: string }>;
  /** sha256 hex of the dataset.json bytes. */
  readonly manifestHash: string;
  readonly seed: number;
}

export interface LoadedSplit {
  /** Normalised features, row-major, rows * prod(inputShape) values. */
  readonly x: Float32Array;
  readonly y: Int32Array | Float32Array;
  readonly rows: number;
  readonly inputShape: number[];
}

export function featureCount(inputShape: readonly number[]): number {
  return inputShape.reduce((a, b) => a * b, 1);
}

export async function loadStats(s3: S3Client, bucket: string, runId: string): Promise<PreparedStats> {
  const { value } = await getJson<PreparedStats>(s3, { bucket, key: preparedKeys.stats(runId) });
  return value;
}

/** One shard of a split, decoded and checked against stats.json. */
export async function loadShard(s3: S3Client, bucket: string, stats: PreparedStats, shard: ShardRef): Promise<LoadedSplit> {
  const width = featureCount(stats.inputShape);
  const [xBytes, yBytes] = await Promise.all([getBytes(s3, { bucket, key: shard.x }), getBytes(s3, { bucket, key: shard.y })]);
  const x = decodeNpy(xBytes.body, shard.x);
  const y = decodeNpy(yBytes.body, shard.y);
  if (x.dtype !== 'float32' || x.data.length !== shard.rows * width) {
    throw new DataError(`${shard.x}: expected float32 with ${shard.rows} x ${width} values, found ${x.dtype} with shape [${x.shape.join(', ')}].`);
  }
  const yType = stats.task === 'classification' ? 'int32' : 'float32';
  if (y.dtype !== yType || y.data.length !== shard.rows) {
    throw new DataError(`${shard.y}: expected ${yType} with ${shard.rows} values, found ${y.dtype} with shape [${y.shape.join(', ')}].`);
  }
  return { x: x.data, y: y.data, rows: shard.rows, inputShape: [...stats.inputShape] };
}

/** Shards one at a time, for callers that must not hold a whole split in memory. */
export async function* iterateSplit(s3: S3Client, bucket: string, stats: PreparedStats, split: SplitName): AsyncGenerator<LoadedSplit> {
  for (const shard of stats.shards[split]) yield await loadShard(s3, bucket, stats, shard);
}

/** A whole split in memory (all shards concatenated in order). */
export async function loadSplit(s3: S3Client, bucket: string, stats: PreparedStats, split: SplitName): Promise<LoadedSplit> {
  const width = featureCount(stats.inputShape);
  const rows = stats.shards[split].reduce((n, s) => n + s.rows, 0);
  const x = new Float32Array(rows * width);
  const y = stats.task === 'classification' ? new Int32Array(rows) : new Float32Array(rows);
  let at = 0;
  for await (const part of iterateSplit(s3, bucket, stats, split)) {
    x.set(part.x, at * width);
    y.set(part.y, at);
    at += part.rows;
  }
  return { x, y, rows, inputShape: [...stats.inputShape] };
}
