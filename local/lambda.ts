/**
 * The Lambda stand-in: the same handler modules, called with the same event shapes, one
 * invocation at a time per function (a warm execution environment never runs two at once).
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';

export type LambdaHandler = (event: unknown, context: Context) => Promise<unknown>;

export interface LocalFunction {
  /** Function name as the state machine's Parameters name it (the resolved placeholder). */
  readonly name: string;
  /** Loads the handler module on first use, so the environment is in place before the module reads it. */
  readonly load: () => Promise<LambdaHandler>;
  /** @default 900 - Lambda's maximum, used only for getRemainingTimeInMillis */
  readonly timeoutSeconds?: number;
  /** @default 1024 */
  readonly memoryMB?: number;
}

/**
 * The error a failed invocation reports. Step Functions takes `errorType` as the error name that
 * Retry/Catch match, and the Lambda error document as the cause:
 * https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html
 */
export class LambdaFunctionError extends Error {
  constructor(
    readonly errorType: string,
    readonly errorMessage: string,
    readonly trace: string[],
  ) {
    super(JSON.stringify({ errorType, errorMessage, trace }));
    this.name = errorType;
  }
}

/** The Lambda Invoke API answer that `arn:aws:states:::lambda:invoke` returns (before ResultSelector). */
export interface InvokeResponse {
  readonly ExecutedVersion: string;
  readonly Payload: unknown;
  readonly StatusCode: number;
  readonly SdkHttpMetadata: { readonly HttpStatusCode: number };
  readonly SdkResponseMetadata: { readonly RequestId: string };
}

export class LocalLambda {
  private readonly handlers = new WeakMap<LocalFunction, Promise<LambdaHandler>>();
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly region = 'us-east-1', private readonly account = '000000000000') {}

  /** Invokes like `lambda:invoke` (RequestResponse): payload in and out as JSON; a thrown error becomes LambdaFunctionError. */
  async invoke(fn: LocalFunction, payload: unknown): Promise<{ payload: unknown; requestId: string }> {
    const previous = this.queues.get(fn.name) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.invokeNow(fn, payload));
    this.queues.set(fn.name, run);
    return run;
  }

  private async invokeNow(fn: LocalFunction, payload: unknown): Promise<{ payload: unknown; requestId: string }> {
    const requestId = randomUUID();
    let handler = this.handlers.get(fn);
    if (!handler) {
      handler = fn.load();
      this.handlers.set(fn, handler);
    }
    const deadline = Date.now() + (fn.timeoutSeconds ?? 900) * 1000;
    const functionName = fn.name.split(':').pop() ?? fn.name;
    const context: Context = {
      callbackWaitsForEmptyEventLoop: true,
      functionName,
      functionVersion: '$LATEST',
      invokedFunctionArn: fn.name.startsWith('arn:') ? fn.name : `arn:aws:lambda:${this.region}:${this.account}:function:${fn.name}`,
      memoryLimitInMB: String(fn.memoryMB ?? 1024),
      awsRequestId: requestId,
      logGroupName: `/aws/lambda/${functionName}`,
      logStreamName: `local/${requestId}`,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: () => undefined,
      fail: () => undefined,
      succeed: () => undefined,
    };
    // The event crosses a JSON boundary in AWS; so does it here, so no handler sees shared objects.
    const event = JSON.parse(JSON.stringify(payload ?? null)) as unknown;
    let timer: NodeJS.Timeout | undefined;
    // Lambda stops a function at its timeout and Step Functions sees Sandbox.Timedout; in-process the
    // handler cannot be stopped, so its result is ignored instead.
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new LambdaFunctionError('Sandbox.Timedout', `${new Date().toISOString()} ${requestId} Task timed out after ${(fn.timeoutSeconds ?? 900).toFixed(2)} seconds`, [])),
        Math.min((fn.timeoutSeconds ?? 900) * 1000, 2 ** 31 - 1),
      );
    });
    try {
      const result = await Promise.race([(await handler)(event, context), timedOut]);
      return { payload: result === undefined ? null : (JSON.parse(JSON.stringify(result)) as unknown), requestId };
    } catch (error) {
      if (error instanceof LambdaFunctionError) throw error;
      if (error instanceof Error) {
        throw new LambdaFunctionError(error.name || 'Error', error.message, (error.stack ?? '').split('\n'));
      }
      throw new LambdaFunctionError('Error', String(error), []);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The answer of the optimised `lambda:invoke` integration. */
  static invokeResponse(payload: unknown, requestId: string): InvokeResponse {
    return {
      ExecutedVersion: '$LATEST',
      Payload: payload,
      StatusCode: 200,
      SdkHttpMetadata: { HttpStatusCode: 200 },
      SdkResponseMetadata: { RequestId: requestId },
    };
  }
}
