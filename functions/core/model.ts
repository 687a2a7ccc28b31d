/**
 * Builds the TF.js layers model of a run from the manifest's Keras-like layer list (or the
 * default for the task and input shape). Shapes are checked here, before TF.js sees them, so
 * a bad spec fails with the layer's index and type instead of a TF.js stack trace.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import type { Task } from './contracts';
import { ManifestError, UnsupportedLayerError } from './errors';
import { LAYER_TYPES, type Activation, type LayerSpec, type LayerType, type Pair } from './manifest';

type Tf = typeof tfTypes;

/** What the builder (and the manifest schema) accept: one list, kept in manifest.ts. */
export const SUPPORTED_LAYERS: readonly LayerType[] = LAYER_TYPES;

const ACTIVATIONS: readonly Activation[] = ['linear', 'relu', 'relu6', 'sigmoid', 'tanh', 'softmax', 'elu', 'selu', 'softplus'];

export interface ModelSpecProps {
  readonly task: Task;
  /** Shape of one example without the batch dimension, e.g. [28, 28, 1] or [4]. */
  readonly inputShape: readonly number[];
  /**
   * Number of classes (classification only).
   * @default - required for classification
   */
  readonly numClasses?: number;
  /**
   * The manifest's layer list.
   * @default - defaultLayers(task, inputShape, numClasses)
   */
  readonly layers?: readonly LayerSpec[];
}

export interface BuildModelProps {
  /** Shape of one example without the batch dimension. */
  readonly inputShape: readonly number[];
  readonly layers: readonly LayerSpec[];
  /**
   * Seed of the kernel initialisers (layer i uses seed + i), so a run's initial weights repeat.
   * @default - unseeded (TF.js draws from Math.random)
   */
  readonly seed?: number;
}

/** The seed example's network: conv2d 32 3x3 relu, maxPooling 2, flatten, dense `classes` softmax. */
export function seedNetwork(classes: number): LayerSpec[] {
  return [
    { type: 'conv2d', filters: 32, kernelSize: 3, activation: 'relu' },
    { type: 'maxPooling2d', poolSize: 2 },
    { type: 'flatten' },
    { type: 'dense', units: classes, activation: 'softmax' },
  ];
}

/**
 * The default network for a task and input shape:
 * an image [h, w, c] -> conv2d 32 3x3 relu, maxPooling 2, flatten, dense N softmax (the seed network);
 * flat classification -> dense 128 relu, dense N softmax; regression -> dense 64 relu, dense 64 relu, dense 1.
 */
export function defaultLayers(task: Task, inputShape: readonly number[], numClasses?: number): LayerSpec[] {
  if (task === 'regression') {
    const head: LayerSpec[] = inputShape.length > 1 ? [{ type: 'flatten' }] : [];
    return [...head, { type: 'dense', units: 64, activation: 'relu' }, { type: 'dense', units: 64, activation: 'relu' }, { type: 'dense', units: 1 }];
  }
  const classes = requireClasses(numClasses);
  if (inputShape.length === 3) return seedNetwork(classes);
  const head: LayerSpec[] = inputShape.length > 1 ? [{ type: 'flatten' }] : [];
  return [...head, { type: 'dense', units: 128, activation: 'relu' }, { type: 'dense', units: classes, activation: 'softmax' }];
}

function requireClasses(numClasses: number | undefined): number {
  if (numClasses === undefined || !Number.isInteger(numClasses) || numClasses < 2) {
    throw new ManifestError(`A classification model needs at least 2 classes. Received ${String(numClasses)}.`);
  }
  return numClasses;
}

function pair(value: Pair | undefined, fallback: number): [number, number] {
  if (value === undefined) return [fallback, fallback];
  return typeof value === 'number' ? [value, value] : [value[0], value[1]];
}

function windowOut(size: number, window: number, stride: number, padding: 'valid' | 'same'): number {
  return padding === 'same' ? Math.ceil(size / stride) : Math.floor((size - window) / stride) + 1;
}

function describe(index: number, spec: { type: string }): string {
  return `model[${index}] (${spec.type})`;
}

function positiveInt(where: string, field: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new ManifestError(`${where}: ${field} must be a positive integer. Received ${JSON.stringify(value)}.`);
  }
}

function checkPair(where: string, field: string, value: unknown): void {
  if (value === undefined) return;
  if (Array.isArray(value)) {
    if (value.length !== 2) throw new ManifestError(`${where}: ${field} must be a number or a pair [rows, cols]. Received ${JSON.stringify(value)}.`);
    value.forEach((v, i) => positiveInt(where, `${field}[${i}]`, v));
    return;
  }
  positiveInt(where, field, value);
}

