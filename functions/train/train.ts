/**
 * The training run: prepared shards in, TF.js layers model and history.json out, a checkpoint
 * after every epoch and a resume from the newest one on start. main.ts is its container adapter.
 */
import { performance } from 'node:perf_hooks';
import type { S3Client } from '@aws-sdk/client-s3';
import type * as tfTypes from '@tensorflow/tfjs';
import { loadTf, type LoadedTf, type Tf } from '../core/backend';
import { ManifestError, TrainingError } from '../core/errors';
import { preparedKeys, runKeys } from '../core/layout';
import type { DatasetManifest } from '../core/manifest';
import { buildModel, resolveLayers } from '../core/model';
import { featureCount, loadShard, loadStats, type PreparedStats, type SplitName } from '../core/prepared';
import { getJson, putJson } from '../core/s3';
import { saveModelToS3 } from '../core/tfjs-io';
import { findLatestCheckpoint, restoreCheckpoint, saveCheckpoint } from './checkpoint';
import { epochOrder, resolveTrainingOptions, shouldStopEarly, type EpochRecord, type TrainingOptions } from './options';

/** One structured event on the job's log (stdout in the container, CloudWatch in Batch). */
export type TrainEvent = Record<string, unknown> & { readonly event: string };

export interface TrainRunProps {
  readonly s3: S3Client;
  readonly bucket: string;
  readonly runId: string;
  /**
   * The TF.js to train with.
   * @default - loadTf(TRAINING_BACKEND): the best backend this process can load
   */
  readonly loaded?: LoadedTf;
  /**
   * Where events go.
   * @default - one JSON line per event on stdout
   */
  readonly log?: (event: TrainEvent) => void;
}

/** `runs/<runId>/history.json` */
export interface TrainHistory {
  readonly epochs: EpochRecord[];
  readonly backend: string;
  readonly kernels: string[];
  readonly epochsConfigured: number;
  readonly stoppedEarly: boolean;
  /** The epoch the last job resumed after, when it did. */
  readonly resumedFrom?: number;
  readonly seed: number;
}

export interface TrainSummary extends TrainHistory {
  readonly modelPrefix: string;
  readonly historyKey: string;
}

/** Training takes the WebAssembly backend when no native one loads: the fastest without libtensorflow. */
export const TRAINING_BACKEND = { wasm: true } as const;

const stdoutLog = (event: TrainEvent): void => {
  process.stdout.write(`${JSON.stringify(event)}\n`);
};

interface Tensors {
  readonly x: tfTypes.Tensor;
  readonly y: tfTypes.Tensor;
  readonly rows: number;
}

/** A whole split as two tensors: x [rows, ...inputShape]; y [rows, 1] class ids, one-hot [rows, classes], or [rows, 1] values. */
async function loadSplitTensors(tf: Tf, s3: S3Client, bucket: string, stats: PreparedStats, split: SplitName, oneHot: boolean): Promise<Tensors | undefined> {
  const rows = stats.counts[split];
  if (rows === 0 || stats.shards[split].length === 0) return undefined;
  const width = featureCount(stats.inputShape);
  const x = new Float32Array(rows * width);
  const y = new Float32Array(rows);
  let at = 0;
  for (const shard of stats.shards[split]) {
    const part = await loadShard(s3, bucket, stats, shard);
    if (at + part.rows > rows) throw new TrainingError(`stats.json counts.${split} is ${rows}, but its shards hold more rows (at least ${at + part.rows}).`);
    x.set(part.x, at * width);
    y.set(part.y, at);
    at += part.rows;
  }
  if (at !== rows) throw new TrainingError(`stats.json counts.${split} is ${rows}, but its shards hold ${at} rows.`);
  const xt = tf.tensor(x, [rows, ...stats.inputShape], 'float32');
  if (!oneHot) return { x: xt, y: tf.tensor2d(y, [rows, 1], 'float32'), rows };
  const classes = stats.classNames?.length ?? 0;
  const yt = tf.tidy(() => tf.oneHot(tf.tensor1d(y, 'int32'), classes).toFloat());
  return { x: xt, y: yt, rows };
}

function makeOptimizer(tf: Tf, options: TrainingOptions): tfTypes.Optimizer {
  switch (options.optimizer) {
    case 'adam':
      return tf.train.adam(options.learningRate);
    case 'sgd':
      return tf.train.sgd(options.learningRate);
    case 'rmsprop':
      return tf.train.rmsprop(options.learningRate);
  }
}

function scalarValues(result: tfTypes.Scalar | tfTypes.Scalar[]): number[] {
  const list = Array.isArray(result) ? result : [result];
  const values = list.map((t) => t.dataSync()[0]);
  list.forEach((t) => t.dispose());
  return values;
}

/**
 * Trains the run's model. Reads prepared/<runId>/{stats.json, manifest.json} and the shards,
 * resumes from the newest checkpoint, and writes runs/<runId>/model/ and history.json.
 */
