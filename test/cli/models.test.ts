import { Command } from 'commander';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { loadOrCreateLocalKey, rawAesKeyring } from '../../functions/core/crypto';
import { getAlias, moveAlias, type Registry } from '../../functions/core/registry';
import { parseModelRef, predictRequestOf, registerModelCommands } from '../../cli/models';
import { localS3Fixture, MODEL_BUCKET, type S3Fixture } from '../support/local-s3';
import { irisLike, registerLinear, IRIS_CLASSES, IRIS_NORMALIZATION } from '../functions/inference/fixtures';

let fx: S3Fixture;
let dir: string;
let env: NodeJS.ProcessEnv;
let reg: Registry;
let onnxV2: Uint8Array;

async function dlops(...args: string[]): Promise<string[]> {
  const lines: string[] = [];
  const program = new Command('dlops').exitOverride();
  registerModelCommands(program, { out: (l) => lines.push(l), env });
  await program.parseAsync(['node', 'dlops', ...args]);
  return lines;
}

beforeAll(async () => {
  fx = await localS3Fixture();
  dir = mkdtempSync(join(tmpdir(), 'dlops-cli-'));
  const keyFile = join(dir, 'keys', 'local-aes.key');
  env = { DLOPS_S3_ENDPOINT: fx.server.endpoint, MODEL_BUCKET, DLOPS_LOCAL_KEY_FILE: keyFile };
  reg = { s3: fx.s3, bucket: MODEL_BUCKET, keyring: rawAesKeyring(loadOrCreateLocalKey(keyFile)) };
  await registerLinear(reg, 'iris', irisLike(1), { classNames: IRIS_CLASSES, normalization: IRIS_NORMALIZATION, runId: 'run-a', accuracy: 0.91 });
  onnxV2 = (await registerLinear(reg, 'iris', irisLike(2), { classNames: IRIS_CLASSES, normalization: IRIS_NORMALIZATION, runId: 'run-b', accuracy: 0.95 })).onnx;
  await moveAlias(reg, { model: 'iris', alias: 'production', version: '1' });
});
afterAll(async () => {
  await fx.close();
  rmSync(dir, { recursive: true, force: true });
});

test('models ls lists models, then one model\'s versions with metrics and aliases', async () => {
  const all = await dlops('models', 'ls');
  expect(all[0]).toMatch(/^MODEL\s+VERSIONS\s+LATEST\s+ALIASES$/);
  expect(all[1]).toMatch(/^iris\s+2\s+2\s+production=1$/);
  const one = await dlops('models', 'ls', 'iris', '--json');
  expect(JSON.parse(one.join('\n'))).toEqual([
    expect.objectContaining({ version: '1', runId: 'run-a', metrics: { accuracy: 0.91 }, aliases: ['production'] }),
    expect.objectContaining({ version: '2', runId: 'run-b', metrics: { accuracy: 0.95 }, aliases: [] }),
  ]);
});

test('models show prints the manifest of an alias or a version', async () => {
  const shown = JSON.parse((await dlops('models', 'show', 'iris')).join('\n'));
  expect(shown).toMatchObject({ model: 'iris', version: '1', aliases: ['production'], input: { shape: [-1, 4] } });
  expect(JSON.parse((await dlops('models', 'show', 'iris@2')).join('\n')).version).toBe('2');
});

test('promote then rollback move the alias', async () => {
  expect(await dlops('models', 'promote', 'iris', '2')).toEqual(['iris: production -> version 2 (was 1)']);
  expect((await getAlias(reg, 'iris', 'production'))!.record.version).toBe('2');
  expect(await dlops('models', 'rollback', 'iris')).toEqual(['iris: production rolled back from version 2 to 1']);
  expect((await getAlias(reg, 'iris', 'production'))!.record.version).toBe('1');
  await expect(dlops('models', 'promote', 'iris', '7')).rejects.toThrow('Model iris has no version 7.');
});

