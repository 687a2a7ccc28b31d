import { App, Stack } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Match } from 'aws-cdk-lib/assertions';
import type { DlopsStack } from '../../lib/dlops-stack';
import { MANIFEST_KEY_WILDCARD, NON_RETRYABLE_ERRORS, Pipeline, STATE } from '../../lib/pipeline';
import { actionsOf, buildStack, definitionOf, NO_BUNDLING, roleIdOfFunction, statementsOfRole, type CfnTemplate } from './support';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const aslValidator = require('asl-validator') as (definition: unknown) => { isValid: boolean; errorsText: (sep?: string) => string };

let stack: DlopsStack;
let json: CfnTemplate;
let template: ReturnType<typeof buildStack>['template'];
let definition: any;

beforeAll(() => {
  ({ stack, template } = buildStack());
  json = template.toJSON() as CfnTemplate;
  definition = definitionOf(json).definition;
});

const logicalId = (construct: { node: { defaultChild?: unknown } }) => stack.getLogicalId(construct.node.defaultChild as never);

describe('state machine definition', () => {
  test('is valid ASL (asl-validator)', () => {
    const result = aslValidator(structuredClone(definition));
    expect(result.errorsText('\n')).toBe('');
    expect(result.isValid).toBe(true);
  });

  test('has exactly the agreed state names, starting at Preprocess', () => {
    expect(definition.StartAt).toBe('Preprocess');
    expect(Object.keys(definition.States).sort()).toEqual(
      ['Preprocess', 'Train', 'Export', 'Evaluate', 'Gate', 'Register', 'Published', 'Rejected', 'RecordFailure', 'Failed'].sort(),
    );
  });

  test('flows Preprocess -> Train -> Export -> Evaluate -> Gate', () => {
    const s = definition.States;
    expect(s.Preprocess.Next).toBe('Train');
    expect(s.Train.Next).toBe('Export');
    expect(s.Export.Next).toBe('Evaluate');
    expect(s.Evaluate.Next).toBe('Gate');
    expect(s.Register.Next).toBe('Published');
    expect(s.Published.Type).toBe('Succeed');
    expect(s.Rejected.Type).toBe('Succeed');
  });

  test.each([
    ['Preprocess', '$.preprocess', () => stack.pipeline.preprocessFunction],
    ['Export', '$.export', () => stack.pipeline.exportFunction],
    ['Evaluate', '$.evaluate', () => stack.pipeline.evaluateFunction],
    ['Register', '$.register', () => stack.pipeline.registerFunction],
  ])('%s invokes its function with the whole state and stores the unwrapped result at %s', (name, resultPath, fn) => {
    const state = definition.States[name];
    expect(state.Type).toBe('Task');
    // The function itself as Resource (payloadResponseOnly): no Parameters means the input is the whole state.
    expect(state.Resource).toBe(`arn:aws:lambda:us-east-1:123456789012:function:${logicalId(fn())}`);
    expect(state.Parameters).toBeUndefined();
    expect(state.ResultSelector).toBeUndefined();
    expect(state.ResultPath).toBe(resultPath);
    expect(state.TimeoutSeconds).toBeGreaterThan(json.Resources[logicalId(fn())].Properties!.Timeout);
  });

  test.each(['Preprocess', 'Export', 'Evaluate', 'Register'])('%s retries: typed errors never, Lambda service errors with backoff, transient task failures a little', (name) => {
    const retry = definition.States[name].Retry as Array<{ ErrorEquals: string[]; MaxAttempts?: number; BackoffRate?: number; IntervalSeconds?: number }>;
    const noRetry = retry.find((r) => r.ErrorEquals.includes('ManifestError'));
    expect(noRetry?.MaxAttempts).toBe(0);
    expect(noRetry?.ErrorEquals).toEqual(expect.arrayContaining(['ManifestError', 'DataError', 'ParityError', 'UnsupportedLayerError']));
    const service = retry.find((r) => r.ErrorEquals.includes('Lambda.ServiceException'));
    expect(service?.MaxAttempts).toBeGreaterThan(1);
    expect(service?.BackoffRate).toBeGreaterThan(1);
    // Step Functions uses the first retrier that matches: the no-retry list must come before the catch-all TaskFailed.
    const taskFailed = retry.findIndex((r) => r.ErrorEquals.includes('States.TaskFailed'));
    expect(taskFailed).toBeGreaterThan(retry.indexOf(noRetry!));
    for (const r of retry) expect(r.ErrorEquals).not.toContain('States.ALL');
  });

  test.each(['Preprocess', 'Train', 'Export', 'Evaluate', 'Register'])('%s catches everything into RecordFailure with the error at $.error', (name) => {
    expect(definition.States[name].Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'RecordFailure' }]);
  });

  test('Train submits the Batch job synchronously, named after the run, with RUN_ID overridden, result {jobId, status} at $.train', () => {
    const train = definition.States.Train;
    expect(train.Resource).toBe('arn:aws:states:::batch:submitJob.sync');
    expect(train.Parameters['JobName.$']).toBe('$.runId');
    expect(train.Parameters.JobQueue).toBe(`arn:aws:batch:us-east-1:123456789012:job-queue/${logicalId(stack.compute.jobQueue)}`);
    expect(train.Parameters.JobDefinition).toMatch(/job-definition\//);
    expect(train.Parameters.ContainerOverrides.Environment).toEqual([{ Name: 'RUN_ID', 'Value.$': '$.runId' }]);
    expect(train.ResultSelector).toEqual({ 'jobId.$': '$.JobId', 'status.$': '$.Status' });
    expect(train.ResultPath).toBe('$.train');
    // A task timeout here would override the job definition's attempt timeout.
    expect(train.Parameters.Timeout).toBeUndefined();
    expect(train.Retry).toEqual([expect.objectContaining({ ErrorEquals: ['Batch.AWSBatchException'], MaxAttempts: 5, BackoffRate: 2 })]);
  });

  test('Gate promotes only when $.evaluate.promote is true', () => {
    const gate = definition.States.Gate;
    expect(gate.Type).toBe('Choice');
    expect(gate.Choices).toEqual([{ Variable: '$.evaluate.promote', BooleanEquals: true, Next: 'Register' }]);
    expect(gate.Default).toBe('Rejected');
  });

  test('RecordFailure gets the execution name, the error and the run input, discards its result, then Fail carries the error', () => {
    const record = definition.States.RecordFailure;
    expect(record.Resource).toBe(`arn:aws:lambda:us-east-1:123456789012:function:${logicalId(stack.pipeline.recordFailureFunction)}`);
    expect(record.Parameters).toEqual({
      'executionName.$': '$$.Execution.Name',
      'error.$': '$.error',
      'runId.$': '$.runId',
      'dataset.$': '$.dataset',
      'bucket.$': '$.bucket',
      'manifestKey.$': '$.manifestKey',
      'manifestETag.$': '$.manifestETag',
    });
    expect(record.ResultPath).toBeNull();
    expect(record.Next).toBe('Failed');
    expect(record.Catch).toEqual([{ ErrorEquals: ['States.ALL'], ResultPath: null, Next: 'Failed' }]);
    expect(definition.States.Failed).toEqual({ Type: 'Fail', ErrorPath: '$.error.Error', CausePath: '$.error.Cause' });
  });

  test('the non-retryable list names the typed errors of functions/core/errors.ts', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const errors = require('../../functions/core/errors') as Record<string, new (m: string) => Error>;
    for (const name of NON_RETRYABLE_ERRORS) expect(new errors[name]('x').name).toBe(name);
  });
});

