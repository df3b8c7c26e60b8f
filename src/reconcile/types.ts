// The reconciler contract (spec §1.2 step 5, §1.4–§1.8) in TypeScript.
//
// A reconciler handles one kind. The runtime reads the current object before
// each call, so handlers are level-triggered: make the world match the object,
// idempotently. A handler resolves to nothing (done) or to `{ requeueAfterMs }`
// (not done yet: run again later, e.g. while a cloud resource is being
// created). A thrown error is retried with backoff; an error with
// `retryable: false` (TerminalError) is recorded and not retried until the
// object changes.
import type { Logger } from 'pino';
import type { Kind } from '../kinds/declare.js';
import type { JsonObject } from '../kinds/validate.js';
import type { ObjectStore, Operation } from '../store/object-store.js';
import type { Clock } from './clock.js';
import type { StoreTransaction } from './choreography.js';
import type { EventType } from './events.js';

export type ReconcileResult =
  | void
  | undefined
  | {
      requeueAfterMs: number;
      /** Hand the item to this replica (lease holder id): it owns the object's runtime (src/store/leases.ts). */
      handoffTo?: string;
    };

export interface ReconcileContext {
  readonly kind: Kind;
  readonly id: number;
  readonly operation: Operation;
  /** 1 for the first attempt at this change; n after n − 1 consecutive failures. */
  readonly attempt: number;
  /** When this work was first queued (it survives retries and coalesced changes). */
  readonly firstQueuedAt: Date;
  readonly store: ObjectStore;
  /** Carries kind, id, operation and attempt. */
  readonly log: Logger;
  /** Transient data that travels with the request, e.g. SecretDefinition.Data (encrypted values). */
  readonly payload: JsonObject | null;
  /** Aborted when the process shuts down or the lease on this item is lost: stop and throw. */
  readonly signal: AbortSignal;
  readonly clock: Clock;
  /** Writes this object's own status without queuing another reconcile of it. */
  patchSelf(changes: JsonObject): Promise<JsonObject>;
  /** Several store writes in one transaction: derived objects, `requestReconcile` on others (spec §1.6). */
  transaction<T>(work: (tx: StoreTransaction) => Promise<T>): Promise<T>;
  /** Records an event on this object (de-duplicated); the runtime records success and failure events itself. */
  recordEvent(event: { reason: string; note: string; type?: EventType }): Promise<void>;
  /**
   * True while the engine hears the store's change feed, so a declared watch wakes this object
   * when what it waits for changes; false (no LISTEN) means a wait must poll. See `untilWoken`.
   */
  readonly watching: boolean;
}

/**
 * "Reconcile some of my objects when an object of `kind` is written": one edge of the dependency
 * graph (src/controllers/graph.ts declares them all). The engine hears every write on the store's
 * change feed, reads the written object, and queues what `map` returns, unless `when` says no.
 */
export interface Watch {
  /** The watched kind, e.g. "KubernetesRuntimeInstance". */
  readonly kind: string;
  /** The mapping in words, for the graph page, e.g. "the instances on the runtime, once it is Reconciled". */
  readonly via: string;
  /** A cheap test of the written object (no I/O); false skips `map`. */
  readonly when?: (changed: JsonObject) => boolean;
  /**
   * Only the successes by which the watched object's reconcile finished a requested change: a new
   * ObservedGeneration (a changed spec), or a write that had left it `Reconciled: false` (its create,
   * an API or tptctl update). Its resyncs and status writes do not count.
   */
  readonly changes?: boolean;
  /**
   * Also retry a mapped object parked by a terminal error: the watched object is part of its input,
   * so a change to it may be the fix (as a write to the object itself would be).
   */
  readonly retryParked?: boolean;
  /** IDs of the watcher's own kind to reconcile because `changed` was written. */
  map(changed: JsonObject, store: ObjectStore): Promise<number[]>;
}