function checkActivation(where: string, value: unknown, required: boolean): void {
  if (value === undefined && !required) return;
  if (!ACTIVATIONS.includes(value as Activation)) {
    throw new ManifestError(`${where}: activation must be one of ${ACTIVATIONS.join(', ')}. Received ${JSON.stringify(value)}.`);
  }
}

function checkPadding(where: string, value: unknown): void {
  if (value !== undefined && value !== 'valid' && value !== 'same') {
    throw new ManifestError(`${where}: padding must be "valid" or "same". Received ${JSON.stringify(value)}.`);
  }
}

function requireImage(where: string, shape: readonly number[]): void {
  if (shape.length !== 3) {
    throw new ManifestError(
      `${where} needs an image input of shape [height, width, channels]; it receives [${shape.join(', ')}]. Give the features a 3-d shape or use dense layers.`,
    );
  }
}

/**
 * Checks a layer list against an input shape and returns the output shape of every layer
 * (no batch dimension). Throws ManifestError naming the layer's index and type, or
 * UnsupportedLayerError for a type dlops does not build.
 */
export function inferShapes(layers: readonly LayerSpec[], inputShape: readonly number[]): number[][] {
  if (inputShape.length === 0 || inputShape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new ManifestError(`The input shape must be a non-empty list of positive integers. Received [${inputShape.join(', ')}].`);
  }
  if (layers.length === 0) throw new ManifestError('model must list at least one layer. Received [].');
  const shapes: number[][] = [];
  let shape = [...inputShape];
  layers.forEach((spec, index) => {
    const where = describe(index, spec ?? { type: String(spec) });
    if (spec === null || typeof spec !== 'object' || !SUPPORTED_LAYERS.includes(spec.type)) {
      const received = spec !== null && typeof spec === 'object' ? (spec as { type?: unknown }).type : spec;
      throw new UnsupportedLayerError(`model[${index}]: layer type ${JSON.stringify(received)} is not supported; dlops builds ${SUPPORTED_LAYERS.join(', ')}.`);
    }
    switch (spec.type) {
      case 'dense': {
        positiveInt(where, 'units', spec.units);
        checkActivation(where, spec.activation, false);
        if (shape.length !== 1) {
          throw new ManifestError(`${where} needs a flat input; it receives [${shape.join(', ')}]. Put a flatten or globalAveragePooling2d layer before it.`);
        }
        shape = [spec.units];
        break;
      }
      case 'conv2d': {
        requireImage(where, shape);
        positiveInt(where, 'filters', spec.filters);
        if (spec.kernelSize === undefined) throw new ManifestError(`${where}: kernelSize is required. Received undefined.`);
        checkPair(where, 'kernelSize', spec.kernelSize);
        checkPair(where, 'strides', spec.strides);
        checkPadding(where, spec.padding);
        checkActivation(where, spec.activation, false);
        const [kh, kw] = pair(spec.kernelSize, 1);
        const [sh, sw] = pair(spec.strides, 1);
        const padding = spec.padding ?? 'valid';
        shape = [windowOut(shape[0], kh, sh, padding), windowOut(shape[1], kw, sw, padding), spec.filters];
        break;
      }
      case 'maxPooling2d':
      case 'averagePooling2d': {
        requireImage(where, shape);
        checkPair(where, 'poolSize', spec.poolSize);
        checkPair(where, 'strides', spec.strides);
        checkPadding(where, spec.padding);
        const [ph, pw] = pair(spec.poolSize, 2);
        // Keras (and TF.js) default the strides to the pool size.
        const [sh, sw] = spec.strides === undefined ? [ph, pw] : pair(spec.strides, 1);
        const padding = spec.padding ?? 'valid';
        shape = [windowOut(shape[0], ph, sh, padding), windowOut(shape[1], pw, sw, padding), shape[2]];
        break;
      }
      case 'flatten':
        shape = [shape.reduce((a, b) => a * b, 1)];
        break;
      case 'globalAveragePooling2d':
        requireImage(where, shape);
        shape = [shape[2]];
        break;
      case 'dropout':
        if (typeof spec.rate !== 'number' || !(spec.rate >= 0 && spec.rate < 1)) {
          throw new ManifestError(`${where}: rate must be a number in [0, 1). Received ${JSON.stringify(spec.rate)}.`);
        }
        break;
      case 'batchNormalization':
        if (spec.momentum !== undefined && !(spec.momentum > 0 && spec.momentum < 1)) {
          throw new ManifestError(`${where}: momentum must be in (0, 1). Received ${JSON.stringify(spec.momentum)}.`);
        }
        if (spec.epsilon !== undefined && !(spec.epsilon > 0)) {
          throw new ManifestError(`${where}: epsilon must be positive. Received ${JSON.stringify(spec.epsilon)}.`);
        }
        break;
      case 'activation':
        checkActivation(where, spec.activation, true);
        break;
    }
    if (shape.some((d) => d < 1)) {
      throw new ManifestError(`${where} would output [${shape.join(', ')}]: its window is larger than its input. Use padding "same" or a smaller kernel/pool.`);
    }
    shapes.push([...shape]);
  });
  return shapes;
}

