/**
 * The local runtime: every AWS part of dlops stood in for on one machine (DESIGN.md, "Local
 * runtime"). S3 is s3rver; its object-created events pass the template's EventBridge rule to
 * the same trigger core as in AWS; the state machine is the synthesized definition run by
 * aws-local-stepfunctions, its Lambda tasks calling the same handler modules and its Batch task
 * running the training entry point as a child process; the inference handler is served over
 * HTTP through the API Gateway adapter. Only endpoints, keyrings and runners differ, and they
 * are chosen here, from the environment this module sets.
 */
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { localS3Client } from '../functions/core/aws';
import { ENV } from '../functions/core/env';
import { ConfigError } from '../functions/core/errors';
import { startApiAdapter, type ApiAdapter, type ProxyHandler } from './api-adapter';
import { LocalBatch, type JobLine } from './batch';
import { loadTemplate, localPipeline, REPO_ROOT, type LocalPipeline } from './definition';
import { matchesPattern, toObjectCreatedEvent, type S3NotificationRecord } from './events';
import type { LambdaHandler, LocalFunction } from './lambda';
import { LocalStateMachine, type ExecutionObserver, type ExecutionRecord } from './state-machine';
import { startLocalS3, type LocalS3 } from './s3-server';
import type { CfnTemplate } from './template';

export const LOCAL_DATA_BUCKET = 'dlops-data';
export const LOCAL_MODEL_BUCKET = 'dlops-models';
export const LOCAL_REGION = 'us-east-1';
export const LOCAL_ACCOUNT = '000000000000';

/**
 * The handler module behind each Lambda task of the pipeline, by state name (lib/pipeline.ts STATE).
 * Required on first invocation, once the runtime has set the environment the handlers read.
 */
export const TASK_HANDLERS: Record<string, () => LambdaHandler> = {
  Preprocess: () => (require('../functions/preprocess/handler') as { handler: LambdaHandler }).handler,
  Export: () => (require('../functions/export/handler') as { handler: LambdaHandler }).handler,
  Evaluate: () => (require('../functions/evaluate/handler') as { handler: LambdaHandler }).handler,
  Register: () => (require('../functions/register/handler') as { handler: LambdaHandler }).handler,
  RecordFailure: () => (require('../functions/record-failure/handler') as { handler: LambdaHandler }).handler,
};

/** The training container's entry point. */
export const TRAIN_ENTRY = join(REPO_ROOT, 'functions', 'train', 'main.ts');

/** Where `local up` keeps its state, under the state folder. */
export function statePaths(stateDirectory: string) {
  const root = resolve(stateDirectory);
  return {
    root,
    s3: join(root, 's3'),
    keyFile: join(root, 'keys', 'local-aes.key'),
    executions: join(root, 'executions'),
    logs: join(root, 'logs'),
    functionLog: join(root, 'logs', 'functions.log'),
    runtimeFile: join(root, 'runtime.json'),
    templateCache: join(root, 'template.json'),
  };
}

/** `.dlops/runtime.json`: how other commands (submit, models, predict) find a running `local up`. */
export interface RuntimeInfo {
  readonly pid: number;
  readonly s3Endpoint: string;
  readonly apiUrl?: string;
  readonly dataBucket: string;
  readonly modelBucket: string;
  readonly keyFile: string;
  readonly startedAt: string;
}

export interface LocalRuntimeProps {
  /** The state folder (objects, key, executions, logs). Kept between runs. */
  readonly stateDirectory: string;
  /** @default 0 - any free port */
  readonly s3Port?: number;
  /** @default 0 - any free port */
  readonly apiPort?: number;
  /** @default true */
  readonly serveApi?: boolean;
  /** @default - synthesized in-process from lib/dlops-stack.ts, cached in the state folder while lib/ is unchanged */
  readonly template?: CfnTemplate;
  readonly observer?: ExecutionObserver & { onJobLine?(line: JobLine): void };
  /** Retry waits in ms by state name. @default - the definition's own intervals */
  readonly retryIntervalOverrides?: Record<string, number | number[]>;
  /** Write runtime.json for other commands. @default false */
  readonly writeRuntimeFile?: boolean;
  /** Seconds a stopped training job gets between SIGTERM and SIGKILL. @default 30 */
  readonly stopTimeoutSeconds?: number;
}

export class LocalRuntime {
  private static current: LocalRuntime | undefined;
  readonly dataBucket = LOCAL_DATA_BUCKET;
  readonly modelBucket = LOCAL_MODEL_BUCKET;
  private stopped = false;
  private readonly triggers = new Set<Promise<unknown>>();
  private readonly startListeners = new Set<(record: ExecutionRecord) => void>();