/**
 * "Objects of `kind` whose field `by` holds my ID are mine." When the owner is deleted the engine
 * deletes them first and runs the owner's `deleted` only once they are gone; when the owner has
 * reconciled a requested change (not a resync), they are reconciled too, parked ones included.
 */
export interface Owns {
  readonly kind: string;
  /** The child's field that holds the owner's ID, e.g. "WorkloadInstanceID". */
  readonly by: string;
}

/**
 * "My reconciler writes objects of `written` for objects of `kind`" (an RDS instance writes a
 * connection Secret WRI for a WorkloadInstance). Each such write made through `ctx.transaction`
 * leaves the objects `map` names `Reconciled: false` in the same transaction, so their controller
 * applies it, and nobody reads the write without the pending reconcile.
 */
export interface Supply {
  /** The supplied kind, e.g. "WorkloadInstance". */
  readonly kind: string;
  /** The kind written for it, e.g. "WorkloadResourceInstance". */
  readonly written: string;
  /** The mapping in words, for the graph page. */
  readonly via: string;
  readonly when?: (written: JsonObject) => boolean;
  /** IDs of `kind` supplied by this write (from the written object's fields: no I/O). */
  map(written: JsonObject): number[];
}

export interface Reconciler<T extends JsonObject = JsonObject> {
  /** The kind's name, e.g. "WorkloadInstance". It must be a reconciled kind. */
  readonly kind: string;
  /** ReportingController on events; default from the kind's domain, e.g. "WorkloadController". */
  readonly controller?: string;
  /** Reconciles of this kind running at once in one process; default from the runtime. */
  readonly concurrency?: number;
  /** Kinds whose writes queue objects of this kind (the graph's edges into this kind). */
  readonly watches?: readonly Watch[];
  /** Kinds whose objects this kind owns: deleted before it, reconciled after it. */
  readonly owns?: readonly Owns[];
  /** Kinds this kind's reconciler writes objects for (applied in the write's transaction). */
  readonly supplies?: readonly Supply[];
  /**
   * After a process start: the objects of this kind to reconcile again because part of their state
   * lived in the process that stopped (a supervised peer, a simulated cluster). The engine asks once
   * the controllers have started (`ReconcileRuntime.resume`) and queues them.
   */
  resume?(store: ObjectStore): Promise<number[]>;
  created?(ctx: ReconcileContext, object: T): Promise<ReconcileResult>;
  updated?(ctx: ReconcileContext, object: T): Promise<ReconcileResult>;
  /** Clean up; the runtime then confirms the deletion and soft-deletes the row (spec §1.7). */
  deleted?(ctx: ReconcileContext, object: T): Promise<ReconcileResult>;
}

/** Identity, for type inference: `export default defineReconciler<WorkloadInstance>({ kind: 'WorkloadInstance', ... })`. */
export function defineReconciler<T extends JsonObject = JsonObject>(reconciler: Reconciler<T>): Reconciler {
  return reconciler as unknown as Reconciler;
}

export type Outcome =
  | 'reconciled' // handler succeeded; Reconciled: true written (or the object deleted)
  | 'requeued' // handler asked to run again later
  | 'failed' // handler threw; retry scheduled
  | 'terminal' // handler threw a terminal error; no retry until the object changes
  | 'skipped' // a create for an object whose deletion is scheduled
  | 'dropped' // the object no longer exists
  | 'released' // shutdown: the item was handed back untouched
  | 'lease-lost' // another worker owns the item now; nothing written
  | 'error'; // the runtime could not record the outcome (database); the lease will expire

/** What happened to one leased item; reported after the outcome is committed. */
export interface Settlement {
  /** The lease owner (runtime) that worked the item. */
  owner: string;
  kind: string;
  id: number;
  operation: Operation;
  attempt: number;
  outcome: Outcome;
  durationMs: number;
  /** For 'reconciled': the object changed meanwhile and will run again. */
  again?: boolean;
  error?: string;
  delayMs?: number;
}
