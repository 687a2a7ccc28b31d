import { getJson } from '../../../functions/core/s3';
import type { FailureEvent, RunStatus } from '../../../functions/core/contracts';
import { BadRequestError } from '../../../functions/core/errors';
import { runKeys } from '../../../functions/core/layout';
import { causeMessage, recordFailure } from '../../../functions/record-failure/core';
import { DATA_BUCKET, localS3Fixture, type S3Fixture } from '../../support/local-s3';

let fx: S3Fixture;
beforeAll(async () => {
  fx = await localS3Fixture();
});
afterAll(async () => fx.close());

const event = (overrides: Partial<FailureEvent> = {}): FailureEvent => ({
  executionName: 'iris-0123456789abcdef',
  runId: 'iris-0123456789abcdef',
  dataset: 'iris',
  bucket: DATA_BUCKET,
  manifestKey: 'datasets/iris/dataset.json',
  manifestETag: 'e',
  error: {
    Error: 'ManifestError',
    Cause: JSON.stringify({ errorType: 'ManifestError', errorMessage: 'task must be classification or regression. Received "clustering".', trace: ['at x (/var/task/index.js:1:1)'] }),
  },
  ...overrides,
});

describe('recordFailure', () => {
  test('given a caught Lambda error, then runs/<execution>/status.json says FAILED with the error name and message', async () => {
    const now = new Date('2026-12-04T20:00:00.000Z');
    const { key } = await recordFailure(fx.s3, DATA_BUCKET, event(), now);
    expect(key).toBe(runKeys.status('iris-0123456789abcdef'));
    const { value } = await getJson<RunStatus>(fx.s3, { bucket: DATA_BUCKET, key });
    expect(value).toEqual({
      state: 'FAILED',
      executionName: 'iris-0123456789abcdef',
      error: 'ManifestError',
      cause: 'task must be classification or regression. Received "clustering".',
      time: '2026-12-04T20:00:00.000Z',
    });
  });

  test('given a Batch failure (plain-text cause), then the cause is kept as it is', async () => {
    const e = event({ executionName: 'iris-batch', error: { Error: 'States.TaskFailed', Cause: 'Essential container in task exited' } });
    const { key } = await recordFailure(fx.s3, DATA_BUCKET, e);
    const { value } = await getJson<RunStatus>(fx.s3, { bucket: DATA_BUCKET, key });
    expect(value.error).toBe('States.TaskFailed');
    expect(value.cause).toBe('Essential container in task exited');
    expect(Date.parse(value.time)).not.toBeNaN();
  });

  test('a second failure of the same execution overwrites the status (last word wins)', async () => {
    const e1 = event({ executionName: 'iris-twice', error: { Error: 'DataError', Cause: 'first' } });
    const e2 = event({ executionName: 'iris-twice', error: { Error: 'States.Timeout', Cause: 'second' } });
    await recordFailure(fx.s3, DATA_BUCKET, e1);
    await recordFailure(fx.s3, DATA_BUCKET, e2);
    const { value } = await getJson<RunStatus>(fx.s3, { bucket: DATA_BUCKET, key: runKeys.status('iris-twice') });
    expect(value.error).toBe('States.Timeout');
  });

  test.each([
    [undefined, /executionName must be 1 to 80 characters of \[A-Za-z0-9_-\]. Received undefined./],
    ['../escape', /Received "..\/escape"./],
    ['x'.repeat(81), /executionName must be 1 to 80 characters/],
  ])('refuses executionName %p (it becomes part of a key)', async (name, message) => {
    await expect(recordFailure(fx.s3, DATA_BUCKET, event({ executionName: name as never }))).rejects.toThrow(message);
    await expect(recordFailure(fx.s3, DATA_BUCKET, event({ executionName: name as never }))).rejects.toBeInstanceOf(BadRequestError);
  });

  test('refuses an event without error.Error', async () => {
    await expect(recordFailure(fx.s3, DATA_BUCKET, event({ error: {} as never }))).rejects.toThrow(/error.Error must be a string .* Received \{\}./);
  });
});

describe('causeMessage', () => {
  test('takes errorMessage from a Lambda error cause', () => {
    expect(causeMessage('{"errorType":"DataError","errorMessage":"row 3: bad"}')).toBe('row 3: bad');
  });
  test('keeps text that is not a Lambda error JSON', () => {
    expect(causeMessage('{"foo":1}')).toBe('{"foo":1}');
    expect(causeMessage('plain')).toBe('plain');
  });

  test('a failed Batch job (submitJob.sync cause) becomes its exit code and the container\'s error line', () => {
    const job = {
      JobName: 'digits-abc',
      Status: 'FAILED',
      StatusReason: 'Essential container in task exited',
      Container: { ExitCode: 2, Reason: JSON.stringify({ event: 'error', name: 'ManifestError', message: 'model[0] (dense) needs a flat input' }) },
    };
    expect(causeMessage(JSON.stringify(job))).toBe('Training job digits-abc failed with exit code 2: ManifestError: model[0] (dense) needs a flat input');
    const reclaimed = { JobName: 'digits-abc', StatusReason: 'Host EC2 (instance i-1) terminated.' };
    expect(causeMessage(JSON.stringify(reclaimed))).toBe('Training job digits-abc failed: Host EC2 (instance i-1) terminated.');
    expect(causeMessage(undefined)).toBeUndefined();
  });
});
