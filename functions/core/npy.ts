/**
 * NumPy `.npy` format, version 1.0, little-endian float32/int32 arrays (C order).
 * https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 */
import { DataError } from './errors';

export type NpyArray = { dtype: 'float32'; shape: number[]; data: Float32Array } | { dtype: 'int32'; shape: number[]; data: Int32Array };

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
const DESCR = { float32: '<f4', int32: '<i4' } as const;

/** The header (magic, version, padded dict) for an array; the data bytes follow it. */
export function npyHeader(dtype: 'float32' | 'int32', shape: number[]): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Total header length is a multiple of 64, ending in a newline.
  const unpadded = MAGIC.length + 2 + 2 + dict.length + 1;
  dict += ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const header = Buffer.alloc(MAGIC.length + 4);
  MAGIC.copy(header, 0);
  header[6] = 1;
  header[7] = 0;
  header.writeUInt16LE(dict.length, 8);
  return Buffer.concat([header, Buffer.from(dict, 'latin1')]);
}

export function encodeNpy(array: NpyArray): Buffer {
  const data = Buffer.from(array.data.buffer, array.data.byteOffset, array.data.byteLength);
  return Buffer.concat([npyHeader(array.dtype, array.shape), data]);
}

export function decodeNpy(bytes: Uint8Array, name = 'array'): NpyArray {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw new DataError(`${name} is not a .npy file.`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.subarray(start, start + headerLen).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || shapeText === undefined || fortran !== 'False') throw new DataError(`${name} has an unsupported .npy header: ${header.trim()}`);
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '').map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  // Copy into an aligned buffer: typed arrays need 4-byte alignment.
  const raw = new Uint8Array(buf.subarray(offset, offset + count * 4));
  if (raw.byteLength !== count * 4) throw new DataError(`${name} is truncated: expected ${count * 4} data bytes, found ${raw.byteLength}.`);
  if (descr === '<f4') return { dtype: 'float32', shape, data: new Float32Array(raw.buffer, raw.byteOffset, count) };
  if (descr === '<i4') return { dtype: 'int32', shape, data: new Int32Array(raw.buffer, raw.byteOffset, count) };
  throw new DataError(`${name} has dtype ${descr}; dlops reads float32 (<f4) and int32 (<i4).`);
}
