// Retries of AWS calls: throttling, transient network failures and 5xx answers
// are retried with exponential backoff; everything else fails at once. The
// policy is a small validated object. The strategy plugs into the SDK's own
// retry middleware (RetryStrategyV2), so the SDK re-signs each attempt, and
// every retry is counted and reported.
import type { RetryErrorInfo, RetryStrategyV2, RetryToken } from '@smithy/types';
import { InputError } from '../../errors.js';
import { awsErrorCode, awsHttpStatus } from './errors.js';
import { backoffDelay } from '../../system.js';

export interface AwsRetryPolicyInput {
  /** Attempts per call, the first included (default 8). 1 disables retries. */
  maxAttempts?: number;
  /** The first retry waits about this long (default 200 ms); each further one twice as long. */
  baseDelayMs?: number;
  /** No single wait is longer (default 20 s). */
  maxDelayMs?: number;
  /** 'full': wait a random time up to the backoff (default; spreads retrying clients apart). 'none': exactly the backoff. */
  jitter?: 'full' | 'none';
}

export class AwsRetryPolicy {
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly jitter: 'full' | 'none';

  constructor(input: AwsRetryPolicyInput = {}) {
    const int = (name: string, v: number, min: number): number => {
      if (!Number.isInteger(v) || v < min) {
        throw new InputError(`AWS retry policy: ${name} must be a whole number of at least ${min}, got ${JSON.stringify(v)}`);
      }
      return v;
    };
    this.maxAttempts = int('maxAttempts', input.maxAttempts ?? 8, 1);
    this.baseDelayMs = int('baseDelayMs', input.baseDelayMs ?? 200, 0);
    this.maxDelayMs = int('maxDelayMs', input.maxDelayMs ?? 20_000, 0);
    if (this.maxDelayMs < this.baseDelayMs) {
      throw new InputError(`AWS retry policy: maxDelayMs (${this.maxDelayMs}) must not be less than baseDelayMs (${this.baseDelayMs})`);
    }
    const jitter = input.jitter ?? 'full';
    if (jitter !== 'full' && jitter !== 'none') {
      throw new InputError(`AWS retry policy: jitter must be 'full' or 'none', got ${JSON.stringify(jitter)}`);
    }
    this.jitter = jitter;
  }

  static from(input: AwsRetryPolicy | AwsRetryPolicyInput | undefined): AwsRetryPolicy {
    return input instanceof AwsRetryPolicy ? input : new AwsRetryPolicy(input);
  }

  /** The wait before retry number `retry` (1 = the first retry). */
  delay(retry: number, random: () => number = Math.random): number {
    const backoff = backoffDelay(retry, { initialMs: this.baseDelayMs, maxMs: this.maxDelayMs });
    return this.jitter === 'full' ? Math.round(random() * backoff) : backoff;
  }
}

export type RetryReason = 'throttling' | 'transient' | 'server-error';

/** One retry, as reported to listeners and logs. Holds no request data. */
export interface AwsRetryEvent {
  /** `ec2:CreateVpc`. */
  operation: string;
  /** The attempt that failed (1 = the first). */
  attempt: number;
  reason: RetryReason;
  /** The AWS error code, e.g. ThrottlingException. */
  code: string | undefined;
  httpStatus: number | undefined;
  delayMs: number;
}

/** Call counters for one provider: every HTTP attempt, by operation, and every retry. */
export class AwsCallStats {
  calls = 0;
  retries = 0;
  failures = 0;
  readonly byOperation = new Map<string, number>();
  readonly retriesByReason: Record<RetryReason, number> = { throttling: 0, transient: 0, 'server-error': 0 };

  recordAttempt(operation: string): void {
    this.calls++;
    this.byOperation.set(operation, (this.byOperation.get(operation) ?? 0) + 1);
  }

  snapshot(): { calls: number; retries: number; failures: number; byOperation: Record<string, number> } {
    return {
      calls: this.calls,
      retries: this.retries,
      failures: this.failures,
      byOperation: Object.fromEntries([...this.byOperation].sort(([a], [b]) => a.localeCompare(b))),
    };
  }

  reset(): void {
    this.calls = 0;
    this.retries = 0;
    this.failures = 0;
    this.byOperation.clear();
    for (const k of Object.keys(this.retriesByReason) as RetryReason[]) this.retriesByReason[k] = 0;
  }
}

/** Set on SDK errors by the attempt observer so the retry strategy can name the failed call. */
export const OPERATION_KEY = Symbol.for('threeport.aws.operation');

export function operationOfError(err: unknown): string {
  const op = typeof err === 'object' && err !== null ? (err as Record<symbol, unknown>)[OPERATION_KEY] : undefined;
  return typeof op === 'string' ? op : 'aws';
}

function reasonOf(info: RetryErrorInfo): RetryReason | undefined {
  const status = awsHttpStatus(info.error);
  if (info.errorType === 'THROTTLING' || status === 429) return 'throttling';
  if (status !== undefined && status >= 500) return 'server-error';
  if (info.errorType === 'SERVER_ERROR') return 'server-error';
  // Connection resets, timeouts and the like: no HTTP answer at all.
  if (info.errorType === 'TRANSIENT') return 'transient';
  return undefined;
}

class Token implements RetryToken {
  constructor(
    readonly count: number,
    readonly delay: number,
  ) {}
  getRetryCount(): number {
    return this.count;
  }
  getRetryDelay(): number {
    return this.delay;
  }
}

/**
 * The SDK's retry middleware asks this strategy whether and when to retry; it
 * waits the returned delay (abortable) and sends the request again, re-signed.
 */
export class ThreeportRetryStrategy implements RetryStrategyV2 {
  readonly mode = 'threeport';

  constructor(
    private readonly policy: AwsRetryPolicy,
    private readonly stats: AwsCallStats,
    private readonly onRetry: (event: AwsRetryEvent) => void,
    private readonly random: () => number = Math.random,
  ) {}

  async acquireInitialRetryToken(): Promise<RetryToken> {
    return new Token(0, 0);
  }

  async refreshRetryTokenForRetry(token: RetryToken, info: RetryErrorInfo): Promise<RetryToken> {
    const reason = reasonOf(info);
    const attempt = token.getRetryCount() + 1;
    if (reason === undefined || attempt >= this.policy.maxAttempts) {
      this.stats.failures++;
      throw info.error;
    }
    let delayMs = this.policy.delay(attempt, this.random);
    if (info.retryAfterHint) {
      const hinted = info.retryAfterHint.getTime() - Date.now();
      if (hinted > delayMs) delayMs = Math.min(this.policy.maxDelayMs, hinted);
    }
    this.stats.retries++;
    this.stats.retriesByReason[reason]++;
    this.onRetry({
      operation: operationOfError(info.error),
      attempt,
      reason,
      code: awsErrorCode(info.error),
      httpStatus: awsHttpStatus(info.error),
      delayMs,
    });
    return new Token(attempt, delayMs);
  }

  recordSuccess(): void {}
}