describe('state machine resource', () => {
  test('has X-Ray tracing and logs ALL with execution data to a log group', () => {
    template.hasResourceProperties('AWS::StepFunctions::StateMachine', {
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: {
        Level: 'ALL',
        IncludeExecutionData: true,
        Destinations: [{ CloudWatchLogsLogGroup: { LogGroupArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('PipelineExecutionLogs'), 'Arn'] } } }],
      },
    });
  });
});

describe('trigger', () => {
  test('an EventBridge rule on Object Created of the data bucket, key datasets/*/dataset.json, targets the trigger function', () => {
    const bucketId = logicalId(stack.storage.dataBucket);
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.s3'],
        'detail-type': ['Object Created'],
        detail: { bucket: { name: [{ Ref: bucketId }] }, object: { key: [{ wildcard: MANIFEST_KEY_WILDCARD }] } },
      },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [logicalId(stack.pipeline.triggerFunction), 'Arn'] }, DeadLetterConfig: Match.anyValue() })],
    });
    expect(MANIFEST_KEY_WILDCARD).toBe('datasets/*/dataset.json');
    template.hasResourceProperties('Custom::S3BucketNotifications', { BucketName: { Ref: bucketId }, NotificationConfiguration: { EventBridgeConfiguration: {} } });
  });

  test('the trigger role may only start this state machine (plus X-Ray and its own logs)', () => {
    const role = roleIdOfFunction(json, logicalId(stack.pipeline.triggerFunction));
    const statements = statementsOfRole(json, role);
    const stateStatements = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('states:')));
    expect(stateStatements).toEqual([
      expect.objectContaining({ Effect: 'Allow', Action: 'states:StartExecution', Resource: { Ref: logicalId(stack.pipeline.stateMachine) } }),
    ]);
    const other = statements.flatMap(actionsOf).filter((a) => !a.startsWith('xray:') && !a.startsWith('logs:') && a !== 'states:StartExecution');
    expect(other).toEqual([]);
    // No managed policies either.
    expect(json.Resources[role].Properties!.ManagedPolicyArns).toBeUndefined();
  });

  test('the trigger function gets STATE_MACHINE_ARN', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ STATE_MACHINE_ARN: { Ref: logicalId(stack.pipeline.stateMachine) } }) },
      Handler: 'index.handler',
    });
  });
});

