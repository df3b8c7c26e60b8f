// The controller runtime: consumes the reconcile queue that the API writes.
//
// - Wake-ups: LISTEN on `threeport_reconcile` (payload = kind name), with
//   polling every `pollIntervalMs` as the fallback, so it also works where
//   NOTIFY is unavailable or a notification is missed.
// - Leasing: due items are leased in batches (`FOR UPDATE SKIP LOCKED`) for
//   `leaseMs`, renewed while they run. Up to `concurrency` reconciles of a kind
//   run at once; up to twice that many are held, so workers never wait for a
//   lease round trip. A crashed process's leases expire and the items return.
// - One reconcile per object at a time: the queue holds one row per object,
//   and a leased row is not leased again until its lease expires.
// - Outcomes commit in one transaction each: success writes `Reconciled: true`,
//   a de-duplicated event and the acknowledgement together; a failure writes
//   its event and schedules the retry together.
// - Periodic resync queues every reconciled object again, so reconcilers can
//   repair drift.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { Logger } from 'pino';
import { kindNamed } from '../kinds/index.js';
import type { Kind } from '../kinds/declare.js';
import type { JsonObject } from '../kinds/validate.js';
import { InputError, NotFoundError, describeError } from '../errors.js';
import type { ObjectStore } from '../store/object-store.js';
import { ReconcileQueue, type LeasedItem } from '../store/reconcile-queue.js';
import type { Leases } from '../store/leases.js';
import { CHANGE_CHANNEL, NOTIFY_CHANNEL } from '../store/schema.js';
import { systemClock, type Clock } from './clock.js';
import { LeaseLostError, ShutdownError, errorReason, eventOverride, isTerminal, requeueHint } from './errors.js';
import { AVAILABLE, SYNCED, WAITING, applyConditions, condition, notSynced, type ConditionUpdate } from './conditions.js';
import { EventRecorder, controllerName, failureReason, recordEvent, successNote, successReason, type EventType } from './events.js';
import { inTransaction, requestReconcile } from './choreography.js';
import { commitSuccess, type SuccessResult } from './success.js';
import type { ReconcileMetrics } from './metrics.js';
import { RetryPolicy, type RetryPolicyInput } from './retry-policy.js';
import { WATCH_BACKSTOP_MS, WatchRouter, deleteOwnedFirst } from './watches.js';
import type { Outcome, ReconcileContext, ReconcileResult, Reconciler, Settlement } from './types.js';
import { backoffDelay } from '../system.js';

export interface ReconcileRuntimeSettings {
  /** Reconciles of one kind running at once in this process (default 8); a reconciler's own setting wins. */
  concurrency?: number;
  /** Per-kind overrides, e.g. { WorkloadInstance: 8 }. */
  concurrencyByKind?: Readonly<Record<string, number>>;
  retry?: RetryPolicy | RetryPolicyInput;
  /** Look for due work at least this often, notifications or not (default 1 s). */
  pollIntervalMs?: number;
  /** How long a lease lasts without renewal (default 15 s); renewed every third of it. */
  leaseMs?: number;
  /** Wake up on NOTIFY (default true); false polls only. */
  listen?: boolean;
  /** Queue every reconciled object again this often (default 10 min; 0 disables). */
  resyncIntervalMs?: number;
  /** Resynced items are spread over this fraction of the interval (default 0.5). */
  resyncJitter?: number;
  /** Objects queued per resync statement (default 1000). */
  resyncBatchSize?: number;
  /** On shutdown, wait this long for running reconciles before aborting them (default 10 s). */
  shutdownDeadlineMs?: number;
  /** Called after each item's outcome is committed (tests and benchmarks observe progress with it). */
  onSettled?: (settlement: Settlement) => void;
}

export interface ReconcileRuntimeOptions extends ReconcileRuntimeSettings {
  store: ObjectStore;
  reconcilers: readonly Reconciler[];
  logger: Logger;
  clock?: Clock;
  metrics?: ReconcileMetrics;
  /** This process's lease owner id; unique by default. */
  owner?: string;
  /** Replicas' named leases: with them, one replica at a time runs the resync (`singleton:resync`). */
  leases?: Leases;
}

export const RESYNC_LEASE = 'singleton:resync';

export const RUNTIME_DEFAULTS = {
  concurrency: 8,
  pollIntervalMs: 1_000,
  leaseMs: 15_000,
  resyncIntervalMs: 10 * 60_000,
  resyncJitter: 0.5,
  resyncBatchSize: 1_000,
  shutdownDeadlineMs: 10_000,
} as const;

/** After the shutdown deadline, aborted reconciles get this long to return. */
const ABORT_GRACE_MS = 2_000;
const MAX_NOTE_LENGTH = 1_000;

interface Lane {
  kind: Kind;
  reconciler: Reconciler;
  controller: string;
  concurrency: number;
  /** Leased, not yet started. */
  buffer: Held[];
  running: number;
  /** There may be due work: set by notifications, polls, full lease batches and local retry timers. */
  hint: boolean;
  wakeTimer?: NodeJS.Timeout;
  wakeAt?: number;
}

