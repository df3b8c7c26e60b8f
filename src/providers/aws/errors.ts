// What an AWS failure means, as data: its code, whether it says "not found",
// and a message that is safe to show a user (it names the service call and the
// AWS error, never a credential).

/** The AWS error code of an SDK error: `InvalidVpcID.NotFound`, `NoSuchEntityException`, `ThrottlingException`, ... */
export function awsErrorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const e = err as { Code?: unknown; code?: unknown; name?: unknown };
  for (const v of [e.Code, e.code, e.name]) {
    if (typeof v === 'string' && v !== '' && v !== 'Error') return v;
  }
  return undefined;
}

export function awsHttpStatus(err: unknown): number | undefined {
  if (err instanceof AwsCallError) return err.httpStatus;
  const status = (err as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

const NOT_FOUND_CODES = new Set([
  'NoSuchEntity',
  'NoSuchEntityException',
  'ResourceNotFoundException',
  'NotFoundException',
  'NoSuchBucket',
  'NotFound',
  'DBInstanceNotFound',
  'DBInstanceNotFoundFault',
  'DBSubnetGroupNotFoundFault',
  'DBSubnetGroupNotFound',
  'NatGatewayNotFound',
  'InvalidAllocationID.NotFound',
  'InvalidAssociationID.NotFound',
]);

/** "The thing is not there": every service spells it differently. */
export function isNotFound(err: unknown): boolean {
  const code = awsErrorCode(err);
  if (code === undefined) return false;
  return NOT_FOUND_CODES.has(code) || code.endsWith('.NotFound') || code.endsWith('NotFoundFault');
}

export function hasCode(err: unknown, ...codes: string[]): boolean {
  const code = awsErrorCode(err);
  return code !== undefined && codes.includes(code);
}

/** The call was refused because something still depends on the resource; try again later. */
export function isDependencyViolation(err: unknown): boolean {
  return hasCode(err, 'DependencyViolation', 'ResourceInUseException', 'DeleteConflict', 'DeleteConflictException', 'InvalidIPAddress.InUse');
}

/** The AWS message, trimmed; AWS error messages name resources and parameters, never credentials. */
function awsMessage(err: unknown): string {
  const m = err instanceof Error ? err.message : typeof err === 'string' ? err : '';
  return m.replace(/\s+/g, ' ').trim().slice(0, 500);
}

/**
 * A failed AWS call, described for users: "ec2:CreateVpc failed: VpcLimitExceeded (HTTP 400): The maximum
 * number of VPCs has been reached." It keeps the code, status and request ID of the SDK error, not the SDK
 * error itself (whose `$response` and message may echo request details), and its message is scrubbed of
 * credentials.
 */
export class AwsCallError extends Error {
  readonly code: string | undefined;
  readonly httpStatus: number | undefined;
  readonly requestId: string | undefined;
  /**
   * Read by the reconcile engine, as KubeError's is: false for permission and validation errors,
   * which need a person. Throttling and 5xx were already retried by the provider's own policy;
   * a reconcile retries them again later.
   */
  readonly retryable: boolean;
  constructor(
    readonly operation: string,
    sdkError: unknown,
    scrub: (text: string) => string = (t) => t,
  ) {
    const code = awsErrorCode(sdkError);
    const status = awsHttpStatus(sdkError);
    const detail = [code, status !== undefined ? `(HTTP ${status})` : undefined].filter(Boolean).join(' ');
    const message = awsMessage(sdkError);
    super(scrub(`${operation} failed${detail ? `: ${detail}` : ''}${message && message !== code ? `: ${message}` : ''}`));
    this.name = 'AwsCallError';
    this.code = code;
    this.httpStatus = status;
    const rid = (sdkError as { $metadata?: { requestId?: unknown } } | null)?.$metadata?.requestId;
    this.requestId = typeof rid === 'string' ? rid : undefined;
    this.retryable = !(status !== undefined && status >= 400 && status < 500 && status !== 429 && NEEDS_A_PERSON.test(code ?? ''));
  }
}

/** AWS error codes that retrying cannot fix. */
const NEEDS_A_PERSON = /AccessDenied|Unauthorized|InvalidParameter|Validation|Malformed/;

/** Text that is safe in a log line, an event note or a status: the error's own words, scrubbed. */
export function describeAwsError(err: unknown, scrub: (text: string) => string = (t) => t): string {
  if (err instanceof AwsCallError) return scrub(err.message);
  const code = awsErrorCode(err);
  const status = awsHttpStatus(err);
  const message = awsMessage(err);
  const head = [code, status !== undefined ? `(HTTP ${status})` : undefined].filter(Boolean).join(' ');
  return scrub(head && message && message !== code ? `${head}: ${message}` : head || message || 'unknown AWS error');
}

/**
 * Provisioning cannot go on, and retrying will not help (a name owned by someone else, a region with too
 * few zones). `retryable: false` is what the reconcile runtime reads to stop retrying.
 */
export class ProvisioningError extends Error {
  readonly retryable = false;
  constructor(message: string) {
    super(message);
    this.name = 'ProvisioningError';
  }
}