describe('functions', () => {
  test('pipeline functions get the bucket, model bucket, key and code version environment', () => {
    const vars = json.Resources[logicalId(stack.pipeline.registerFunction)].Properties!.Environment.Variables;
    expect(vars).toMatchObject({
      DATA_BUCKET: { Ref: logicalId(stack.storage.dataBucket) },
      MODEL_BUCKET: { Ref: logicalId(stack.storage.modelBucket) },
      KMS_KEY_ARN: { 'Fn::GetAtt': [logicalId(stack.storage.key), 'Arn'] },
      DLOPS_CODE_VERSION: 'unknown',
    });
  });

  test('Export and Evaluate run ONNX Runtime on x86_64; Preprocess on arm64', () => {
    expect(json.Resources[logicalId(stack.pipeline.exportFunction)].Properties!.Architectures).toEqual(['x86_64']);
    expect(json.Resources[logicalId(stack.pipeline.evaluateFunction)].Properties!.Architectures).toEqual(['x86_64']);
    expect(json.Resources[logicalId(stack.pipeline.preprocessFunction)].Properties!.Architectures).toEqual(['arm64']);
  });

  test('RecordFailure may write only runs/ of the data bucket', () => {
    const statements = statementsOfRole(json, roleIdOfFunction(json, logicalId(stack.pipeline.recordFailureFunction)));
    const s3Statements = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('s3:')));
    expect(s3Statements.flatMap(actionsOf).sort()).toEqual(['s3:AbortMultipartUpload', 's3:PutObject']);
    expect(JSON.stringify(s3Statements)).toContain('/runs/*');
    expect(JSON.stringify(s3Statements)).not.toMatch(/models|prepared|datasets/);
  });
});