interface Held {
  key: string;
  item: LeasedItem;
  lane: Lane;
  abort: AbortController;
  /** Which lease batch brought it; renewals judge only batches leased before they started. */
  batch: number;
  started: boolean;
}

function keyOf(kind: string, id: number): string {
  return `${kind}:${id}`;
}

function positiveInt(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) {
    throw new InputError(`reconcile runtime: ${name} must be a whole number of at least ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

export class ReconcileRuntime {
  readonly owner: string;
  readonly clock: Clock;
  readonly retry: RetryPolicy;
  readonly #store: ObjectStore;
  readonly #queue: ReconcileQueue;
  readonly #events = new EventRecorder();
  readonly #watches: WatchRouter;
  /** LISTEN on the change feed is up, so declared watches wake their objects. */
  #hearingChanges = false;
  readonly #log: Logger;
  readonly #metrics: ReconcileMetrics | undefined;
  readonly #onSettled: ((s: Settlement) => void) | undefined;
  readonly #lanes = new Map<string, Lane>();
  readonly #held = new Map<string, Held>();
  readonly #inflight = new Set<Promise<void>>();
  readonly #pollIntervalMs: number;
  readonly #leaseMs: number;
  readonly #listenEnabled: boolean;
  readonly #resyncIntervalMs: number;
  readonly #resyncJitter: number;
  readonly #resyncBatchSize: number;
  readonly #shutdownDeadlineMs: number;
  readonly #leases: Leases | undefined;

  #stopping = false;
  #stopped: Promise<void> | undefined;
  #loop: Promise<void> = Promise.resolve();
  #woken = false;
  #wakeResolve: (() => void) | undefined;
  #batch = 0;
  #timers: NodeJS.Timeout[] = [];
  #unsubscribeClock: (() => void) | undefined;
  #untrackLeases: (() => void) | undefined;
  #listenClient: pg.Client | undefined;
  #listenFailures = 0;
  #listenRetry: NodeJS.Timeout | undefined;
  #lastRenewal = Date.now();
  #resyncing: Promise<number> | undefined;
  readonly #reportedWaiting = new Set<string>();
  #leaseErrors = 0;

  private constructor(options: ReconcileRuntimeOptions) {
    this.#store = options.store;
    this.#queue = new ReconcileQueue(options.store.db);
    this.#log = options.logger;
    this.#metrics = options.metrics;
    this.#onSettled = options.onSettled;
    this.clock = options.clock ?? systemClock;
    this.retry = RetryPolicy.from(options.retry);
    this.#leases = options.leases;
    this.owner = options.owner ?? options.leases?.holder ?? `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
    this.#pollIntervalMs = positiveInt('pollIntervalMs', options.pollIntervalMs ?? RUNTIME_DEFAULTS.pollIntervalMs, 10);
    this.#leaseMs = positiveInt('leaseMs', options.leaseMs ?? RUNTIME_DEFAULTS.leaseMs, 300);
    this.#listenEnabled = options.listen ?? true;
    this.#resyncIntervalMs = positiveInt('resyncIntervalMs', options.resyncIntervalMs ?? RUNTIME_DEFAULTS.resyncIntervalMs, 0);
    this.#resyncBatchSize = positiveInt('resyncBatchSize', options.resyncBatchSize ?? RUNTIME_DEFAULTS.resyncBatchSize, 1);
    this.#shutdownDeadlineMs = positiveInt('shutdownDeadlineMs', options.shutdownDeadlineMs ?? RUNTIME_DEFAULTS.shutdownDeadlineMs, 0);
    const jitter = options.resyncJitter ?? RUNTIME_DEFAULTS.resyncJitter;
    if (!(jitter >= 0 && jitter <= 1)) throw new InputError(`reconcile runtime: resyncJitter must be a fraction from 0 to 1, got ${jitter}`);
    this.#resyncJitter = jitter;
    const defaultConcurrency = positiveInt('concurrency', options.concurrency ?? RUNTIME_DEFAULTS.concurrency, 1);

    for (const reconciler of options.reconcilers) {
      const kind = kindNamed(reconciler.kind);
      if (!kind.reconciled) {
        throw new InputError(`cannot register a reconciler for ${kind.name}: it is not a reconciled kind, so nothing is ever queued for it`);
      }
      if (this.#lanes.has(kind.name)) throw new InputError(`two reconcilers are registered for ${kind.name}; register one per kind`);
      const concurrency =
        // The operator's per-kind flag beats the reconciler's own default, which beats the global one.
        options.concurrencyByKind?.[kind.name] ?? reconciler.concurrency ?? defaultConcurrency;
      this.#lanes.set(kind.name, {
        kind,
        reconciler,
        controller: reconciler.controller ?? controllerName(kind.domain),
        concurrency: positiveInt(`concurrency of ${kind.name}`, concurrency, 1),
        buffer: [],
        running: 0,
        hint: true,
      });
    }
    for (const name of Object.keys(options.concurrencyByKind ?? {})) kindNamed(name);
    this.#watches = new WatchRouter(options.reconcilers, this.#store, this.#queue, this.#log);
  }

  /**
   * Queues the objects each reconciler's `resume` names (their in-process state did not survive the
   * restart); call once the controllers have started. A reconciler whose `resume` fails is logged
   * and skipped: its objects come back at their next resync. Returns how many were queued.
   */
  async resume(): Promise<number> {
    let queued = 0;
    for (const lane of this.#lanes.values()) {
      if (!lane.reconciler.resume) continue;
      try {
        let n = 0;
        for (const id of await lane.reconciler.resume(this.#store)) {
          try {
            await requestReconcile(this.#store, lane.kind, id);
            n++;
          } catch (err) {
            if (!(err instanceof NotFoundError)) throw err; // deleted meanwhile: nothing to bring back
          }
        }
        if (n > 0) this.#log.info({ kind: lane.kind.name, queued: n }, 'queued to come back after the restart');
        queued += n;
      } catch (err) {
        this.#log.warn({ kind: lane.kind.name, err: describeError(err) }, 'cannot queue what the restart stopped; it comes back at its resync');
      }
    }
    return queued;
  }

  /** Resolves once every change heard so far has been routed to its watchers (tests). */
  watchesSettled(): Promise<void> {
    return this.#watches.settled();
  }

  /** Prepares the resync table and starts consuming the queue. */
  static async start(options: ReconcileRuntimeOptions): Promise<ReconcileRuntime> {
    const runtime = new ReconcileRuntime(options);
    await runtime.#begin();
    return runtime;
  }

  get kinds(): string[] {
    return [...this.#lanes.keys()];
  }

  get running(): boolean {
    return !this.#stopping;
  }

  /** Leases held right now, per kind (running or about to run). */
  leasesHeld(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const h of this.#held.values()) counts.set(h.item.kind, (counts.get(h.item.kind) ?? 0) + 1);
    return counts;
  }

  async #begin(): Promise<void> {
    this.#log.info(
      {
        owner: this.owner,
        kinds: Object.fromEntries([...this.#lanes.values()].map((l) => [l.kind.name, l.concurrency])),
        leaseMs: this.#leaseMs,
        pollIntervalMs: this.#pollIntervalMs,
        listen: this.#listenEnabled,
        resyncIntervalMs: this.#resyncIntervalMs,
        retry: this.retry.toJSON(),
      },
      'reconcile runtime started',
    );
    this.#untrackLeases = this.#metrics?.trackLeases(() => this.leasesHeld());
    this.#unsubscribeClock = this.clock.onAdvance?.(() => this.#wakeAll());
    // The poll timer is the one ref'd timer: it keeps a polling-only process alive.
    this.#timers.push(setInterval(() => this.#wakeAll(), this.#pollIntervalMs));
    this.#timers.push(setInterval(() => void this.#renew(), Math.max(100, Math.floor(this.#leaseMs / 3))).unref());
    if (this.#resyncIntervalMs > 0) {
      this.#leases?.want(RESYNC_LEASE);
      const tick = Math.min(60_000, Math.max(1_000, Math.floor(this.#resyncIntervalMs / 10)));
      this.#timers.push(
        setInterval(() => void this.resync().catch((err: unknown) => this.#log.warn({ err: describeError(err) }, 'resync failed; the next tick tries again')), tick).unref(),
      );
    }
    void this.#reportWaitingKinds();
    // The first LISTEN before the first lease, so that the first reconciles already hear the change
    // feed and a write made once start has resolved reaches the watches. Bounded: a database that
    // does not answer is retried in the background, and the engine polls meanwhile.
    if (this.#listenEnabled) await within(this.#listen(), 5_000);
    this.#loop = this.#run();
  }

  // ---- wake-ups -------------------------------------------------------------

  #wake(): void {
    this.#woken = true;
    const resolve = this.#wakeResolve;
    this.#wakeResolve = undefined;
    resolve?.();
  }

  #wakeAll(): void {
    for (const lane of this.#lanes.values()) lane.hint = true;
    this.#wake();
  }

  async #sleepUntilWoken(): Promise<void> {
    if (!this.#woken) await new Promise<void>((resolve) => (this.#wakeResolve = resolve));
    this.#woken = false;
  }

  /** Looks at `lane` again in `delayMs` (a retry or requeue this process scheduled). */
  #wakeLaneIn(lane: Lane, delayMs: number): void {
    if (this.#stopping || delayMs >= this.#pollIntervalMs * 5) return;
    const at = Date.now() + delayMs;
    if (lane.wakeTimer && lane.wakeAt !== undefined && lane.wakeAt <= at) return;
    if (lane.wakeTimer) clearTimeout(lane.wakeTimer);
    lane.wakeAt = at;
    lane.wakeTimer = setTimeout(() => {
      lane.wakeTimer = undefined;
      lane.wakeAt = undefined;
      lane.hint = true;
      this.#wake();
    }, delayMs + 2).unref();
  }

  async #listen(): Promise<void> {
    if (this.#stopping) return;
    const client = this.#store.db.newClient();
    this.#listenClient = client;
    client.on('notification', (msg) => {
      if (msg.channel === CHANGE_CHANNEL) return this.#watches.heard(msg.payload ?? '');
      const lane = this.#lanes.get(msg.payload ?? '');
      if (lane) {
        lane.hint = true;
        this.#wake();
      }
    });
    client.on('error', (err) => this.#listenLost(client, err));
    client.on('end', () => this.#listenLost(client));
    try {
      await client.connect();
    } catch (err) {
      this.#listenLost(client, err);
      return;
    }
    try {
      await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
      // Only a process whose reconcilers watch or own something hears every write.
      if (this.#watches.active) await client.query(`LISTEN ${CHANGE_CHANNEL}`);
    } catch (err) {
      // The database does not do LISTEN (some PostgreSQL-compatible engines): poll only.
      this.#listenClient = undefined;
      await client.end().catch(() => {});
      this.#log.warn({ err: describeError(err), pollIntervalMs: this.#pollIntervalMs }, 'LISTEN is unavailable; polling for work');
      return;
    }
    if (this.#listenFailures > 0) this.#log.info('LISTEN connection restored');
    this.#listenFailures = 0;
    this.#hearingChanges = this.#watches.active;
    this.#wakeAll(); // anything notified while we were not listening
  }

  #listenLost(client: pg.Client, err?: unknown): void {
    if (this.#listenClient !== client) return;
    this.#listenClient = undefined;
    this.#hearingChanges = false;
    void client.end().catch(() => {});
    if (this.#stopping) return;
    const delay = backoffDelay(this.#listenFailures + 1, { initialMs: 500, maxMs: 30_000 });
    if (this.#listenFailures === 0) {
      this.#log.warn({ err: err ? describeError(err) : 'connection ended', retryInMs: delay }, 'LISTEN connection lost; polling until it is back');
    }
    this.#listenFailures++;
    this.#listenRetry = setTimeout(() => void this.#listen(), delay);
    this.#listenRetry.unref();
  }

  // ---- leasing ---------------------------------------------------------------

  async #run(): Promise<void> {
    while (!this.#stopping) {
      this.#startWork();
      const requests: Array<{ lane: Lane; limit: number }> = [];
      for (const lane of this.#lanes.values()) {
        const held = lane.buffer.length + lane.running;
        if (lane.hint && held <= lane.concurrency) requests.push({ lane, limit: 2 * lane.concurrency - held });
      }
      if (requests.length === 0) {
        await this.#sleepUntilWoken();
        continue;
      }
      for (const r of requests) r.lane.hint = false;
      let items: LeasedItem[];
      try {
        items = await this.#queue.lease(
          this.owner,
          requests.map((r) => ({ kind: r.lane.kind.name, limit: r.limit })),
          this.#leaseMs,
          this.clock.skewMs,
        );
        if (this.#leaseErrors > 0) this.#log.info('leasing works again');
        this.#leaseErrors = 0;
      } catch (err) {
        if (this.#stopping) break;
        if (this.#leaseErrors === 0) this.#log.error({ err: describeError(err) }, 'cannot lease reconcile items; retrying');
        this.#leaseErrors++;
        for (const r of requests) r.lane.hint = true;
        await within(new Promise((resolve) => setTimeout(resolve, backoffDelay(this.#leaseErrors, { initialMs: 200, maxMs: this.#pollIntervalMs })).unref()), 60_000);
        continue;
      }
      const batch = ++this.#batch;
      const counts = new Map<string, number>();
      for (const item of items) counts.set(item.kind, (counts.get(item.kind) ?? 0) + 1);
      for (const r of requests) if ((counts.get(r.lane.kind.name) ?? 0) >= r.limit) r.lane.hint = true;
      for (const item of items) {
        const lane = this.#lanes.get(item.kind)!;
        const held: Held = { key: keyOf(item.kind, item.objectId), item, lane, abort: new AbortController(), batch, started: false };
        lane.buffer.push(held);
        this.#held.set(held.key, held);
      }
    }
  }

  #startWork(): void {
    for (const lane of this.#lanes.values()) {
      while (lane.running < lane.concurrency && lane.buffer.length > 0) {
        const held = lane.buffer.shift()!;
        held.started = true;
        lane.running++;
        const work: Promise<void> = this.#work(held).finally(() => {
          lane.running--;
          if (this.#held.get(held.key) === held) this.#held.delete(held.key);
          this.#inflight.delete(work);
          this.#wake();
        });
        this.#inflight.add(work);
      }
    }
  }

  async #renew(): Promise<void> {
    if (this.#held.size === 0) {
      this.#lastRenewal = Date.now();
      return;
    }
    const before = this.#batch;
    try {
      const alive = new Set((await this.#queue.renew(this.owner, this.#leaseMs, this.clock.skewMs)).map((r) => keyOf(r.kind, r.objectId)));
      this.#lastRenewal = Date.now();
      for (const held of [...this.#held.values()]) {
        if (held.batch <= before && !alive.has(held.key)) this.#leaseLost(held);
      }
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, 'cannot renew leases');
      if (Date.now() - this.#lastRenewal > this.#leaseMs) {
        for (const held of [...this.#held.values()]) this.#leaseLost(held);
      }
    }
  }

  #leaseLost(held: Held): void {
    if (held.abort.signal.aborted) return;
    this.#log.warn({ kind: held.item.kind, id: held.item.objectId }, 'lease lost: another worker has the item');
    held.abort.abort(new LeaseLostError(held.item.kind, held.item.objectId));
    if (!held.started) {
      const i = held.lane.buffer.indexOf(held);
      if (i >= 0) held.lane.buffer.splice(i, 1);
      if (this.#held.get(held.key) === held) this.#held.delete(held.key);
    }
  }

  // ---- one item --------------------------------------------------------------

  async #work(held: Held): Promise<void> {
    const { item, lane } = held;
    const started = performance.now();
    const attempt = item.attempts + 1;
    const op = item.operation;
    // A child logger costs more than a no-I/O reconcile: make it on first use.
    let child: Logger | undefined;
    const log = (): Logger => (child ??= this.#log.child({ kind: item.kind, id: item.objectId, op, attempt }));
    const settle = (outcome: Outcome, extra: Partial<Settlement> = {}): void => {
      const durationMs = performance.now() - started;
      if (this.#held.get(held.key) === held) this.#held.delete(held.key); // the outcome is committed: no lease left
      // Released for another run (the object changed meanwhile): its NOTIFY came while we held it, so look again now.
      if (extra.again) lane.hint = true;
      this.#metrics?.observe(item.kind, op, outcome, durationMs / 1000);
      if (this.#onSettled) {
        try {
          this.#onSettled({ owner: this.owner, kind: item.kind, id: item.objectId, operation: op, attempt, outcome, durationMs, ...extra });
        } catch (err) {
          log().warn({ err: describeError(err) }, 'onSettled hook threw');
        }
      }
    };
    try {
      if (held.abort.signal.aborted) {
        await this.#giveBack(held, log);
        return settle(held.abort.signal.reason instanceof LeaseLostError ? 'lease-lost' : 'released');
      }
      let object: JsonObject;
      try {
        object = await this.#store.getObject(lane.kind, item.objectId);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
        await this.#queue.drop(item, this.owner);
        log().debug('object no longer exists; item dropped');
        return settle('dropped');
      }
      if (op === 'Created' && object['DeletionScheduled']) {
        const ack = await this.#queue.ack(item, this.owner, false);
        log().debug('deletion is scheduled; create skipped');
        return settle(ack.done || ack.again ? 'skipped' : 'lease-lost');
      }

      const redact = this.#redactor(lane.kind, object, item.payload);
      const handler = op === 'Created' ? lane.reconciler.created : op === 'Updated' ? lane.reconciler.updated : lane.reconciler.deleted;
      let result: ReconcileResult;
      try {
        // An owner goes after its children (`owns`): ask for their deletion, and wait until the
        // last one is gone (its soft delete wakes this item through the change feed).
        const owns = op === 'Deleted' ? lane.reconciler.owns : undefined;
        const children = owns?.length ? await deleteOwnedFirst(this.#store, owns, item.objectId) : 0;
        if (children > 0) {
          result = { requeueAfterMs: this.#hearingChanges ? WATCH_BACKSTOP_MS : this.#pollIntervalMs };
          log().debug({ children }, 'waiting for owned objects to be deleted first');
        } else result = handler ? await handler.call(lane.reconciler, this.#context(held, attempt, log), object) : undefined;
        if (result !== undefined && result !== null) {
          const delay = (result as { requeueAfterMs?: unknown }).requeueAfterMs;
          if (typeof delay !== 'number' || !Number.isFinite(delay) || delay < 0) {
            throw new Error(
              `the ${item.kind} reconciler returned ${JSON.stringify(result)}; expected nothing or { requeueAfterMs: <milliseconds ≥ 0> }`,
            );
          }
        }
      } catch (err) {
        return await this.#failed(held, object, attempt, log, redact, err, settle);
      }

      if (result) {
        const delayMs = Math.round(result.requeueAfterMs);
        const to = result.handoffTo !== undefined && result.handoffTo !== this.owner ? result.handoffTo : undefined;
        // Waiting (not a hand-off to the replica that owns the runtime): Ready False, Reconciling.
        if (!to) await this.#writeConditions(held, object, [SYNCED, WAITING]);
        if (!(await this.#queue.requeue(item, this.owner, delayMs, this.clock.skewMs, to))) throw new LeaseLostError(item.kind, item.objectId);
        if (to) {
          // The owner may be asleep until its next poll: wake it (every replica listens on the kind's channel).
          await this.#store.db
            .query('SELECT pg_notify($1, $2)', [NOTIFY_CHANNEL, item.kind])
            .catch((e: unknown) => log().warn({ err: describeError(e) }, 'cannot wake the owner; it polls'));
          log().debug({ to }, 'handed to the replica that owns its runtime');
        } else {
          this.#wakeLaneIn(lane, delayMs);
          log().debug({ delayMs }, 'requeued by the reconciler');
        }
        return settle('requeued', { delayMs });
      }
      const again = op === 'Deleted' ? await this.#finishDeletion(held, object) : await this.#finishSuccess(held, object);
      if (this.#log.isLevelEnabled('debug')) log().debug({ again }, 'reconciled');
      return settle('reconciled', again ? { again } : {});
    } catch (err) {
      if (err instanceof LeaseLostError || held.abort.signal.reason instanceof LeaseLostError) {
        log().warn('lease lost before the outcome was recorded; the new owner will run it');
        return settle('lease-lost');
      }
      if (err instanceof NotFoundError) {
        await this.#queue.drop(item, this.owner).catch((e: unknown) => log().warn({ err: describeError(e) }, 'cannot drop the item; its lease expires'));
        return settle('dropped');
      }
      const message = describeError(err);
      log().error({ err: message }, 'cannot record the outcome of a reconcile; it will run again');
      const delayMs = this.retry.delay(attempt);
      await this.#queue
        .fail(item, this.owner, { delayMs, terminal: false, message: `controller error: ${message}`.slice(0, MAX_NOTE_LENGTH) }, this.clock.skewMs)
        // The database is unreachable: the lease expires and the item returns.
        .catch((e: unknown) => log().warn({ err: describeError(e) }, 'cannot record the failure either; the lease expires and the item returns'));
      this.#wakeLaneIn(lane, delayMs);
      return settle('error', { error: message, delayMs });
    }
  }

  #context(held: Held, attempt: number, log: () => Logger): ReconcileContext {
    const { item, lane } = held;
    const store = this.#store;
    const clock = this.clock;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the getter below reads a private field
    const engine = this;
    return {
      get watching() {
        return engine.#hearingChanges;
      },
      kind: lane.kind,
      id: item.objectId,
      operation: item.operation,
      attempt,
      firstQueuedAt: item.firstQueuedAt,
      store,
      get log() {
        return log();
      },
      payload: item.payload,
      signal: held.abort.signal,
      clock,
      async patchSelf(changes) {
        return JSON.parse(await store.patch(lane.kind, item.objectId, changes, { enqueue: false })) as JsonObject;
      },
      transaction(work) {
        return inTransaction(store, work, { clock, reportingController: lane.controller, supplies: lane.reconciler.supplies ?? [] });
      },
      async recordEvent(event) {
        await recordEvent(
          store.db.pool,
          lane.kind.name,
          item.objectId,
          { reason: event.reason, note: event.note, type: event.type ?? 'Normal', reportingController: lane.controller },
          new Date(clock.now()),
        );
      },
    };
  }

  /** Success: `Reconciled: true`, the success event and the acknowledgement commit together. */
  async #finishSuccess(held: Held, object: JsonObject): Promise<boolean> {
    const { item, lane } = held;
    const changes: JsonObject = { Reconciled: true };
    if (item.operation === 'Created' && object['CreationFailed'] === true) changes['CreationFailed'] = false;
    const at = new Date(this.clock.now());
    if (lane.kind.reconciled) {
      // What this reconcile saw: the Generation read before it ran (a later change runs again).
      const generation = object['Generation'];
      if (typeof generation === 'number' && object['ObservedGeneration'] !== generation) changes['ObservedGeneration'] = generation;
      const conditions = applyConditions(object, [AVAILABLE, SYNCED], at);
      if (conditions) changes['Conditions'] = conditions as unknown as JsonObject[];
    }
    const event = {
      reason: successReason(item.operation),
      note: successNote(item.kind, item.operation),
      type: 'Normal' as const,
      reportingController: lane.controller,
    };
    const key = EventRecorder.key(item.kind, item.objectId, event);
    const check = (result: SuccessResult): boolean => {
      if (!result.held) throw new LeaseLostError(item.kind, item.objectId);
      if (!result.found) throw new NotFoundError('record not found');
      if (!result.done && !result.again) throw new LeaseLostError(item.kind, item.objectId);
      return result.again;
    };
    // A create never runs again once one has succeeded, so its success event cannot exist yet.
    const fast = this.#events.fastPath(key, item.operation === 'Created');
    if (fast) {
      // The hot path: one statement, one commit.
      const result = await commitSuccess(this.#store.db.pool, lane.kind, item, this.owner, changes, at, { ...fast, event });
      const again = check(result);
      if (result.eventId !== null) {
        this.#events.remember(key, result.eventId);
      } else {
        // The remembered event is gone (deleted): record a new one the slow way.
        this.#events.forgetKey(key);
        await this.#events.record(this.#store.db.pool, item.kind, item.objectId, event, at);
      }
      return again;
    }
    return this.#store.db.transaction(async (tx) => {
      await this.#events.record(tx, item.kind, item.objectId, event, at);
      return check(await commitSuccess(tx, lane.kind, item, this.owner, changes, at, { mode: 'none' }));
    });
  }

  /** Deletion (spec §1.7): confirm it and soft-delete the row, in one transaction. */
  async #finishDeletion(held: Held, object: JsonObject): Promise<boolean> {
    const { item, lane } = held;
    const at = new Date(this.clock.now());
    await this.#store.db.transaction(async (tx) => {
      const now = at.toISOString();
      await this.#store.patch(
        lane.kind,
        item.objectId,
        { DeletionAcknowledged: object['DeletionAcknowledged'] ?? now, DeletionConfirmed: now, Reconciled: true },
        { enqueue: false },
        tx,
      );
      if (!(await this.#queue.holds(item, this.owner, tx))) throw new LeaseLostError(item.kind, item.objectId);
      await this.#events.record(
        tx,
        item.kind,
        item.objectId,
        { reason: successReason('Deleted'), note: successNote(item.kind, 'Deleted'), type: 'Normal', reportingController: lane.controller },
        at,
      );
      await this.#store.softDelete(lane.kind, item.objectId, tx);
    });
    this.#events.forget(item.kind, item.objectId);
    return false;
  }

  async #failed(
    held: Held,
    object: JsonObject,
    attempt: number,
    log: () => Logger,
    redact: (text: string) => string,
    err: unknown,
    settle: (outcome: Outcome, extra?: Partial<Settlement>) => void,
  ): Promise<void> {
    const { item, lane } = held;
    const reason: unknown = held.abort.signal.aborted ? held.abort.signal.reason : undefined;
    if (reason instanceof ShutdownError) {
      await this.#giveBack(held, log);
      return settle('released');
    }
    if (reason instanceof LeaseLostError) return settle('lease-lost');

    let terminal = isTerminal(err);
    let message = redact(describeError(err));
    if (!terminal && this.retry.exhausted(attempt)) {
      terminal = true;
      message = redact(`gave up after ${attempt} attempts: ${describeError(err)}`);
    }
    const delayMs = terminal ? 0 : (requeueHint(err) ?? this.retry.delay(attempt));
    const override = eventOverride(err);
    const event = {
      reason: override?.reason ?? failureReason(item.operation),
      note: override ? redact(override.note) : message,
      type: (override?.type ?? 'Warning') as EventType,
      reportingController: lane.controller,
    };
    const at = new Date(this.clock.now());
    const status: JsonObject = {};
    if (terminal && item.operation === 'Created') status['CreationFailed'] = true;
    if (lane.kind.reconciled) {
      const updates = [notSynced(errorReason(err) ?? (terminal ? 'ReconcileFailed' : 'ReconcileError'), event.note)];
      if (terminal && item.operation === 'Created') updates.push({ Type: 'Ready', Status: 'False', Reason: 'CreationFailed', Message: event.note });
      else if (!condition(object, 'Ready')) updates.push({ Type: 'Ready', Status: 'Unknown', Reason: 'Reconciling', Message: '' });
      const conditions = applyConditions(object, updates, at);
      if (conditions) status['Conditions'] = conditions as unknown as JsonObject[];
    }
    await this.#store.db.transaction(async (tx) => {
      await this.#events.record(tx, item.kind, item.objectId, event, at);
      if (Object.keys(status).length > 0) await this.#store.patch(lane.kind, item.objectId, status, { enqueue: false }, tx);
      const recorded = await this.#queue.fail(item, this.owner, { delayMs, terminal, message }, this.clock.skewMs, tx);
      if (!recorded) throw new LeaseLostError(item.kind, item.objectId);
    });
    if (terminal) {
      log().error({ err: message }, 'reconcile failed terminally; it runs again when the object changes');
      return settle('terminal', { error: message });
    }
    log().warn({ err: message, retryInMs: delayMs }, 'reconcile failed; retrying');
    this.#wakeLaneIn(lane, delayMs);
    return settle('failed', { error: message, delayMs });
  }

  /** Writes the object's conditions when `updates` change them (a status write: nothing is queued). */
  async #writeConditions(held: Held, object: JsonObject, updates: readonly ConditionUpdate[]): Promise<void> {
    if (!held.lane.kind.reconciled) return;
    const conditions = applyConditions(object, updates, new Date(this.clock.now()));
    if (!conditions) return;
    await this.#store.patch(held.lane.kind, held.item.objectId, { Conditions: conditions as unknown as JsonObject[] }, { enqueue: false });
  }

  async #giveBack(held: Held, log: () => Logger): Promise<void> {
    await this.#queue.release(this.owner, [held.item]).catch((err: unknown) => {
      log().warn({ err: describeError(err) }, 'cannot release the lease; it will expire');
    });
  }

  /** Scrubs the object's secrets (ciphertext and plaintext) from text bound for events and logs. */
  #redactor(kind: Kind, object: JsonObject, payload: JsonObject | null): (text: string) => string {
    const secrets: string[] = [];
    const add = (value: unknown): void => {
      if (typeof value !== 'string' || value.length < 4) return;
      secrets.push(value);
      try {
        const plain = this.#store.decrypt(value);
        if (plain.length >= 4) secrets.push(plain);
      } catch {
        // not ciphertext, or no key: the value itself is still scrubbed
      }
    };
    for (const field of kind.encryptedFields) {
      for (const source of [object, payload]) {
        const value = source?.[field];
        if (typeof value === 'string') add(value);
        else if (value && typeof value === 'object') Object.values(value).forEach(add);
      }
    }
    secrets.sort((a, b) => b.length - a.length);
    return (text) => {
      let out = text;
      for (const s of secrets) out = out.split(s).join('[redacted]');
      return out.length > MAX_NOTE_LENGTH ? `${out.slice(0, MAX_NOTE_LENGTH - 1)}…` : out;
    };
  }

  // ---- resync ----------------------------------------------------------------

  /**
   * Queues every reconciled object of each kind whose resync interval has
   * passed (claimed through the database, so one process does it per
   * interval). Returns how many items were queued. Runs on a timer; tests call it.
   */
  resync(): Promise<number> {
    if (this.#resyncing) return this.#resyncing;
    this.#resyncing = (async () => {
      let queued = 0;
      try {
        if (this.#resyncIntervalMs <= 0 || this.#stopping) return 0;
        // Several replicas: the holder of the resync lease does it (the claim below still spaces the intervals).
        if (this.#leases && !this.#leases.holds(RESYNC_LEASE)) return 0;
        for (const lane of this.#lanes.values()) {
          if (this.#stopping) break;
          if (!(await this.#queue.claimResync(lane.kind.name, this.#resyncIntervalMs, this.clock.skewMs))) continue;
          const n = await this.#queue.resync(lane.kind, {
            batchSize: this.#resyncBatchSize,
            spreadMs: this.#resyncIntervalMs * this.#resyncJitter,
            skewMs: this.clock.skewMs,
          });
          queued += n;
          this.#log.info({ kind: lane.kind.name, queued: n }, 'resync queued reconciled objects');
        }
        await this.#reportWaitingKinds();
      } catch (err) {
        this.#log.warn({ err: describeError(err) }, 'resync failed; it is tried again on the next tick');
      } finally {
        this.#resyncing = undefined;
      }
      return queued;
    })();
    return this.#resyncing;
  }

  /** Logs, once per kind, work queued for kinds that no reconciler here handles. */
  async #reportWaitingKinds(): Promise<void> {
    try {
      for (const { kind, count } of await this.#queue.waitingOutside(this.kinds)) {
        if (this.#reportedWaiting.has(kind)) continue;
        this.#reportedWaiting.add(kind);
        this.#log.info({ kind, queued: count }, 'items wait for a controller that this process does not run; they stay queued until one is deployed');
      }
    } catch (err) {
      this.#log.debug({ err: describeError(err) }, 'cannot list waiting kinds');
    }
  }

  // ---- shutdown --------------------------------------------------------------

  /**
   * Stops leasing, hands back items not yet started, lets running reconciles
   * finish for up to `deadlineMs`, then aborts them (their AbortSignal fires),
   * releases every lease still held and closes the LISTEN connection.
   */
  stop(deadlineMs = this.#shutdownDeadlineMs): Promise<void> {
    if (this.#stopped) return this.#stopped;
    this.#stopping = true;
    this.#stopped = (async () => {
      const renewTimer = this.#timers[1];
      for (const t of this.#timers) if (t !== renewTimer) clearInterval(t);
      if (this.#listenRetry) clearTimeout(this.#listenRetry);
      for (const lane of this.#lanes.values()) if (lane.wakeTimer) clearTimeout(lane.wakeTimer);
      this.#unsubscribeClock?.();
      const listen = this.#listenClient;
      this.#listenClient = undefined;
      await listen?.end().catch(() => {});
      this.#wake();
      await this.#loop;
      const unstarted = [...this.#lanes.values()].flatMap((lane) => lane.buffer.splice(0));
      for (const held of unstarted) this.#held.delete(held.key);
      await this.#queue.release(this.owner, unstarted.map((h) => h.item)).catch(() => {});
      const running = this.#inflight.size;
      if (!(await within(Promise.allSettled([...this.#inflight]), deadlineMs))) {
        this.#log.warn({ running: this.#inflight.size, deadlineMs }, 'aborting reconciles still running at the shutdown deadline');
        for (const held of this.#held.values()) if (!held.abort.signal.aborted) held.abort.abort(new ShutdownError());
        await within(Promise.allSettled([...this.#inflight]), ABORT_GRACE_MS);
      }
      if (renewTimer) clearInterval(renewTimer);
      const released = await this.#queue.releaseAll(this.owner).catch(() => 0);
      await this.#resyncing;
      this.#untrackLeases?.();
      this.#log.info({ handedBack: unstarted.length, finishedDuringShutdown: running, released }, 'reconcile runtime stopped');
    })();
    return this.#stopped;
  }
}
