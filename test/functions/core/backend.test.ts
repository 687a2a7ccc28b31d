import * as tf from '@tensorflow/tfjs';
import { backendCandidates, chooseTf, loadTf } from '../../../functions/core/backend';

describe('backendCandidates', () => {
  test('by default the GPU build comes first, then the native CPU build', () => {
    expect(backendCandidates().map((c) => c.module)).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']);
  });
  test('preferring tfjs-node skips the GPU build; cpu and wasm skip both', () => {
    expect(backendCandidates('tfjs-node').map((c) => c.name)).toEqual(['tfjs-node']);
    expect(backendCandidates('cpu')).toEqual([]);
    expect(backendCandidates('wasm')).toEqual([]);
  });
});

describe('chooseTf', () => {
  test('takes the GPU build when it loads', async () => {
    const asked: string[] = [];
    const result = await chooseTf({ load: (id) => (asked.push(id), tf) });
    expect(result.backend).toBe('tfjs-node-gpu');
    expect(asked).toEqual(['@tensorflow/tfjs-node-gpu']);
  });

  test('falls back to tfjs-node when the GPU build is missing, and says why', async () => {
    const result = await chooseTf({
      load: (id) => {
        if (id.endsWith('-gpu')) throw new Error(`Cannot find module '${id}'\nRequire stack: ...`);
        return tf;
      },
    });
    expect(result.backend).toBe('tfjs-node');
    expect(result.skipped).toEqual(["@tensorflow/tfjs-node-gpu: Cannot find module '@tensorflow/tfjs-node-gpu'"]);
  });

  test('falls back to pure JavaScript with the fast kernels when no native build loads', async () => {
    const result = await chooseTf({
      load: (id) => {
        throw new Error(`libtensorflow.so missing for ${id}`);
      },
    });
    expect(result.backend).toBe('cpu');
    expect(result.tf.getBackend()).toBe('cpu');
    expect(Array.isArray(result.kernels)).toBe(true);
    expect(result.skipped).toHaveLength(2);
  });
});

describe('chooseTf with wasm', () => {
  test('without a native build, training gets the WebAssembly backend (or cpu when it cannot load), with the fast kernels', async () => {
    const result = await chooseTf({ wasm: true, load: () => {
      throw new Error('missing');
    } });
    expect(['wasm', 'cpu']).toContain(result.backend);
    expect(result.tf.getBackend()).toBe(result.backend);
    expect(result.kernels.length).toBeGreaterThan(0);
    const y = result.tf.tidy(() => result.tf.matMul(result.tf.tensor2d([[1, 2]]), result.tf.tensor2d([[3], [4]])).dataSync());
    expect(Array.from(y)).toEqual([11]);
  });
});

describe('loadTf', () => {
  test('chooses once per process and returns a working TF.js', async () => {
    const first = await loadTf();
    const again = await loadTf({ prefer: 'tfjs-node-gpu' });
    expect(again).toBe(first);
    expect(['tfjs-node-gpu', 'tfjs-node', 'cpu']).toContain(first.backend);
    const sum = first.tf.tidy(() => first.tf.add(first.tf.tensor1d([1, 2]), first.tf.tensor1d([3, 4])).dataSync());
    expect(Array.from(sum)).toEqual([4, 6]);
  });
});
