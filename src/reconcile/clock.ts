// Time as the controller runtime sees it. The queue compares times inside
// PostgreSQL (now()), so every process agrees on when a lease expires or an
// item becomes due. A clock here is "real time shifted by skewMs": the system
// clock has no skew, and tests advance a ControllableClock to make a backoff,
// a requeue delay, a lease expiry or a resync interval pass without waiting.

export interface Clock {
  /** The current time in epoch milliseconds. */
  now(): number;
  /** How far this clock runs ahead of real time. Queue SQL shifts the database's now() by it. */
  readonly skewMs: number;
  /** Called after the clock jumps, so the runtime can look for newly due work. */
  onAdvance?(listener: () => void): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  skewMs: 0,
};

/** A clock for tests: real time plus an offset that only `advance` changes. */
export class ControllableClock implements Clock {
  #skew = 0;
  readonly #listeners = new Set<() => void>();

  get skewMs(): number {
    return this.#skew;
  }

  now(): number {
    return Date.now() + this.#skew;
  }

  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`a clock only moves forward: advance(${ms})`);
    this.#skew += ms;
    for (const listener of this.#listeners) listener();
  }

  onAdvance(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
