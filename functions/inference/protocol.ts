/**
 * Request checks and response shapes of the two protocols the inference API speaks. Pure.
 *
 * Open Inference Protocol (KServe v2), REST:
 * https://github.com/kserve/open-inference-protocol/blob/main/specification/protocol/inference_rest.md
 *   request  {id?, parameters?, inputs: [{name, shape, datatype, parameters?, data}], outputs?: [{name, parameters?}]}
 *   response {model_name, model_version?, id?, parameters?, outputs: [{name, shape, datatype, parameters?, data}]}
 *   errors   {"error": "<message>"}
 * `data` may be row-major flat or nested to the tensor's shape.
 *
 * TF Serving REST predict: https://www.tensorflow.org/tfx/serving/api_rest#predict_api
 *   row format      {"instances": [<one example>, ...]}  -> {"predictions": [...]}
 *   columnar format {"inputs": <batched tensor> | {"input": <batched tensor>}} -> {"outputs": ...}
 *
 * dlops models have one input, "input" (FP32, [-1, ...inputShape]) and answer:
 *   "output" FP32 [batch, classes] probabilities (classification) or [batch, 1] values (regression)
 *   "label"  BYTES [batch] the most probable class's name (classification only)
 */
import { BadRequestError, PayloadTooLargeError } from '../core/errors';
import type { TensorSpec, VersionManifest } from '../core/registry';

export const OUTPUT = 'output';
export const LABEL = 'label';

/** A batch checked against the model's input spec: raw (not yet normalised) row-major values. */
export interface InputBatch {
  readonly batch: number;
  readonly values: Float32Array;
}

/** The outputs a model version offers, as its metadata states them. */
export function outputSpecs(manifest: VersionManifest): TensorSpec[] {
  const specs: TensorSpec[] = [{ name: OUTPUT, datatype: 'FP32', shape: manifest.output.shape }];
  if (manifest.task === 'classification') specs.push({ name: LABEL, datatype: 'BYTES', shape: [-1] });
  return specs;
}

/** The model metadata response of the Open Inference Protocol. */
export function modelMetadata(manifest: VersionManifest, versions: string[]) {
  return {
    name: manifest.model,
    versions,
    platform: 'onnxruntime_onnx',
    inputs: [{ name: manifest.input.name, datatype: manifest.input.datatype, shape: manifest.input.shape }],
    outputs: outputSpecs(manifest),
  };
}

