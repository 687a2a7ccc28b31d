/**
 * The Jest environment of every test (jest.config.js), made for onnxruntime-node.
 *
 * Jest runs each test file in its own vm realm with its own typed-array constructors, but
 * onnxruntime-node's native binding returns outputs built in the main realm, and
 * onnxruntime-common then rejects them (`A float32 tensor's data must be type of function
 * Float32Array()`), because `instanceof` crosses realms. Handing the test realm the main
 * realm's constructors makes both sides agree.
 */
const { TestEnvironment } = require('jest-environment-node');

const SHARED = [
  'Float32Array',
  'Float64Array',
  'Int8Array',
  'Uint8Array',
  'Uint8ClampedArray',
  'Int16Array',
  'Uint16Array',
  'Int32Array',
  'Uint32Array',
  'BigInt64Array',
  'BigUint64Array',
];

class OrtEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of SHARED) this.global[name] = globalThis[name];
  }
}

module.exports = OrtEnvironment;