  private constructor(
    readonly paths: ReturnType<typeof statePaths>,
    readonly s3Server: LocalS3,
    readonly s3: S3Client,
    readonly pipeline: LocalPipeline,
    readonly stateMachine: LocalStateMachine,
    readonly batch: LocalBatch,
    readonly api: ApiAdapter | undefined,
    readonly environment: Record<string, string>,
    private readonly writeRuntimeFile: boolean,
  ) {}

  get endpoint(): string {
    return this.s3Server.endpoint;
  }

  static async start(props: LocalRuntimeProps): Promise<LocalRuntime> {
    // The handlers read the environment once and share module-level clients: one runtime per process.
    if (LocalRuntime.current) throw new ConfigError(`A local runtime is already running in this process (state in ${LocalRuntime.current.paths.root}).`);
    const paths = statePaths(props.stateDirectory);
    mkdirSync(paths.logs, { recursive: true });
    // The key is created before any handler runs, so Register and inference share it.
    const { loadOrCreateLocalKey } = require('../functions/core/crypto') as typeof import('../functions/core/crypto');
    loadOrCreateLocalKey(paths.keyFile);

    const s3Server = await startLocalS3({ directory: paths.s3, buckets: [LOCAL_DATA_BUCKET, LOCAL_MODEL_BUCKET], port: props.s3Port ?? 0 }).catch((error: unknown) => {
      throw portError(error, 'S3', props.s3Port);
    });
    let api: ApiAdapter | undefined;
    try {
      const environment: Record<string, string> = {
        [ENV.dataBucket]: LOCAL_DATA_BUCKET,
        [ENV.modelBucket]: LOCAL_MODEL_BUCKET,
        [ENV.s3Endpoint]: s3Server.endpoint,
        [ENV.localKeyFile]: paths.keyFile,
        [ENV.codeVersion]: process.env[ENV.codeVersion] ?? codeVersion(),
        AWS_REGION: LOCAL_REGION,
      };
      // Handlers read their environment once, at first use: it must be in place before any loads.
      Object.assign(process.env, environment);
      delete process.env[ENV.kmsKeyArn];

      const template = props.template ?? loadTemplate(paths.templateCache);
      const pipeline = localPipeline(template, { region: LOCAL_REGION, account: LOCAL_ACCOUNT, dataBucket: LOCAL_DATA_BUCKET, modelBucket: LOCAL_MODEL_BUCKET }, environment);
      process.env[ENV.stateMachineArn] = `arn:aws:states:${LOCAL_REGION}:${LOCAL_ACCOUNT}:stateMachine:${pipeline.stateMachineName}`;

      const batch = new LocalBatch({
        entry: TRAIN_ENTRY,
        cwd: REPO_ROOT,
        localEnvironment: { [ENV.s3Endpoint]: s3Server.endpoint, [ENV.localKeyFile]: paths.keyFile, AWS_REGION: LOCAL_REGION },
        logDirectory: join(paths.logs, 'batch'),
        jobDefinition: pipeline.jobDefinition,
        onLine: (line) => props.observer?.onJobLine?.(line),
        stopTimeoutSeconds: props.stopTimeoutSeconds,
      });
      const functions: Record<string, LocalFunction> = {};
      for (const [state, load] of Object.entries(TASK_HANDLERS)) {
        const task = pipeline.definition.States[state] as { Resource?: string; Parameters?: { FunctionName?: string } } | undefined;
        if (!task) continue;
        const name = task.Parameters?.FunctionName ?? task.Resource ?? state;
        const config = pipeline.functionConfig(name);
        functions[state] = { name, load: async () => load(), timeoutSeconds: config?.timeoutSeconds, memoryMB: config?.memoryMB };
      }
      let runtime: LocalRuntime | undefined;
      const observer: ExecutionObserver = {
        onStarted: (record) => {
          props.observer?.onStarted?.(record);
          runtime?.startListeners.forEach((listener) => listener(record));
        },
        onTransition: (record, transition, event) => {
          appendFileSync(join(paths.logs, `${record.name}.execution.jsonl`), JSON.stringify({ time: new Date().toISOString(), ...event, state: transition.state }) + '\n');
          props.observer?.onTransition?.(record, transition, event);
        },
        onFinished: (record) => props.observer?.onFinished?.(record),
      };
      const stateMachine = new LocalStateMachine({
        name: pipeline.stateMachineName,
        definition: pipeline.definition,
        region: LOCAL_REGION,
        account: LOCAL_ACCOUNT,
        functions,
        batch,
        storeDirectory: paths.executions,
        observer,
        retryIntervalOverrides: props.retryIntervalOverrides,
      });

      if (props.serveApi ?? true) {
        const inference = require('../functions/inference/handler') as { handler: ProxyHandler };
        api = await startApiAdapter({
          handler: inference.handler,
          port: props.apiPort ?? 0,
          resources: pipeline.apiResources.length > 0 ? pipeline.apiResources : undefined,
          functionName: 'dlops-inference',
          onError: (error) => console.error('inference handler failed:', error),
        }).catch((error: unknown) => {
          throw portError(error, 'inference API', props.apiPort);
        });
      }

      runtime = new LocalRuntime(paths, s3Server, localS3Client(s3Server.endpoint), pipeline, stateMachine, batch, api, environment, props.writeRuntimeFile ?? false);
      runtime.listenForManifests(template);
      LocalRuntime.current = runtime;
      if (runtime.writeRuntimeFile) {
        const info: RuntimeInfo = {
          pid: process.pid,
          s3Endpoint: s3Server.endpoint,
          apiUrl: api?.url,
          dataBucket: LOCAL_DATA_BUCKET,
          modelBucket: LOCAL_MODEL_BUCKET,
          keyFile: paths.keyFile,
          startedAt: new Date().toISOString(),
        };
        writeFileSync(paths.runtimeFile, JSON.stringify(info, null, 2));
      }
      return runtime;
    } catch (error) {
      await api?.stop();
      await s3Server.stop();
      throw error;
    }
  }

