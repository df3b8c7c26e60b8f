// Small helpers that belong to no layer, kept in one place so each has one meaning:
// free loopback ports, whether a process is alive, and exponential backoff.
// The engine, the providers, the CLI, the tests and the benchmarks all use these.
import { createServer } from 'node:net';

// ---- Ports -------------------------------------------------------------------------------------

/**
 * Ports handed out by this process, and to whom (an owner such as a cluster directory). A port
 * the OS reports free can still be promised to a peer that has not bound it yet; remembering
 * what was handed out keeps two clusters, servers or tests from getting the same one.
 */
const handedOut = new Map<number, string>();

/** Whether `port` can be bound on 127.0.0.1 right now (by this process alone). */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A currently free TCP port on 127.0.0.1, never handed out twice by this process. */
export async function freePort(owner = ''): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen({ port: 0, host: '127.0.0.1' }, () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr !== null ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !handedOut.has(port)) {
      handedOut.set(port, owner);
      return port;
    }
  }
  throw new Error('could not find a free port on 127.0.0.1');
}

/**
 * `preferred` when it is free and not promised to someone else in this process (a restarted
 * cluster keeps its ports), else a new free port. `owner` identifies the caller (its directory).
 */
export async function reusePort(preferred: number | undefined, owner: string): Promise<number> {
  const promisedTo = preferred === undefined ? undefined : handedOut.get(preferred);
  if (preferred !== undefined && preferred > 0 && (promisedTo === undefined || promisedTo === owner) && (await portIsFree(preferred))) {
    handedOut.set(preferred, owner);
    return preferred;
  }
  return freePort(owner);
}

// ---- Processes ---------------------------------------------------------------------------------

/** Whether a process with this pid exists. EPERM means it exists but belongs to another user. */
export function processAlive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ---- Backoff -----------------------------------------------------------------------------------

export interface BackoffShape {
  /** The delay after the first failure. */
  initialMs: number;
  /** The delay never exceeds this. */
  maxMs: number;
  /** Each further failure multiplies the delay by this (at least 1). Default 2. */
  factor?: number;
}

/**
 * The delay after `failures` consecutive failures (1 = the first): initialMs × factor^(failures − 1),
 * at most maxMs. No jitter: callers that retry together add their own, in the form their peers expect.
 */
export function backoffDelay(failures: number, shape: BackoffShape): number {
  const grown = shape.initialMs * Math.pow(shape.factor ?? 2, Math.max(0, failures - 1));
  return Math.min(shape.maxMs, grown);
}

/**
 * A failure counter with its backoff, for loops that retry one thing (a watch, a restarted
 * process). With `resetAfterMs`, a failure that comes that long after the previous one starts
 * again from initialMs: a process that ran a while before exiting is not punished for old crashes.
 */
export class Backoff {
  #failures = 0;
  #last = Number.NEGATIVE_INFINITY;

  constructor(readonly shape: BackoffShape & { resetAfterMs?: number }) {}

  /** Consecutive failures counted so far. */
  get failures(): number {
    return this.#failures;
  }

  /** Records a failure at `now` and returns the delay before the next try. */
  next(now = Date.now()): number {
    const reset = this.shape.resetAfterMs;
    if (reset !== undefined && now - this.#last >= reset) this.#failures = 0;
    this.#last = now;
    this.#failures++;
    return backoffDelay(this.#failures, this.shape);
  }

  /** A success: the next failure waits initialMs again. */
  reset(): void {
    this.#failures = 0;
    this.#last = Number.NEGATIVE_INFINITY;
  }
}
