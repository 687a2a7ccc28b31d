import { PassThrough } from 'node:stream';
import { ConsoleReporter, summariseCause } from '../../local/reporter';
import type { ExecutionRecord, StateTransition } from '../../local/state-machine';

const capture = () => {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  return { stream, text: () => text };
};

const record: ExecutionRecord = { name: 'digits-0123', executionArn: 'arn', input: { dataset: 'digits' }, status: 'RUNNING', startDate: '2026-01-01T00:00:00.000Z', transitions: [] };
const epoch = (n: number) => ({ event: 'epoch' as const, epoch: n, epochs: 3, loss: 1 / n, metrics: { acc: 0.5 + n / 10 }, samplesPerSecond: 1234.5, backend: 'cpu' });

describe('ConsoleReporter', () => {
  it('without a terminal prints one plain line per epoch and each transition with its time', () => {
    const out = capture();
    const reporter = new ConsoleReporter({ out: out.stream, tty: false });
    const transition: StateTransition = { state: 'Train', type: 'Task', enteredAt: 1000, status: 'running' };
    reporter.onTransition(record, transition, { type: 'StateEntered' });
    reporter.onJobLine({ jobName: 'j', jobId: 'i', stream: 'stdout', line: JSON.stringify(epoch(1)), json: epoch(1) });
    reporter.onJobLine({ jobName: 'j', jobId: 'i', stream: 'stdout', line: 'some other log line' });
    reporter.onTransition(record, { ...transition, exitedAt: 3500, status: 'succeeded' }, { type: 'StateExited' });
    expect(out.text()).toContain('→ Train');
    expect(out.text()).toContain('epoch 1/3  loss 1.0000  acc 0.6000  1,235 samples/s  (cpu)');
    expect(out.text()).not.toContain('some other log line');
    expect(out.text()).toMatch(/✓ Train\s+2\.5 s/);
  });

  it('on a terminal draws a progress bar with epochs, loss, metrics and ETA', () => {
    const out = capture();
    Object.assign(out.stream, { isTTY: true, columns: 200, cursorTo: () => true, clearLine: () => true, moveCursor: () => true });
    const reporter = new ConsoleReporter({ out: out.stream, tty: true });
    reporter.onEpoch('j', epoch(1));
    reporter.onEpoch('j', epoch(2));
    reporter.stopBar();
    expect(out.text()).toContain('epoch 2/3');
    expect(out.text()).toContain('loss 0.5000');
    expect(out.text()).toContain('acc 0.7000');
    expect(out.text()).toContain('ETA');
  });

  it('summarises a Lambda error document and a Batch job as their messages', () => {
    expect(summariseCause(JSON.stringify({ errorType: 'DataError', errorMessage: 'row 3: bad', trace: [] }))).toBe('row 3: bad');
    expect(summariseCause(JSON.stringify({ Status: 'FAILED', StatusReason: 'Essential container in task exited', Container: { Reason: 'boom' } }))).toBe(
      'Essential container in task exited: boom',
    );
    expect(summariseCause('plain text')).toBe('plain text');
  });
});
