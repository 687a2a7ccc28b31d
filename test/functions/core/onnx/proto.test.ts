import * as protobuf from 'protobufjs';
import * as ort from 'onnxruntime-node';
import { encodeModel, floatTensor, int64Tensor, DataType, type ModelProto } from '../../../../functions/core/onnx/proto';
import { ProtoWriter } from '../../../../functions/core/onnx/wire';

/**
 * An independent reading of the bytes: protobufjs's reflection over the ONNX schema's own text
 * (the messages dlops writes, copied from onnx/onnx.proto3 with their field numbers).
 */
const ONNX_SUBSET = `
syntax = "proto3";
package onnx;
message AttributeProto {
  string name = 1; float f = 2; int64 i = 3; bytes s = 4; TensorProto t = 5;
  repeated float floats = 7; repeated int64 ints = 8; int32 type = 20;
}
message ValueInfoProto { string name = 1; TypeProto type = 2; }
message NodeProto { repeated string input = 1; repeated string output = 2; string name = 3; string op_type = 4; repeated AttributeProto attribute = 5; }
message ModelProto {
  int64 ir_version = 1; repeated OperatorSetIdProto opset_import = 8; string producer_name = 2; string producer_version = 3;
  string doc_string = 6; GraphProto graph = 7; repeated StringStringEntryProto metadata_props = 14;
}
message StringStringEntryProto { string key = 1; string value = 2; }
message GraphProto { repeated NodeProto node = 1; string name = 2; repeated TensorProto initializer = 5; repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12; }
message TensorProto { repeated int64 dims = 1; int32 data_type = 2; string name = 8; bytes raw_data = 9; }
message TensorShapeProto { message Dimension { oneof value { int64 dim_value = 1; string dim_param = 2; } } repeated Dimension dim = 1; }
message TypeProto { message Tensor { int32 elem_type = 1; TensorShapeProto shape = 2; } oneof value { Tensor tensor_type = 1; } }
message OperatorSetIdProto { string domain = 1; int64 version = 2; }
`;
const root = protobuf.parse(ONNX_SUBSET, { keepCase: true }).root;
const ModelType = root.lookupType('onnx.ModelProto');

function decode(bytes: Uint8Array): any {
  return ModelType.toObject(ModelType.decode(bytes), { longs: String, bytes: Array, defaults: false });
}

/** A tiny graph: output = Reshape(input + bias, [-1, 6]) */
function tinyModel(): ModelProto {
  return {
    irVersion: 7,
    opsetImports: [{ domain: '', version: 13 }],
    producerName: 'dlops',
    producerVersion: '1.2.3',
    docString: 'test',
    metadata: { runId: 'r-1' },
    graph: {
      name: 'g',
      nodes: [
        { name: 'add', opType: 'Add', inputs: ['input', 'bias'], outputs: ['sum'], attributes: {} },
        { name: 'reshape', opType: 'Reshape', inputs: ['sum', 'shape'], outputs: ['output'], attributes: {} },
      ],
      initializers: [floatTensor('bias', [3], [0.5, -1, 2]), int64Tensor('shape', [2], [-1, 6])],
      inputs: [{ name: 'input', elemType: DataType.FLOAT, shape: ['batch', 2, 3] }],
      outputs: [{ name: 'output', elemType: DataType.FLOAT, shape: ['batch', 6] }],
    },
  };
}

