/**
 * TF.js layers model -> ONNX graph, written by dlops (no JavaScript converter exists; DESIGN.md).
 *
 * The ONNX model takes and returns exactly what the TF.js model does: input "input", float32
 * [batch, ...inputShape] in TF.js's channels-last (NHWC) layout with a symbolic batch dimension,
 * and output "output". ONNX's Conv and pooling operators are channels-first (NCHW), so 4-d
 * values carry a layout tag and a Transpose is inserted only where the layout has to change:
 * a run of conv/pool layers stays in NCHW, and flatten/dense transpose back first, so that
 * flatten orders features the way TF.js does (h, w, c).
 *
 * Operators are those of the default domain at OPSET; a runtime applies the semantics of the
 * opset a model declares, so later operator changes do not affect it. https://onnx.ai/onnx/operators/
 */
import type * as tfTypes from '@tensorflow/tfjs';
import { UnsupportedLayerError } from '../errors';
import { attr, GraphBuilder, type Attributes } from './graph';
import { DataType, encodeModel, type Dim, type ModelProto } from './proto';

/** Opset 13: Softmax on one axis (not "flatten from axis"), Clip with min/max inputs. */
export const OPSET = 13;
/** IR version 7 is the one that goes with opset 13 (https://onnx.ai/onnx/repo-docs/Versioning.html). */
export const IR_VERSION = 7;
export const PRODUCER = 'dlops';
export const INPUT_NAME = 'input';
export const OUTPUT_NAME = 'output';
export const BATCH_DIM = 'batch';

/** TF.js activation names (`serialization` class names) dlops exports. */
export const SUPPORTED_ACTIVATIONS = [
  'linear',
  'relu',
  'relu6',
  'sigmoid',
  'tanh',
  'softmax',
  'logSoftmax',
  'elu',
  'selu',
  'softplus',
  'softsign',
  'hardSigmoid',
  'swish',
  'mish',
  'gelu',
  'gelu_new',
] as const;

/** TF.js layer class names dlops exports. */
export const SUPPORTED_LAYER_CLASSES = [
  'InputLayer',
  'Dense',
  'Conv2D',
  'MaxPooling2D',
  'AveragePooling2D',
  'Flatten',
  'Dropout',
  'BatchNormalization',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
  'Activation',
  'ReLU',
  'LeakyReLU',
  'ELU',
  'Softmax',
  'Reshape',
  'ZeroPadding2D',
] as const;

/**
 * Keras's SELU constants (TF.js tf.selu uses the same). ONNX's Selu defaults are float32
 * roundings of the same numbers; they are set explicitly so nothing depends on a runtime's default.
 */
const SELU_ALPHA = 1.6732632423543772;
const SELU_SCALE = 1.0507009873554805;

