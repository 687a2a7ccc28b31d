/**
 * Pure decisions of a training run: the resolved training options (manifest + defaults),
 * the per-epoch shuffle, and early stopping over the epoch history. Kept free of TF.js so
 * that a resumed run makes exactly the decisions an uninterrupted one would.
 */
import type { Task } from '../core/contracts';
import { ManifestError } from '../core/errors';
import { MANIFEST_DEFAULTS, type TrainingSpec } from '../core/manifest';
import { seededRandom } from '../core/random';

export type OptimizerName = 'adam' | 'sgd' | 'rmsprop';

export const LOSSES: Readonly<Record<Task, readonly string[]>> = {
  classification: ['sparseCategoricalCrossentropy', 'categoricalCrossentropy'],
  regression: ['meanSquaredError', 'meanAbsoluteError', 'huberLoss', 'logcosh'],
};

/** Short names users write, mapped to the TF.js names above. */
const LOSS_ALIASES: Readonly<Record<string, string>> = {
  mse: 'meanSquaredError',
  mae: 'meanAbsoluteError',
  huber: 'huberLoss',
  sparse_categorical_crossentropy: 'sparseCategoricalCrossentropy',
  categorical_crossentropy: 'categoricalCrossentropy',
  mean_squared_error: 'meanSquaredError',
  mean_absolute_error: 'meanAbsoluteError',
};

export const METRICS: Readonly<Record<Task, readonly string[]>> = {
  classification: ['acc', 'accuracy'],
  regression: ['mae', 'mse'],
};

export interface EarlyStopping {
  readonly patience: number;
  /** A name from the epoch log: loss, val_loss, acc, val_acc, ... */
  readonly monitor: string;
  readonly minDelta: number;
  /** Whether a larger monitored value is better (accuracy) or a smaller one (losses). */
  readonly mode: 'min' | 'max';
}

export interface TrainingOptions {
  readonly epochs: number;
  readonly batchSize: number;
  readonly learningRate: number;
  readonly optimizer: OptimizerName;
  readonly loss: string;
  readonly metrics: string[];
  readonly earlyStopping?: EarlyStopping;
  readonly seed: number;
}

/** One source of truth: the manifest's defaults (a manifest read without parseManifest still gets them). */
export const TRAINING_DEFAULTS: { epochs: number; batchSize: number; learningRate: number; optimizer: OptimizerName } = MANIFEST_DEFAULTS.training;

function integerAtLeast(field: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new ManifestError(`training.${field} must be an integer of at least ${min}. Received ${JSON.stringify(value)}.`);
  }
  return value;
}

/**
 * The training options of a run: the manifest's `training` block over the defaults (adam 1e-3,
 * batch 64, 5 epochs; sparse categorical crossentropy + accuracy for classification, MSE + MAE
 * for regression). `fallbackSeed` is the preprocessing seed from stats.json.
 */
