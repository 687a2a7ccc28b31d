/**
 * Parity between the TF.js model and its ONNX export: both run on the same rows in ONNX
 * Runtime and TF.js, and the largest absolute difference of any output value must stay within
 * the tolerance, or the export is refused with a ParityError stating the figure.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { ParityError } from '../errors';
import { INPUT_NAME, OUTPUT_NAME } from './convert';

type Tf = typeof tfTypes;

/** The tolerance of the issue: max |onnx - tfjs| <= 1e-4 on held-out rows. */
export const DEFAULT_TOLERANCE = 1e-4;

export interface ParityResult {
  readonly rows: number;
  readonly maxAbsDiff: number;
  readonly tolerance: number;
  readonly passed: boolean;
}

export interface ParityOptions {
  /**
   * Largest allowed absolute difference.
   * @default DEFAULT_TOLERANCE (1e-4)
   */
  readonly tolerance?: number;
  /**
   * Rows per batch in both runtimes (bounds memory on large splits).
   * @default 256
   */
  readonly batchSize?: number;
}

/** Runs an ONNX model (bytes) on rows of float32 input in ONNX Runtime and returns the flat output. */
export async function runOnnx(onnx: Uint8Array, x: Float32Array, shape: readonly number[], batchSize = 256): Promise<{ output: Float32Array; outputShape: number[] }> {
  const session = await ort.InferenceSession.create(onnx);
  try {
    return await runOnnxSession(session, x, shape, batchSize);
  } finally {
    await session.release();
  }
}

/**
 * Runs rows through an open ONNX Runtime session in batches (bounding memory on large splits)
 * and returns the flat output: what parity and the Evaluate step both need.
 */
export async function runOnnxSession(session: ort.InferenceSession, x: Float32Array, shape: readonly number[], batchSize = 256): Promise<{ output: Float32Array; outputShape: number[] }> {
  const [rows, ...example] = shape as [number, ...number[]];
  const width = example.reduce((a, b) => a * b, 1);
  const parts: Float32Array[] = [];
  let outputShape: number[] = [];
  for (let start = 0; start < rows; start += batchSize) {
    const n = Math.min(batchSize, rows - start);
    const input = new ort.Tensor('float32', x.subarray(start * width, (start + n) * width), [n, ...example]);
    const result = await session.run({ [INPUT_NAME]: input });
    const out = result[OUTPUT_NAME];
    if (out === undefined) throw new ParityError(`The ONNX model produced no "${OUTPUT_NAME}" value; it produced ${Object.keys(result).join(', ')}.`);
    parts.push(Float32Array.from(out.data as Float32Array));
    outputShape = [rows, ...out.dims.slice(1)];
  }
  return { output: concatenate(parts), outputShape };
}

function concatenate(parts: Float32Array[]): Float32Array {
  const output = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    output.set(p, at);
    at += p.length;
  }
  return output;
}

/** Runs the TF.js model on the same rows, in batches. */
export function runTfjs(tf: Tf, model: tfTypes.LayersModel, x: Float32Array, shape: readonly number[], batchSize = 256): { output: Float32Array; outputShape: number[] } {
  const [rows, ...example] = shape as [number, ...number[]];
  const width = example.reduce((a, b) => a * b, 1);
  const parts: Float32Array[] = [];
  let outputShape: number[] = [];
  for (let start = 0; start < rows; start += batchSize) {
    const n = Math.min(batchSize, rows - start);
    const out = tf.tidy(() => {
      const y = model.predict(tf.tensor(x.subarray(start * width, (start + n) * width), [n, ...example], 'float32')) as tfTypes.Tensor;
      return { data: Float32Array.from(y.dataSync() as Float32Array), shape: y.shape };
    });
    parts.push(out.data);
    outputShape = [rows, ...out.shape.slice(1)];
  }
  return { output: concatenate(parts), outputShape };
}

/** max |a - b|; a NaN on one side only counts as an infinite difference. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Number.isNaN(x) || Number.isNaN(y)) {
      if (Number.isNaN(x) && Number.isNaN(y)) continue;
      return Number.POSITIVE_INFINITY;
    }
    const d = Math.abs(x - y);
    if (d > max) max = d;
  }
  return max;
}

/** Measures parity without judging it. `shape` is [rows, ...inputShape]. */
export async function measureParity(
  tf: Tf,
  model: tfTypes.LayersModel,
  onnx: Uint8Array,
  x: Float32Array,
  shape: readonly number[],
  options: ParityOptions = {},
): Promise<ParityResult & { readonly onnxShape: number[]; readonly tfjsShape: number[] }> {
  const tolerance = options.tolerance ?? DEFAULT_TOLERANCE;
  const batchSize = options.batchSize ?? 256;
  const onnxOut = await runOnnx(onnx, x, shape, batchSize);
  const tfjsOut = runTfjs(tf, model, x, shape, batchSize);
  const sameShape = onnxOut.outputShape.join() === tfjsOut.outputShape.join();
  const diff = sameShape ? maxAbsDiff(onnxOut.output, tfjsOut.output) : Number.POSITIVE_INFINITY;
  return { rows: shape[0]!, maxAbsDiff: diff, tolerance, passed: diff <= tolerance, onnxShape: onnxOut.outputShape, tfjsShape: tfjsOut.outputShape };
}

/** Measures parity and throws ParityError when it fails. */
export async function checkParity(tf: Tf, model: tfTypes.LayersModel, onnx: Uint8Array, x: Float32Array, shape: readonly number[], options: ParityOptions = {}): Promise<ParityResult> {
  const m = await measureParity(tf, model, onnx, x, shape, options);
  if (m.onnxShape.join() !== m.tfjsShape.join()) {
    throw new ParityError(`ONNX output shape [${m.onnxShape.join(', ')}] differs from TF.js output shape [${m.tfjsShape.join(', ')}] on ${m.rows} rows.`);
  }
  if (!m.passed) {
    throw new ParityError(`ONNX Runtime and TF.js differ by up to ${m.maxAbsDiff} on ${m.rows} rows; the tolerance is ${m.tolerance}.`);
  }
  return { rows: m.rows, maxAbsDiff: m.maxAbsDiff, tolerance: m.tolerance, passed: true };
}
