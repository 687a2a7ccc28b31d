/**
 * `npm run demo`: the whole pipeline on one machine, end to end. Starts the local runtime on a
 * fresh state folder, builds a CSV of real MNIST digits with a manifest for the seed network,
 * submits it as a user would, follows the execution, then sends held-out digits to the local
 * inference API one request at a time (Open Inference Protocol v2) and reports accuracy,
 * latency percentiles and where the report, the encrypted model and the logs are.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { getBytes } from '../functions/core/s3';
import { modelKeys, runKeys } from '../functions/core/layout';
import type { RegisterResult } from '../functions/core/contracts';
import { digits, digitsCsv, digitsManifest, DIGIT_SIDE, type Digit } from './mnist-dataset';
import { ConsoleReporter } from './reporter';
import { LocalRuntime, LOCAL_DATA_BUCKET, LOCAL_MODEL_BUCKET, statePaths } from './runtime';
import { redirectProcessOutput } from './stdio';
import { submitDataset } from './submit';

/** What the issue asks of the seed network's run: 8,000 digits, 5 epochs (the benchmark's setting). */
export const FULL_ROWS = 8000;
export const FULL_EPOCHS = 5;

export interface DemoOptions {
  /** @default .dlops/demo */
  readonly stateDirectory?: string;
  /** Digits in the dataset (70% train, 10% validation, 20% test). @default FULL_ROWS */
  readonly rows?: number;
  /** @default FULL_EPOCHS */
  readonly epochs?: number;
  /** Held-out digits sent to the API (never in the dataset). @default 500 */
  readonly heldOut?: number;
  readonly out?: NodeJS.WritableStream;
  readonly tty?: boolean;
  /** Send what the in-process functions print to logs/functions.log. @default true */
  readonly redirectFunctionOutput?: boolean;
}

export interface DemoResult {
  readonly status: string;
  readonly runId: string;
  readonly accuracy?: number;
  readonly latencyMs?: { readonly p50: number; readonly p90: number; readonly p99: number };
  readonly seconds: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index];
}

interface InferResponse {
  readonly outputs?: Array<{ name: string; datatype: string; shape: number[]; data: Array<number | string> }>;
  readonly error?: string;
}

/** Class index from an OIP v2 answer: argmax of the probabilities output. */
export function predictedClass(response: InferResponse): number {
  const output = response.outputs?.find((o) => o.name === 'output') ?? response.outputs?.find((o) => o.datatype === 'FP32');
  if (!output) throw new Error(`The inference answer has no FP32 output: ${JSON.stringify(response).slice(0, 300)}`);
  const values = output.data.map(Number);
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i] > values[best]) best = i;
  return best;
}

