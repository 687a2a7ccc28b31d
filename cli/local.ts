import type { Command } from 'commander';
import { ENV } from '../functions/core/env';

/** Ports of `local up`: s3rver's usual one, and KServe's v2 HTTP port. */
export const DEFAULT_S3_PORT = 4568;
export const DEFAULT_API_PORT = 8080;

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`A port must be a whole number from 0 to 65535. Received ${JSON.stringify(value)}.`);
  return n;
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`Expected a whole number of at least 1. Received ${JSON.stringify(value)}.`);
  return n;
}

/** `dlops local up`, `dlops submit`, `dlops demo`. Modules load inside each action: the CLI starts fast for other commands. */
export function registerLocalCommands(program: Command): void {
  const local = program.command('local').description('The local runtime: the whole pipeline on this machine, no AWS account.');

  local
    .command('up')
    .description('Start local S3, the pipeline and the inference API; runs each uploaded datasets/<name>/dataset.json. Ctrl-C stops.')
    .option('--state-dir <dir>', 'state folder (objects, key, executions, logs), kept between runs', '.dlops')
    .option('--s3-port <port>', 'S3 endpoint port on 127.0.0.1', port, DEFAULT_S3_PORT)
    .option('--api-port <port>', 'inference API port on 127.0.0.1', port, DEFAULT_API_PORT)
    .option('--verbose', "also print the training container's log lines", false)
    .action(async (opts: { stateDir: string; s3Port: number; apiPort: number; verbose: boolean }) => {
      const { LocalRuntime, LOCAL_DATA_BUCKET, statePaths } = await import('../local/runtime');
      const { runningRuntime } = await import('../local/submit');
      const { ConsoleReporter } = await import('../local/reporter');
      const running = runningRuntime(opts.stateDir);
      if (running) {
        throw new Error(`dlops local up is already running on this state folder (pid ${running.pid}, S3 ${running.s3Endpoint}). Stop it first (Ctrl-C in its terminal).`);
      }
      const { redirectProcessOutput } = await import('../local/stdio');
      const paths = statePaths(opts.stateDir);
      // The functions' own output goes to logs/functions.log, as it would to CloudWatch Logs.
      const stdio = redirectProcessOutput(paths.functionLog);
      const out = (line = '') => stdio.terminal.write(`${line}\n`);
      const reporter = new ConsoleReporter({ verbose: opts.verbose, out: stdio.terminal });
      let apiUrl: string | undefined;
      // After each run, where to look next: the model to call, the report, or the failure record.
      const observer = {
        onStarted: (record: Parameters<typeof reporter.onStarted>[0]) => reporter.onStarted(record),
        onTransition: (...args: Parameters<typeof reporter.onTransition>) => reporter.onTransition(...args),
        onJobLine: (line: Parameters<typeof reporter.onJobLine>[0]) => reporter.onJobLine(line),
        onFinished: (record: Parameters<typeof reporter.onFinished>[0]) => {
          reporter.onFinished(record);
          const output = record.output as { register?: { model: string; version: string } } | undefined;
          const runs = `s3://${LOCAL_DATA_BUCKET}/runs/${record.name}`;
          if (output?.register) {
            out(`  model ${output.register.model} version ${output.register.version}: POST ${apiUrl}/v2/models/${output.register.model}/infer`);
            out(`  report ${runs}/report.html`);
          } else if (record.status === 'SUCCEEDED') out(`  not promoted: see ${runs}/evaluation.json and ${runs}/report.html`);
          else out(`  status ${runs}/status.json   logs ${paths.logs}`);
        },
      };
      let runtime: Awaited<ReturnType<typeof LocalRuntime.start>>;
      try {
        runtime = await LocalRuntime.start({
          stateDirectory: opts.stateDir,
          s3Port: opts.s3Port,
          apiPort: opts.apiPort,
          observer,
          writeRuntimeFile: true,
        });
        apiUrl = runtime.api?.url;
      } catch (error) {
        stdio.restore();
        throw error;
      }
      out('dlops local runtime is up');
      out(`  S3             ${runtime.endpoint}   buckets ${runtime.dataBucket}, ${runtime.modelBucket}`);
      out(`  inference API  ${runtime.api?.url}   (try GET /v2/health/ready)`);
      out(`  state machine  ${runtime.stateMachine.arn}`);
      out(`  state folder   ${paths.root}   (logs in ${paths.logs})`);
      out('');
      out('  submit a dataset:  npm run dlops -- submit <file|dir> --dataset NAME [--manifest FILE]');
      out('  other tools:       ' + Object.entries(runtime.environment).filter(([k]) => k !== ENV.codeVersion).map(([k, v]) => `${k}=${v}`).join(' '));
      out('Ctrl-C stops everything.');
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (signal: string) => {
          if (stopping) {
            out(`${signal} again: exiting without waiting.`);
            process.exit(130);
          }
          stopping = true;
          out(`\n${signal}: stopping (running executions are aborted, training jobs get SIGTERM)...`);
          void runtime.stop().then(resolve, (error: unknown) => {
            out(`stopping failed: ${error instanceof Error ? error.message : String(error)}`);
            resolve();
          });
        };
        process.on('SIGINT', () => stop('SIGINT'));
        process.on('SIGTERM', () => stop('SIGTERM'));
      });
      out('stopped.');
      stdio.restore();
      process.exit(0);
    });

  program
    .command('submit <path>')
    .description('Upload a data file or folder to datasets/<name>/data/, then its manifest last (which starts a run): to a running `local up`, or to AWS.')
    .requiredOption('--dataset <name>', 'dataset name (the folder under datasets/)')
    .option('--manifest <file>', 'the manifest (default: dataset.json in the folder)')
    .option('--endpoint <url>', `S3 endpoint of a local runtime (default: ${ENV.s3Endpoint}, else a running \`local up\`, else AWS)`)
    .option('--bucket <name>', `data bucket (default: ${ENV.dataBucket}, or the local runtime's)`)
    .option('--state-dir <dir>', 'state folder of the `local up` to find', '.dlops')
    .option('--skip-validation', 'upload even if the manifest does not validate (the run will fail in Preprocess)', false)
    .action(async (path: string, opts: { dataset: string; manifest?: string; endpoint?: string; bucket?: string; stateDir: string; skipValidation: boolean }) => {
      const { resolveTarget, submitDataset } = await import('../local/submit');
      const target = resolveTarget({ endpoint: opts.endpoint, bucket: opts.bucket, stateDirectory: opts.stateDir });
      process.stdout.write(`uploading to ${target.where}, bucket ${target.bucket}\n`);
      const result = await submitDataset(target, {
        path,
        dataset: opts.dataset,
        manifestFile: opts.manifest,
        skipValidation: opts.skipValidation,
        onUpload: (key, bytes) => process.stdout.write(`  s3://${target.bucket}/${key}  ${bytes.toLocaleString('en-US')} bytes\n`),
      });
      process.stdout.write(`manifest ETag ${result.manifestETag}: run ${result.runId}\n`);
      process.stdout.write(`(the same manifest bytes uploaded again start nothing new; its status lands in s3://${target.bucket}/runs/${result.runId}/)\n`);
      target.s3.destroy();
    });

  program
    .command('demo')
    .description('The whole pipeline end to end on MNIST digits: local runtime, upload, train, export, evaluate, register, HTTP inference.')
    .option('--rows <n>', 'digits in the dataset', positive)
    .option('--epochs <n>', 'training epochs', positive)
    .option('--held-out <n>', 'held-out digits sent to the inference API', positive)
    .option('--state-dir <dir>', 'state folder (wiped at start, kept after)', '.dlops/demo')
    .action(async (opts: { rows?: number; epochs?: number; heldOut?: number; stateDir: string }) => {
      const { runDemo } = await import('../local/demo');
      const result = await runDemo({ rows: opts.rows, epochs: opts.epochs, heldOut: opts.heldOut, stateDirectory: opts.stateDir });
      // Explicit exit: SDK keep-alive sockets and worker pools would otherwise hold the process.
      process.exit(result.status === 'SUCCEEDED' ? 0 : 1);
    });
}