export interface OnnxExportOptions {
  /**
   * Name of the ONNX graph.
   * @default - the TF.js model's name
   */
  readonly graphName?: string;
  /**
   * Version recorded as producer_version.
   * @default '0'
   */
  readonly producerVersion?: string;
  /**
   * Free-form model metadata (ModelProto.metadata_props), e.g. the run id.
   * @default - none
   */
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface OnnxExport {
  /** The `.onnx` file. */
  readonly bytes: Uint8Array;
  readonly opset: number;
  readonly irVersion: number;
  /** Input shape with the batch dimension as "batch", e.g. ["batch", 28, 28, 1]. */
  readonly inputShape: Dim[];
  readonly outputShape: Dim[];
  /** The operators used, in graph order, e.g. ["Transpose", "Conv", "Relu", ...]. */
  readonly opTypes: string[];
  /** The model proper (before encoding), for inspection and tests. */
  readonly model: ModelProto;
}

/** 'tf' = the value has TF.js's own layout; 'nchw' = a 4-d value transposed to channels-first. */
type Layout = 'tf' | 'nchw';

interface Value {
  readonly name: string;
  readonly layout: Layout;
  /** Rank including the batch dimension. */
  readonly rank: number;
  /** The TF.js (channels-last) shape, batch first as null; kept up to date between layers only. */
  readonly shape: ReadonlyArray<number | null>;
}

/** What a layer's conversion produces; the caller attaches TF.js's shape for the next layer. */
type Produced = Omit<Value, 'shape'>;

interface LayerInfo {
  readonly layer: tfTypes.layers.Layer;
  readonly index: number;
  readonly className: string;
  readonly config: Record<string, unknown>;
}

function describeLayer(info: LayerInfo): string {
  return `Layer ${info.index} "${info.layer.name}" (${info.className})`;
}

function unsupported(info: LayerInfo, reason: string): UnsupportedLayerError {
  return new UnsupportedLayerError(`${describeLayer(info)} cannot be exported to ONNX: ${reason}`);
}

function pairOf(info: LayerInfo, field: string, fallback?: [number, number]): [number, number] {
  const value = info.config[field];
  if (value === undefined || value === null) {
    if (fallback !== undefined) return fallback;
    throw unsupported(info, `its config has no ${field}.`);
  }
  if (typeof value === 'number') return [value, value];
  if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === 'number')) return [value[0] as number, value[1] as number];
  throw unsupported(info, `${field} must be a number or a pair; received ${JSON.stringify(value)}.`);
}

/** A layer's single static shape (batch dimension first, null) as TF.js inferred it. */
function singleShape(info: LayerInfo, shape: unknown, what: string): Array<number | null> {
  const unwrapped = Array.isArray(shape) && shape.length === 1 && Array.isArray(shape[0]) ? shape[0] : shape;
  if (!Array.isArray(unwrapped) || unwrapped.some((d) => d !== null && typeof d !== 'number')) {
    throw unsupported(info, `it does not have exactly one ${what}; TF.js reports ${JSON.stringify(shape)}.`);
  }
  return unwrapped as Array<number | null>;
}

/**
 * TF's "same" padding for one spatial dimension: output = ceil(in / stride), and when the
 * total padding is odd the extra row/column goes at the end (ONNX's SAME_UPPER). Computed
 * explicitly because the spatial sizes are static; explicit pads leave no runtime choice.
 * https://www.tensorflow.org/api_docs/python/tf/nn#notes_on_padding_2
 */
export function samePads(size: number, kernel: number, stride: number, dilation = 1): [number, number] {
  const effective = (kernel - 1) * dilation + 1;
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + effective - size, 0);
  const begin = Math.floor(total / 2);
  return [begin, total - begin];
}

function windowPads(info: LayerInfo, shape: ReadonlyArray<number | null>, kernel: [number, number], strides: [number, number], dilations: [number, number]): number[] {
  const padding = info.config['padding'];
  if (padding === 'valid') return [0, 0, 0, 0];
  if (padding !== 'same') throw unsupported(info, `padding "${String(padding)}" is not supported (valid, same).`);
  const [h, w] = [shape[1], shape[2]];
  if (typeof h !== 'number' || typeof w !== 'number') throw unsupported(info, `"same" padding needs static height and width; input shape is [${shape.join(', ')}].`);
  const [top, bottom] = samePads(h, kernel[0], strides[0], dilations[0]);
  const [left, right] = samePads(w, kernel[1], strides[1], dilations[1]);
  // ONNX pads: [x1_begin, x2_begin, x1_end, x2_end]
  return [top, left, bottom, right];
}

function requireChannelsLast(info: LayerInfo): void {
  const format = info.config['dataFormat'];
  if (format !== undefined && format !== null && format !== 'channelsLast') {
    throw unsupported(info, `dataFormat "${String(format)}" is not supported (channelsLast).`);
  }
}

