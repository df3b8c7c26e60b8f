// A small error taxonomy. Each class says what went wrong in terms a user can
// act on, and maps to exactly one HTTP status. Anything else is a 500.

export abstract class ThreeportError extends Error {
  abstract readonly status: number;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The request or config is malformed: 400. */
export class InputError extends ThreeportError {
  readonly status = 400;
}

/** The object does not exist (or is soft-deleted): 404. */
export class NotFoundError extends ThreeportError {
  readonly status = 404;
}

/** The request conflicts with current state (duplicate name, dependents, deletion in progress): 409. */
export class ConflictError extends ThreeportError {
  readonly status = 409;
}

/** The request body is larger than the server accepts: 413. */
export class PayloadTooLargeError extends ThreeportError {
  readonly status = 413;
}

/** The control plane cannot serve the request right now (database down, shutting down): 503. */
export class UnavailableError extends ThreeportError {
  readonly status = 503;
}

export function isThreeportError(err: unknown): err is ThreeportError {
  return err instanceof ThreeportError;
}

export function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
