import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { ENV } from '../functions/core/env';
import { DlopsFunction } from './dlops-function';

/** State names of the pipeline; the local runtime overrides tasks by these names. */
export const STATE = {
  preprocess: 'Preprocess',
  train: 'Train',
  export: 'Export',
  evaluate: 'Evaluate',
  gate: 'Gate',
  register: 'Register',
  published: 'Published',
  rejected: 'Rejected',
  recordFailure: 'RecordFailure',
  failed: 'Failed',
} as const;

/**
 * Errors a retry cannot fix (the same input fails the same way). Listed in a MaxAttempts 0
 * retrier ahead of the generic one, because Step Functions matches retriers in order and has no "except".
 */
export const NON_RETRYABLE_ERRORS = [
  'ManifestError',
  'DataError',
  'ParityError',
  'UnsupportedLayerError',
  'ConfigError',
  'TrainingError',
  'NotFoundError',
  'ConflictError',
  'IntegrityError',
  'BadRequestError',
];

/** The wildcard for the EventBridge rule; the trigger still checks the exact key shape. */
export const MANIFEST_KEY_WILDCARD = 'datasets/*/dataset.json';

export interface PipelineProps {
  readonly dataBucket: s3.IBucket;
  readonly modelBucket: s3.IBucket;
  /** The key model artifacts are encrypted with; its ARN goes to the functions as KMS_KEY_ARN. */
  readonly key: kms.IKey;
  readonly jobQueue: batch.IJobQueue;
  readonly jobDefinition: batch.IJobDefinition;
  /**
   * Code version recorded in each model version's lineage (DLOPS_CODE_VERSION).
   * @default 'unknown'
   */
  readonly codeVersion?: string;
  /**
   * Days the state machine's execution logs are kept.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * The training pipeline: the Step Functions state machine, the Lambda functions of its steps,
 * the failure path, and the EventBridge rule + trigger function that start it on each new
 * `datasets/<dataset>/dataset.json`.
 */
export class Pipeline extends Construct {
  public readonly stateMachine: sfn.StateMachine;
  public readonly preprocessFunction: DlopsFunction;
  public readonly exportFunction: DlopsFunction;
  public readonly evaluateFunction: DlopsFunction;
  public readonly registerFunction: DlopsFunction;
  public readonly recordFailureFunction: DlopsFunction;
  public readonly triggerFunction: DlopsFunction;
  public readonly rule: events.Rule;
  public readonly triggerDeadLetterQueue: sqs.Queue;