/** The layer's weights by their short name (kernel, bias, gamma, beta, moving_mean, moving_variance). */
function weightsOf(info: LayerInfo): Map<string, { shape: number[]; values: Float32Array }> {
  const tensors = info.layer.getWeights();
  const out = new Map<string, { shape: number[]; values: Float32Array }>();
  info.layer.weights.forEach((variable, i) => {
    const short = variable.originalName.split('/').pop()!.replace(/_\d+$/, '');
    const tensor = tensors[i]!;
    out.set(short, { shape: [...tensor.shape], values: Float32Array.from(tensor.dataSync() as Float32Array) });
  });
  return out;
}

function requireWeight(info: LayerInfo, weights: Map<string, { shape: number[]; values: Float32Array }>, name: string) {
  const w = weights.get(name);
  if (w === undefined) throw unsupported(info, `weight "${name}" not found; it has ${[...weights.keys()].join(', ') || 'none'}.`);
  return w;
}

/** Reorders a [kh, kw, in, out] TF kernel into ONNX Conv's [out, in, kh, kw]. */
export function convKernelToOihw(values: Float32Array, shape: readonly number[]): Float32Array {
  const [kh, kw, cin, cout] = shape as [number, number, number, number];
  const out = new Float32Array(values.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < cout; o++) out[((o * cin + i) * kh + y) * kw + x] = values[((y * kw + x) * cin + i) * cout + o]!;
  return out;
}

class Converter {
  readonly g = new GraphBuilder();

  toNchw(x: Produced, base: string): Produced {
    if (x.layout === 'nchw') return x;
    if (x.rank !== 4) throw new Error(`internal: NCHW needs a 4-d value, ${x.name} has rank ${x.rank}`);
    return { ...x, name: this.g.node('Transpose', [x.name], { perm: attr.ints([0, 3, 1, 2]) }, base), layout: 'nchw' };
  }

  toTf(x: Produced, base: string): Produced {
    if (x.layout === 'tf') return x;
    return { ...x, name: this.g.node('Transpose', [x.name], { perm: attr.ints([0, 2, 3, 1]) }, base), layout: 'tf' };
  }

  /** Where a TF.js (channels-last) axis is in the value as stored. */
  physicalAxis(x: Produced, axis: number): number {
    const a = axis < 0 ? axis + x.rank : axis;
    if (x.layout === 'tf') return a;
    return [0, 2, 3, 1][a]!;
  }

  /** A per-channel constant that broadcasts along the TF.js last axis in the value's layout. */
  channelConst(x: Produced, base: string, values: Float32Array): string {
    const axis = this.physicalAxis(x, -1);
    const dims = [values.length, ...new Array<number>(x.rank - 1 - axis).fill(1)];
    return this.g.constFloat(base, dims, values);
  }

  unary(x: Produced, op: string, base: string, attributes: Attributes = {}): Produced {
    return { ...x, name: this.g.node(op, [x.name], attributes, base) };
  }

