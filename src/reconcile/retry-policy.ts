// How long to wait before retrying a failed reconcile: exponential backoff
// with jitter, as a small validated value. A bad setting fails at start-up
// with a message that names the field, the value and what is allowed.
import { InputError } from '../errors.js';
import { backoffDelay } from '../system.js';

export interface RetryPolicyInput {
  /** Delay after the first failure. Default 1 s. */
  initialIntervalMs?: number;
  /** Each further failure multiplies the delay by this. Default 2. */
  backoffCoefficient?: number;
  /** The delay never exceeds this. Default 30 s. */
  maximumIntervalMs?: number;
  /**
   * Fraction of the delay taken off at random, so that objects failing together
   * do not retry together: the delay lies in [base × (1 − jitter), base]. Default 0.2.
   */
  jitter?: number;
  /** Give up (a terminal failure) after this many consecutive failures; 0 = never. Default 0. */
  maximumAttempts?: number;
}

export const DEFAULT_RETRY: Required<RetryPolicyInput> = {
  initialIntervalMs: 1_000,
  backoffCoefficient: 2,
  maximumIntervalMs: 30_000,
  jitter: 0.2,
  maximumAttempts: 0,
};

function check(ok: boolean, field: string, value: unknown, allowed: string): void {
  if (!ok) throw new InputError(`retry policy: ${field} must be ${allowed}, got ${JSON.stringify(value)}`);
}

export class RetryPolicy {
  readonly initialIntervalMs: number;
  readonly backoffCoefficient: number;
  readonly maximumIntervalMs: number;
  readonly jitter: number;
  readonly maximumAttempts: number;
  readonly #random: () => number;

  constructor(input: RetryPolicyInput = {}, random: () => number = Math.random) {
    const p = { ...DEFAULT_RETRY, ...stripUndefined(input) };
    check(Number.isFinite(p.initialIntervalMs) && p.initialIntervalMs > 0, 'initialIntervalMs', p.initialIntervalMs, 'a number of milliseconds above 0');
    check(Number.isFinite(p.backoffCoefficient) && p.backoffCoefficient >= 1, 'backoffCoefficient', p.backoffCoefficient, 'a number of at least 1');
    check(
      Number.isFinite(p.maximumIntervalMs) && p.maximumIntervalMs >= p.initialIntervalMs,
      'maximumIntervalMs',
      p.maximumIntervalMs,
      `a number of milliseconds of at least initialIntervalMs (${p.initialIntervalMs})`,
    );
    check(Number.isFinite(p.jitter) && p.jitter >= 0 && p.jitter <= 1, 'jitter', p.jitter, 'a fraction from 0 to 1');
    check(Number.isInteger(p.maximumAttempts) && p.maximumAttempts >= 0, 'maximumAttempts', p.maximumAttempts, 'a whole number of at least 0 (0 = retry forever)');
    this.initialIntervalMs = p.initialIntervalMs;
    this.backoffCoefficient = p.backoffCoefficient;
    this.maximumIntervalMs = p.maximumIntervalMs;
    this.jitter = p.jitter;
    this.maximumAttempts = p.maximumAttempts;
    this.#random = random;
  }

  static from(value: RetryPolicy | RetryPolicyInput | undefined): RetryPolicy {
    return value instanceof RetryPolicy ? value : new RetryPolicy(value ?? {});
  }

  /** The delay before retrying, without jitter, after `failures` consecutive failures (1 = the first). */
  baseDelay(failures: number): number {
    if (!Number.isInteger(failures) || failures < 1) throw new RangeError(`failures must be a whole number of at least 1, got ${failures}`);
    return backoffDelay(failures, { initialMs: this.initialIntervalMs, maxMs: this.maximumIntervalMs, factor: this.backoffCoefficient });
  }

  /** The delay before retrying after `failures` consecutive failures, jitter applied. */
  delay(failures: number): number {
    const base = this.baseDelay(failures);
    return Math.round(base * (1 - this.jitter * this.#random()));
  }

  /** True when `failures` consecutive failures use up the attempts this policy allows. */
  exhausted(failures: number): boolean {
    return this.maximumAttempts > 0 && failures >= this.maximumAttempts;
  }

  toJSON(): Required<RetryPolicyInput> {
    return {
      initialIntervalMs: this.initialIntervalMs,
      backoffCoefficient: this.backoffCoefficient,
      maximumIntervalMs: this.maximumIntervalMs,
      jitter: this.jitter,
      maximumAttempts: this.maximumAttempts,
    };
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
