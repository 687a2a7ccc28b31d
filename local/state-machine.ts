/**
 * The Step Functions stand-in: the synthesized definition run by aws-local-stepfunctions, with
 * each Task state overridden by name to call the local Lambda or Batch stand-in. Retry, Catch,
 * Choice and Fail are the interpreter's, as defined; executions are named and a name is never
 * started twice (StartExecution's ExecutionAlreadyExists), also across restarts when a store
 * folder is given.
 */
import './polyfill';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { StateMachine, type RunOptions, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { ConfigError } from '../functions/core/errors';
import { LocalLambda, type LocalFunction } from './lambda';
import type { ExecutionStarter } from '../functions/trigger/core';
import type { LocalBatch, SubmitJobParameters } from './batch';

export const LAMBDA_INVOKE = 'arn:aws:states:::lambda:invoke';
export const BATCH_SUBMIT_SYNC = 'arn:aws:states:::batch:submitJob.sync';

/**
 * A Task without TimeoutSeconds runs until it ends in Step Functions (the ASL default is
 * 99999999 s: https://states-language.net/#task-state); aws-local-stepfunctions defaults to 60 s,
 * which would cut training short. Node's timers overflow past 2^31-1 ms (and then fire at
 * once), so the longest timeout a local run can honour stands in for the default: 24.8 days.
 */
export const LOCAL_DEFAULT_TASK_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

type JsonObject = Record<string, unknown>;
type TaskHandlers = NonNullable<NonNullable<RunOptions['overrides']>['taskResourceLocalHandlers']>;

export interface DefinitionAdjustment {
  readonly state: string;
  readonly field: string;
  readonly value: unknown;
  readonly why: string;
}

/** Every state of a definition, with nested Parallel branches and Map processors. */
export function allStates(definition: { States: Record<string, JsonObject> }): Array<[string, JsonObject]> {
  const out: Array<[string, JsonObject]> = [];
  for (const [name, state] of Object.entries(definition.States)) {
    out.push([name, state]);
    for (const branch of (state.Branches as Array<{ States: Record<string, JsonObject> }> | undefined) ?? []) out.push(...allStates(branch));
    const processor = (state.ItemProcessor ?? state.Iterator) as { States: Record<string, JsonObject> } | undefined;
    if (processor) out.push(...allStates(processor));
  }
  return out;
}

/**
 * The only changes made to the synthesized definition before it runs: interpreter defaults that
 * differ from the service's are written out explicitly. Returns a copy and the list of changes.
 */
export function prepareDefinition(definition: StateMachineDefinition): { definition: StateMachineDefinition; adjustments: DefinitionAdjustment[] } {
  const copy = JSON.parse(JSON.stringify(definition)) as StateMachineDefinition;
  const adjustments: DefinitionAdjustment[] = [];
  for (const [name, state] of allStates(copy as unknown as { States: Record<string, JsonObject> })) {
    if (state.Type === 'Task' && state.TimeoutSeconds === undefined && state.TimeoutSecondsPath === undefined) {
      state.TimeoutSeconds = LOCAL_DEFAULT_TASK_TIMEOUT_SECONDS;
      adjustments.push({
        state: name,
        field: 'TimeoutSeconds',
        value: LOCAL_DEFAULT_TASK_TIMEOUT_SECONDS,
        why: 'no timeout in the template: the longest a local timer can wait, instead of the interpreter default of 60 s',
      });
    }
  }
  return { definition: copy, adjustments };
}

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED' | 'TIMED_OUT';

export interface StateTransition {
  readonly state: string;
  readonly type: string;
  readonly enteredAt: number;
  exitedAt?: number;
  status: 'running' | 'succeeded' | 'failed' | 'caught' | 'retrying';
  error?: string;
}

export interface ExecutionRecord {
  readonly name: string;
  readonly executionArn: string;
  readonly input: unknown;
  status: ExecutionStatus;
  readonly startDate: string;
  stopDate?: string;
  output?: unknown;
  error?: string;
  cause?: string;
  transitions: StateTransition[];
}

/** Told about each execution's progress (the console reporter, tests). */
export interface ExecutionObserver {
  onStarted?(execution: ExecutionRecord): void;
  onTransition?(execution: ExecutionRecord, transition: StateTransition, event: { type: string; error?: string; cause?: string }): void;
  onFinished?(execution: ExecutionRecord): void;
}

/** StartExecution's answer to a name it has seen: https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html */
export class ExecutionAlreadyExists extends Error {
  override readonly name = 'ExecutionAlreadyExists';
}

export interface LocalStateMachineProps {
  readonly name: string;
  readonly definition: StateMachineDefinition;
  readonly region?: string;
  readonly account?: string;
  /** The handler behind each Lambda task, by state name. */
  readonly functions: Record<string, LocalFunction>;
  readonly lambda?: LocalLambda;
  /** Runs Batch tasks; required when the definition has one. */
  readonly batch?: LocalBatch;
  /** Folder that keeps execution records, so names stay taken across restarts. @default - in memory only */
  readonly storeDirectory?: string;
  readonly observer?: ExecutionObserver;
  /** Retry waits in ms by state name (tests); @default - the definition's own intervals */
  readonly retryIntervalOverrides?: Record<string, number | number[]>;
}

export class LocalStateMachine implements ExecutionStarter {
  readonly arn: string;
  readonly definition: StateMachineDefinition;
  readonly adjustments: DefinitionAdjustment[];
  private readonly machine: StateMachine;
  private readonly lambda: LocalLambda;
  private readonly records = new Map<string, ExecutionRecord>();
  private readonly done = new Map<string, Promise<ExecutionRecord>>();
  private readonly aborts = new Map<string, AbortController>();
  private readonly region: string;
  private readonly account: string;

  constructor(private readonly props: LocalStateMachineProps) {
    this.region = props.region ?? 'us-east-1';
    this.account = props.account ?? '000000000000';
    this.arn = `arn:aws:states:${this.region}:${this.account}:stateMachine:${props.name}`;
    const prepared = prepareDefinition(props.definition);
    this.definition = prepared.definition;
    this.adjustments = prepared.adjustments;
    this.lambda = props.lambda ?? new LocalLambda(this.region, this.account);
    this.checkTasks();
    // checkArn stays on: the resolved placeholders are well-formed ARNs like the service's.
    // A copy: the validator writes defaults (QueryLanguage) into the object it is given.
    this.machine = new StateMachine(JSON.parse(JSON.stringify(this.definition)) as StateMachineDefinition, {
      validationOptions: { checkArn: true, checkPaths: true },
    });
    this.loadStore();
  }

  /** ExecutionStarter: a name seen before starts nothing (the service answers ExecutionAlreadyExists). */
  async start(name: string, input: unknown): Promise<{ started: boolean; executionArn?: string }> {
    try {
      const record = this.startExecution(name, input);
      return { started: true, executionArn: record.executionArn };
    } catch (error) {
      if (error instanceof ExecutionAlreadyExists) return { started: false, executionArn: this.executionArn(name) };
      throw error;
    }
  }

  startExecution(name: string, input: unknown): ExecutionRecord {
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(name)) {
      throw new ConfigError(`Execution name must be 1-80 characters of A-Z a-z 0-9 - _. Received ${JSON.stringify(name)}.`);
    }
    if (this.records.has(name)) throw new ExecutionAlreadyExists(`Execution already exists: '${this.executionArn(name)}'`);
    const record: ExecutionRecord = {
      name,
      executionArn: this.executionArn(name),
      input,
      status: 'RUNNING',
      startDate: new Date().toISOString(),
      transitions: [],
    };
    this.records.set(name, record);
    this.save(record);
    this.props.observer?.onStarted?.(record);
    this.done.set(name, this.run(record));
    return record;
  }

  /** Resolves when the execution ends (in any status). */
  async wait(name: string): Promise<ExecutionRecord> {
    const running = this.done.get(name);
    if (running) return running;
    const record = this.records.get(name);
    if (!record) throw new ConfigError(`No execution named ${name}.`);
    return record;
  }

  describe(name: string): ExecutionRecord | undefined {
    return this.records.get(name);
  }

  list(): ExecutionRecord[] {
    return [...this.records.values()];
  }

  /** Aborts every running execution (Ctrl-C) and waits for them to settle. */
  async abortAll(): Promise<void> {
    for (const controller of this.aborts.values()) controller.abort();
    await this.props.batch?.stopAll();
    await Promise.all([...this.done.values()]);
  }

  private executionArn(name: string): string {
    return `arn:aws:states:${this.region}:${this.account}:execution:${this.props.name}:${name}`;
  }

  private async run(record: ExecutionRecord): Promise<ExecutionRecord> {
    const controller = new AbortController();
    this.aborts.set(record.name, controller);
    const execution = this.machine.run(record.input as never, {
      overrides: {
        taskResourceLocalHandlers: this.taskHandlers(controller.signal),
        retryIntervalOverrides: this.props.retryIntervalOverrides,
      },
      noThrowOnAbort: true,
      context: {
        Execution: { Id: record.executionArn, Name: record.name, RoleArn: `arn:aws:iam::${this.account}:role/local-state-machine` },
        StateMachine: { Id: this.arn, Name: this.props.name },
      },
    });
    const onAbort = () => execution.abort();
    controller.signal.addEventListener('abort', onAbort, { once: true });
    const followed = this.follow(record, execution.eventLogs);
    try {
      const output = await execution.result;
      if (controller.signal.aborted) record.status = 'ABORTED';
      else {
        record.status = 'SUCCEEDED';
        record.output = output;
      }
    } catch (error) {
      const name = error instanceof Error ? error.name : '';
      if (name === 'ExecutionTimeoutError') record.status = 'TIMED_OUT';
      else if (record.status === 'RUNNING') record.status = 'FAILED';
      // The ExecutionFailed event carries Error and Cause; fall back to the thrown error.
      const inner = error instanceof Error && error.cause instanceof Error ? error.cause : undefined;
      record.error ??= inner?.name ?? name;
      record.cause ??= inner?.message ?? (error instanceof Error ? error.message : String(error));
    } finally {
      controller.signal.removeEventListener('abort', onAbort);
      this.aborts.delete(record.name);
    }
    await followed;
    if (record.error !== undefined && (record.status as ExecutionStatus) === 'RUNNING') record.status = 'FAILED';
    record.stopDate = new Date().toISOString();
    this.save(record);
    this.props.observer?.onFinished?.(record);
    return record;
  }

  private async follow(record: ExecutionRecord, events: AsyncGenerator<unknown>): Promise<void> {
    const open = new Map<string, StateTransition>();
    for await (const raw of events) {
      const event = raw as { type: string; timestamp: number; state?: { name: string; type: string }; Error?: string; Cause?: unknown };
      const cause = event.Cause === undefined ? undefined : typeof event.Cause === 'string' ? event.Cause : JSON.stringify(event.Cause);
      if (event.type === 'ExecutionFailed') {
        record.status = 'FAILED';
        record.error = event.Error;
        record.cause = cause;
        continue;
      }
      if (!event.state) continue;
      const { name, type } = event.state;
      let transition = open.get(name);
      switch (event.type) {
        case 'StateEntered':
          transition = { state: name, type, enteredAt: event.timestamp, status: 'running' };
          open.set(name, transition);
          record.transitions.push(transition);
          break;
        case 'StateExited':
          if (!transition) continue;
          transition.exitedAt = event.timestamp;
          if (transition.status === 'running' || transition.status === 'retrying') transition.status = 'succeeded';
          open.delete(name);
          break;
        case 'StateFailed':
          if (!transition) continue;
          transition.status = 'failed';
          transition.error = event.Error;
          transition.exitedAt = event.timestamp;
          break;
        case 'StateRetried':
          if (!transition) continue;
          transition.status = 'retrying';
          break;
        case 'StateCaught':
          if (!transition) continue;
          transition.status = 'caught';
          transition.exitedAt = event.timestamp;
          open.delete(name);
          break;
        default:
          continue;
      }
      this.props.observer?.onTransition?.(record, transition, { type: event.type, error: event.Error, cause });
    }
  }

  private taskHandlers(signal: AbortSignal): TaskHandlers {
    const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
    for (const [name, state] of allStates(this.definition as unknown as { States: Record<string, JsonObject> })) {
      if (state.Type !== 'Task') continue;
      const resource = String(state.Resource);
      if (resource === LAMBDA_INVOKE || isLambdaArn(resource)) {
        const fn = this.props.functions[name];
        handlers[name] = async (input: unknown) => {
          if (resource === LAMBDA_INVOKE) {
            const { Payload } = (input ?? {}) as { FunctionName?: string; Payload?: unknown };
            const result = await this.lambda.invoke(fn, Payload);
            return LocalLambda.invokeResponse(result.payload, result.requestId);
          }
          // A Lambda ARN as the Resource is the legacy integration: the payload is the input, the result is the output.
          return (await this.lambda.invoke(fn, input)).payload;
        };
      } else if (resource === BATCH_SUBMIT_SYNC) {
        const batch = this.props.batch!;
        handlers[name] = async (input: unknown) => batch.submitJobSync(input as SubmitJobParameters, signal);
      }
    }
    return handlers as TaskHandlers;
  }

  /** Fails at start-up, naming the state, when a task has no local stand-in. */
  private checkTasks(): void {
    for (const [name, state] of allStates(this.definition as unknown as { States: Record<string, JsonObject> })) {
      if (state.Type !== 'Task') continue;
      const resource = String(state.Resource);
      if (resource === LAMBDA_INVOKE || isLambdaArn(resource)) {
        if (!this.props.functions[name]) throw new ConfigError(`Task state ${name} invokes a Lambda function, but no local handler is bound to ${name}.`);
      } else if (resource === BATCH_SUBMIT_SYNC) {
        if (!this.props.batch) throw new ConfigError(`Task state ${name} submits a Batch job, but the local runtime has no Batch runner.`);
      } else {
        throw new ConfigError(`Task state ${name} uses ${resource}, which the local runtime does not run (lambda:invoke and batch:submitJob.sync only).`);
      }
    }
  }

  private save(record: ExecutionRecord): void {
    const dir = this.props.storeDirectory;
    if (!dir) return;
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${record.name}.json`), JSON.stringify(record, null, 2));
  }

  private loadStore(): void {
    const dir = this.props.storeDirectory;
    if (!dir || !existsSync(dir)) return;
    for (const file of readdirSync(dir)) {
      if (!file.endsWith('.json')) continue;
      try {
        const record = JSON.parse(readFileSync(join(dir, file), 'utf8')) as ExecutionRecord;
        // A record still RUNNING belongs to a runtime that was stopped mid-execution.
        if (record.status === 'RUNNING') {
          record.status = 'ABORTED';
          record.stopDate ??= new Date().toISOString();
          this.save(record);
        }
        this.records.set(record.name, record);
      } catch {
        // An unreadable record only loses the name's reservation; the runtime can still start.
      }
    }
  }
}

function isLambdaArn(resource: string): boolean {
  return /^arn:aws[a-z-]*:lambda:/.test(resource);
}
