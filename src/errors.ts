// A small error taxonomy. Each class says what went wrong in terms a user can
// act on, and maps to exactly one HTTP status. Anything else is a 500, whose
// message stays in the server log (the client gets a request ID).
//
// The same classes mean the same thing inside a reconciler: `retryable` says
// whether the reconcile engine retries (false parks the item, with a Warning
// event, until the object changes) and `reason` is the machine-readable word
// the engine records as the event's reason and the Synced condition's reason.

export abstract class ThreeportError extends Error {
  abstract readonly status: number;
  /** Inside a reconciler: false means retrying cannot help (the item is parked until the object changes). */
  abstract readonly retryable: boolean;
  /** CamelCase reason for events and conditions, e.g. "InvalidInput". */
  abstract readonly reason: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The request or config is malformed: 400. Terminal in a reconciler. */
export class InputError extends ThreeportError {
  readonly status = 400;
  readonly retryable = false;
  readonly reason = 'InvalidInput';
}

/** The object does not exist (or is soft-deleted): 404. Retried in a reconciler (it may yet appear). */
export class NotFoundError extends ThreeportError {
  readonly status = 404;
  readonly retryable = true;
  readonly reason = 'NotFound';
}

/** The request conflicts with current state (duplicate name, dependents, deletion in progress): 409. Terminal in a reconciler. */
export class ConflictError extends ThreeportError {
  readonly status = 409;
  readonly retryable = false;
  readonly reason = 'Conflict';
}

/** The request body is larger than the server accepts: 413. */
export class PayloadTooLargeError extends ThreeportError {
  readonly status = 413;
  readonly retryable = false;
  readonly reason = 'PayloadTooLarge';
}

/** The control plane cannot serve the request right now (database down, shutting down): 503. Retried. */
export class UnavailableError extends ThreeportError {
  readonly status = 503;
  readonly retryable = true;
  readonly reason = 'Unavailable';
}

export function isThreeportError(err: unknown): err is ThreeportError {
  return err instanceof ThreeportError;
}

/**
 * For `.catch(ignoreNotFound)`: an object already gone is fine; anything else (a database outage
 * above all) is thrown on, never swallowed.
 */
export function ignoreNotFound(err: unknown): undefined {
  if (err instanceof NotFoundError) return undefined;
  throw err;
}

export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