function describe(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Shape of a (possibly nested) JSON array; BadRequestError when ragged. */
function nestedShape(data: unknown, where: string): number[] {
  if (!Array.isArray(data)) return [];
  if (data.length === 0) return [0];
  const inner = nestedShape(data[0], where);
  for (let i = 1; i < data.length; i++) {
    const other = nestedShape(data[i], where);
    if (other.length !== inner.length || other.some((d, k) => d !== inner[k])) {
      throw new BadRequestError(`${where} is ragged: element 0 has shape [${inner.join(', ')}], element ${i} has shape [${other.join(', ')}].`);
    }
  }
  return [data.length, ...inner];
}

function flattenNumbers(data: unknown, out: number[], where: string): void {
  if (Array.isArray(data)) {
    for (const item of data) flattenNumbers(item, out, where);
    return;
  }
  if (typeof data !== 'number' || !Number.isFinite(data)) {
    throw new BadRequestError(`${where} element ${out.length} must be a finite number for datatype FP32. Received ${describe(data)}.`);
  }
  out.push(data);
}

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/** Values of one example or batch, given as nested to `shape` or flat with prod(shape) values. */
function valuesOf(data: unknown, shape: readonly number[], where: string): number[] {
  if (!Array.isArray(data)) throw new BadRequestError(`${where} must be an array. Received ${describe(data)}.`);
  const found = nestedShape(data, where);
  const expected = product(shape);
  if (found.length > 1 && (found.length !== shape.length || found.some((d, i) => d !== shape[i]))) {
    throw new BadRequestError(`${where} is nested as [${found.join(', ')}] but the shape is [${shape.join(', ')}].`);
  }
  const values: number[] = [];
  flattenNumbers(data, values, where);
  if (values.length !== expected) {
    throw new BadRequestError(`${where} has ${values.length} values; shape [${shape.join(', ')}] needs ${expected}.`);
  }
  return values;
}

function checkBatch(batch: number, maxBatch: number): void {
  if (batch < 1) throw new BadRequestError('The batch is empty: send at least one example.');
  if (batch > maxBatch) throw new PayloadTooLargeError(`The batch has ${batch} examples; the limit is ${maxBatch} per request.`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export interface V2Request {
  readonly id?: string;
  readonly input: InputBatch;
  /** Output names asked for, in order. */
  readonly outputs: string[];
}

/** Checks an OIP infer request against the model: names, datatype, shape, element count, batch limit. */
export function parseV2Request(body: unknown, manifest: VersionManifest, maxBatch: number): V2Request {
  if (!isObject(body)) throw new BadRequestError(`The request must be a JSON object with "inputs". Received ${describe(body)}.`);
  if (body.id !== undefined && typeof body.id !== 'string') throw new BadRequestError(`"id" must be a string. Received ${describe(body.id)}.`);
  const inputs = body.inputs;
  if (!Array.isArray(inputs) || inputs.length === 0) throw new BadRequestError(`"inputs" must be a non-empty array. Received ${describe(inputs)}.`);
  const spec = manifest.input;
  if (inputs.length !== 1) throw new BadRequestError(`Model ${manifest.model} takes 1 input ("${spec.name}"); the request has ${inputs.length}.`);
  const input = inputs[0];
  if (!isObject(input)) throw new BadRequestError(`inputs[0] must be an object. Received ${describe(input)}.`);
  if (input.name !== spec.name) throw new BadRequestError(`inputs[0].name is ${describe(input.name)}; model ${manifest.model} takes "${spec.name}".`);
  if (input.datatype !== spec.datatype) throw new BadRequestError(`inputs[0].datatype is ${describe(input.datatype)}; input "${spec.name}" is ${spec.datatype}.`);
  const shape = input.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new BadRequestError(`inputs[0].shape must be an array of non-negative integers. Received ${describe(shape)}.`);
  }
  const dims = shape as number[];
  const matches = dims.length === spec.shape.length && spec.shape.every((d, i) => d === -1 || d === dims[i]);
  if (!matches) throw new BadRequestError(`inputs[0].shape is [${dims.join(', ')}]; input "${spec.name}" has shape [${spec.shape.join(', ')}] (-1: any batch size).`);
  const batch = dims[0]!;
  checkBatch(batch, maxBatch);
  if (isObject(input.parameters) && input.parameters.binary_data_size !== undefined) {
    throw new BadRequestError('The binary data extension is not supported: send "data" as JSON.');
  }
  const values = valuesOf(input.data, dims, 'inputs[0].data');

  const offered = outputSpecs(manifest).map((o) => o.name);
  let outputs = offered;
  if (body.outputs !== undefined) {
    if (!Array.isArray(body.outputs)) throw new BadRequestError(`"outputs" must be an array. Received ${describe(body.outputs)}.`);
    outputs = body.outputs.map((o, i) => {
      const name = isObject(o) ? o.name : undefined;
      if (typeof name !== 'string' || !offered.includes(name)) {
        throw new BadRequestError(`outputs[${i}].name is ${describe(name)}; model ${manifest.model} offers ${offered.map((n) => `"${n}"`).join(', ')}.`);
      }
      return name;
    });
  }
  return { id: body.id as string | undefined, input: { batch, values: Float32Array.from(values) }, outputs };
}

export interface TfServingRequest {
  readonly format: 'row' | 'columnar';
  readonly input: InputBatch;
}

/** Checks a TF Serving predict request (row `instances` or columnar `inputs`). */
export function parseTfServingRequest(body: unknown, manifest: VersionManifest, maxBatch: number): TfServingRequest {
  if (!isObject(body)) throw new BadRequestError(`The request must be a JSON object with "instances" or "inputs". Received ${describe(body)}.`);
  const spec = manifest.input;
  const example = spec.shape.slice(1);
  const perExample = product(example);
  if (body.instances !== undefined && body.inputs !== undefined) throw new BadRequestError('Send either "instances" or "inputs", not both.');
  if (body.instances !== undefined) {
    const instances = body.instances;
    if (!Array.isArray(instances)) throw new BadRequestError(`"instances" must be an array. Received ${describe(instances)}.`);
    checkBatch(instances.length, maxBatch);
    const values = new Float32Array(instances.length * perExample);
    instances.forEach((instance, i) => {
      // An instance is the example itself, or {"input": example} when inputs are named.
      const data = isObject(instance) ? instance[spec.name] : instance;
      if (isObject(instance) && data === undefined) {
        throw new BadRequestError(`instances[${i}] names ${Object.keys(instance).map((k) => `"${k}"`).join(', ')}; model ${manifest.model} takes "${spec.name}".`);
      }
      values.set(valuesOf(data, example, `instances[${i}]`), i * perExample);
    });
    return { format: 'row', input: { batch: instances.length, values } };
  }
  if (body.inputs !== undefined) {
    const tensor = isObject(body.inputs) ? body.inputs[spec.name] : body.inputs;
    if (tensor === undefined) throw new BadRequestError(`"inputs" names ${Object.keys(body.inputs as object).map((k) => `"${k}"`).join(', ')}; model ${manifest.model} takes "${spec.name}".`);
    if (!Array.isArray(tensor)) throw new BadRequestError(`"inputs" must be a batched array. Received ${describe(tensor)}.`);
    checkBatch(tensor.length, maxBatch);
    const values = valuesOf(tensor, [tensor.length, ...example], '"inputs"');
    return { format: 'columnar', input: { batch: tensor.length, values: Float32Array.from(values) } };
  }
  throw new BadRequestError('The request needs "instances" (row format) or "inputs" (columnar format).');
}

/** x' = (x - mean) / std per flattened feature, the training normalisation. */
export function normalize(input: InputBatch, normalization: VersionManifest['normalization']): Float32Array {
  const { mean, std } = normalization;
  const features = input.values.length / input.batch;
  if (mean.length !== features || std.length !== features) {
    throw new Error(`Normalization has ${mean.length} means and ${std.length} stds; the input has ${features} features.`);
  }
  const out = new Float32Array(input.values.length);
  for (let i = 0; i < out.length; i++) {
    const f = i % features;
    out[i] = (input.values[i]! - mean[f]!) / std[f]!;
  }
  return out;
}

/** What the model answered for a batch, with class names resolved. */
export interface Prediction {
  readonly batch: number;
  /** Row-major [batch, width]. */
  readonly output: Float32Array;
  readonly width: number;
  readonly labels?: string[];
}

export function labelsOf(output: Float32Array, batch: number, classNames: readonly string[] | undefined): string[] {
  const width = output.length / batch;
  const labels: string[] = [];
  for (let r = 0; r < batch; r++) {
    let best = 0;
    for (let c = 1; c < width; c++) if (output[r * width + c]! > output[r * width + best]!) best = c;
    labels.push(classNames?.[best] ?? String(best));
  }
  return labels;
}

function rows(p: Prediction): number[][] {
  return Array.from({ length: p.batch }, (_, r) => Array.from(p.output.subarray(r * p.width, (r + 1) * p.width)));
}

export function v2Response(manifest: VersionManifest, id: string, requested: string[], p: Prediction) {
  const outputs = requested.map((name) =>
    name === LABEL
      ? { name: LABEL, datatype: 'BYTES', shape: [p.batch], data: p.labels ?? [] }
      : { name: OUTPUT, datatype: 'FP32', shape: [p.batch, p.width], data: Array.from(p.output) },
  );
  return { model_name: manifest.model, model_version: manifest.version, id, outputs };
}

export function tfServingResponse(format: 'row' | 'columnar', p: Prediction) {
  const values = rows(p);
  if (format === 'row') {
    if (p.labels === undefined) return { predictions: values };
    return { predictions: values.map((v, i) => ({ [OUTPUT]: v, [LABEL]: p.labels![i] })) };
  }
  if (p.labels === undefined) return { outputs: values };
  return { outputs: { [OUTPUT]: values, [LABEL]: p.labels } };
}
