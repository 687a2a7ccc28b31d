/**
 * The shapes that pass between the pipeline's states. The execution's input is a RunInput;
 * each task's result is stored under its own key of the state (ResultPath `$.<step>`), so
 * every later step sees everything earlier steps returned.
 *
 *   input                        RunInput
 *   Preprocess  -> $.preprocess  PreprocessResult
 *   Train       -> $.train       TrainResult (selected from Batch's DescribeJobs answer)
 *   Export      -> $.export      ExportResult
 *   Evaluate    -> $.evaluate    EvaluateResult   (the Gate Choice reads $.evaluate.promote)
 *   Register    -> $.register    RegisterResult
 *   on error    -> $.error       { Error, Cause }  then RecordFailure gets FailureEvent
 */

/** What the trigger starts an execution with. `runId` is the execution's name. */
export interface RunInput {
  readonly runId: string;
  readonly dataset: string;
  readonly bucket: string;
  readonly manifestKey: string;
  readonly manifestETag: string;
}

export type Task = 'classification' | 'regression';

export interface PreprocessResult {
  /** Model name from the manifest (defaults to the dataset's name). */
  readonly modelName: string;
  readonly task: Task;
  readonly preparedPrefix: string;
  readonly statsKey: string;
  /** Shape of one example, without the batch dimension, e.g. [28, 28, 1] or [4]. */
  readonly inputShape: number[];
  readonly classNames?: string[];
  readonly counts: { readonly train: number; readonly validation: number; readonly test: number };
}

export interface TrainResult {
  readonly jobId?: string;
  readonly status?: string;
}

export interface ExportResult {
  readonly onnxKey: string;
  readonly tfjsPrefix: string;
  readonly opset: number;
  readonly parity: { readonly rows: number; readonly maxAbsDiff: number; readonly tolerance: number; readonly passed: boolean };
}

export interface EvaluateResult {
  readonly metrics: Record<string, number>;
  /** The current production version and its metrics, when there is one. */
  readonly champion?: { readonly version: string; readonly metrics: Record<string, number> };
  readonly promote: boolean;
  readonly reason: string;
  readonly evaluationKey: string;
  readonly reportKey: string;
}

export interface RegisterResult {
  readonly model: string;
  readonly version: string;
  readonly aliases: string[];
  readonly manifestKey: string;
}

/** The state as it reaches each task. */
export interface RunState extends RunInput {
  readonly preprocess?: PreprocessResult;
  readonly train?: TrainResult;
  readonly export?: ExportResult;
  readonly evaluate?: EvaluateResult;
  readonly register?: RegisterResult;
}

/** What RecordFailure receives (the Catch puts the error at $.error). */
export interface FailureEvent extends Partial<RunState> {
  readonly executionName: string;
  readonly error: { readonly Error: string; readonly Cause?: string };
}

/** `runs/<execution>/status.json`. */
export interface RunStatus {
  readonly state: 'FAILED' | 'SUCCEEDED' | 'REJECTED';
  readonly executionName: string;
  readonly error?: string;
  readonly cause?: string;
  readonly time: string;
}
