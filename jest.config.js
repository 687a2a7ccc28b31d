/** @type {import('jest').Config} */
module.exports = {
  // jest-environment-node, sharing typed-array constructors with onnxruntime-node (see the file).
  testEnvironment: '<rootDir>/test/support/node-environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.tsx?$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } }] },
  testTimeout: 60_000,
  // Tests that train models or start servers are CPU-heavy; two cores, two workers.
  maxWorkers: 2,
};
