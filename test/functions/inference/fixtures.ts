/**
 * Test fixtures for the registry, Register and inference tests: a tiny ONNX classifier or
 * regressor written by hand from the ONNX protobuf schema (Flatten -> MatMul -> Add [-> Softmax]),
 * independent of the exporter, and a helper that registers it as a version.
 * Field numbers: https://github.com/onnx/onnx/blob/main/onnx/onnx.proto3
 */
import type { Registry, VersionManifest } from '../../../functions/core/registry';
import { writeVersion } from '../../../functions/core/registry';

class Writer {
  private readonly parts: number[] = [];
  varint(value: number): this {
    let v = BigInt(value);
    if (v < 0n) v += 1n << 64n;
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v > 0n) byte |= 0x80;
      this.parts.push(byte);
    } while (v > 0n);
    return this;
  }
  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }
  int(field: number, value: number): this {
    return this.tag(field, 0).varint(value);
  }
  bytes(field: number, bytes: Uint8Array): this {
    this.tag(field, 2).varint(bytes.length);
    for (const b of bytes) this.parts.push(b);
    return this;
  }
  string(field: number, text: string): this {
    return this.bytes(field, new TextEncoder().encode(text));
  }
  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.bytes(field, inner.finish());
  }
  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}

function tensor(w: Writer, name: string, dims: number[], values: Float32Array): void {
  for (const d of dims) w.int(1, d); // dims
  w.int(2, 1); // data_type FLOAT
  w.string(8, name);
  w.bytes(9, new Uint8Array(values.buffer, values.byteOffset, values.byteLength)); // raw_data
}

function valueInfo(w: Writer, name: string, shape: Array<number | string>): void {
  w.string(1, name);
  w.message(2, (type) =>
    type.message(1, (t) => {
      t.int(1, 1); // elem_type FLOAT
      t.message(2, (s) => {
        for (const d of shape) s.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

function node(w: Writer, opType: string, inputs: string[], outputs: string[], attrs: Record<string, number> = {}): void {
  for (const i of inputs) w.string(1, i);
  for (const o of outputs) w.string(2, o);
  w.string(3, outputs[0]!);
  w.string(4, opType);
  for (const [name, value] of Object.entries(attrs)) w.message(5, (a) => a.string(1, name).int(3, value).int(20, 2));
}

export interface LinearModel {
  readonly inputShape: number[];
  /** [features x outputs], row-major. */
  readonly weights: Float32Array;
  readonly bias: Float32Array;
  readonly softmax: boolean;
}

/** output = [softmax](flatten(input) @ W + b), input "input" [batch, ...inputShape], output "output". */
export function linearOnnx(m: LinearModel): Uint8Array {
  const features = m.inputShape.reduce((a, b) => a * b, 1);
  const outputs = m.bias.length;
  if (m.weights.length !== features * outputs) throw new Error('weights must be features x outputs');
  const w = new Writer();
  w.int(1, 8); // ir_version
  w.string(2, 'dlops-test');
  w.message(7, (g) => {
    g.message(1, (n) => node(n, 'Flatten', ['input'], ['flat'], { axis: 1 }));
    g.message(1, (n) => node(n, 'MatMul', ['flat', 'W'], ['logits0']));
    g.message(1, (n) => node(n, 'Add', ['logits0', 'b'], [m.softmax ? 'logits' : 'output']));
    if (m.softmax) g.message(1, (n) => node(n, 'Softmax', ['logits'], ['output'], { axis: 1 }));
    g.string(2, 'linear');
    g.message(5, (t) => tensor(t, 'W', [features, outputs], m.weights));
    g.message(5, (t) => tensor(t, 'b', [outputs], m.bias));
    g.message(11, (v) => valueInfo(v, 'input', ['batch', ...m.inputShape]));
    g.message(12, (v) => valueInfo(v, 'output', ['batch', outputs]));
  });
  w.message(8, (o) => o.int(2, 13)); // opset_import { version: 13 }
  return w.finish();
}

/** Reference computation of linearOnnx, for expected values. */
export function linearReference(m: LinearModel, x: Float32Array, batch: number): number[][] {
  const features = x.length / batch;
  const outputs = m.bias.length;
  const rows: number[][] = [];
  for (let r = 0; r < batch; r++) {
    const z = Array.from({ length: outputs }, (_, j) => {
      let sum = m.bias[j]!;
      for (let i = 0; i < features; i++) sum += x[r * features + i]! * m.weights[i * outputs + j]!;
      return sum;
    });
    if (!m.softmax) {
      rows.push(z);
      continue;
    }
    const max = Math.max(...z);
    const e = z.map((v) => Math.exp(v - max));
    const total = e.reduce((a, b) => a + b, 0);
    rows.push(e.map((v) => v / total));
  }
  return rows;
}

/** A 4-feature, 3-class classifier in the spirit of iris; deterministic weights. */
export function irisLike(seed = 1): LinearModel {
  const weights = Float32Array.from({ length: 12 }, (_, i) => Math.sin(seed * 10 + i) * 2);
  const bias = Float32Array.from([0.1, -0.2, 0.05]);
  return { inputShape: [4], weights, bias, softmax: true };
}

export const IRIS_CLASSES = ['setosa', 'versicolor', 'virginica'];
export const IRIS_NORMALIZATION = { mean: [5.8, 3.0, 3.7, 1.2], std: [0.8, 0.4, 1.7, 0.8] };

/** Registers `m` as the next version of `model` with plausible manifest fields. */
export async function registerLinear(
  reg: Registry,
  model: string,
  m: LinearModel,
  options: { classNames?: string[]; normalization?: { mean: number[]; std: number[] }; runId?: string; accuracy?: number } = {},
): Promise<{ version: string; manifest: VersionManifest; onnx: Uint8Array }> {
  const features = m.inputShape.reduce((a, b) => a * b, 1);
  const onnx = linearOnnx(m);
  const classification = m.softmax;
  const written = await writeVersion(reg, {
    model,
    artifacts: {
      'model.onnx': onnx,
      'tfjs/model.json': new TextEncoder().encode(JSON.stringify({ format: 'layers-model', note: 'fixture' })),
      'tfjs/weights.bin': new Uint8Array(m.weights.buffer.slice(0)),
    },
    manifest: {
      task: classification ? 'classification' : 'regression',
      input: { name: 'input', datatype: 'FP32', shape: [-1, ...m.inputShape] },
      output: { name: 'output', datatype: 'FP32', shape: [-1, m.bias.length] },
      normalization: options.normalization ?? { mean: new Array(features).fill(0), std: new Array(features).fill(1) },
      ...(options.classNames ? { classNames: options.classNames } : {}),
      metrics: classification ? { accuracy: options.accuracy ?? 0.9 } : { mse: 0.1 },
      parity: { rows: 10, maxAbsDiff: 1e-6, tolerance: 1e-4, passed: true },
      lineage: { dataset: model, runId: options.runId ?? `run-${Date.now()}`, dataETags: [], manifestHash: 'f'.repeat(64), codeVersion: 'test', time: new Date().toISOString() },
    },
  });
  return { version: written.version, manifest: written.manifest, onnx };
}
