// Errors of the v0 API client. The server's envelope says what went wrong in
// `Status.error`; these classes carry that text and the status, and map the
// two statuses callers branch on (404, 409) to classes of their own, as the
// upstream client does (ErrObjectNotFound, ErrConflict).

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    /** The envelope's `Type`: the object kind the request was about, when known. */
    readonly objectType = '',
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** 404: the object does not exist (or is deleted), or no object has the requested name. */
export class ObjectNotFoundError extends ApiError {}

/** 409: a duplicate name, related objects that block a delete, or a deletion already in progress. */
export class ObjectConflictError extends ApiError {}

/** The API could not be reached at all: refused, reset, TLS failure, timeout. */
export class ApiConnectionError extends Error {
  constructor(
    message: string,
    readonly url: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ApiConnectionError';
  }
}
