import './quiet-logs';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { getBytes, getJson, getJsonIfExists, listObjects } from '../../functions/core/s3';
import { modelKeys, preparedKeys, runKeys } from '../../functions/core/layout';
import type { RegisterResult, RunStatus } from '../../functions/core/contracts';
import { loadTemplate } from '../../local/definition';
import { scoreOverHttp } from '../../local/demo';
import { digits, digitsCsv, digitsManifest } from '../../local/mnist-dataset';
import { LocalRuntime } from '../../local/runtime';
import type { ExecutionRecord } from '../../local/state-machine';
import { submitDataset } from '../../local/submit';

/**
 * The whole pipeline through the local runtime, as a user drives it: files uploaded to S3, the
 * manifest's object-created event through the EventBridge rule and trigger, the synthesized state
 * machine running the real handlers and the real training entry point, then HTTP inference.
 */
describe('end to end through the local runtime', () => {
  let state: string;
  let runtime: LocalRuntime;
  const started: ExecutionRecord[] = [];

  // A small slice so the run fits the test budget on two cores; the gate's minimum is set for it.
  const ROWS = 1500;
  const EPOCHS = 3;
  const HELD_OUT = 60;

  const writeDataset = (name: string, manifest: unknown): string => {
    const dir = join(state, 'input', name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'digits.csv'), digitsCsv(digits(0, ROWS)));
    writeFileSync(join(dir, 'dataset.json'), JSON.stringify(manifest, null, 2));
    return dir;
  };
  const target = () => ({ s3: runtime.s3, bucket: runtime.dataBucket, where: 'test', local: true });

  beforeAll(async () => {
    state = mkdtempSync(join(tmpdir(), 'dlops-e2e-'));
    runtime = await LocalRuntime.start({
      stateDirectory: state,
      template: loadTemplate(join(tmpdir(), 'dlops-e2e-template.json')),
      // Waits between retries only; which errors retry and how often is the definition's.
      retryIntervalOverrides: { Preprocess: 0, Export: 0, Evaluate: 0, Register: 0, RecordFailure: 0, Train: 0 },
      stopTimeoutSeconds: 2,
    });
    runtime.onExecutionStarted((record) => started.push(record));
  }, 120_000);

  afterAll(async () => {
    await runtime?.stop();
    rmSync(state, { recursive: true, force: true });
  });

  let good: { runId: string; record: ExecutionRecord };

  it('upload -> trigger -> preprocess -> train -> export -> evaluate -> register, then HTTP inference answers most held-out digits right', async () => {
    const dir = writeDataset('digits', digitsManifest({ name: 'digits', epochs: EPOCHS, minimumAccuracy: 0.6 }));
    const submitted = await submitDataset(target(), { path: dir, dataset: 'digits' });
    const record = await runtime.waitForExecution(submitted.runId);
    good = { runId: submitted.runId, record };

    expect({ status: record.status, error: record.error, cause: record.cause }).toEqual({ status: 'SUCCEEDED', error: undefined, cause: undefined });
    expect(record.transitions.map((t) => t.state)).toEqual(['Preprocess', 'Train', 'Export', 'Evaluate', 'Gate', 'Register', 'Published']);
    expect(record.transitions.every((t) => t.status === 'succeeded')).toBe(true);

    // The Batch stand-in's answer went through the definition's ResultSelector.
    const output = record.output as { train: { jobId: string; status: string }; register: RegisterResult };
    expect(output.train.status).toBe('SUCCEEDED');
    expect(output.register).toMatchObject({ model: 'digits', version: '1' });

    // Registered, encrypted: the stored ONNX is not the exported plaintext.
    const alias = await getJson<{ version: string }>(runtime.s3, { bucket: runtime.modelBucket, key: modelKeys.alias('digits', 'production') });
    expect(alias.value.version).toBe('1');
    const plain = await getBytes(runtime.s3, { bucket: runtime.dataBucket, key: runKeys.onnx(submitted.runId) });
    const stored = await getBytes(runtime.s3, { bucket: runtime.modelBucket, key: modelKeys.artifact('digits', '1', 'model.onnx') });
    expect(Buffer.from(stored.body).includes(Buffer.from(plain.body.subarray(0, 64)))).toBe(false);

    const heldOut = digits(ROWS, HELD_OUT);
    const { correct, latencies } = await scoreOverHttp(runtime.api!.url, 'digits', heldOut);
    expect(latencies).toHaveLength(HELD_OUT);
    expect(correct / HELD_OUT).toBeGreaterThan(0.7);
  }, 240_000);

  it('the same manifest uploaded again starts no second execution', async () => {
    expect(good).toBeDefined();
    const before = runtime.stateMachine.list().length;
    const startedBefore = started.length;
    const dir = join(state, 'input', 'digits');
    const again = await submitDataset(target(), { path: dir, dataset: 'digits' });
    await runtime.settleTriggers();
    expect(again.runId).toBe(good.runId);
    expect(started.length).toBe(startedBefore);
    expect(runtime.stateMachine.list()).toHaveLength(before);
    expect(runtime.stateMachine.describe(good.runId)?.status).toBe('SUCCEEDED');
  }, 60_000);

  it('a bad manifest ends FAILED, with the error and cause in runs/<execution>/status.json and nothing registered', async () => {
    const dir = writeDataset('broken', { ...digitsManifest({ name: 'broken' }), task: 'clasification' });
    const submitted = await submitDataset(target(), { path: dir, dataset: 'broken', skipValidation: true });
    const record = await runtime.waitForExecution(submitted.runId);

    expect(record.status).toBe('FAILED');
    expect(record.error).toBe('ManifestError');
    expect(record.transitions.map((t) => t.state)).toEqual(['Preprocess', 'RecordFailure', 'Failed']);

    const status = await getJson<RunStatus>(runtime.s3, { bucket: runtime.dataBucket, key: runKeys.status(submitted.runId) });
    expect(status.value).toMatchObject({ state: 'FAILED', executionName: submitted.runId, error: 'ManifestError' });
    expect(status.value.cause).toContain('clasification');

    expect(await listObjects(runtime.s3, runtime.modelBucket, modelKeys.root('broken'))).toEqual([]);
    expect(await listObjects(runtime.s3, runtime.dataBucket, preparedKeys.prefix(submitted.runId))).toEqual([]);
    expect(await getJsonIfExists(runtime.s3, { bucket: runtime.modelBucket, key: modelKeys.alias('broken', 'production') })).toBeUndefined();
  }, 60_000);

  it('a training failure reaches the execution as Batch reports it: States.TaskFailed with the job, its exit code and last error line', async () => {
    // Valid for Preprocess, impossible for the model builder: a dense layer straight on 28x28x1 images.
    const dir = writeDataset('flat', digitsManifest({ name: 'flat', epochs: 1, model: [{ type: 'dense', units: 10, activation: 'softmax' }] }));
    const submitted = await submitDataset(target(), { path: dir, dataset: 'flat' });
    const record = await runtime.waitForExecution(submitted.runId);

    expect(record.status).toBe('FAILED');
    expect(record.error).toBe('States.TaskFailed');
    expect(record.transitions.map((t) => t.state)).toEqual(['Preprocess', 'Train', 'RecordFailure', 'Failed']);
    const job = JSON.parse(record.cause!) as { Status: string; Container: { ExitCode: number; Reason: string }; LogFile: string };
    expect(job.Status).toBe('FAILED');
    expect(job.Container.ExitCode).not.toBe(0);
    expect(job.Container.Reason).toContain('needs a flat input');

    const status = await getJson<RunStatus>(runtime.s3, { bucket: runtime.dataBucket, key: runKeys.status(submitted.runId) });
    expect(status.value).toMatchObject({ state: 'FAILED', error: 'States.TaskFailed' });
    expect(status.value.cause).toContain('needs a flat input');
    expect(await listObjects(runtime.s3, runtime.modelBucket, modelKeys.root('flat'))).toEqual([]);
  }, 120_000);

  it('a data file upload alone starts nothing (the rule matches only the manifest)', async () => {
    const startedBefore = started.length;
    await runtime.s3.send(new PutObjectCommand({ Bucket: runtime.dataBucket, Key: 'datasets/late/data/more.csv', Body: 'label,p0\n1,0\n' }));
    await runtime.settleTriggers();
    expect(started.length).toBe(startedBefore);
  });
});
