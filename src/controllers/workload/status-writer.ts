// The workload status writer: each WorkloadInstance's Status is derived on the server from its
// reconcile phase and what its runtime's watches see (status.ts), and written when it changes.
// Watches mark instances dirty; a timer writes the dirty ones, one write at a time per instance,
// and time-based rechecks (a warning window ending, a pod's start-up grace) mark them dirty again.
import type { Logger } from 'pino';
import { WorkloadInstance } from '../../kinds/workload.js';
import type { JsonObject } from '../../kinds/validate.js';
import { NotFoundError, describeError } from '../../errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import type { Queryable } from '../../store/database.js';
import type { RuntimeWatcher } from './runtime-watch.js';
import { deriveStatus, statusFields, statusKey, type Phase, type StatusResult } from './status.js';

/** What the controller knows of one instance in this process. */
export interface InstanceState {
  runtimeId: number | undefined;
  phase: Phase;
  /** The Status and StatusReason last written (or read), as statusKey. */
  written: string | undefined;
}

/** What the writer needs from the runtime watch registry. */
export interface StatusSources {
  watcher(runtimeId: number): RuntimeWatcher | undefined;
  /** undefined when there is one replica (no leases); else whether this replica owns the runtime. */
  holds(runtimeId: number): boolean | undefined;
  /** Throws unless this replica owns the runtime, holding its lease until `tx` ends. */
  fence(tx: Queryable, runtimeId: number): Promise<void>;
}

export interface StatusWriterOptions {
  log: Logger;
  sources: StatusSources;
  /** How often dirty instances are written (default 500 ms). */
  flushIntervalMs?: number;
  /** Warning events make an instance Unhealthy for this long (default 60 s). */
  warningWindowMs?: number;
  /** A running pod may take this long to become ready (default 30 s). */
  startupGraceMs?: number;
}

export class InstanceStatusWriter {
  readonly #options: StatusWriterOptions;
  readonly #instances = new Map<number, InstanceState>();
  readonly #dirty = new Set<number>();
  readonly #chains = new Map<number, Promise<void>>();
  readonly #rechecks = new Map<number, { at: number; timer: NodeJS.Timeout }>();
  #store: ObjectStore | undefined;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  #stopped = false;

  constructor(options: StatusWriterOptions) {
    this.#options = options;
  }

