export * from './convert';
export * from './parity';
export { encodeModel, floatTensor, int64Tensor, DataType, type ModelProto, type GraphProto, type NodeProto, type TensorProto, type ValueInfoProto } from './proto';