describe('the synthesized definition, executed (aws-local-stepfunctions, tasks overridden by state name)', () => {
  type Handler = (input: any) => Promise<unknown>;
  const runInput = { runId: 'iris-abc', dataset: 'iris', bucket: 'dlops-data', manifestKey: 'datasets/iris/dataset.json', manifestETag: 'e' };
  const results = {
    Preprocess: { modelName: 'iris', task: 'classification', preparedPrefix: 'prepared/iris-abc/', statsKey: 'prepared/iris-abc/stats.json', inputShape: [4], counts: { train: 1, validation: 1, test: 1 } },
    Train: { JobId: 'job-1', Status: 'SUCCEEDED', JobName: 'iris-abc' },
    Export: { onnxKey: 'runs/iris-abc/export/model.onnx', tfjsPrefix: 'runs/iris-abc/model/', opset: 13, parity: { rows: 100, maxAbsDiff: 0, tolerance: 1e-4, passed: true } },
    Evaluate: { metrics: { accuracy: 0.97 }, promote: true, reason: 'no champion', evaluationKey: 'e', reportKey: 'r' },
    Register: { model: 'iris', version: '1', aliases: ['production'], manifestKey: 'models/iris/versions/1/manifest.json' },
  };

  async function run(overrides: Partial<Record<string, Handler>>) {
    await import('../../local/polyfill');
    const { StateMachine } = await import('aws-local-stepfunctions');
    const calls: Record<string, unknown[]> = {};
    const handlers: Record<string, Handler> = {};
    for (const name of ['Preprocess', 'Train', 'Export', 'Evaluate', 'Register', 'RecordFailure']) {
      handlers[name] = async (input) => {
        (calls[name] ??= []).push(structuredClone(input));
        const own = overrides[name];
        return own ? own(input) : (results as Record<string, unknown>)[name] ?? {};
      };
    }
    const machine = new StateMachine(structuredClone(definition), { validationOptions: { checkPaths: true, checkArn: true } });
    const retryIntervalOverrides = Object.fromEntries(['Preprocess', 'Train', 'Export', 'Evaluate', 'Register', 'RecordFailure'].map((n) => [n, 0]));
    const execution = machine.run(runInput, {
      overrides: { taskResourceLocalHandlers: handlers as never, retryIntervalOverrides },
      context: { Execution: { Name: 'iris-abc', Input: runInput, StartTime: new Date().toISOString() } } as never,
    });
    try {
      return { output: (await execution.result) as any, calls };
    } catch (error) {
      return { error: error as Error & { cause?: unknown }, calls };
    }
  }

  test('a promoted run: each handler gets the whole state and its return value lands unwrapped at $.<step>', async () => {
    const { output, calls, error } = await run({});
    expect(error).toBeUndefined();
    expect(calls.Preprocess).toEqual([runInput]);
    expect(calls.Export).toEqual([{ ...runInput, preprocess: results.Preprocess, train: { jobId: 'job-1', status: 'SUCCEEDED' } }]);
    expect(output).toEqual({
      ...runInput,
      preprocess: results.Preprocess,
      train: { jobId: 'job-1', status: 'SUCCEEDED' },
      export: results.Export,
      evaluate: results.Evaluate,
      register: results.Register,
    });
    expect(calls.RecordFailure).toBeUndefined();
  });

  test('a rejected run never calls Register', async () => {
    const { output, calls } = await run({ Evaluate: async () => ({ ...results.Evaluate, promote: false }) });
    expect(calls.Register).toBeUndefined();
    expect(output.evaluate.promote).toBe(false);
  });

  test('a typed error is not retried, is recorded, and fails the execution with its name and cause', async () => {
    const parity = Object.assign(new Error('max |diff| 0.2 > 1e-4'), { name: 'ParityError' });
    const { error, calls } = await run({ Export: async () => Promise.reject(parity) });
    expect(calls.Export).toHaveLength(1);
    expect(calls.RecordFailure).toEqual([{ executionName: 'iris-abc', error: { Error: 'ParityError', Cause: expect.stringContaining('max |diff| 0.2') }, ...runInput }]);
    expect(calls.Evaluate).toBeUndefined();
    // The Fail state's error (ErrorPath $.error.Error) and cause (CausePath $.error.Cause).
    const failed = error!.cause as Error;
    expect(failed.name).toBe('ParityError');
    expect(failed.message).toContain('max |diff| 0.2');
  });

  test('an untyped (transient) failure is retried before it counts', async () => {
    let n = 0;
    const flaky = async () => {
      n += 1;
      if (n === 1) throw Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });
      return results.Preprocess;
    };
    const { error, calls } = await run({ Preprocess: flaky });
    expect(error).toBeUndefined();
    expect(calls.Preprocess).toHaveLength(2);
  });

  test('a failing RecordFailure still ends in Failed with the original error', async () => {
    const data = Object.assign(new Error('row 3: bad'), { name: 'DataError' });
    const { error, calls } = await run({ Preprocess: async () => Promise.reject(data), RecordFailure: async () => Promise.reject(new Error('S3 down')) });
    expect(calls.RecordFailure!.length).toBeGreaterThanOrEqual(1);
    expect((error!.cause as Error).name).toBe('DataError');
  });
});