/** Sends each digit as its own request; returns accuracy and per-request latencies. */
export async function scoreOverHttp(apiUrl: string, model: string, heldOut: Digit[]): Promise<{ correct: number; latencies: number[] }> {
  const latencies: number[] = [];
  let correct = 0;
  for (const digit of heldOut) {
    const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, DIGIT_SIDE, DIGIT_SIDE, 1], datatype: 'FP32', data: digit.pixels }] });
    const started = performance.now();
    const response = await fetch(`${apiUrl}/v2/models/${model}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const answer = (await response.json()) as InferResponse;
    latencies.push(performance.now() - started);
    if (!response.ok) throw new Error(`POST /v2/models/${model}/infer answered ${response.status}: ${answer.error ?? JSON.stringify(answer)}`);
    if (predictedClass(answer) === digit.label) correct += 1;
  }
  return { correct, latencies };
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const started = Date.now();
  const out = options.out ?? process.stdout;
  let say = (line = '') => out.write(`${line}\n`);
  const rows = options.rows ?? FULL_ROWS;
  const epochs = options.epochs ?? FULL_EPOCHS;
  const heldOutCount = options.heldOut ?? 500;
  const stateDirectory = options.stateDirectory ?? join('.dlops', 'demo');
  const paths = statePaths(stateDirectory);
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;

  say('dlops demo: the whole pipeline on this machine, no AWS account, no Docker.');
  if (rows < FULL_ROWS || epochs < FULL_EPOCHS) {
    say(`NOTE: ${rows} digits x ${epochs} epochs instead of ${FULL_ROWS} x ${FULL_EPOCHS}: CPU training is too slow here for the full run within the time budget.`);
  }
  // A fresh start each time: the same manifest bytes would otherwise map to the execution that already ran.
  for (const dir of [paths.s3, paths.executions, paths.logs]) rmSync(dir, { recursive: true, force: true });

  say(`[${elapsed()}] starting the local runtime (state in ${relative(process.cwd(), paths.root) || '.'})`);
  // The functions' own output goes to a log file, as it would to CloudWatch Logs.
  const stdio = options.redirectFunctionOutput === false ? undefined : redirectProcessOutput(paths.functionLog);
  const terminal = options.out ?? stdio?.terminal ?? process.stdout;
  say = (line = '') => terminal.write(`${line}\n`);
  const reporter = new ConsoleReporter({ out: terminal, tty: options.tty });
  let runtime: LocalRuntime;
  try {
    runtime = await LocalRuntime.start({ stateDirectory, observer: reporter });
  } catch (error) {
    stdio?.restore();
    throw error;
  }
  try {
    say(`[${elapsed()}] S3 ${runtime.endpoint}  inference API ${runtime.api?.url}`);

    const dataset = 'digits';
    const datasetDir = join(paths.root, 'dataset');
    rmSync(datasetDir, { recursive: true, force: true });
    mkdirSync(datasetDir, { recursive: true });
    writeFileSync(join(datasetDir, 'digits.csv'), digitsCsv(digits(0, rows)));
    writeFileSync(join(datasetDir, 'dataset.json'), JSON.stringify(digitsManifest({ name: dataset, epochs }), null, 2));
    const heldOut = digits(rows, heldOutCount);
    say(`[${elapsed()}] built ${rows} MNIST digits as CSV + a manifest for the seed network (conv2d 32 3x3 relu, maxPooling 2, flatten, dense 10 softmax), ${epochs} epochs`);

    const target = { s3: runtime.s3, bucket: LOCAL_DATA_BUCKET, where: 'local runtime', local: true };
    const submitted = await submitDataset(target, {
      path: datasetDir,
      dataset,
      onUpload: (key, bytes) => say(`  uploaded s3://${LOCAL_DATA_BUCKET}/${key} (${(bytes / 1e6).toFixed(1)} MB)`),
    });
    say(`[${elapsed()}] the manifest upload triggers run ${submitted.runId}`);

    // The trigger runs on s3rver's event, right after the upload's response.
    await runtime.settleTriggers();
    const record = await runtime.waitForExecution(submitted.runId);
    const endState = record.transitions[record.transitions.length - 1]?.state;
    if (record.status !== 'SUCCEEDED' || endState !== 'Published') {
      say(`[${elapsed()}] the run ended ${record.status}${endState ? ` in ${endState}` : ''}: no model to serve.`);
      const evaluation = (record.output as { evaluate?: { reason?: string; metrics?: Record<string, number> } } | undefined)?.evaluate;
      if (evaluation) say(`  gate: ${evaluation.reason ?? ''}  (accuracy ${evaluation.metrics?.accuracy?.toFixed(4) ?? '?'})`);
      say(`  execution record: ${join(paths.executions, `${record.name}.json`)}`);
      say(`  logs: ${paths.logs}`);
      return { status: record.status === 'SUCCEEDED' ? `REJECTED` : record.status, runId: submitted.runId, seconds: (Date.now() - started) / 1000 };
    }
    const registered = (record.output as { register?: RegisterResult }).register!;

    say(`[${elapsed()}] sending ${heldOut.length} held-out digits to ${runtime.api!.url}/v2/models/${registered.model}/infer, one request each`);
    const { correct, latencies } = await scoreOverHttp(runtime.api!.url, registered.model, heldOut);
    latencies.sort((a, b) => a - b);
    const accuracy = correct / heldOut.length;
    const latencyMs = { p50: percentile(latencies, 50), p90: percentile(latencies, 90), p99: percentile(latencies, 99) };

    const reportFile = join(paths.root, 'report.html');
    writeFileSync(reportFile, (await getBytes(runtime.s3, { bucket: LOCAL_DATA_BUCKET, key: runKeys.report(submitted.runId) })).body);
    const onDisk = (bucket: string, key: string) => join(paths.s3, bucket, `${key}._S3rver_object`);

    const evaluated = (record.output as { evaluate?: { metrics?: Record<string, number> } }).evaluate?.metrics;
    say('');
    if (evaluated?.accuracy !== undefined) say(`test-split accuracy ${(evaluated.accuracy * 100).toFixed(1)}% (Evaluate step, ONNX Runtime on the 20% test split)`);
    say(`held-out accuracy   ${(accuracy * 100).toFixed(1)}% (${correct}/${heldOut.length} digits outside the dataset, over HTTP)`);
    say(`latency per request p50 ${latencyMs.p50.toFixed(1)} ms   p90 ${latencyMs.p90.toFixed(1)} ms   p99 ${latencyMs.p99.toFixed(1)} ms (HTTP round trip on loopback)`);
    say(`model               ${registered.model} version ${registered.version}, aliases ${registered.aliases.join(', ') || '-'}`);
    say(`report              ${reportFile}  (s3://${LOCAL_DATA_BUCKET}/${runKeys.report(submitted.runId)})`);
    say(`encrypted model     s3://${LOCAL_MODEL_BUCKET}/${modelKeys.artifact(registered.model, registered.version, 'model.onnx')}`);
    say(`                    on disk: ${onDisk(LOCAL_MODEL_BUCKET, modelKeys.artifact(registered.model, registered.version, 'model.onnx'))}`);
    say(`                    key: ${paths.keyFile} (raw AES keyring of the AWS Encryption SDK)`);
    say(`logs                functions ${paths.functionLog}`);
    say(`                    training  ${join(paths.logs, 'batch')}`);
    say(`                    execution ${join(paths.logs, `${submitted.runId}.execution.jsonl`)}`);
    say(`total               ${elapsed()}`);
    return { status: 'SUCCEEDED', runId: submitted.runId, accuracy, latencyMs, seconds: (Date.now() - started) / 1000 };
  } finally {
    await runtime.stop();
    stdio?.restore();
  }
}
