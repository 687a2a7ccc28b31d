import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchJobFailedError, LocalBatch, shouldRetryJob, type JobLine, type LocalJobDefinition } from '../../local/batch';

const QUEUE = 'arn:aws:batch:us-east-1:000000000000:job-queue/Queue';
const JOBDEF = 'arn:aws:batch:us-east-1:000000000000:job-definition/Train:1';

describe('LocalBatch', () => {
  let logs: string;
  let lines: JobLine[];
  const batch = (definition: LocalJobDefinition) =>
    new LocalBatch({
      entry: join(__dirname, 'fixtures', 'container.ts'),
      cwd: process.cwd(),
      localEnvironment: { DLOPS_S3_ENDPOINT: 'http://127.0.0.1:1' },
      logDirectory: logs,
      jobDefinition: (arn) => {
        expect(arn).toBe(JOBDEF);
        return definition;
      },
      onLine: (line) => lines.push(line),
      stopTimeoutSeconds: 1,
    });
  const submit = (mode: string) => ({
    JobName: 'run-1',
    JobQueue: QUEUE,
    JobDefinition: JOBDEF,
    ContainerOverrides: { Environment: [{ Name: 'RUN_ID', Value: 'run-1' }, { Name: 'MODE', Value: mode }] },
  });

  const failure = (job: Promise<unknown>): Promise<BatchJobFailedError> =>
    job.then(
      () => {
        throw new Error('expected the job to fail');
      },
      (e: unknown) => e as BatchJobFailedError,
    );

  beforeEach(() => {
    logs = mkdtempSync(join(tmpdir(), 'dlops-batch-'));
    lines = [];
  });
  afterEach(() => rmSync(logs, { recursive: true, force: true }));

  it('given a container that exits 0, when run, then the job SUCCEEDED with the definition environment plus overrides, its log and epoch lines', async () => {
    const job = await batch({ environment: { DATA_BUCKET: 'dlops-data', MODE: 'overridden' } }).submitJobSync(submit('ok'));
    expect(job).toMatchObject({ Status: 'SUCCEEDED', JobName: 'run-1', JobQueue: QUEUE, Container: { ExitCode: 0 } });
    expect(job.Attempts).toHaveLength(1);
    expect(job.Container.Environment).toEqual(
      expect.arrayContaining([
        { Name: 'DATA_BUCKET', Value: 'dlops-data' },
        { Name: 'RUN_ID', Value: 'run-1' },
        { Name: 'MODE', Value: 'ok' },
      ]),
    );
    expect(lines.filter((l) => l.json?.event === 'epoch').map((l) => l.json?.epoch)).toEqual([1, 2]);
    expect(readFileSync(job.LogFile, 'utf8')).toContain('env RUN_ID=run-1 DATA_BUCKET=dlops-data attempt=1');
  }, 30_000);

  it('given a container that exits non-zero, when run, then States.TaskFailed carries the job with exit code and last error line', async () => {
    const error = await batch({ environment: {} })
      .submitJobSync(submit('fail'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BatchJobFailedError);
    const failed = error as BatchJobFailedError;
    expect(failed.name).toBe('States.TaskFailed');
    const cause = JSON.parse(failed.message);
    expect(cause).toMatchObject({ Status: 'FAILED', StatusReason: 'Essential container in task exited', Container: { ExitCode: 3 } });
    expect(cause.Container.Reason).toContain('loss became NaN at epoch 2');
  }, 30_000);

  it('given a retry strategy, when the exit code matches RETRY, then a second attempt runs', async () => {
    const error = await failure(batch({ environment: {}, retryStrategy: { Attempts: 2, EvaluateOnExit: [{ OnExitCode: '3', Action: 'RETRY' }] } }).submitJobSync(submit('fail')));
    expect(JSON.parse(error.message).Attempts).toHaveLength(2);
    expect(readFileSync(JSON.parse(error.message).LogFile, 'utf8')).toContain('attempt=2');
  }, 40_000);

  it('given an attempt duration, when exceeded, then the job is stopped and fails with the timeout reason', async () => {
    const error = await failure(batch({ environment: {}, attemptDurationSeconds: 2 }).submitJobSync(submit('hang')));
    expect(JSON.parse(error.message)).toMatchObject({ Status: 'FAILED', StatusReason: 'Job attempt duration exceeded timeout' });
  }, 30_000);

  it('decides retries like Batch: first matching rule wins, exhausted attempts stop', () => {
    const strategy = { Attempts: 3, EvaluateOnExit: [{ OnStatusReason: 'Host EC2*', Action: 'RETRY' }, { OnReason: '*', Action: 'EXIT' }] };
    expect(shouldRetryJob(strategy, 1, undefined, '', 'Host EC2 (instance i-1) terminated.')).toBe(true);
    expect(shouldRetryJob(strategy, 1, 1, 'TrainingError', 'Essential container in task exited')).toBe(false);
    expect(shouldRetryJob(strategy, 3, undefined, '', 'Host EC2 (instance i-1) terminated.')).toBe(false);
    expect(shouldRetryJob(undefined, 1, 1, '', '')).toBe(false);
  });
});
