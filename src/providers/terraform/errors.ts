// What went wrong running OpenTofu, and whether trying again can help. Retryability is data on the
// error (`retryable`), which the reconcile runtime reads: an unreachable backend or cloud API, a
// throttled call or a state lock held by another run is retried with backoff; a configuration
// that does not parse, a missing variable or a resource the cloud refuses is not (it needs a change
// to the object).
//
// Messages carry tofu's own diagnostics, scrubbed of variable values and credentials: they end up
// in events and logs that users read.

export class TofuError extends Error {
  /** Read by the reconcile runtime: false stops retries until the object changes. */
  readonly retryable: boolean;

  constructor(message: string, options: { retryable: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retryable = options.retryable;
  }
}

/** No tofu executable could be found (--tofu / THREEPORT_TOFU, the build cache, PATH). */
export class TofuNotFoundError extends TofuError {
  constructor(message: string) {
    super(message, { retryable: false });
  }
}

/** A tofu command exited non-zero (or was stopped). */
export class TofuCommandError extends TofuError {
  /** e.g. "plan". */
  readonly command: string;
  readonly exitCode: number | null;

  constructor(message: string, fields: { command: string; exitCode: number | null; retryable: boolean }) {
    super(message, { retryable: fields.retryable });
    this.command = fields.command;
    this.exitCode = fields.exitCode;
  }
}

// Failures that come and go. Everything else tofu reports (syntax errors, unknown or missing
// variables, provider schema errors, access denied, invalid parameters) needs a change.
const TRANSIENT: readonly RegExp[] = [
  /Error acquiring the state lock/i,
  /Error releasing the state lock/i,
  /connection refused/i,
  /connection reset/i,
  /broken pipe/i,
  /i\/o timeout/i,
  /TLS handshake timeout/i,
  /deadline exceeded/i,
  /request (?:canceled|timeout)|timed? ?out/i,
  /no such host/i,
  /temporary failure in name resolution/i,
  /network is unreachable/i,
  /": (?:unexpected )?EOF\b/, // Go's transport errors: Put "https://...": EOF
  /Throttl|TooManyRequests|Rate exceeded|SlowDown|RequestLimitExceeded/i,
  /ServiceUnavailable|InternalError|InternalFailure|\bStatusCode: 5\d\d\b|\b50[0234]\b (?:Internal|Bad Gateway|Service Unavailable|Gateway)/i,
  /ExpiredToken|RequestExpired/i,
  /could not connect to registry|registry service is unreachable|Failed to query available provider packages[\s\S]*(?:timeout|connection|unreachable)/i,
];

export function isTransientTofuFailure(text: string): boolean {
  return TRANSIENT.some((p) => p.test(text));
}