  activation(info: LayerInfo, x: Produced, name: unknown): Produced {
    const base = info.layer.name;
    switch (name) {
      case undefined:
      case null:
      case 'linear':
        return x;
      case 'relu':
        return this.unary(x, 'Relu', base);
      case 'relu6':
        return this.clip(x, base, 0, 6);
      case 'sigmoid':
        return this.unary(x, 'Sigmoid', base);
      case 'tanh':
        return this.unary(x, 'Tanh', base);
      case 'softmax':
        return this.unary(x, 'Softmax', base, { axis: attr.int(this.physicalAxis(x, -1)) });
      case 'logSoftmax':
        return this.unary(x, 'LogSoftmax', base, { axis: attr.int(this.physicalAxis(x, -1)) });
      case 'elu':
        return this.unary(x, 'Elu', base, { alpha: attr.float(1) });
      case 'selu':
        return this.unary(x, 'Selu', base, { alpha: attr.float(SELU_ALPHA), gamma: attr.float(SELU_SCALE) });
      case 'softplus':
        return this.unary(x, 'Softplus', base);
      case 'softsign':
        return this.unary(x, 'Softsign', base);
      case 'hardSigmoid':
        // TF.js: clip(0.2 x + 0.5, 0, 1), which is ONNX HardSigmoid with these constants.
        return this.unary(x, 'HardSigmoid', base, { alpha: attr.float(0.2), beta: attr.float(0.5) });
      case 'swish': {
        const s = this.g.node('Sigmoid', [x.name], {}, base);
        return { ...x, name: this.g.node('Mul', [x.name, s], {}, base) };
      }
      case 'mish': {
        const sp = this.g.node('Softplus', [x.name], {}, base);
        const t = this.g.node('Tanh', [sp], {}, base);
        return { ...x, name: this.g.node('Mul', [x.name, t], {}, base) };
      }
      case 'gelu': {
        // x * 0.5 * (1 + erf(x / sqrt 2)), the exact form TF.js computes.
        const scaled = this.g.node('Div', [x.name, this.g.constFloat(`${base}/sqrt2`, [], [Math.SQRT2])], {}, base);
        const erf = this.g.node('Erf', [scaled], {}, base);
        const onePlus = this.g.node('Add', [erf, this.g.constFloat(`${base}/one`, [], [1])], {}, base);
        const half = this.g.node('Mul', [onePlus, this.g.constFloat(`${base}/half`, [], [0.5])], {}, base);
        return { ...x, name: this.g.node('Mul', [x.name, half], {}, base) };
      }
      case 'gelu_new': {
        // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as TF.js computes it.
        const cube = this.g.node('Mul', [x.name, this.g.node('Mul', [x.name, x.name], {}, base)], {}, base);
        const inner = this.g.node('Add', [x.name, this.g.node('Mul', [cube, this.g.constFloat(`${base}/c`, [], [0.044715])], {}, base)], {}, base);
        const t = this.g.node('Tanh', [this.g.node('Mul', [inner, this.g.constFloat(`${base}/k`, [], [Math.sqrt(2 / Math.PI)])], {}, base)], {}, base);
        const onePlus = this.g.node('Add', [t, this.g.constFloat(`${base}/one`, [], [1])], {}, base);
        const half = this.g.node('Mul', [x.name, this.g.constFloat(`${base}/half`, [], [0.5])], {}, base);
        return { ...x, name: this.g.node('Mul', [half, onePlus], {}, base) };
      }
      default:
        throw new UnsupportedLayerError(
          `${describeLayer(info)} has activation ${JSON.stringify(name)}, which dlops cannot export to ONNX (supported: ${SUPPORTED_ACTIVATIONS.join(', ')}).`,
        );
    }
  }

  clip(x: Produced, base: string, min: number, max: number | undefined): Produced {
    const inputs = [x.name, this.g.constFloat(`${base}/min`, [], [min])];
    if (max !== undefined) inputs.push(this.g.constFloat(`${base}/max`, [], [max]));
    return { ...x, name: this.g.node('Clip', inputs, {}, base) };
  }

