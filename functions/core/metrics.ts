/**
 * Test-set metrics Evaluate reports and the promotion gate compares. Pure functions over typed
 * arrays: classification from predicted probabilities, regression from predictions.
 */
import type { Task } from './contracts';
import { DataError } from './errors';

/** The scalar metrics each task reports; a promotion rule may name any of them. */
export const METRIC_NAMES: Readonly<Record<Task, readonly string[]>> = {
  classification: ['accuracy', 'f1Macro', 'precisionMacro', 'recallMacro', 'loss'],
  regression: ['mse', 'rmse', 'mae', 'r2', 'loss'],
};

/** Error metrics: smaller is better, so the gate flips its comparisons for these. */
export const LOWER_IS_BETTER: ReadonlySet<string> = new Set(['mse', 'rmse', 'mae', 'loss']);

export interface ClassMetrics {
  readonly className: string;
  readonly precision: number;
  readonly recall: number;
  readonly f1: number;
  /** Rows of this class in the test split. */
  readonly support: number;
}

export interface ClassificationMetrics {
  readonly task: 'classification';
  readonly rows: number;
  readonly accuracy: number;
  readonly precisionMacro: number;
  readonly recallMacro: number;
  readonly f1Macro: number;
  /** Mean cross-entropy of the predicted probabilities (clipped to 1e-7 so a confident miss stays finite). */
  readonly loss: number;
  readonly perClass: ClassMetrics[];
  /** confusion[actual][predicted] = row count. */
  readonly confusion: number[][];
}

export interface RegressionMetrics {
  readonly task: 'regression';
  readonly rows: number;
  readonly mse: number;
  readonly rmse: number;
  readonly mae: number;
  readonly r2: number;
  /** Equal to mse: the loss dlops trains regression models with. */
  readonly loss: number;
}

export type EvaluationMetrics = ClassificationMetrics | RegressionMetrics;

/**
 * Metrics from softmax outputs `probs` ([rows, classNames.length], row-major) against class ids.
 * Macro averages run over the classes present in the labels or the predictions (as
 * scikit-learn does by default); a class never predicted has precision 0.
 */
export function classificationMetrics(labels: Int32Array, probs: Float32Array, classNames: readonly string[]): ClassificationMetrics {
  const k = classNames.length;
  const rows = labels.length;
  if (rows === 0) throw new DataError('Cannot compute metrics on an empty test split.');
  if (probs.length !== rows * k) {
    throw new DataError(`Model output has ${probs.length} values; expected ${rows} rows x ${k} classes = ${rows * k}.`);
  }
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let correct = 0;
  let loss = 0;
  for (let r = 0; r < rows; r++) {
    const actual = labels[r];
    if (actual < 0 || actual >= k) throw new DataError(`Test row ${r + 1} has class id ${actual}; expected 0..${k - 1}.`);
    let predicted = 0;
    for (let c = 1; c < k; c++) if (probs[r * k + c] > probs[r * k + predicted]) predicted = c;
    confusion[actual][predicted] += 1;
    if (predicted === actual) correct += 1;
    loss -= Math.log(Math.min(1, Math.max(1e-7, probs[r * k + actual])));
  }
  const perClass: ClassMetrics[] = [];
  const present: ClassMetrics[] = [];
  for (let c = 0; c < k; c++) {
    const tp = confusion[c][c];
    const support = confusion[c].reduce((a, b) => a + b, 0);
    const predictedCount = confusion.reduce((a, row) => a + row[c], 0);
    const precision = predictedCount === 0 ? 0 : tp / predictedCount;
    const recall = support === 0 ? 0 : tp / support;
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    const m = { className: classNames[c], precision, recall, f1, support };
    perClass.push(m);
    if (support > 0 || predictedCount > 0) present.push(m);
  }
  const mean = (f: (m: ClassMetrics) => number) => present.reduce((a, m) => a + f(m), 0) / present.length;
  return {
    task: 'classification',
    rows,
    accuracy: correct / rows,
    precisionMacro: mean((m) => m.precision),
    recallMacro: mean((m) => m.recall),
    f1Macro: mean((m) => m.f1),
    loss: loss / rows,
    perClass,
    confusion,
  };
}

/** MSE, RMSE, MAE and R² of predictions against targets. */
export function regressionMetrics(targets: Float32Array | Int32Array, predictions: Float32Array): RegressionMetrics {
  const rows = targets.length;
  if (rows === 0) throw new DataError('Cannot compute metrics on an empty test split.');
  if (predictions.length !== rows) throw new DataError(`Model output has ${predictions.length} values; expected one per test row (${rows}).`);
  let mean = 0;
  for (let i = 0; i < rows; i++) mean += targets[i];
  mean /= rows;
  let sse = 0;
  let sae = 0;
  let sst = 0;
  for (let i = 0; i < rows; i++) {
    const e = predictions[i] - targets[i];
    sse += e * e;
    sae += Math.abs(e);
    sst += (targets[i] - mean) ** 2;
  }
  const mse = sse / rows;
  // Constant targets make R² undefined; like scikit-learn, a perfect fit scores 1 and anything else 0.
  const r2 = sst === 0 ? (sse === 0 ? 1 : 0) : 1 - sse / sst;
  return { task: 'regression', rows, mse, rmse: Math.sqrt(mse), mae: sae / rows, r2, loss: mse };
}

/** The scalar metrics (what the gate and the registry compare), without per-class detail. */
export function scalarMetrics(m: EvaluationMetrics): Record<string, number> {
  if (m.task === 'classification') {
    return { accuracy: m.accuracy, f1Macro: m.f1Macro, precisionMacro: m.precisionMacro, recallMacro: m.recallMacro, loss: m.loss };
  }
  return { mse: m.mse, rmse: m.rmse, mae: m.mae, r2: m.r2, loss: m.loss };
}