function finalActivation(layers: readonly LayerSpec[]): Activation | undefined {
  for (let i = layers.length - 1; i >= 0; i -= 1) {
    const spec = layers[i];
    if (spec.type === 'activation') return spec.activation;
    if (spec.type === 'dense' || spec.type === 'conv2d') return spec.activation ?? 'linear';
  }
  return undefined;
}

/**
 * The layers a run trains: the manifest's list (checked against the task's output contract:
 * softmax probabilities over the classes, or one value for regression) or the default.
 */
export function resolveLayers(props: ModelSpecProps): LayerSpec[] {
  const layers = props.layers === undefined ? defaultLayers(props.task, props.inputShape, props.numClasses) : [...props.layers];
  const shapes = inferShapes(layers, props.inputShape);
  const out = shapes[shapes.length - 1];
  if (props.task === 'classification') {
    const classes = requireClasses(props.numClasses);
    if (out.length !== 1 || out[0] !== classes) {
      throw new ManifestError(`model: a classification model must end with ${classes} outputs (one per class); the last layer outputs [${out.join(', ')}].`);
    }
    const activation = finalActivation(layers);
    if (activation !== 'softmax') {
      throw new ManifestError(`model: a classification model must end with a softmax activation (its outputs are class probabilities); the last activation is ${String(activation)}.`);
    }
  } else if (out.length !== 1 || out[0] !== 1) {
    throw new ManifestError(`model: a regression model must end with 1 output; the last layer outputs [${out.join(', ')}].`);
  }
  return layers;
}

/** Builds an (uncompiled) tf.Sequential from a layer list, after checking it with inferShapes. */
export function buildModel(tf: Tf, props: BuildModelProps): tfTypes.Sequential {
  inferShapes(props.layers, props.inputShape);
  const model = tf.sequential();
  props.layers.forEach((spec, index) => {
    const first = index === 0 ? { inputShape: [...props.inputShape] } : {};
    const seed = props.seed === undefined ? undefined : props.seed + index;
    const kernelInitializer = tf.initializers.glorotUniform({ seed });
    let layer: tfTypes.layers.Layer;
    switch (spec.type) {
      case 'dense':
        layer = tf.layers.dense({ ...first, units: spec.units, activation: spec.activation, useBias: spec.useBias, kernelInitializer });
        break;
      case 'conv2d':
        layer = tf.layers.conv2d({
          ...first,
          filters: spec.filters,
          kernelSize: spec.kernelSize,
          strides: spec.strides,
          padding: spec.padding,
          activation: spec.activation,
          useBias: spec.useBias,
          kernelInitializer,
        });
        break;
      case 'maxPooling2d':
        layer = tf.layers.maxPooling2d({ ...first, poolSize: spec.poolSize ?? 2, strides: spec.strides, padding: spec.padding });
        break;
      case 'averagePooling2d':
        layer = tf.layers.averagePooling2d({ ...first, poolSize: spec.poolSize ?? 2, strides: spec.strides, padding: spec.padding });
        break;
      case 'flatten':
        layer = tf.layers.flatten(first);
        break;
      case 'dropout':
        // No seed: TF.js reuses a seeded dropout mask on every batch, which stops it regularising.
        layer = tf.layers.dropout({ ...first, rate: spec.rate });
        break;
      case 'batchNormalization':
        layer = tf.layers.batchNormalization({ ...first, momentum: spec.momentum, epsilon: spec.epsilon });
        break;
      case 'globalAveragePooling2d':
        layer = tf.layers.globalAveragePooling2d(first);
        break;
      case 'activation':
        layer = tf.layers.activation({ ...first, activation: spec.activation });
        break;
    }
    model.add(layer);
  });
  return model;
}