  /** Starts the flush timer (idempotent): statuses are written to `store`. */
  start(store: ObjectStore): void {
    this.#store ??= store;
    if (this.#timer || this.#stopped) return;
    this.#timer = setInterval(() => void this.#flush(), this.#options.flushIntervalMs ?? 500);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    for (const r of this.#rechecks.values()) clearTimeout(r.timer);
    this.#rechecks.clear();
    await this.#refreshing?.catch(() => {});
  }

  /** The instance's state, created from its stored row the first time (after a restart, say). */
  track(id: number, wi: JsonObject): InstanceState {
    let state = this.#instances.get(id);
    if (!state) {
      state = {
        runtimeId: undefined,
        // After a restart: an instance waiting for a repair (Reconciled false) was applied before.
        phase:
          wi['Status'] === 'Error' && wi['Reconciled'] !== true
            ? 'error'
            : wi['Reconciled'] === true || ['Healthy', 'Unhealthy', 'Down'].includes(String(wi['Status']))
              ? 'applied'
              : 'reconciling',
        written: typeof wi['Status'] === 'string' ? statusKey(wi['Status'], wi['StatusReason']) : undefined,
      };
      this.#instances.set(id, state);
    }
    return state;
  }

  /** Written again on the next tick. */
  markDirty(id: number): void {
    this.#dirty.add(id);
  }

  /** The instance is gone, or handed to another replica: nothing more is written for it here. */
  forget(id: number): void {
    this.#instances.delete(id);
    this.#dirty.delete(id);
    const recheck = this.#rechecks.get(id);
    if (recheck) clearTimeout(recheck.timer);
    this.#rechecks.delete(id);
  }

  /** Another replica owns the runtime now: forget its instances. */
  forgetRuntime(runtimeId: number): void {
    for (const [id, state] of this.#instances) if (state.runtimeId === runtimeId) this.forget(id);
  }

  /** Derives the instance's status and writes it when it changed (one at a time per instance). */
  refresh(id: number): Promise<void> {
    const prev = this.#chains.get(id) ?? Promise.resolve();
    const next = prev
      .then(() => this.#write(id))
      .catch((err: unknown) => {
        this.#dirty.add(id); // try again on the next tick
        this.#options.log.warn({ id, err: describeError(err) }, 'cannot write a workload instance status');
      });
    this.#chains.set(id, next);
    void next.then(() => {
      if (this.#chains.get(id) === next) this.#chains.delete(id);
    });
    return next;
  }

  /** The instance's status from `state` and what the watches see; schedules time-based rechecks. */
  derive(id: number, state: InstanceState): StatusResult {
    const watcher = state.runtimeId !== undefined ? this.#options.sources.watcher(state.runtimeId) : undefined;
    const snapshot = watcher?.snapshot(id) ?? { resources: [], pods: [], replicaSets: [], warnings: [], synced: false };
    const result = deriveStatus({
      phase: state.phase,
      ...snapshot,
      now: Date.now(),
      ...(this.#options.warningWindowMs !== undefined ? { warningWindowMs: this.#options.warningWindowMs } : {}),
      ...(this.#options.startupGraceMs !== undefined ? { startupGraceMs: this.#options.startupGraceMs } : {}),
    });
    if (result.recheckAt !== undefined) this.#recheckAt(id, result.recheckAt);
    return result;
  }

  async #flush(): Promise<void> {
    if (this.#refreshing || this.#dirty.size === 0) return;
    this.#refreshing = (async () => {
      const ids = [...this.#dirty];
      this.#dirty.clear();
      for (const id of ids) {
        if (this.#stopped) return;
        await this.refresh(id);
      }
    })().finally(() => (this.#refreshing = undefined));
    await this.#refreshing;
  }

  async #write(id: number): Promise<void> {
    const state = this.#instances.get(id);
    const store = this.#store;
    if (!state || !store) return;
    const { sources } = this.#options;
    const runtimeId = state.runtimeId;
    const owned = runtimeId === undefined ? undefined : sources.holds(runtimeId);
    if (owned === false) {
      // A renewal is late (a busy process): try again on the next tick. Once the lease is lost, the
      // runtime is abandoned (its instances forgotten) and the new owner writes the status.
      if (sources.watcher(runtimeId!)) this.#dirty.add(id);
      return;
    }
    const result = this.derive(id, state);
    const key = statusKey(result.status, result.reason);
    if (key === state.written) return;
    try {
      if (owned === true) {
        await store.db.transaction(async (tx) => {
          await sources.fence(tx, runtimeId!);
          await store.patch(WorkloadInstance, id, statusFields(result), { enqueue: false }, tx);
        });
      } else {
        await store.patch(WorkloadInstance, id, statusFields(result), { enqueue: false });
      }
    } catch (err) {
      if (err instanceof NotFoundError) {
        this.#instances.delete(id);
        return;
      }
      throw err;
    }
    this.#options.log.debug({ id, status: result.status, detail: result.detail }, 'workload instance status');
    state.written = key;
  }

  #recheckAt(id: number, at: number): void {
    const current = this.#rechecks.get(id);
    if (current && current.at <= at && current.at > Date.now()) return;
    if (current) clearTimeout(current.timer);
    const timer = setTimeout(() => {
      this.#rechecks.delete(id);
      this.#dirty.add(id);
    }, Math.max(0, at - Date.now()) + 50);
    timer.unref();
    this.#rechecks.set(id, { at, timer });
  }
}
