/**
 * The one typed error hierarchy of dlops.
 *
 * Step Functions matches Retry/Catch on an error's `name` (the Lambda runtime reports it as
 * `errorType`), so every class sets an explicit, stable name that survives bundling.
 * API handlers map these classes to HTTP statuses (see `httpStatusOf`).
 */
export class DlopsError extends Error {
  override readonly name: string = 'DlopsError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A required environment variable or setting is missing or malformed. */
export class ConfigError extends DlopsError {
  override readonly name = 'ConfigError';
}

/** `dataset.json` does not satisfy the manifest schema. */
export class ManifestError extends DlopsError {
  override readonly name = 'ManifestError';
}

/** The dataset's rows are unusable (bad value, wrong width, unknown label, empty, one class). */
export class DataError extends DlopsError {
  override readonly name = 'DataError';
}

/** A model layer (or op) that dlops cannot build or export. */
export class UnsupportedLayerError extends DlopsError {
  override readonly name = 'UnsupportedLayerError';
}

/** ONNX Runtime and TF.js disagree beyond tolerance on held-out rows. */
export class ParityError extends DlopsError {
  override readonly name = 'ParityError';
}

/** Training failed in a way a retry will not fix. */
export class TrainingError extends DlopsError {
  override readonly name = 'TrainingError';
}

/** No such model, version, alias or object. */
export class NotFoundError extends DlopsError {
  override readonly name = 'NotFoundError';
}

/** A conditional write lost a race (alias moved by someone else, version exists). */
export class ConflictError extends DlopsError {
  override readonly name = 'ConflictError';
}

/** A ciphertext or artifact failed decryption, context or digest checks: never serve it. */
export class IntegrityError extends DlopsError {
  override readonly name = 'IntegrityError';
}

/** A request the caller can fix (HTTP 400). */
export class BadRequestError extends DlopsError {
  override readonly name = 'BadRequestError';
}

/** A request body over the size limit (HTTP 413). */
export class PayloadTooLargeError extends DlopsError {
  override readonly name = 'PayloadTooLargeError';
}

/** A request body that is not JSON (HTTP 415). */
export class UnsupportedMediaTypeError extends DlopsError {
  override readonly name = 'UnsupportedMediaTypeError';
}

/** A model that exists but cannot be loaded right now (HTTP 503). */
export class ModelUnavailableError extends DlopsError {
  override readonly name = 'ModelUnavailableError';
}

/** The HTTP status an API handler answers for an error; anything untyped is a 500. */
export function httpStatusOf(error: unknown): number {
  if (error instanceof BadRequestError || error instanceof ManifestError || error instanceof DataError) return 400;
  if (error instanceof NotFoundError) return 404;
  if (error instanceof ConflictError) return 409;
  if (error instanceof PayloadTooLargeError) return 413;
  if (error instanceof UnsupportedMediaTypeError) return 415;
  if (error instanceof ModelUnavailableError || error instanceof IntegrityError) return 503;
  return 500;
}

/** A short, safe description of an unknown thrown value. */
export function describeError(error: unknown): { name: string; message: string } {
  if (error instanceof Error) return { name: error.name, message: error.message };
  return { name: 'Error', message: String(error) };
}