  layer(info: LayerInfo, x: Value): Produced {
    const { config } = info;
    const base = info.layer.name;
    switch (info.className) {
      case 'InputLayer':
        return x;
      case 'Dropout':
        // Dropout is the identity at inference; it adds no node.
        return x;
      case 'Dense': {
        const w = weightsOf(info);
        const kernel = requireWeight(info, w, 'kernel');
        const input = this.toTf(x, base);
        let y = this.g.node('MatMul', [input.name, this.g.constFloat(`${base}/kernel`, kernel.shape, kernel.values)], {}, base);
        if (config['useBias'] !== false) {
          const bias = requireWeight(info, w, 'bias');
          y = this.g.node('Add', [y, this.g.constFloat(`${base}/bias`, bias.shape, bias.values)], {}, base);
        }
        return this.activation(info, { name: y, layout: 'tf', rank: input.rank }, config['activation']);
      }
      case 'Conv2D': {
        requireChannelsLast(info);
        if (x.rank !== 4) throw unsupported(info, `it needs a 4-d input, received rank ${x.rank}.`);
        const kernelSize = pairOf(info, 'kernelSize');
        const strides = pairOf(info, 'strides', [1, 1]);
        const dilations = pairOf(info, 'dilationRate', [1, 1]);
        const pads = windowPads(info, x.shape, kernelSize, strides, dilations);
        const w = weightsOf(info);
        const kernel = requireWeight(info, w, 'kernel');
        const [kh, kw, cin, cout] = kernel.shape as [number, number, number, number];
        const inputs = [this.toNchw(x, base).name, this.g.constFloat(`${base}/kernel`, [cout, cin, kh, kw], convKernelToOihw(kernel.values, kernel.shape))];
        if (config['useBias'] !== false) {
          const bias = requireWeight(info, w, 'bias');
          inputs.push(this.g.constFloat(`${base}/bias`, bias.shape, bias.values));
        }
        const y = this.g.node(
          'Conv',
          inputs,
          { kernel_shape: attr.ints(kernelSize), strides: attr.ints(strides), dilations: attr.ints(dilations), pads: attr.ints(pads), group: attr.int(1) },
          base,
        );
        return this.activation(info, { name: y, layout: 'nchw', rank: 4 }, config['activation']);
      }
      case 'MaxPooling2D':
      case 'AveragePooling2D': {
        requireChannelsLast(info);
        if (x.rank !== 4) throw unsupported(info, `it needs a 4-d input, received rank ${x.rank}.`);
        const poolSize = pairOf(info, 'poolSize');
        const strides = pairOf(info, 'strides', poolSize);
        const pads = windowPads(info, x.shape, poolSize, strides, [1, 1]);
        const attributes = { kernel_shape: attr.ints(poolSize), strides: attr.ints(strides), pads: attr.ints(pads) };
        if (info.className === 'MaxPooling2D') {
          return { name: this.g.node('MaxPool', [this.toNchw(x, base).name], attributes, base), layout: 'nchw', rank: 4 };
        }
        // TF averages over the window's real pixels only: padding is not counted.
        const y = this.g.node('AveragePool', [this.toNchw(x, base).name], { ...attributes, count_include_pad: attr.int(0) }, base);
        return { name: y, layout: 'nchw', rank: 4 };
      }
      case 'GlobalAveragePooling2D':
      case 'GlobalMaxPooling2D': {
        requireChannelsLast(info);
        if (x.rank !== 4) throw unsupported(info, `it needs a 4-d input, received rank ${x.rank}.`);
        const op = info.className === 'GlobalAveragePooling2D' ? 'ReduceMean' : 'ReduceMax';
        const axes = [this.physicalAxis(x, 1), this.physicalAxis(x, 2)].sort((a, b) => a - b);
        // Opset 13's ReduceMean/ReduceMax take axes as an attribute (an input only from opset 18).
        const y = this.g.node(op, [x.name], { axes: attr.ints(axes), keepdims: attr.int(0) }, base);
        return { name: y, layout: 'tf', rank: 2 };
      }
      case 'Flatten': {
        // Back to NHWC first: TF.js flattens in (h, w, c) order and the next dense layer's kernel rows follow it.
        const input = this.toTf(x, base);
        return { name: this.g.node('Flatten', [input.name], { axis: attr.int(1) }, base), layout: 'tf', rank: 2 };
      }
      case 'Reshape': {
        const target = config['targetShape'];
        if (!Array.isArray(target) || !target.every((d) => typeof d === 'number' || d === null)) {
          throw unsupported(info, `targetShape ${JSON.stringify(target)} is not a list of numbers.`);
        }
        const input = this.toTf(x, base);
        // 0 copies the input's (batch) dimension; TF.js stores an inferred -1 as null, ONNX infers -1.
        const dims = (target as Array<number | null>).map((d) => d ?? -1);
        const shape = this.g.constInt64(`${base}/shape`, [dims.length + 1], [0, ...dims]);
        return { name: this.g.node('Reshape', [input.name, shape], {}, base), layout: 'tf', rank: target.length + 1 };
      }
      case 'ZeroPadding2D': {
        requireChannelsLast(info);
        const padding = config['padding'];
        if (!Array.isArray(padding) || padding.length !== 2 || !padding.every((p) => Array.isArray(p) && p.length === 2)) {
          throw unsupported(info, `padding ${JSON.stringify(padding)} is not [[top, bottom], [left, right]].`);
        }
        const [[top, bottom], [left, right]] = padding as [[number, number], [number, number]];
        const begin = x.layout === 'nchw' ? [0, 0, top, left] : [0, top, left, 0];
        const end = x.layout === 'nchw' ? [0, 0, bottom, right] : [0, bottom, right, 0];
        const pads = this.g.constInt64(`${base}/pads`, [8], [...begin, ...end]);
        return { ...x, name: this.g.node('Pad', [x.name, pads], { mode: { type: 'string', value: 'constant' } }, base) };
      }
      case 'BatchNormalization': {
        const axis = typeof config['axis'] === 'number' ? config['axis'] : -1;
        const logical = axis < 0 ? axis + x.rank : axis;
        if (logical !== x.rank - 1) throw unsupported(info, `axis ${axis} is not the channel (last) axis of its rank-${x.rank} input.`);
        const epsilon = typeof config['epsilon'] === 'number' ? config['epsilon'] : 1e-3;
        const w = weightsOf(info);
        const mean = requireWeight(info, w, 'moving_mean').values;
        const variance = requireWeight(info, w, 'moving_variance').values;
        const gamma = config['scale'] === false ? undefined : requireWeight(info, w, 'gamma').values;
        const beta = config['center'] === false ? undefined : requireWeight(info, w, 'beta').values;
        // Inference-mode batch norm folded into y = x * scale + shift, in float64 before rounding to float32.
        const scale = new Float32Array(mean.length);
        const shift = new Float32Array(mean.length);
        for (let c = 0; c < mean.length; c++) {
          const s = (gamma?.[c] ?? 1) / Math.sqrt(variance[c]! + epsilon);
          scale[c] = s;
          shift[c] = (beta?.[c] ?? 0) - mean[c]! * s;
        }
        const scaled = this.g.node('Mul', [x.name, this.channelConst(x, `${base}/scale`, scale)], {}, base);
        return { ...x, name: this.g.node('Add', [scaled, this.channelConst(x, `${base}/shift`, shift)], {}, base) };
      }
      case 'Activation':
        return this.activation(info, x, config['activation']);
      case 'ReLU': {
        const max = config['maxValue'];
        if (max === undefined || max === null) return this.unary(x, 'Relu', base);
        return this.clip(x, base, 0, Number(max));
      }
      case 'LeakyReLU':
        return this.unary(x, 'LeakyRelu', base, { alpha: attr.float(typeof config['alpha'] === 'number' ? config['alpha'] : 0.3) });
      case 'ELU':
        return this.unary(x, 'Elu', base, { alpha: attr.float(typeof config['alpha'] === 'number' ? config['alpha'] : 1) });
      case 'Softmax': {
        const axis = config['axis'];
        // TF.js's Softmax layer defaults to axis 1 (not -1); getConfig reports the resolved axis.
        const a = Array.isArray(axis) ? (axis.length === 1 ? axis[0] : undefined) : axis ?? 1;
        if (typeof a !== 'number') throw unsupported(info, `axis ${JSON.stringify(axis)} is not a single axis.`);
        return this.unary(x, 'Softmax', base, { axis: attr.int(this.physicalAxis(x, a)) });
      }
      default:
        throw new UnsupportedLayerError(
          `${describeLayer(info)} cannot be exported to ONNX: dlops exports ${SUPPORTED_LAYER_CLASSES.join(', ')}.`,
        );
    }
  }
}

