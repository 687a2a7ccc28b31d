/**
 * What a person watching `dlops local up` or `dlops demo` sees: each execution's state
 * transitions with timings, and training as a progress bar (epochs, loss, metrics, ETA) on a
 * terminal, or one plain line per epoch otherwise (CI logs, pipes).
 */
import { SingleBar } from 'cli-progress';
import type { JobLine } from './batch';
import type { ExecutionObserver, ExecutionRecord, StateTransition } from './state-machine';

export interface EpochEvent {
  readonly event: 'epoch';
  readonly epoch: number;
  readonly epochs: number;
  readonly loss: number;
  readonly metrics?: Record<string, number>;
  readonly samplesPerSecond?: number;
  readonly backend?: string;
}

export interface ReporterProps {
  readonly out?: NodeJS.WriteStream | NodeJS.WritableStream;
  /** @default - whether `out` is a TTY */
  readonly tty?: boolean;
  /** Also print the training container's other log lines. @default false */
  readonly verbose?: boolean;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function formatMetrics(metrics: Record<string, number> | undefined): string {
  return Object.entries(metrics ?? {})
    .map(([k, v]) => `${k} ${Number.isFinite(v) ? v.toFixed(4) : String(v)}`)
    .join('  ');
}

export function isEpochEvent(json: Record<string, unknown> | undefined): json is Record<string, unknown> & EpochEvent {
  return json?.event === 'epoch' && typeof json.epoch === 'number' && typeof json.epochs === 'number';
}

export class ConsoleReporter implements ExecutionObserver {
  private readonly out: NodeJS.WritableStream;
  private readonly tty: boolean;
  private bar?: SingleBar;
  private barJob?: string;

  constructor(private readonly props: ReporterProps = {}) {
    this.out = props.out ?? process.stdout;
    this.tty = props.tty ?? Boolean((this.out as NodeJS.WriteStream).isTTY);
  }

  print(line: string): void {
    if (this.bar) {
      // Keep the bar on the last line: clear it, print, redraw.
      this.out.write('\r\x1b[2K' + line + '\n');
      this.bar.render();
    } else {
      this.out.write(line + '\n');
    }
  }

  onStarted(execution: ExecutionRecord): void {
    const input = execution.input as { dataset?: string; manifestKey?: string };
    this.print(`execution ${execution.name} started${input.dataset ? ` (dataset ${input.dataset})` : ''}`);
  }

  onTransition(execution: ExecutionRecord, transition: StateTransition, event: { type: string; error?: string; cause?: string }): void {
    const tag = `  [${shortName(execution.name)}]`;
    const took = transition.exitedAt !== undefined ? seconds(transition.exitedAt - transition.enteredAt) : '';
    switch (event.type) {
      case 'StateEntered':
        this.print(`${tag} → ${transition.state}`);
        break;
      case 'StateExited':
        this.stopBar();
        this.print(`${tag} ✓ ${transition.state.padEnd(14)} ${took}`);
        break;
      case 'StateFailed':
        this.stopBar();
        this.print(`${tag} ✗ ${transition.state.padEnd(14)} ${took}  ${event.error ?? ''}: ${summariseCause(event.cause)}`);
        break;
      case 'StateRetried':
        this.print(`${tag} ↻ ${transition.state} retried after ${event.error ?? 'an error'}`);
        break;
      case 'StateCaught':
        this.print(`${tag} ⤷ ${transition.state} error caught, going to the failure path`);
        break;
    }
  }

  onFinished(execution: ExecutionRecord): void {
    this.stopBar();
    const took = execution.stopDate ? seconds(Date.parse(execution.stopDate) - Date.parse(execution.startDate)) : '';
    const end = execution.transitions[execution.transitions.length - 1]?.state;
    const detail = execution.status === 'SUCCEEDED' ? `ended in ${end}` : `${execution.error ?? ''}: ${summariseCause(execution.cause)}`;
    this.print(`execution ${execution.name} ${execution.status} in ${took} (${detail})`);
  }

  /** A line the training container printed. */
  onJobLine(line: JobLine): void {
    if (isEpochEvent(line.json)) return this.onEpoch(line.jobName, line.json);
    if (this.props.verbose || line.json?.event === 'error') this.print(`    ${line.stream === 'stderr' ? '! ' : ''}${line.line}`);
  }

  onEpoch(jobName: string, e: EpochEvent): void {
    const metrics = formatMetrics(e.metrics);
    const speed = e.samplesPerSecond !== undefined ? `${Math.round(e.samplesPerSecond).toLocaleString('en-US')} samples/s` : '';
    if (!this.tty) {
      this.print(`    epoch ${e.epoch}/${e.epochs}  loss ${e.loss.toFixed(4)}  ${metrics}  ${speed}${e.backend ? `  (${e.backend})` : ''}`);
      return;
    }
    if (!this.bar || this.barJob !== jobName) {
      this.stopBar();
      this.bar = new SingleBar({
        stream: this.out as NodeJS.WriteStream,
        format: '    Train [{bar}] epoch {value}/{total} | loss {loss} | {metrics} | {speed} | ETA {eta_formatted}',
        barsize: 20,
        hideCursor: true,
        etaBuffer: 3,
        clearOnComplete: false,
      });
      this.barJob = jobName;
      this.bar.start(e.epochs, 0, { loss: '-', metrics: '', speed: '' });
    }
    this.bar.update(e.epoch, { loss: e.loss.toFixed(4), metrics, speed });
  }

  stopBar(): void {
    if (!this.bar) return;
    this.bar.stop();
    this.bar = undefined;
    this.barJob = undefined;
  }
}

function shortName(name: string): string {
  return name.length > 32 ? `${name.slice(0, 20)}…${name.slice(-8)}` : name;
}

/** The readable part of a cause: a Lambda error document's message, a Batch job's reason, or the text. */
export function summariseCause(cause: string | undefined): string {
  if (!cause) return '';
  try {
    const doc = JSON.parse(cause) as { errorMessage?: string; Container?: { Reason?: string }; StatusReason?: string };
    if (doc.errorMessage) return doc.errorMessage;
    if (doc.Container?.Reason || doc.StatusReason) return [doc.StatusReason, doc.Container?.Reason].filter(Boolean).join(': ');
  } catch {
    // not JSON: the cause is already text
  }
  return cause.length > 500 ? `${cause.slice(0, 500)}…` : cause;
}