  /** Calls `listener` with each execution this runtime starts from now on. */
  onExecutionStarted(listener: (record: ExecutionRecord) => void): () => void {
    this.startListeners.add(listener);
    return () => {
      this.startListeners.delete(listener);
    };
  }

  /**
   * Waits for an execution (by run id) to end; if it has not started yet (its trigger is still
   * on the way), first waits up to `startTimeoutMs` for it to start.
   */
  async waitForExecution(name: string, startTimeoutMs = 30_000): Promise<ExecutionRecord> {
    if (!this.stateMachine.describe(name)) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          off();
          reject(new ConfigError(`No execution named ${name} started within ${startTimeoutMs / 1000} s of waiting.`));
        }, startTimeoutMs);
        const off = this.onExecutionStarted((record) => {
          if (record.name !== name) return;
          clearTimeout(timer);
          off();
          resolve();
        });
        // It may have started between the check and the subscription.
        if (this.stateMachine.describe(name)) {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
    }
    return this.stateMachine.wait(name);
  }

  /** Resolves once every trigger invocation received so far has finished (the run it starts may still be going). */
  async settleTriggers(): Promise<void> {
    while (this.triggers.size > 0) await Promise.allSettled([...this.triggers]);
  }

  /** Stops everything: running executions (training jobs get SIGTERM), the API, S3. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.s3Server.server.removeAllListeners('event');
    await this.settleTriggers();
    await this.stateMachine.abortAll();
    await this.api?.stop();
    this.s3.destroy();
    await this.s3Server.stop();
    if (this.writeRuntimeFile) rmSync(this.paths.runtimeFile, { force: true });
    if (LocalRuntime.current === this) LocalRuntime.current = undefined;
  }

  /**
   * S3 -> EventBridge -> trigger: each object-created notification becomes the "Object Created"
   * event; the template's rules whose pattern matches it hand it to the trigger core, which starts
   * the execution through this runtime's state machine.
   */
  private listenForManifests(template: CfnTemplate): void {
    const patterns = Object.values(template.Resources)
      .filter((r) => r.Type === 'AWS::Events::Rule')
      .map((r) => this.pipeline.resolver.resolve(r.Properties?.EventPattern) as Record<string, unknown> | undefined)
      .filter((p): p is Record<string, unknown> => p !== undefined && (p.source as unknown[] | undefined)?.includes('aws.s3') === true);
    if (patterns.length === 0) throw new ConfigError('The template has no EventBridge rule for S3 events: nothing would start a run.');
    const { startRunFromEvent } = require('../functions/trigger/core') as typeof import('../functions/trigger/core');
    this.s3Server.server.on('event', (notification: { Records?: S3NotificationRecord[] }) => {
      for (const record of notification.Records ?? []) {
        const event = toObjectCreatedEvent(record, LOCAL_REGION, LOCAL_ACCOUNT);
        if (!event || !patterns.some((p) => matchesPattern(p, event))) continue;
        const invocation = startRunFromEvent(event, this.stateMachine)
          .catch((error: unknown) => console.error(`trigger failed for s3://${event.detail.bucket.name}/${event.detail.object.key}:`, error))
          .finally(() => this.triggers.delete(invocation));
        this.triggers.add(invocation);
      }
    });
  }
}

function codeVersion(): string {
  try {
    return `local-${(require('../package.json') as { version: string }).version}`;
  } catch {
    return 'local';
  }
}

function portError(error: unknown, what: string, port: number | undefined): unknown {
  if ((error as NodeJS.ErrnoException)?.code === 'EADDRINUSE') {
    return new ConfigError(
      `Port ${port} on 127.0.0.1 (local ${what}) is already in use: is another \`dlops local up\` running? Stop it, or choose another port (--${what === 'S3' ? 's3' : 'api'}-port).`,
      { cause: error },
    );
  }
  return error;
}