export function resolveTrainingOptions(spec: TrainingSpec | undefined, task: Task, options: { hasValidation: boolean; fallbackSeed: number }): TrainingOptions {
  const s = spec ?? {};
  const epochs = integerAtLeast('epochs', s.epochs ?? TRAINING_DEFAULTS.epochs, 1);
  const batchSize = integerAtLeast('batchSize', s.batchSize ?? TRAINING_DEFAULTS.batchSize, 1);
  const learningRate = s.learningRate ?? TRAINING_DEFAULTS.learningRate;
  if (typeof learningRate !== 'number' || !(learningRate > 0) || !Number.isFinite(learningRate)) {
    throw new ManifestError(`training.learningRate must be a positive number. Received ${JSON.stringify(learningRate)}.`);
  }
  const optimizer = s.optimizer ?? TRAINING_DEFAULTS.optimizer;
  if (!['adam', 'sgd', 'rmsprop'].includes(optimizer)) {
    throw new ManifestError(`training.optimizer must be one of adam, sgd, rmsprop. Received ${JSON.stringify(optimizer)}.`);
  }
  const rawLoss = s.loss ?? LOSSES[task][0];
  const loss = LOSS_ALIASES[rawLoss] ?? rawLoss;
  if (!LOSSES[task].includes(loss)) {
    throw new ManifestError(`training.loss must be one of ${LOSSES[task].join(', ')} for ${task}. Received ${JSON.stringify(s.loss)}.`);
  }
  const metrics = s.metrics ?? [METRICS[task][0]];
  if (!Array.isArray(metrics)) throw new ManifestError(`training.metrics must be a list. Received ${JSON.stringify(metrics)}.`);
  metrics.forEach((m, i) => {
    if (!METRICS[task].includes(m)) {
      throw new ManifestError(`training.metrics[${i}] must be one of ${METRICS[task].join(', ')} for ${task}. Received ${JSON.stringify(m)}.`);
    }
  });
  const seed = s.seed ?? options.fallbackSeed;
  integerAtLeast('seed', seed, 0);
  let earlyStopping: EarlyStopping | undefined;
  if (s.earlyStopping !== undefined) {
    const patience = integerAtLeast('earlyStopping.patience', s.earlyStopping.patience, 1);
    const monitor = s.earlyStopping.monitor ?? (options.hasValidation ? 'val_loss' : 'loss');
    const known = ['loss', ...metrics.map(metricLogName)];
    const allowed = options.hasValidation ? [...known, ...known.map((k) => `val_${k}`)] : known;
    if (!allowed.includes(monitor)) {
      throw new ManifestError(`training.earlyStopping.monitor must be one of ${allowed.join(', ')}. Received ${JSON.stringify(monitor)}.`);
    }
    const minDelta = s.earlyStopping.minDelta ?? 0;
    if (typeof minDelta !== 'number' || minDelta < 0) {
      throw new ManifestError(`training.earlyStopping.minDelta must be a number of at least 0. Received ${JSON.stringify(minDelta)}.`);
    }
    earlyStopping = { patience, monitor, minDelta, mode: /acc/.test(monitor) ? 'max' : 'min' };
  }
  return { epochs, batchSize, learningRate, optimizer, loss, metrics: [...metrics], earlyStopping, seed };
}

/** The key TF.js logs a metric under ('accuracy' and 'acc' both log as 'acc'). */
export function metricLogName(metric: string): string {
  return metric === 'accuracy' ? 'acc' : metric;
}

/** One epoch as history.json and the epoch log line record it. */
export interface EpochRecord {
  readonly epoch: number;
  readonly loss: number;
  /** Training metrics and, with a validation split, val_loss and val_<metric>. */
  readonly metrics: Record<string, number>;
  readonly samplesPerSecond: number;
}

function monitored(record: EpochRecord, monitor: string): number {
  return monitor === 'loss' ? record.loss : record.metrics[monitor];
}

/**
 * Whether training stops after the last epoch of `history`: the monitored value has not
 * improved by more than minDelta on its best for `patience` epochs (Keras's EarlyStopping).
 * A function of the history alone, so a resumed run stops where the original would have.
 */
export function shouldStopEarly(history: readonly EpochRecord[], rule: EarlyStopping | undefined): boolean {
  if (rule === undefined || history.length === 0) return false;
  let best = monitored(history[0], rule.monitor);
  let bestIndex = 0;
  for (let i = 1; i < history.length; i++) {
    const value = monitored(history[i], rule.monitor);
    const improved = rule.mode === 'min' ? value < best - rule.minDelta : value > best + rule.minDelta;
    if (improved) {
      best = value;
      bestIndex = i;
    }
  }
  return history.length - 1 - bestIndex >= rule.patience;
}

/** The row order of an epoch: a Fisher-Yates shuffle seeded by (seed, epoch). */
export function epochOrder(rows: number, seed: number, epoch: number): Int32Array {
  const random = seededRandom((Math.imul(seed >>> 0, 0x9e3779b1) ^ epoch) >>> 0);
  const order = new Int32Array(rows);
  for (let i = 0; i < rows; i++) order[i] = i;
  for (let i = rows - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}
