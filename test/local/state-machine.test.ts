import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { DataError } from '../../functions/core/errors';
import type { LocalFunction } from '../../local/lambda';
import { LOCAL_DEFAULT_TASK_TIMEOUT_SECONDS, LocalStateMachine, prepareDefinition } from '../../local/state-machine';

const FN = 'arn:aws:lambda:us-east-1:000000000000:function:Step';

/** A definition shaped like the pipeline's: lambda:invoke tasks, Retry on a transient error, Catch to a recorder, Fail from paths. */
function definition(): StateMachineDefinition {
  return {
    StartAt: 'Work',
    States: {
      Work: {
        Type: 'Task',
        Resource: 'arn:aws:states:::lambda:invoke',
        Parameters: { FunctionName: FN, 'Payload.$': '$' },
        ResultSelector: { 'value.$': '$.Payload' },
        ResultPath: '$.work',
        Retry: [{ ErrorEquals: ['TransientError'], IntervalSeconds: 1, MaxAttempts: 2, BackoffRate: 2 }],
        Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Record' }],
        Next: 'Done',
      },
      Done: { Type: 'Succeed' },
      Record: {
        Type: 'Task',
        Resource: 'arn:aws:states:::lambda:invoke',
        Parameters: { FunctionName: FN, Payload: { 'executionName.$': '$$.Execution.Name', 'error.$': '$.error' } },
        ResultPath: null,
        Next: 'Failed',
      },
      Failed: { Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' },
    },
  } as unknown as StateMachineDefinition;
}

class TransientError extends Error {
  override readonly name = 'TransientError';
}

function machine(work: (event: { n: number }) => Promise<unknown>, recorded: unknown[], storeDirectory?: string): LocalStateMachine {
  const fn = (handler: (event: never) => Promise<unknown>): LocalFunction => ({ name: FN, load: async () => handler as never });
  return new LocalStateMachine({
    name: 'test',
    definition: definition(),
    functions: {
      Work: fn(work as never),
      Record: fn(async (event: unknown) => {
        recorded.push(event);
        return { ignored: true };
      }),
    },
    storeDirectory,
    retryIntervalOverrides: { Work: 0 },
  });
}

describe('LocalStateMachine', () => {
  it('writes out the Task timeout only where the definition has none', () => {
    const { definition: prepared, adjustments } = prepareDefinition(definition());
    expect(adjustments.map((a) => a.state).sort()).toEqual(['Record', 'Work']);
    expect((prepared.States.Work as { TimeoutSeconds?: number }).TimeoutSeconds).toBe(LOCAL_DEFAULT_TASK_TIMEOUT_SECONDS);
    const withTimeout = definition();
    (withTimeout.States.Work as { TimeoutSeconds?: number }).TimeoutSeconds = 300;
    expect(prepareDefinition(withTimeout).adjustments.map((a) => a.state)).toEqual(['Record']);
  });

  it('given a succeeding handler, when run, then the Payload lands at the ResultPath and each state is timed', async () => {
    const sm = machine(async (event) => ({ doubled: event.n * 2 }), []);
    await sm.start('ok-1', { n: 21 });
    const record = await sm.wait('ok-1');
    expect(record.status).toBe('SUCCEEDED');
    expect(record.output).toEqual({ n: 21, work: { value: { doubled: 42 } } });
    expect(record.transitions.map((t) => [t.state, t.status])).toEqual([
      ['Work', 'succeeded'],
      ['Done', 'succeeded'],
    ]);
    expect(record.transitions[0].exitedAt).toBeGreaterThanOrEqual(record.transitions[0].enteredAt);
  });

  it('given a transient error, when retried by name, then the second attempt succeeds', async () => {
    let calls = 0;
    const sm = machine(async () => {
      calls += 1;
      if (calls === 1) throw new TransientError('try again');
      return 'fine';
    }, []);
    await sm.start('retry-1', { n: 1 });
    const record = await sm.wait('retry-1');
    expect(calls).toBe(2);
    expect(record.status).toBe('SUCCEEDED');
  });

  it('given a typed error, when caught, then the recorder sees its name and the Lambda error document, and the execution fails with them', async () => {
    const recorded: unknown[] = [];
    const sm = machine(async () => {
      throw new DataError('digits.csv row 3: pixel p7 is "x", expected a number');
    }, recorded);
    await sm.start('fail-1', { n: 1 });
    const record = await sm.wait('fail-1');
    expect(record.status).toBe('FAILED');
    expect(record.error).toBe('DataError');
    const cause = JSON.parse(record.cause!) as { errorType: string; errorMessage: string };
    expect(cause).toMatchObject({ errorType: 'DataError', errorMessage: 'digits.csv row 3: pixel p7 is "x", expected a number' });
    expect(recorded).toEqual([{ executionName: 'fail-1', error: { Error: 'DataError', Cause: record.cause } }]);
    expect(record.transitions.map((t) => [t.state, t.status])).toEqual([
      ['Work', 'caught'],
      ['Record', 'succeeded'],
      ['Failed', 'failed'],
    ]);
  });

  it('given a handler past its function timeout, then the task fails with Sandbox.Timedout as in Lambda', async () => {
    const recorded: unknown[] = [];
    const sm = new LocalStateMachine({
      name: 'timeout',
      definition: definition(),
      functions: {
        Work: { name: FN, timeoutSeconds: 0.2, load: async () => (async () => new Promise((r) => setTimeout(() => r('late'), 1500))) as never },
        Record: { name: `${FN}-record`, load: async () => (async (event: unknown) => recorded.push(event)) as never },
      },
      retryIntervalOverrides: { Work: 0 },
    });
    await sm.start('slow', { n: 1 });
    const record = await sm.wait('slow');
    expect(record.status).toBe('FAILED');
    expect(record.error).toBe('Sandbox.Timedout');
    expect(JSON.parse(record.cause!).errorMessage).toMatch(/Task timed out after 0\.20 seconds/);
  });

  it('given a name already used, when started again, then nothing starts, also after a restart', async () => {
    const store = mkdtempSync(join(tmpdir(), 'dlops-sm-'));
    try {
      let calls = 0;
      const work = async () => {
        calls += 1;
        return calls;
      };
      const first = machine(work, [], store);
      expect(await first.start('same', { n: 1 })).toMatchObject({ started: true });
      expect(await first.start('same', { n: 1 })).toMatchObject({ started: false });
      await first.wait('same');
      expect(JSON.parse(readFileSync(join(store, 'same.json'), 'utf8')).status).toBe('SUCCEEDED');
      const restarted = machine(work, [], store);
      expect(await restarted.start('same', { n: 1 })).toMatchObject({ started: false });
      expect(calls).toBe(1);
    } finally {
      rmSync(store, { recursive: true, force: true });
    }
  });

  it('refuses a task it cannot run, naming the state', () => {
    const def = definition();
    (def.States.Work as { Resource: string }).Resource = 'arn:aws:states:::sqs:sendMessage';
    expect(() => new LocalStateMachine({ name: 'x', definition: def, functions: {} })).toThrow(/Task state Work uses arn:aws:states:::sqs:sendMessage/);
  });
});

describe('LocalStateMachine with a Batch task', () => {
  it('given a running training job, when aborted (Ctrl-C), then the job is stopped and the execution ends ABORTED', async () => {
    const { LocalBatch } = await import('../../local/batch');
    const { mkdtempSync: mkdtemp } = await import('node:fs');
    const logs = mkdtemp(join(tmpdir(), 'dlops-abort-'));
    let pid: number | undefined;
    const batch = new LocalBatch({
      entry: join(__dirname, 'fixtures', 'container.ts'),
      cwd: process.cwd(),
      localEnvironment: { MODE: 'hang', EPOCHS: '1' },
      logDirectory: logs,
      jobDefinition: () => ({ environment: {} }),
      onLine: (line) => {
        const match = / pid=(\d+)/.exec(line.line);
        if (match) pid = Number(match[1]);
      },
      stopTimeoutSeconds: 1,
    });
    const definition = {
      StartAt: 'Train',
      States: {
        Train: {
          Type: 'Task',
          Resource: 'arn:aws:states:::batch:submitJob.sync',
          Parameters: { JobName: 'j', JobQueue: 'arn:aws:batch:us-east-1:000000000000:job-queue/q', JobDefinition: 'arn:aws:batch:us-east-1:000000000000:job-definition/d:1' },
          End: true,
        },
      },
    } as unknown as StateMachineDefinition;
    const sm = new LocalStateMachine({ name: 'abort', definition, functions: {}, batch });
    await sm.start('running', {});
    const deadline = Date.now() + 20_000;
    while (pid === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(pid).toBeDefined();
    const stopping = Date.now();
    await sm.abortAll();
    expect(Date.now() - stopping).toBeLessThan(5_000);
    expect(sm.describe('running')?.status).toBe('ABORTED');
    // The container process is gone (signal 0 only tests for existence).
    expect(() => process.kill(pid!, 0)).toThrow();
    rmSync(logs, { recursive: true, force: true });
  }, 30_000);
});