describe('least privilege per step', () => {
  /** "action bucket/suffix" for every S3 object statement of a role; ListBucket as "s3:ListBucket bucket?prefix". */
  function s3Grants(roleId: string): string[] {
    const bucketName = (r: unknown) => {
      const text = JSON.stringify(r);
      return text.includes(logicalId(stack.storage.dataBucket)) ? 'data' : text.includes(logicalId(stack.storage.modelBucket)) ? 'models' : '?';
    };
    return statementsOfRole(json, roleId)
      .filter((st) => actionsOf(st).some((a) => a.startsWith('s3:')))
      .flatMap((st) => {
        const resources = Array.isArray(st.Resource) ? st.Resource : [st.Resource];
        return actionsOf(st).flatMap((a) =>
          a === 's3:ListBucket'
            ? [st.Condition.StringLike['s3:prefix']].flat().map((p: string) => `${a} ${bucketName(resources[0])}?${p}`)
            : resources.map((r: any) => `${a} ${bucketName(r)}/${(r['Fn::Join'][1] as unknown[]).at(-1)}`),
        );
      })
      .sort();
  }
  const roleOf = (fn: { node: { defaultChild?: unknown } }) => roleIdOfFunction(json, logicalId(fn));

  test('Preprocess reads datasets/, writes and cleans prepared/', () => {
    expect(s3Grants(roleOf(stack.pipeline.preprocessFunction))).toEqual(
      [
        's3:GetObject data//datasets/*',
        's3:GetObjectVersion data//datasets/*',
        's3:PutObject data//prepared/*',
        's3:AbortMultipartUpload data//prepared/*',
        's3:DeleteObject data//prepared/*',
        's3:ListBucket data?datasets/*',
        's3:ListBucket data?prepared/*',
      ].sort(),
    );
  });

  test('the training job reads prepared/ and runs/, writes runs/, deletes only checkpoints', () => {
    const jobRole = stack.getLogicalId(stack.compute.jobRole.node.defaultChild as never);
    const grants = s3Grants(jobRole);
    expect(grants.filter((g) => g.startsWith('s3:DeleteObject'))).toEqual(['s3:DeleteObject data//runs/*/checkpoints/*']);
    expect(grants.filter((g) => g.startsWith('s3:PutObject'))).toEqual(['s3:PutObject data//runs/*']);
    expect(grants.some((g) => g.includes('models'))).toBe(false);
  });

  test('Register writes models/ but deletes nothing; only Register and the training job/preprocess may write at all outside runs/', () => {
    const grants = s3Grants(roleOf(stack.pipeline.registerFunction));
    expect(grants).toContain('s3:PutObject models//models/*');
    expect(grants.filter((g) => g.startsWith('s3:DeleteObject'))).toEqual([]);
    for (const fn of [stack.pipeline.exportFunction, stack.pipeline.evaluateFunction, stack.pipeline.recordFailureFunction]) {
      expect(s3Grants(roleOf(fn)).filter((g) => g.startsWith('s3:PutObject'))).toEqual(['s3:PutObject data//runs/*']);
    }
  });
});

describe('Pipeline props validation', () => {
  const deps = () => {
    const app = new App({ context: NO_BUNDLING });
    const s = new Stack(app, 'V');
    return {
      s,
      dataBucket: s3.Bucket.fromBucketName(s, 'D', 'data'),
      modelBucket: s3.Bucket.fromBucketName(s, 'M', 'models'),
      key: kms.Key.fromKeyArn(s, 'K', 'arn:aws:kms:us-east-1:123456789012:key/abc'),
      jobQueue: batch.JobQueue.fromJobQueueArn(s, 'Q', 'arn:aws:batch:us-east-1:123456789012:job-queue/q'),
      jobDefinition: batch.EcsJobDefinition.fromJobDefinitionArn(s, 'J', 'arn:aws:batch:us-east-1:123456789012:job-definition/j:1'),
    };
  };

  test('codeVersion with characters outside the allowed set throws', () => {
    const d = deps();
    expect(() => new Pipeline(d.s, 'P', { ...d, codeVersion: 'v1 beta' })).toThrow(/codeVersion must be 1 to 128 letters, digits or \. _ \+ -\. Received "v1 beta"\./);
  });

  test('state names are the exported constants', () => {
    expect(Object.values(STATE)).toHaveLength(10);
  });
});