/**
 * The layers of a model as one chain, first to last. dlops builds sequential models; a
 * functional model is accepted when it is a chain too (each layer fed by the previous one).
 */
function chainOf(model: tfTypes.LayersModel): tfTypes.layers.Layer[] {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new UnsupportedLayerError(`Model "${model.name}" has ${model.inputs.length} inputs and ${model.outputs.length} outputs; dlops exports models with one of each.`);
  }
  const layers = model.layers;
  layers.forEach((layer, index) => {
    const nodes = layer.inboundNodes;
    const from = nodes.length === 1 ? nodes[0]!.inboundLayers : undefined;
    const previous = index === 0 ? [] : [layers[index - 1]];
    const chained = from !== undefined && from.length === previous.length && from.every((l, i) => l === previous[i]);
    // The first layer of a Sequential built without an explicit InputLayer is fed by a hidden one.
    const firstOfSequential = index === 0 && from !== undefined && from.length === 1 && from[0]!.getClassName() === 'InputLayer';
    if (!chained && !firstOfSequential) {
      throw new UnsupportedLayerError(
        `Layer ${index} "${layer.name}" (${layer.getClassName()}) cannot be exported to ONNX: it is not fed by exactly the previous layer; dlops exports sequential models.`,
      );
    }
  });
  return layers;
}

