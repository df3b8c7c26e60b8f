// Cross-controller choreography (spec §1.6): controllers never call each other.
// They create derived objects and set `Reconciled: false` on another object,
// whose controller then reconciles it. Both are plain store writes; the queue
// row commits with each write, and a transaction makes several of them atomic.
import type pg from 'pg';
import { KIND_BY_NAME, kindNamed } from '../kinds/index.js';
import type { Kind } from '../kinds/declare.js';
import type { JsonObject } from '../kinds/validate.js';
import type { ObjectStore, WriteOptions } from '../store/object-store.js';
import { AttachedObjectReference } from '../kinds/events.js';
import { recordEvent, type EventType, type RecordedEvent } from './events.js';
import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import { NotFoundError } from '../errors.js';
import type { Supply } from './types.js';

type KindRef = Kind | string;

function kindOf(ref: KindRef): Kind {
  return typeof ref === 'string' ? kindNamed(ref) : (KIND_BY_NAME.get(ref.name) ?? ref);
}

/** Store writes bound to one open transaction. */
export class StoreTransaction {
  constructor(
    readonly store: ObjectStore,
    readonly client: pg.PoolClient,
    private readonly clock: Clock = systemClock,
    private readonly reportingController = 'ThreeportController',
    /** The reconciler's declared supplies: its writes of their kinds mark the supplied objects. */
    private readonly supplies: readonly Supply[] = [],
  ) {}

  /** Creates an object; a reconciled kind created unreconciled queues its controller's 'Created' work. */
  async create(kind: KindRef, fields: JsonObject, options: WriteOptions = {}): Promise<JsonObject> {
    const k = kindOf(kind);
    const created = JSON.parse(await this.store.create(k, fields, options, this.client)) as JsonObject;
    await this.#applySupplies(k, created);
    return created;
  }

  /** The declared supplies of a write of `kind`: the supplied live objects are left `Reconciled: false` here. */
  async #applySupplies(kind: Kind, written: JsonObject): Promise<void> {
    for (const supply of this.supplies) {
      if (supply.written !== kind.name || (supply.when && !supply.when(written))) continue;
      const target = kindOf(supply.kind);
      for (const id of supply.map(written)) {
        try {
          const object = await this.store.getObject(target, id, this.client);
          if (object['DeletionScheduled']) continue; // its deletion is queued already
          await this.store.patch(target, id, { Reconciled: false }, {}, this.client);
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
        }
      }
    }
  }

  async get(kind: KindRef, id: number): Promise<JsonObject> {
    return this.store.getObject(kindOf(kind), id, this.client);
  }

  async find(kind: KindRef, filter: JsonObject = {}): Promise<JsonObject[]> {
    return this.store.find(kindOf(kind), filter, this.client);
  }

  /** PATCH semantics: queues work when the object is left unreconciled, unless `enqueue: false`. */
  async patch(kind: KindRef, id: number, changes: JsonObject, options: WriteOptions = {}): Promise<JsonObject> {
    const k = kindOf(kind);
    const patched = JSON.parse(await this.store.patch(k, id, changes, options, this.client)) as JsonObject;
    await this.#applySupplies(k, patched);
    return patched;
  }

  /** Sets `Reconciled: false` on another object, so its controller runs 'Updated' for it (with `changes` applied too). */
  async requestReconcile(kind: KindRef, id: number, changes: JsonObject = {}): Promise<JsonObject> {
    return this.patch(kind, id, { ...changes, Reconciled: false });
  }

  /** Links `attached` to `owner` (e.g. a GatewayInstance to its v0.WorkloadInstance). */
  async attach(owner: { kind: KindRef; id: number }, attached: { kind: KindRef; id: number }): Promise<JsonObject> {
    return this.create(AttachedObjectReference, {
      ObjectType: `v0.${kindOf(owner.kind).name}`,
      ObjectID: owner.id,
      AttachedObjectType: `v0.${kindOf(attached.kind).name}`,
      AttachedObjectID: attached.id,
    });
  }

  /** Records an event on any object (de-duplicated per §1.8). */
  async recordEvent(
    kind: KindRef,
    id: number,
    event: { reason: string; note: string; type?: EventType; reportingController?: string },
  ): Promise<RecordedEvent> {
    return recordEvent(
      this.client,
      kindOf(kind).name,
      id,
      {
        reason: event.reason,
        note: event.note,
        type: event.type ?? 'Normal',
        reportingController: event.reportingController ?? this.reportingController,
      },
      new Date(this.clock.now()),
    );
  }
}

/** Runs `work` in one transaction: every write commits together, or none does. */
export function inTransaction<T>(
  store: ObjectStore,
  work: (tx: StoreTransaction) => Promise<T>,
  options: { clock?: Clock; reportingController?: string; supplies?: readonly Supply[] } = {},
): Promise<T> {
  return store.db.transaction((client) => work(new StoreTransaction(store, client, options.clock, options.reportingController, options.supplies)));
}

/** Sets `Reconciled: false` on an object so that its controller reconciles it again. */
export async function requestReconcile(store: ObjectStore, kind: KindRef, id: number): Promise<JsonObject> {
  return JSON.parse(await store.patch(kindOf(kind), id, { Reconciled: false })) as JsonObject;
}
