/**
 * The dataset manifest (`dataset.json`) and model spec: the types every step shares.
 * The schema that validates a manifest, with messages that name field, expectation and
 * value received, lives beside these types (parseManifest).
 */
import type { Task } from './contracts';

export type Activation = 'linear' | 'relu' | 'relu6' | 'sigmoid' | 'tanh' | 'softmax' | 'elu' | 'selu' | 'softplus';
export type Padding = 'valid' | 'same';
export type Pair = number | [number, number];

export type LayerSpec =
  | { type: 'dense'; units: number; activation?: Activation; useBias?: boolean }
  | { type: 'conv2d'; filters: number; kernelSize: Pair; strides?: Pair; padding?: Padding; activation?: Activation; useBias?: boolean }
  | { type: 'maxPooling2d'; poolSize?: Pair; strides?: Pair; padding?: Padding }
  | { type: 'averagePooling2d'; poolSize?: Pair; strides?: Pair; padding?: Padding }
  | { type: 'flatten' }
  | { type: 'dropout'; rate: number }
  | { type: 'batchNormalization'; momentum?: number; epsilon?: number }
  | { type: 'globalAveragePooling2d' }
  | { type: 'activation'; activation: Activation };

export type LayerType = LayerSpec['type'];

export interface FeatureSpec {
  /** Numeric columns (CSV) or keys (JSON Lines), in order. @default every column but the label */
  readonly columns?: string[];
  /** JSON Lines only: one field holding a (nested) numeric array of `shape`. */
  readonly field?: string;
  /** Shape of one example, e.g. [28, 28, 1]; its product equals the number of values. @default [number of columns] */
  readonly shape?: number[];
}

export interface TrainingSpec {
  readonly epochs?: number;
  readonly batchSize?: number;
  readonly learningRate?: number;
  readonly optimizer?: 'adam' | 'sgd' | 'rmsprop';
  readonly loss?: string;
  readonly metrics?: string[];
  readonly earlyStopping?: { readonly patience: number; readonly monitor?: string; readonly minDelta?: number };
  readonly seed?: number;
}

export interface SplitSpec {
  /** Fraction of rows for validation. @default 0.1 */
  readonly validation?: number;
  /** Fraction of rows for test. @default 0.2 */
  readonly test?: number;
  /** Seed of the (stratified, for classification) shuffle. @default 42 */
  readonly seed?: number;
}

export interface PromotionRule {
  /** Metric name as Evaluate reports it, e.g. accuracy, f1Macro, mse, r2. */
  readonly metric: string;
  /** The challenger's metric must reach this (at most this, for error metrics). */
  readonly minimum?: number;
  /** The challenger must beat the current production version by at least this much. */
  readonly minImprovement?: number;
  /** Alias moved on promotion. @default production */
  readonly alias?: string;
}

export interface DatasetManifest {
  /** Model name in the registry: lowercase letters, digits and dashes. */
  readonly name: string;
  readonly task: Task;
  readonly format: 'csv' | 'jsonl';
  readonly label: string;
  readonly features?: FeatureSpec;
  /** Class names in order; @default the sorted distinct labels seen in the data */
  readonly classes?: string[];
  readonly model?: LayerSpec[];
  readonly training?: TrainingSpec;
  readonly split?: SplitSpec;
  readonly promotion?: PromotionRule;
}
