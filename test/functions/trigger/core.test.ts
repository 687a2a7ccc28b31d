import { SFNClient, ExecutionAlreadyExists, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { RunInput } from '../../../functions/core/contracts';
import { BadRequestError } from '../../../functions/core/errors';
import {
  executionName,
  MAX_EXECUTION_NAME,
  SfnExecutionStarter,
  startRunFromEvent,
  type ExecutionStarter,
  type S3ObjectCreatedEvent,
} from '../../../functions/trigger/core';

/** An EventBridge "Object Created" event as S3 sends it (fields dlops does not read included). */
function objectCreated(key: string, etag = '"0f343b0931126a20f133d67c2b018a3b"', bucket = 'dlops-data'): S3ObjectCreatedEvent {
  return {
    source: 'aws.s3',
    'detail-type': 'Object Created',
    detail: { bucket: { name: bucket }, object: { key, etag, size: 1024 } },
  };
}

/** Remembers names like Step Functions does: a second start of a known name is refused. */
class FakeStarter implements ExecutionStarter {
  readonly started: Array<{ name: string; input: RunInput }> = [];
  async start(name: string, input: RunInput) {
    if (this.started.some((s) => s.name === name)) return { started: false };
    this.started.push({ name, input });
    return { started: true, executionArn: `arn:aws:states:us-east-1:123456789012:execution:dlops:${name}` };
  }
}

describe('executionName', () => {
  test('is deterministic for the same dataset and ETag (quotes ignored)', () => {
    expect(executionName('mnist', '"abc"')).toBe(executionName('mnist', 'abc'));
  });

  test('differs when the ETag or the dataset differs', () => {
    expect(executionName('mnist', 'abc')).not.toBe(executionName('mnist', 'abd'));
    expect(executionName('mnist', 'abc')).not.toBe(executionName('mnist2', 'abc'));
  });

  test('keeps to [A-Za-z0-9-_] and 80 characters even for long, odd dataset names', () => {
    const name = executionName('ünïcode dataset.v2+' + 'x'.repeat(200), 'd41d8cd98f00b204e9800998ecf8427e-12');
    expect(name).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(name.length).toBeLessThanOrEqual(MAX_EXECUTION_NAME);
  });

  test('two datasets that sanitize to the same text still get different names', () => {
    expect(executionName('a.b', 'e')).not.toBe(executionName('a-b', 'e'));
  });

  test('starts with the readable dataset name', () => {
    expect(executionName('iris', 'e')).toMatch(/^iris-[0-9a-f]{32}$/);
  });

  test('an empty ETag is refused', () => {
    expect(() => executionName('iris', '""')).toThrow(BadRequestError);
  });
});

describe('startRunFromEvent', () => {
  test('given a manifest upload, when handled, then one execution starts with the RunInput', async () => {
    const starter = new FakeStarter();
    const result = await startRunFromEvent(objectCreated('datasets/iris/dataset.json'), starter);
    expect(result.started).toBe(true);
    expect(result.runId).toBe(executionName('iris', '0f343b0931126a20f133d67c2b018a3b'));
    expect(starter.started).toEqual([
      {
        name: result.runId,
        input: { runId: result.runId, dataset: 'iris', bucket: 'dlops-data', manifestKey: 'datasets/iris/dataset.json', manifestETag: '0f343b0931126a20f133d67c2b018a3b' },
      },
    ]);
  });

  test('given the same bytes uploaded twice, then the second event starts nothing', async () => {
    const starter = new FakeStarter();
    const first = await startRunFromEvent(objectCreated('datasets/iris/dataset.json'), starter);
    const second = await startRunFromEvent(objectCreated('datasets/iris/dataset.json'), starter);
    expect(first.started).toBe(true);
    expect(second).toMatchObject({ runId: first.runId, started: false });
    expect(starter.started).toHaveLength(1);
  });

  test('given a changed manifest (new ETag), then a new run starts', async () => {
    const starter = new FakeStarter();
    await startRunFromEvent(objectCreated('datasets/iris/dataset.json', '"aaa"'), starter);
    const second = await startRunFromEvent(objectCreated('datasets/iris/dataset.json', '"bbb"'), starter);
    expect(second.started).toBe(true);
    expect(starter.started).toHaveLength(2);
  });

  test.each([
    'datasets/iris/data/part-0.csv',
    'datasets/iris/nested/dataset.json',
    'datasets/dataset.json',
    'other/iris/dataset.json',
    'datasets/iris/dataset.json.bak',
  ])('ignores %s (not datasets/<ds>/dataset.json)', async (key) => {
    const starter = new FakeStarter();
    const result = await startRunFromEvent(objectCreated(key), starter);
    expect(result.started).toBe(false);
    expect(result.runId).toBeUndefined();
    expect(result.ignored).toContain(key);
    expect(starter.started).toHaveLength(0);
  });

  test('an event without bucket/key is a BadRequestError naming the fields', async () => {
    await expect(startRunFromEvent({ detail: {} } as never, new FakeStarter())).rejects.toThrow(/detail.bucket.name=undefined, detail.object.key=undefined/);
  });

  test('a manifest event without an ETag is a BadRequestError naming the object', async () => {
    await expect(startRunFromEvent(objectCreated('datasets/iris/dataset.json', ''), new FakeStarter())).rejects.toThrow(
      /s3:\/\/dlops-data\/datasets\/iris\/dataset.json has no detail.object.etag/,
    );
  });

  test('a starter failure propagates (EventBridge retries, then the dead-letter queue)', async () => {
    const failing: ExecutionStarter = { start: async () => Promise.reject(new Error('throttled')) };
    await expect(startRunFromEvent(objectCreated('datasets/iris/dataset.json'), failing)).rejects.toThrow('throttled');
  });
});

describe('SfnExecutionStarter', () => {
  // No Step Functions server can run here: the client is faked at its `send` seam.
  const input: RunInput = { runId: 'iris-1', dataset: 'iris', bucket: 'b', manifestKey: 'datasets/iris/dataset.json', manifestETag: 'e' };

  test('sends StartExecution with the state machine, the name and the JSON input', async () => {
    const sent: StartExecutionCommand[] = [];
    const client = { send: async (command: StartExecutionCommand) => (sent.push(command), { executionArn: 'arn:exec', startDate: new Date() }) };
    const starter = new SfnExecutionStarter('arn:aws:states:us-east-1:123456789012:stateMachine:dlops', client as unknown as SFNClient);
    await expect(starter.start('iris-1', input)).resolves.toEqual({ started: true, executionArn: 'arn:exec' });
    expect(sent).toHaveLength(1);
    expect(sent[0]).toBeInstanceOf(StartExecutionCommand);
    expect(sent[0].input).toEqual({ stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:dlops', name: 'iris-1', input: JSON.stringify(input) });
  });

  test('ExecutionAlreadyExists means started: false, not an error', async () => {
    const client = { send: async () => Promise.reject(new ExecutionAlreadyExists({ message: 'Execution Already Exists', $metadata: {} })) };
    const starter = new SfnExecutionStarter('arn:sm', client as unknown as SFNClient);
    await expect(starter.start('iris-1', input)).resolves.toEqual({ started: false });
  });

  test('other errors propagate', async () => {
    const error = Object.assign(new Error('denied'), { name: 'AccessDeniedException' });
    const starter = new SfnExecutionStarter('arn:sm', { send: async () => Promise.reject(error) } as unknown as SFNClient);
    await expect(starter.start('iris-1', input)).rejects.toThrow('denied');
  });
});
