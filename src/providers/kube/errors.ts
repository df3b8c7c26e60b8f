// What went wrong talking to a Kubernetes API server, and whether trying again
// can help. Retryability is data on the error (`retryable`), which the
// reconcile runtime reads: an unreachable cluster or a 5xx is retried with
// backoff; a manifest the API server rejects as invalid is not.
//
// Messages name the runtime and the endpoint, never a credential: they end up
// in events and logs that users read.

/** Why a Kubernetes request failed. */
export type KubeFailure =
  | 'Unreachable' // connection refused/reset, DNS, TLS handshake, socket hang-up
  | 'Timeout' // no answer within the request timeout
  | 'Aborted' // the caller's AbortSignal fired
  | 'ServerError' // 5xx
  | 'TooManyRequests' // 429
  | 'Unauthorized' // 401: credentials rejected
  | 'Forbidden' // 403
  | 'NotFound' // 404
  | 'Conflict' // 409
  | 'Gone' // 410: resourceVersion too old (watch/list)
  | 'Invalid' // 400, 422 and other 4xx: the request itself is wrong
  | 'UnknownKind'; // discovery does not know the apiVersion/kind (e.g. the CRD is not installed yet)

/** Failures that trying the same request again can fix. */
const RETRYABLE: ReadonlySet<KubeFailure> = new Set<KubeFailure>([
  'Unreachable',
  'Timeout',
  'ServerError',
  'TooManyRequests',
  // Credentials can be rotated (EKS tokens are refreshed), RBAC granted, namespaces
  // created or finish terminating, conflicting writers finish, CRDs get installed.
  'Unauthorized',
  'Forbidden',
  'NotFound',
  'Conflict',
  'Gone',
  'UnknownKind',
]);

export class KubeError extends Error {
  /** Read by the reconcile runtime: false stops retries until the object changes. */
  readonly retryable: boolean;
  readonly failure: KubeFailure;
  /** HTTP status when the API server answered. */
  readonly status: number | undefined;
  /** The API server's machine-readable reason (Status.reason), e.g. "AlreadyExists". */
  readonly reason: string | undefined;
  /** Which cluster: e.g. `KubernetesRuntimeInstance "dev" (ID 4)`. */
  readonly cluster: string;
  readonly endpoint: string;

  constructor(
    message: string,
    fields: { failure: KubeFailure; cluster: string; endpoint: string; status?: number; reason?: string; cause?: unknown },
  ) {
    super(message, fields.cause === undefined ? undefined : { cause: fields.cause });
    this.name = 'KubeError';
    this.failure = fields.failure;
    this.retryable = RETRYABLE.has(fields.failure);
    this.status = fields.status;
    this.reason = fields.reason;
    this.cluster = fields.cluster;
    this.endpoint = fields.endpoint;
  }

  /** True when the cluster could not be reached at all (as opposed to answering with an error). */
  get unreachable(): boolean {
    return this.failure === 'Unreachable' || this.failure === 'Timeout';
  }
}

export function isKubeError(err: unknown): err is KubeError {
  return err instanceof KubeError;
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeError && err.failure === 'NotFound';
}

const NETWORK_CODES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  EPIPE: 'connection closed',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
  ERR_STREAM_PREMATURE_CLOSE: 'connection closed',
  ERR_SSL_WRONG_VERSION_NUMBER: 'TLS handshake failed (is the endpoint serving HTTPS?)',
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's certificate is not signed by the runtime's CA",
  SELF_SIGNED_CERT_IN_CHAIN: "the server's certificate is not signed by the runtime's CA",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's certificate is not signed by the runtime's CA",
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's certificate does not name this endpoint",
  CERT_HAS_EXPIRED: "the server's certificate has expired",
};

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

interface StatusBody {
  kind?: string;
  message?: string;
  reason?: string;
  code?: number;
}

function statusFailure(status: number): KubeFailure {
  if (status >= 500) return 'ServerError';
  switch (status) {
    case 401:
      return 'Unauthorized';
    case 403:
      return 'Forbidden';
    case 404:
      return 'NotFound';
    case 408:
      return 'Timeout';
    case 409:
      return 'Conflict';
    case 410:
      return 'Gone';
    case 429:
      return 'TooManyRequests';
    default:
      return 'Invalid';
  }
}

/** Describes one request for error messages: `apply apps/v1 Deployment web -n shop`. */
export interface RequestDescription {
  cluster: string;
  endpoint: string;
  action: string;
}

/** An HTTP error answer from the API server. `body` is the parsed Status object when there is one. */
export function kubeHttpError(req: RequestDescription, status: number, body: unknown): KubeError {
  const s = (typeof body === 'object' && body !== null ? body : {}) as StatusBody;
  const failure = statusFailure(status);
  const detail = typeof s.message === 'string' && s.message.length > 0 ? s.message : `HTTP ${status}`;
  const hint =
    failure === 'Unauthorized'
      ? ' (the runtime instance credentials were rejected)'
      : failure === 'ServerError'
        ? '; will retry'
        : '';
  return new KubeError(`${req.cluster}: ${req.action} failed: ${detail} (HTTP ${status}${s.reason ? ` ${s.reason}` : ''})${hint}`, {
    failure,
    status,
    ...(s.reason ? { reason: s.reason } : {}),
    cluster: req.cluster,
    endpoint: req.endpoint,
  });
}

/**
 * Classifies anything thrown while talking to a cluster. HTTP errors must already be KubeErrors
 * (see kubeHttpError); everything else is a transport failure or the caller's abort.
 */
export function classifyKubeError(req: RequestDescription, err: unknown, opts: { aborted?: boolean; timeoutMs?: number } = {}): KubeError {
  if (err instanceof KubeError) return err;
  const name = (err as { name?: unknown } | null)?.name;
  if (opts.aborted) {
    return new KubeError(`${req.cluster}: ${req.action} was cancelled`, {
      failure: 'Aborted',
      cluster: req.cluster,
      endpoint: req.endpoint,
      cause: err,
    });
  }
  if (name === 'AbortError' || name === 'TimeoutError' || (err as { type?: unknown } | null)?.type === 'request-timeout') {
    return new KubeError(
      `${req.cluster}: the Kubernetes API server at ${req.endpoint} did not answer ${req.action} within ${
        opts.timeoutMs !== undefined ? `${Math.round(opts.timeoutMs / 100) / 10} s` : 'the timeout'
      }; will retry`,
      { failure: 'Timeout', cluster: req.cluster, endpoint: req.endpoint, cause: err },
    );
  }
  const code = errorCode(err);
  const what = (code && NETWORK_CODES[code]) ?? (code ? code : err instanceof Error ? err.message : String(err));
  return new KubeError(`${req.cluster}: the Kubernetes API server at ${req.endpoint} is unreachable (${what}); will retry`, {
    failure: 'Unreachable',
    cluster: req.cluster,
    endpoint: req.endpoint,
    cause: err,
  });
}