export async function trainRun(props: TrainRunProps): Promise<TrainSummary> {
  const { s3, bucket, runId } = props;
  const log = props.log ?? stdoutLog;
  const loaded = props.loaded ?? (await loadTf(TRAINING_BACKEND));
  const { tf, backend, kernels } = loaded;

  const stats = await loadStats(s3, bucket, runId);
  const { value: manifest } = await getJson<DatasetManifest>(s3, { bucket, key: preparedKeys.manifest(runId) });
  const task = stats.task;
  const numClasses = task === 'classification' ? stats.classNames?.length : undefined;
  if (task === 'classification' && (numClasses === undefined || numClasses < 2)) {
    throw new ManifestError(`prepared/${runId}/stats.json: classification needs classNames with at least 2 entries. Received ${JSON.stringify(stats.classNames)}.`);
  }
  const hasValidation = stats.counts.validation > 0;
  const options = resolveTrainingOptions(manifest.training, task, { hasValidation, fallbackSeed: stats.seed });
  const layers = resolveLayers({ task, inputShape: stats.inputShape, numClasses, layers: manifest.model });
  log({ event: 'start', runId, backend, kernels, skipped: loaded.skipped, task, inputShape: stats.inputShape, counts: stats.counts, layers, training: options });

  const oneHot = options.loss === 'categoricalCrossentropy';
  const train = await loadSplitTensors(tf, s3, bucket, stats, 'train', oneHot);
  if (train === undefined) throw new TrainingError(`prepared/${runId}/stats.json lists no training rows (counts.train is ${stats.counts.train}).`);
  const validation = await loadSplitTensors(tf, s3, bucket, stats, 'validation', oneHot);

  const model = buildModel(tf, { inputShape: stats.inputShape, layers, seed: options.seed });
  model.compile({ optimizer: makeOptimizer(tf, options), loss: options.loss, metrics: options.metrics });

  const history: EpochRecord[] = [];
  let stoppedEarly = false;
  let resumedFrom: number | undefined;
  const checkpoint = await findLatestCheckpoint(s3, bucket, runId);
  if (checkpoint !== undefined) {
    await restoreCheckpoint(s3, bucket, tf, model, checkpoint);
    history.push(...checkpoint.manifest.history);
    stoppedEarly = checkpoint.manifest.stoppedEarly;
    resumedFrom = checkpoint.manifest.epoch;
    log({ event: 'resume', fromEpoch: resumedFrom, epochs: options.epochs, checkpoint: checkpoint.prefix });
  }

  try {
    for (let epoch = history.length + 1; epoch <= options.epochs && !stoppedEarly; epoch++) {
      const record = await trainEpoch(tf, model, train, validation, options, epoch);
      history.push(record);
      log({ event: 'epoch', epoch, epochs: options.epochs, loss: record.loss, metrics: record.metrics, samplesPerSecond: record.samplesPerSecond, backend });
      stoppedEarly = shouldStopEarly(history, options.earlyStopping);
      await saveCheckpoint({
        s3,
        bucket,
        runId,
        tf,
        model,
        optimizerName: options.optimizer,
        state: { epoch, epochs: options.epochs, history: [...history], seed: options.seed, stoppedEarly },
      });
      if (stoppedEarly) log({ event: 'earlyStopping', epoch, monitor: options.earlyStopping?.monitor, patience: options.earlyStopping?.patience });
    }

    const modelPrefix = runKeys.model(runId);
    await saveModelToS3(tf, model, s3, bucket, modelPrefix);
    const result: TrainHistory = { epochs: history, backend, kernels, epochsConfigured: options.epochs, stoppedEarly, resumedFrom, seed: options.seed };
    const historyKey = runKeys.history(runId);
    await putJson(s3, { bucket, key: historyKey }, result);
    log({ event: 'done', epochs: history.length, modelPrefix, historyKey });
    return { ...result, modelPrefix, historyKey };
  } finally {
    model.dispose();
    tf.dispose([train.x, train.y, ...(validation === undefined ? [] : [validation.x, validation.y])]);
  }
}

async function trainEpoch(
  tf: Tf,
  model: tfTypes.LayersModel,
  train: Tensors,
  validation: Tensors | undefined,
  options: TrainingOptions,
  epoch: number,
): Promise<EpochRecord> {
  // Shuffle here instead of fit's own (Math.random) shuffle: the order then depends only on
  // (seed, epoch), so a resumed job sees the same batches as an uninterrupted one.
  const [xs, ys] = tf.tidy(() => {
    const order = tf.tensor1d(epochOrder(train.rows, options.seed, epoch), 'int32');
    return [tf.gather(train.x, order), tf.gather(train.y, order)];
  });
  const started = performance.now();
  let fitted: tfTypes.History;
  try {
    fitted = await model.fit(xs, ys, { epochs: 1, batchSize: options.batchSize, shuffle: false, verbose: 0 });
  } finally {
    tf.dispose([xs, ys]);
  }
  const seconds = (performance.now() - started) / 1000;
  const metrics: Record<string, number> = {};
  for (const [name, values] of Object.entries(fitted.history)) {
    if (name !== 'loss') metrics[name] = Number(values[values.length - 1]);
  }
  const loss = Number(fitted.history.loss[fitted.history.loss.length - 1]);
  if (!Number.isFinite(loss)) {
    throw new TrainingError(`The training loss became ${loss} in epoch ${epoch}; try a lower training.learningRate (now ${options.learningRate}).`);
  }
  if (validation !== undefined) {
    const values = scalarValues(model.evaluate(validation.x, validation.y, { batchSize: Math.max(options.batchSize, 256) }));
    model.metricsNames.forEach((name, i) => {
      metrics[`val_${name}`] = values[i];
    });
  }
  return { epoch, loss, metrics, samplesPerSecond: Math.round((train.rows / seconds) * 10) / 10 };
}
