/**
 * The subset of the ONNX protobuf schema dlops writes, and its encoder.
 *
 * Field numbers and enum values are those of onnx/onnx.proto3 in the ONNX repository
 * (https://github.com/onnx/onnx/blob/main/onnx/onnx.proto3): they are the format, so they
 * must never be renumbered. Each encoder below names the message it writes.
 */
import { ProtoWriter } from './wire';

/** TensorProto.DataType */
export const DataType = { FLOAT: 1, INT32: 6, INT64: 7 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** AttributeProto.AttributeType */
export const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

export interface TensorProto {
  readonly name: string;
  readonly dims: readonly number[];
  readonly dataType: DataTypeCode;
  /** Little-endian element bytes (TensorProto.raw_data). */
  readonly rawData: Uint8Array;
}

export type AttributeValue =
  | { readonly type: 'float'; readonly value: number }
  | { readonly type: 'int'; readonly value: number }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'floats'; readonly value: readonly number[] }
  | { readonly type: 'ints'; readonly value: readonly number[] }
  | { readonly type: 'tensor'; readonly value: TensorProto };

export interface NodeProto {
  readonly name: string;
  readonly opType: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: Readonly<Record<string, AttributeValue>>;
}

/** A dimension is either fixed or a named symbol (TensorShapeProto.Dimension dim_value | dim_param). */
export type Dim = number | string;

export interface ValueInfoProto {
  readonly name: string;
  readonly elemType: DataTypeCode;
  readonly shape: readonly Dim[];
}

export interface GraphProto {
  readonly name: string;
  readonly nodes: readonly NodeProto[];
  readonly initializers: readonly TensorProto[];
  readonly inputs: readonly ValueInfoProto[];
  readonly outputs: readonly ValueInfoProto[];
}

export interface ModelProto {
  readonly irVersion: number;
  readonly opsetImports: ReadonlyArray<{ readonly domain: string; readonly version: number }>;
  readonly producerName: string;
  readonly producerVersion: string;
  readonly docString?: string;
  readonly graph: GraphProto;
  readonly metadata?: Readonly<Record<string, string>>;
}

function writeTensor(w: ProtoWriter, t: TensorProto): void {
  // TensorProto: dims = 1 (packed int64), data_type = 2, name = 8, raw_data = 9
  w.packedInts(1, t.dims);
  w.int(2, t.dataType);
  w.string(8, t.name);
  w.bytes(9, t.rawData);
}

function writeAttribute(w: ProtoWriter, name: string, a: AttributeValue): void {
  // AttributeProto: name = 1, f = 2, i = 3, s = 4, t = 5, floats = 7, ints = 8, type = 20
  w.string(1, name);
  switch (a.type) {
    case 'float':
      w.float(2, a.value).int(20, AttributeType.FLOAT);
      break;
    case 'int':
      w.int(3, a.value).int(20, AttributeType.INT);
      break;
    case 'string':
      w.string(4, a.value).int(20, AttributeType.STRING);
      break;
    case 'tensor':
      w.message(5, (m) => writeTensor(m, a.value)).int(20, AttributeType.TENSOR);
      break;
    case 'floats':
      w.packedFloats(7, a.value).int(20, AttributeType.FLOATS);
      break;
    case 'ints':
      w.packedInts(8, a.value).int(20, AttributeType.INTS);
      break;
  }
}

function writeNode(w: ProtoWriter, n: NodeProto): void {
  // NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5
  for (const input of n.inputs) w.string(1, input);
  for (const output of n.outputs) w.string(2, output);
  w.string(3, n.name);
  w.string(4, n.opType);
  for (const [name, value] of Object.entries(n.attributes)) w.message(5, (m) => writeAttribute(m, name, value));
}

function writeValueInfo(w: ProtoWriter, v: ValueInfoProto): void {
  // ValueInfoProto: name = 1, type = 2 -> TypeProto: tensor_type = 1 -> TypeProto.Tensor: elem_type = 1, shape = 2
  // -> TensorShapeProto: dim = 1 -> Dimension: dim_value = 1 | dim_param = 2
  w.string(1, v.name);
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int(1, v.elemType);
      tensor.message(2, (shape) => {
        for (const d of v.shape) shape.message(1, (dim) => (typeof d === 'number' ? dim.int(1, d) : dim.string(2, d)));
      });
    }),
  );
}

function writeGraph(w: ProtoWriter, g: GraphProto): void {
  // GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12
  for (const n of g.nodes) w.message(1, (m) => writeNode(m, n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, (m) => writeTensor(m, t));
  for (const v of g.inputs) w.message(11, (m) => writeValueInfo(m, v));
  for (const v of g.outputs) w.message(12, (m) => writeValueInfo(m, v));
}

/** Serialises a ModelProto to the bytes of a `.onnx` file. */
export function encodeModel(model: ModelProto): Uint8Array {
  // ModelProto: ir_version = 1, producer_name = 2, producer_version = 3, doc_string = 6, graph = 7,
  // opset_import = 8 (OperatorSetIdProto: domain = 1, version = 2), metadata_props = 14 (key = 1, value = 2)
  const w = new ProtoWriter();
  w.int(1, model.irVersion);
  w.string(2, model.producerName);
  w.string(3, model.producerVersion);
  if (model.docString !== undefined) w.string(6, model.docString);
  w.message(7, (m) => writeGraph(m, model.graph));
  for (const opset of model.opsetImports) {
    w.message(8, (m) => {
      if (opset.domain !== '') m.string(1, opset.domain);
      m.int(2, opset.version);
    });
  }
  for (const [key, value] of Object.entries(model.metadata ?? {})) w.message(14, (m) => m.string(1, key).string(2, value));
  return w.finish();
}

/** A float32 tensor (initializer or attribute value). */
export function floatTensor(name: string, dims: readonly number[], values: Float32Array | readonly number[]): TensorProto {
  const data = values instanceof Float32Array ? values : Float32Array.from(values);
  const expected = dims.reduce((a, b) => a * b, 1);
  if (data.length !== expected) throw new RangeError(`Tensor ${name}: dims [${dims.join(', ')}] need ${expected} values, got ${data.length}.`);
  // raw_data is little-endian; a Float32Array's bytes are in host order, little-endian on x86_64 and arm64.
  const raw = new Uint8Array(data.byteLength);
  raw.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return { name, dims, dataType: DataType.FLOAT, rawData: raw };
}

/** An int64 tensor (shapes, axes, pads given as inputs). */
export function int64Tensor(name: string, dims: readonly number[], values: readonly number[]): TensorProto {
  const expected = dims.reduce((a, b) => a * b, 1);
  if (values.length !== expected) throw new RangeError(`Tensor ${name}: dims [${dims.join(', ')}] need ${expected} values, got ${values.length}.`);
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
  return { name, dims, dataType: DataType.INT64, rawData: raw };
}
