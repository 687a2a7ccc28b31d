import { decodeNpy, encodeNpy } from '../../../functions/core/npy';

describe('npy', () => {
  test('float32 and int32 arrays round-trip with shape', () => {
    const x = { dtype: 'float32' as const, shape: [2, 3], data: Float32Array.from([1, 2.5, -3, 4, 5, 6]) };
    const y = { dtype: 'int32' as const, shape: [3], data: Int32Array.from([7, -8, 9]) };
    expect(decodeNpy(encodeNpy(x))).toEqual(x);
    expect(decodeNpy(encodeNpy(y))).toEqual(y);
  });

  test('the header is NumPy 1.0 and padded to 64 bytes', () => {
    const bytes = encodeNpy({ dtype: 'float32', shape: [1], data: Float32Array.from([1]) });
    expect(bytes.subarray(0, 8)).toEqual(Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]));
    const headerLen = bytes.readUInt16LE(8);
    expect((10 + headerLen) % 64).toBe(0);
    expect(bytes.subarray(10, 10 + headerLen).toString('latin1')).toContain("'descr': '<f4', 'fortran_order': False, 'shape': (1,)");
  });

  test('a truncated file is refused with its name', () => {
    const bytes = encodeNpy({ dtype: 'float32', shape: [4], data: new Float32Array(4) });
    expect(() => decodeNpy(bytes.subarray(0, bytes.length - 4), 'x-00000.npy')).toThrow(/x-00000\.npy is truncated/);
  });
});
