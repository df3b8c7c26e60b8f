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
  ) {}

  /** Creates an object; a reconciled kind created unreconciled queues its controller's 'Created' work. */
  async create(kind: KindRef, fields: JsonObject, options: WriteOptions = {}): Promise<JsonObject> {
    return JSON.parse(await this.store.create(kindOf(kind), fields, options, this.client)) as JsonObject;
  }

  async get(kind: KindRef, id: number): Promise<JsonObject> {
    return this.store.getObject(kindOf(kind), id, this.client);
  }

  async find(kind: KindRef, filter: JsonObject = {}): Promise<JsonObject[]> {
    return this.store.find(kindOf(kind), filter, this.client);
  }

  /** PATCH semantics: queues work when the object is left unreconciled, unless `enqueue: false`. */
  async patch(kind: KindRef, id: number, changes: JsonObject, options: WriteOptions = {}): Promise<JsonObject> {
    return JSON.parse(await this.store.patch(kindOf(kind), id, changes, options, this.client)) as JsonObject;
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
  options: { clock?: Clock; reportingController?: string } = {},
): Promise<T> {
  return store.db.transaction((client) => work(new StoreTransaction(store, client, options.clock, options.reportingController)));
}

/** Sets `Reconciled: false` on an object so that its controller reconciles it again. */
export async function requestReconcile(store: ObjectStore, kind: KindRef, id: number): Promise<JsonObject> {
  return JSON.parse(await store.patch(kindOf(kind), id, { Reconciled: false })) as JsonObject;
}