/** Converts a TF.js layers model to an ONNX model (see the module doc for the contract). */
export function exportLayersModel(model: tfTypes.LayersModel, options: OnnxExportOptions = {}): OnnxExport {
  const layers = chainOf(model);
  const inputShape = model.inputs[0]!.shape;
  const outputShape = model.outputs[0]!.shape;
  if (inputShape.slice(1).some((d) => d === null)) {
    throw new UnsupportedLayerError(`Model "${model.name}" has input shape [${inputShape.join(', ')}]; dlops exports models whose input is fixed apart from the batch dimension.`);
  }
  const converter = new Converter();
  let x: Value = { name: converter.g.reserve(INPUT_NAME), layout: 'tf', rank: inputShape.length, shape: inputShape };
  layers.forEach((layer, index) => {
    const info: LayerInfo = { layer, index, className: layer.getClassName(), config: layer.getConfig() as Record<string, unknown> };
    const y = converter.layer(info, x);
    const shape = singleShape(info, layer.outputShape, 'output');
    if (shape.length !== y.rank) throw new Error(`internal: ${describeLayer(info)} converted to rank ${y.rank}, TF.js says [${shape.join(', ')}]`);
    x = { ...y, shape };
  });
  converter.g.rename(converter.toTf(x, 'output').name, OUTPUT_NAME);

  const dims = (shape: Array<number | null>): Dim[] => shape.map((d, i) => (i === 0 ? BATCH_DIM : d ?? `dim${i}`));
  const onnxModel: ModelProto = {
    irVersion: IR_VERSION,
    opsetImports: [{ domain: '', version: OPSET }],
    producerName: PRODUCER,
    producerVersion: options.producerVersion ?? '0',
    docString: `TF.js layers model "${model.name}" exported by dlops.`,
    graph: {
      name: options.graphName ?? model.name,
      nodes: converter.g.nodes,
      initializers: converter.g.initializers,
      inputs: [{ name: INPUT_NAME, elemType: DataType.FLOAT, shape: dims(inputShape) }],
      outputs: [{ name: OUTPUT_NAME, elemType: DataType.FLOAT, shape: dims(outputShape) }],
    },
    metadata: options.metadata,
  };
  return {
    bytes: encodeModel(onnxModel),
    opset: OPSET,
    irVersion: IR_VERSION,
    inputShape: dims(inputShape),
    outputShape: dims(outputShape),
    opTypes: onnxModel.graph.nodes.map((n) => n.opType),
    model: onnxModel,
  };
}
