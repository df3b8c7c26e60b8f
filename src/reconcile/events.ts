// Events (spec §1.8): what a controller did or failed to do to an object. One
// Event per (object, reason, note, type): a repeat increments Count and moves
// LastObservedTime. The Event is linked to its object through an
// AttachedObjectReference {ObjectType: "v0.<Kind>", ObjectID,
// AttachedObjectType: "v0.Event", AttachedObjectID}, and the Event points back
// at that reference (AttachedObjectReferenceID).
//
// Upstream needs five API calls and a compensating rollback for this. Here it
// is one statement: find and bump the matching event, or allocate both ids and
// insert the Event and its reference together. Callers run it inside the
// transaction that writes the outcome, so the event commits with it.
import { Event, AttachedObjectReference } from '../kinds/events.js';
import type { Queryable } from '../store/database.js';
import { ID_SEQUENCE } from '../store/schema.js';
import type { Operation } from '../store/object-store.js';

export type EventType = 'Normal' | 'Warning';

export interface EventInput {
  reason: string;
  note: string;
  type: EventType;
  /** e.g. "WorkloadController". */
  reportingController: string;
}

export interface RecordedEvent {
  id: number;
  /** False: a new Event was created; true: an existing one was counted again. */
  repeated: boolean;
}

/** Upstream's reasons (pkg/event/v0): SuccessfulCreate, FailedUpdate, ... */
export function successReason(op: Operation): string {
  return `Successful${verb(op)}`;
}

export function failureReason(op: Operation): string {
  return `Failed${verb(op)}`;
}

function verb(op: Operation): string {
  return op === 'Created' ? 'Create' : op === 'Updated' ? 'Update' : 'Delete';
}

/** The success note, e.g. "WorkloadInstance successfully reconciled for Created operation". */
export function successNote(kindName: string, op: Operation): string {
  return `${kindName} successfully reconciled for ${op} operation`;
}

/** "kubernetes-runtime" → "KubernetesRuntimeController". */
export function controllerName(domain: string): string {
  return `${domain
    .split('-')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('')}Controller`;
}

const RECORD_SQL = `WITH hit AS (
    SELECT e.id FROM ${Event.table} e
    JOIN ${AttachedObjectReference.table} r
      ON r.deleted_at IS NULL
     AND r.data @> jsonb_build_object('ObjectType', $1::text, 'ObjectID', $2::bigint, 'AttachedObjectType', 'v0.Event')
     AND (r.data->>'AttachedObjectID')::bigint = e.id
    WHERE e.deleted_at IS NULL
      AND e.data @> jsonb_build_object('Reason', $3::text, 'Note', $4::text, 'Type', $5::text)
    ORDER BY e.id LIMIT 1
    FOR UPDATE OF e),
  bumped AS (
    UPDATE ${Event.table} e SET updated_at = now(),
      data = e.data || jsonb_build_object('Count', coalesce((e.data->>'Count')::bigint, 0) + 1, 'LastObservedTime', $7::text)
    FROM hit WHERE e.id = hit.id RETURNING e.id),
  ids AS (
    SELECT nextval('${ID_SEQUENCE}') AS event_id, nextval('${ID_SEQUENCE}') AS ref_id
    WHERE NOT EXISTS (SELECT 1 FROM hit)),
  ev AS (
    INSERT INTO ${Event.table} (id, data)
    SELECT event_id, jsonb_build_object('Reason', $3::text, 'Note', $4::text, 'Type', $5::text, 'Count', 1,
      'EventTime', $7::text, 'LastObservedTime', $7::text, 'ReportingController', $6::text, 'AttachedObjectReferenceID', ref_id)
    FROM ids RETURNING id),
  ref AS (
    INSERT INTO ${AttachedObjectReference.table} (id, data)
    SELECT ref_id, jsonb_build_object('ObjectType', $1::text, 'ObjectID', $2::bigint, 'AttachedObjectType', 'v0.Event',
      'AttachedObjectID', event_id)
    FROM ids RETURNING id)
  SELECT coalesce((SELECT id FROM bumped), (SELECT id FROM ev)) AS id, EXISTS (SELECT 1 FROM bumped) AS repeated,
    (SELECT count(*) FROM ref) AS refs`;

/**
 * Records `event` about object `kindName` `objectId` (de-duplicated per §1.8)
 * on `client`: a transaction's client, so the event commits with the outcome.
 */
export async function recordEvent(
  client: Queryable,
  kindName: string,
  objectId: number,
  event: EventInput,
  at: Date,
): Promise<RecordedEvent> {
  const res = await client.query({
    name: 'reconcile_record_event',
    text: RECORD_SQL,
    values: [`v0.${kindName}`, objectId, event.reason, event.note, event.type, event.reportingController, at.toISOString()],
  });
  const row = res.rows[0] as { id: number; repeated: boolean };
  return { id: row.id, repeated: row.repeated };
}
