// WorkloadEvents (spec §2.5, §4): summaries of Kubernetes events about a workload's objects, and
// the controller's own reports (an apply that failed, a resource restored), keyed by
// RuntimeEventUID so that a repeat updates the one row instead of adding another.
import { randomUUID } from 'node:crypto';
import { WorkloadEvent } from '../../kinds/workload.js';
import type { JsonObject } from '../../kinds/validate.js';
import type { Queryable } from '../../store/database.js';
import type { ObjectStore } from '../../store/object-store.js';
import { NotFoundError } from '../../errors.js';

export interface WorkloadEventFields {
  RuntimeEventUID: string;
  Type: string;
  Reason: string;
  Message: string;
  /** RFC 3339. */
  Timestamp: string;
  WorkloadInstanceID: number;
  WorkloadResourceInstanceID?: number;
}

/** Creates the event, or updates the one with the same RuntimeEventUID for this instance. */
export async function upsertWorkloadEvent(store: ObjectStore, fields: WorkloadEventFields, knownId?: number, client?: Queryable): Promise<number> {
  if (knownId !== undefined) {
    try {
      const updated = JSON.parse(
        await store.patch(WorkloadEvent, knownId, { Type: fields.Type, Reason: fields.Reason, Message: fields.Message, Timestamp: fields.Timestamp }, {}, client),
      ) as JsonObject;
      return Number(updated['ID']);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }
  const [existing] = await store.find(WorkloadEvent, { RuntimeEventUID: fields.RuntimeEventUID, WorkloadInstanceID: fields.WorkloadInstanceID }, client);
  if (existing) return upsertWorkloadEvent(store, fields, Number(existing['ID']), client);
  const created = JSON.parse(await store.create(WorkloadEvent, { ...fields }, {}, client)) as JsonObject;
  return Number(created['ID']);
}

/** A controller-made WorkloadEvent: one row per (instance, what) that is updated on each repeat. */
export async function reportWorkloadEvent(
  store: ObjectStore,
  event: { instanceId: number; wriId?: number; type: 'Normal' | 'Warning' | 'Failed'; reason: string; message: string; key?: string },
  at: Date = new Date(),
): Promise<void> {
  await upsertWorkloadEvent(store, {
    RuntimeEventUID: event.key ? `threeport:${event.instanceId}:${event.reason}:${event.key}` : `threeport:${randomUUID()}`,
    Type: event.type,
    Reason: event.reason,
    Message: event.message,
    Timestamp: at.toISOString(),
    WorkloadInstanceID: event.instanceId,
    ...(event.wriId !== undefined ? { WorkloadResourceInstanceID: event.wriId } : {}),
  });
}