test('pull decrypts and verifies every artifact into a folder', async () => {
  const out = join(dir, 'pulled');
  const lines = await dlops('models', 'pull', 'iris@2', '--out', out);
  expect(lines.at(-1)).toMatch(/^Pulled iris version 2 from local S3 at http:\/\/127\.0\.0\.1:\d+ into /);
  const onnx = readFileSync(join(out, 'model.onnx'));
  expect(new Uint8Array(onnx)).toEqual(onnxV2);
  const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
  expect(createHash('sha256').update(onnx).digest('hex')).toBe(manifest.artifacts['model.onnx'].sha256);
  expect(readFileSync(join(out, 'tfjs', 'model.json'), 'utf8')).toContain('layers-model');
});

test('pull with another key is refused', async () => {
  const otherEnv = { ...env, DLOPS_LOCAL_KEY_FILE: join(dir, 'other.key') };
  const program = new Command('dlops').exitOverride();
  registerModelCommands(program, { out: () => undefined, env: otherEnv });
  await expect(program.parseAsync(['node', 'dlops', 'models', 'pull', 'iris@1', '--out', join(dir, 'nope')])).rejects.toThrow(/did not decrypt/);
});

test('predict reads a v2 request or a list of examples and prints the response', async () => {
  const v2File = join(dir, 'v2.json');
  writeFileSync(v2File, JSON.stringify({ id: 'cli', inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [5.1, 3.5, 1.4, 0.2] }] }));
  const v2 = JSON.parse((await dlops('predict', 'iris', '--input', v2File)).join('\n'));
  expect(v2).toMatchObject({ model_name: 'iris', model_version: '1', id: 'cli' });
  expect(IRIS_CLASSES).toContain(v2.outputs[1].data[0]);
  const rowsFile = join(dir, 'rows.json');
  writeFileSync(rowsFile, JSON.stringify([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]));
  const tf = JSON.parse((await dlops('predict', 'iris@2', '--input', rowsFile)).join('\n'));
  expect(tf.predictions).toHaveLength(2);
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify([[1, 2]]));
  await expect(dlops('predict', 'iris', '--input', bad)).rejects.toThrow(/HTTP 400.*instances\[0\] has 2 values/);
});

test('serve answers HTTP with the inference handler; predict --url talks to it', async () => {
  const lines: string[] = [];
  const program = new Command('dlops').exitOverride();
  registerModelCommands(program, { out: (l) => lines.push(l), env });
  const running = program.parseAsync(['node', 'dlops', 'serve', '--port', '0']);
  for (let i = 0; i < 100 && !lines.some((l) => l.startsWith('Serving')); i++) await new Promise((r) => setTimeout(r, 20));
  const url = /at (http:\/\/\S+)  \(POST/.exec(lines.find((l) => l.startsWith('Serving'))!)![1]!;
  try {
    const meta = await (await fetch(`${url}/v2/models/iris`)).json();
    expect(meta).toMatchObject({ name: 'iris', platform: 'onnxruntime_onnx' });
    const rowsFile = join(dir, 'rows-url.json');
    writeFileSync(rowsFile, JSON.stringify({ instances: [[5.1, 3.5, 1.4, 0.2]] }));
    const viaUrl = JSON.parse((await dlops('predict', 'iris', '--input', rowsFile, '--url', url)).join('\n'));
    expect(viaUrl.predictions[0].label).toMatch(/setosa|versicolor|virginica/);
    expect(lines.some((l) => /^loaded iris version 1: fetch \d+ ms, decrypt \d+ ms, session \d+ ms$/.test(l))).toBe(true);
  } finally {
    process.emit('SIGINT');
    await running;
  }
});

test('input files and model references are recognised', () => {
  expect(parseModelRef('iris')).toEqual({ model: 'iris', ref: 'production' });
  expect(parseModelRef('iris@staging')).toEqual({ model: 'iris', ref: 'staging' });
  expect(() => parseModelRef('iris@')).toThrow(/Expected <model>/);
  expect(predictRequestOf([[1, 2]]).protocol).toBe('tf');
  expect(predictRequestOf({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1], data: [1] }] }).protocol).toBe('v2');
  expect(predictRequestOf({ inputs: [[1, 2]] }).protocol).toBe('tf');
  expect(() => predictRequestOf({ x: 1 })).toThrow(/KServe v2 request/);
});
