// Errors a reconciler throws, and what the runtime does with them. Whether a
// failure is retried is data on the error (`retryable`), not an accident of
// which class was thrown: any error carrying `retryable: false` is terminal.
import { describeError } from '../errors.js';

export interface EventOverride {
  reason: string;
  note: string;
  type?: 'Normal' | 'Warning';
}

export interface ReconcileErrorOptions {
  /** False: stop retrying and record the failure (default true). */
  retryable?: boolean;
  /** Retry after this delay instead of the retry policy's backoff. */
  requeueAfterMs?: number;
  /** Record this event instead of the default `Failed<Op>` one (upstream ErrWithEvent). */
  event?: EventOverride;
  cause?: unknown;
}

export class ReconcileError extends Error {
  readonly retryable: boolean;
  readonly requeueAfterMs: number | undefined;
  readonly event: EventOverride | undefined;

  constructor(message: string, options: ReconcileErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retryable = options.retryable ?? true;
    this.requeueAfterMs = options.requeueAfterMs;
    this.event = options.event;
  }
}

/**
 * A failure that retrying cannot fix (bad input, a resource that can never be
 * created). The runtime stops retrying until the object changes, records the
 * message on the queue row (`last_error`) and in a Warning event, and sets
 * `CreationFailed: true` when the failed operation was a create.
 */
export class TerminalError extends ReconcileError {
  constructor(message: string, options: Omit<ReconcileErrorOptions, 'retryable' | 'requeueAfterMs'> = {}) {
    super(message, { ...options, retryable: false });
  }
}

/** The lease on a queue item was lost (it expired and another worker took it). */
export class LeaseLostError extends Error {
  constructor(kind: string, id: number) {
    super(`the lease on ${kind} ${id} was lost: another worker has taken the item`);
    this.name = 'LeaseLostError';
  }
}

/** The reason passed to a reconcile's AbortSignal when the process shuts down. */
export class ShutdownError extends Error {
  constructor() {
    super('the controller is shutting down');
    this.name = 'ShutdownError';
  }
}

export function isTerminal(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { retryable?: unknown }).retryable === false;
}

export function requeueHint(err: unknown): number | undefined {
  const v = typeof err === 'object' && err !== null ? (err as { requeueAfterMs?: unknown }).requeueAfterMs : undefined;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/**
 * The event to record instead of the default `Failed<Op>` one: a ReconcileError's own, or, for a
 * provider error that names an event reason (`eventReason`, e.g. RuntimeProviderError), that
 * reason with the error's message. Other errors keep upstream's Failed<Op> reasons, which
 * upstream clients read; their `reason` goes to the Synced condition.
 */
export function eventOverride(err: unknown): EventOverride | undefined {
  if (err instanceof ReconcileError) return err.event;
  const reason = typeof err === 'object' && err !== null ? (err as { eventReason?: unknown }).eventReason : undefined;
  if (typeof reason === 'string' && reason !== '') return { reason, note: describeError(err), type: 'Warning' };
  return undefined;
}

/**
 * The machine-readable reason an error carries (`reason` on a ThreeportError or a provider error),
 * used for the Synced condition; undefined when it carries none.
 */
export function errorReason(err: unknown): string | undefined {
  const v = typeof err === 'object' && err !== null ? (err as { reason?: unknown }).reason : undefined;
  return typeof v === 'string' && v !== '' ? v : undefined;
}