  constructor(scope: Construct, id: string, props: PipelineProps) {
    super(scope, id);
    const codeVersion = props.codeVersion ?? 'unknown';
    const logRetention = props.logRetention ?? logs.RetentionDays.THREE_MONTHS;
    if (!/^[A-Za-z0-9._+-]{1,128}$/.test(codeVersion)) {
      throw new Error(`codeVersion must be 1 to 128 letters, digits or . _ + -. Received ${JSON.stringify(codeVersion)}.`);
    }

    const environment = {
      [ENV.dataBucket]: props.dataBucket.bucketName,
      [ENV.modelBucket]: props.modelBucket.bucketName,
      [ENV.kmsKeyArn]: props.key.keyArn,
      [ENV.codeVersion]: codeVersion,
    };
    this.preprocessFunction = new DlopsFunction(this, 'Preprocess', {
      entry: 'functions/preprocess/handler.ts',
      description: 'dlops: validate the manifest, split, normalise and write .npy shards',
      memorySize: 3008,
      timeout: Duration.minutes(15),
      environment,
    });
    this.exportFunction = new DlopsFunction(this, 'Export', {
      entry: 'functions/export/handler.ts',
      description: 'dlops: TF.js -> ONNX, parity check with ONNX Runtime',
      onnxRuntime: true,
      memorySize: 3008,
      timeout: Duration.minutes(10),
      environment,
    });
    this.evaluateFunction = new DlopsFunction(this, 'Evaluate', {
      entry: 'functions/evaluate/handler.ts',
      description: 'dlops: test-split metrics and the champion/challenger decision',
      onnxRuntime: true,
      memorySize: 3008,
      timeout: Duration.minutes(10),
      environment,
    });
    this.registerFunction = new DlopsFunction(this, 'Register', {
      entry: 'functions/register/handler.ts',
      description: 'dlops: encrypt artifacts, write the version, move the alias',
      memorySize: 1024,
      timeout: Duration.minutes(5),
      environment,
    });
    this.recordFailureFunction = new DlopsFunction(this, 'RecordFailure', {
      entry: 'functions/record-failure/handler.ts',
      description: 'dlops: write runs/<execution>/status.json for a failed run',
      memorySize: 256,
      timeout: Duration.seconds(30),
      environment: { [ENV.dataBucket]: props.dataBucket.bucketName },
    });

    this.stateMachine = this.buildStateMachine(props, logRetention);

    this.triggerFunction = new DlopsFunction(this, 'Trigger', {
      entry: 'functions/trigger/handler.ts',
      description: 'dlops: start a run for each new datasets/<dataset>/dataset.json',
      memorySize: 256,
      timeout: Duration.seconds(30),
      environment: { [ENV.stateMachineArn]: this.stateMachine.stateMachineArn },
    });
    this.stateMachine.grantStartExecution(this.triggerFunction);

    this.triggerDeadLetterQueue = new sqs.Queue(this, 'TriggerDeadLetters', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    // `wildcard` matches across "/", so a nested key can match too; the trigger rejects those.
    // https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html#eb-create-pattern-wildcard
    this.rule = new events.Rule(this, 'ManifestUploaded', {
      description: 'dlops: a dataset commit marker was written; start a run',
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [props.dataBucket.bucketName] },
          object: { key: [{ wildcard: MANIFEST_KEY_WILDCARD }] },
        },
      },
      targets: [new targets.LambdaFunction(this.triggerFunction, { retryAttempts: 4, maxEventAge: Duration.hours(6), deadLetterQueue: this.triggerDeadLetterQueue })],
    });
  }

  private buildStateMachine(props: PipelineProps, logRetention: logs.RetentionDays): sfn.StateMachine {
    // States get their own scope: their ids are the state names, which the functions' ids would clash with.
    const states = new Construct(this, 'States');
    const failed = new sfn.Fail(states, STATE.failed, { errorPath: '$.error.Error', causePath: '$.error.Cause' });
    const recordFailure = new tasks.LambdaInvoke(states, STATE.recordFailure, {
      lambdaFunction: this.recordFailureFunction,
      payloadResponseOnly: true,
      // RunInput's fields always exist; later results may not, and a missing path would fail this state.
      payload: sfn.TaskInput.fromObject({
        executionName: sfn.JsonPath.executionName,
        error: sfn.JsonPath.objectAt('$.error'),
        runId: sfn.JsonPath.stringAt('$.runId'),
        dataset: sfn.JsonPath.stringAt('$.dataset'),
        bucket: sfn.JsonPath.stringAt('$.bucket'),
        manifestKey: sfn.JsonPath.stringAt('$.manifestKey'),
        manifestETag: sfn.JsonPath.stringAt('$.manifestETag'),
      }),
      // Keep $.error for the Fail state.
      resultPath: sfn.JsonPath.DISCARD,
    });
    recordFailure.addCatch(failed, { errors: [sfn.Errors.ALL], resultPath: sfn.JsonPath.DISCARD });
    recordFailure.next(failed);

    const onError = <T extends sfn.TaskStateBase>(task: T): T => {
      task.addCatch(recordFailure, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
      return task;
    };

    // payloadResponseOnly: the handler gets the whole state as its event and its return value
    // lands, unwrapped, at `$.<step>` (lambda:invoke would nest it under `Payload`).
    const lambdaStep = (name: string, fn: DlopsFunction, resultPath: string, timeout: Duration): tasks.LambdaInvoke => {
      const task = new tasks.LambdaInvoke(states, name, {
        lambdaFunction: fn,
        payloadResponseOnly: true,
        resultPath,
        taskTimeout: sfn.Timeout.duration(timeout.plus(Duration.seconds(30))),
      });
      // A function that timed out will time out again on the same input.
      task.addRetry({ errors: [...NON_RETRYABLE_ERRORS, 'Sandbox.Timedout'], maxAttempts: 0 });
      task.addRetry({ errors: ['Lambda.TooManyRequestsException'], interval: Duration.seconds(5), maxAttempts: 6, backoffRate: 2, jitterStrategy: sfn.JitterType.FULL });
      // Transient S3/KMS/network failures inside the handler.
      task.addRetry({ errors: [sfn.Errors.TASKS_FAILED], interval: Duration.seconds(5), maxAttempts: 2, backoffRate: 3 });
      return onError(task);
    };

    const preprocess = lambdaStep(STATE.preprocess, this.preprocessFunction, '$.preprocess', Duration.minutes(15));
    const train = new tasks.BatchSubmitJob(states, STATE.train, {
      jobName: sfn.JsonPath.stringAt('$.runId'),
      jobQueueArn: props.jobQueue.jobQueueArn,
      jobDefinitionArn: props.jobDefinition.jobDefinitionArn,
      integrationPattern: sfn.IntegrationPattern.RUN_JOB,
      containerOverrides: { environment: { RUN_ID: sfn.JsonPath.stringAt('$.runId') } },
      resultSelector: { 'jobId.$': '$.JobId', 'status.$': '$.Status' },
      resultPath: '$.train',
      // No taskTimeout: on this task it would override the job definition's per-attempt timeout.
      // The wait is bounded by Batch itself: RUNNABLE time limit + attempts x attempt timeout.
    });
    // Only the Batch API call itself is retried; a failed job has already used Batch's own retry strategy.
    train.addRetry({ errors: ['Batch.AWSBatchException'], interval: Duration.seconds(10), maxAttempts: 5, backoffRate: 2, jitterStrategy: sfn.JitterType.FULL });
    onError(train);
    const exportStep = lambdaStep(STATE.export, this.exportFunction, '$.export', Duration.minutes(10));
    const evaluate = lambdaStep(STATE.evaluate, this.evaluateFunction, '$.evaluate', Duration.minutes(10));
    const register = lambdaStep(STATE.register, this.registerFunction, '$.register', Duration.minutes(5));
    const published = new sfn.Succeed(states, STATE.published, { comment: 'A new model version is registered.' });
    const rejected = new sfn.Succeed(states, STATE.rejected, { comment: 'The promotion rule did not hold; nothing was registered.' });
    const gate = new sfn.Choice(states, STATE.gate, { comment: 'Promote only if the promotion rule holds.' })
      .when(sfn.Condition.booleanEquals('$.evaluate.promote', true), register.next(published))
      .otherwise(rejected);

    const definition = preprocess.next(train).next(exportStep).next(evaluate).next(gate);

    const logGroup = new logs.LogGroup(this, 'ExecutionLogs', { retention: logRetention, removalPolicy: RemovalPolicy.DESTROY });
    const stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      comment: 'dlops training pipeline: Preprocess -> Train -> Export -> Evaluate -> Gate -> Register',
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      stateMachineType: sfn.StateMachineType.STANDARD,
      tracingEnabled: true,
      logs: { destination: logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
    });
    return stateMachine;
  }
}