describe('ProtoWriter (protobuf wire format)', () => {
  test('varints, negative int64 (ten bytes, two\'s complement), floats and packed fields read back through protobufjs', () => {
    // Given a message written by hand
    const bytes = new ProtoWriter()
      .int(1, 300)
      .int(2, -1)
      .int(3, 2n ** 40n)
      .float(4, 1.5)
      .string(5, 'héllo')
      .packedInts(6, [1, -2, 150])
      .packedFloats(7, [0.25, -3])
      .message(8, (m) => m.int(1, 7))
      .finish();
    const T = protobuf
      .parse('syntax = "proto3"; message In { int64 v = 1; } message T { int64 a = 1; int64 b = 2; int64 c = 3; float d = 4; string e = 5; repeated int64 f = 6; repeated float g = 7; In h = 8; }', { keepCase: true })
      .root.lookupType('T');
    // When protobufjs decodes it
    const decoded = T.toObject(T.decode(bytes), { longs: String });
    // Then
    expect(decoded).toEqual({ a: '300', b: '-1', c: String(2 ** 40), d: 1.5, e: 'héllo', f: ['1', '-2', '150'], g: [0.25, -3], h: { v: '7' } });
    // The varint for 300 is the textbook 0xAC 0x02 after the tag 0x08.
    expect(Array.from(bytes.subarray(0, 3))).toEqual([0x08, 0xac, 0x02]);
    // -1 as int64: tag then ten bytes.
    expect(Array.from(bytes.subarray(3, 14))).toEqual([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  });

  test('a non-integer int is refused with the field number', () => {
    expect(() => new ProtoWriter().int(9, 1.5)).toThrow(/field 9: 1.5 is not an integer/);
  });
});

describe('encodeModel (ONNX ModelProto)', () => {
  test('decodes with the ONNX schema to the model that was written', () => {
    const decoded = decode(encodeModel(tinyModel()));
    expect(decoded.ir_version).toBe('7');
    expect(decoded.opset_import).toEqual([{ version: '13' }]);
    expect(decoded.producer_name).toBe('dlops');
    expect(decoded.metadata_props).toEqual([{ key: 'runId', value: 'r-1' }]);
    expect(decoded.graph.node.map((n: any) => [n.op_type, n.input, n.output])).toEqual([
      ['Add', ['input', 'bias'], ['sum']],
      ['Reshape', ['sum', 'shape'], ['output']],
    ]);
    expect(decoded.graph.input[0].type.tensor_type).toEqual({ elem_type: 1, shape: { dim: [{ dim_param: 'batch' }, { dim_value: '2' }, { dim_value: '3' }] } });
    const shape = decoded.graph.initializer[1];
    expect(shape).toMatchObject({ name: 'shape', dims: ['2'], data_type: 7 });
    expect(Array.from(new BigInt64Array(Uint8Array.from(shape.raw_data).buffer))).toEqual([-1n, 6n]);
  });

  test('ONNX Runtime loads and runs it', async () => {
    const session = await ort.InferenceSession.create(encodeModel(tinyModel()));
    const out = await session.run({ input: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4, 5, 6]), [1, 2, 3]) });
    expect(Array.from(out.output!.data as Float32Array)).toEqual([1.5, 1, 5, 4.5, 4, 8]);
    expect(out.output!.dims).toEqual([1, 6]);
    await session.release();
  });

  test('attributes of every kind the exporter uses decode with their type tags', () => {
    const model = tinyModel();
    const withAttrs: ModelProto = {
      ...model,
      graph: {
        ...model.graph,
        nodes: [
          {
            name: 'n',
            opType: 'X',
            inputs: [],
            outputs: ['y'],
            attributes: {
              i: { type: 'int', value: -3 },
              f: { type: 'float', value: 0.5 },
              s: { type: 'string', value: 'constant' },
              ints: { type: 'ints', value: [0, 3, 1, 2] },
              floats: { type: 'floats', value: [1, 2] },
              t: { type: 'tensor', value: floatTensor('c', [1], [4]) },
            },
          },
        ],
      },
    };
    const [node] = decode(encodeModel(withAttrs)).graph.node;
    const byName = Object.fromEntries(node.attribute.map((a: any) => [a.name, a]));
    expect(byName.i).toEqual({ name: 'i', i: '-3', type: 2 });
    expect(byName.f).toEqual({ name: 'f', f: 0.5, type: 1 });
    expect(Buffer.from(byName.s.s).toString()).toBe('constant');
    expect(byName.s.type).toBe(3);
    expect(byName.ints).toEqual({ name: 'ints', ints: ['0', '3', '1', '2'], type: 7 });
    expect(byName.floats).toEqual({ name: 'floats', floats: [1, 2], type: 6 });
    expect(byName.t.type).toBe(4);
    expect(byName.t.t.name).toBe('c');
  });

  test('a tensor with the wrong number of values is refused, naming it', () => {
    expect(() => floatTensor('w', [2, 3], [1, 2, 3])).toThrow(/Tensor w: dims \[2, 3\] need 6 values, got 3/);
    expect(() => int64Tensor('s', [2], [1])).toThrow(/Tensor s/);
  });
});
