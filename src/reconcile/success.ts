// The success outcome of the hot path in one statement: write `Reconciled:
// true` (the same JSONB merge as ObjectStore.patch with enqueue: false), record
// the success event (a new one, or a repeat of a known one by primary key) and
// acknowledge the queue item. One statement is one transaction: the object is
// written only while this worker holds the lease, so a worker whose lease was
// taken over writes nothing (`held` false).
//
// The change-feed payload is `<Kind>:<id>:U`, with `:G` appended when this success reconciled a
// requested change: it records a new ObservedGeneration (a client changed the spec), or the object
// was left unreconciled (`Reconciled: false`, as a create, an API write or tptctl leave it). A resync
// (queued with the object still Reconciled) and status writes get no `:G`: watches that follow an
// owner's changes (src/reconcile/watches.ts) react to requested changes only.
//
// Lock order: the object's row, then the queue row, as the API's
// write-and-enqueue statement does, so the two never deadlock. The queue CTEs
// depend on the object CTE, which makes PostgreSQL run the object's UPDATE first.
import { AttachedObjectReference, Event } from '../kinds/events.js';
import type { Kind } from '../kinds/declare.js';
import type { JsonObject } from '../kinds/validate.js';
import type { Queryable } from '../store/database.js';
import type { LeasedItem } from '../store/reconcile-queue.js';
import { CHANGE_CHANNEL, ID_SEQUENCE, QUEUE_TABLE } from '../store/schema.js';
import type { EventInput } from './events.js';

export type SuccessEvent =
  | { mode: 'none' }
  | { mode: 'insert'; event: EventInput }
  | { mode: 'bump'; eventId: number; event: EventInput };

export interface SuccessResult {
  /** False: another worker holds the item now (nothing was written). */
  held: boolean;
  /** False: the object is gone (nothing was written). */
  found: boolean;
  /** The item is finished (its row deleted). */
  done: boolean;
  /** The object changed meanwhile: the item stays queued for another run. */
  again: boolean;
  /** The event written, if any: null when a known event to bump no longer exists. */
  eventId: number | null;
}

const statements = new Map<string, string>();

function sql(kind: Kind, mode: SuccessEvent['mode']): string {
  const key = `${kind.table}:${mode}`;
  let text = statements.get(key);
  if (text) return text;
  const Q = QUEUE_TABLE;
  // $1 kind, $2 id, $3 owner, $4 generation, $5 ran a create, $6 changes; with an event also
  // $7 time, $8 reason, $9 note, $10 type, and $11: the controller (insert) or the known event id (bump).
  const event =
    mode === 'insert'
      ? `, ids AS (
          SELECT nextval('${ID_SEQUENCE}') AS event_id, nextval('${ID_SEQUENCE}') AS ref_id
          WHERE EXISTS (SELECT 1 FROM gone) OR EXISTS (SELECT 1 FROM again)),
        ev AS (
          INSERT INTO ${Event.table} (id, data)
          SELECT event_id, jsonb_build_object('Reason', $8::text, 'Note', $9::text, 'Type', $10::text, 'Count', 1,
            'EventTime', $7::text, 'LastObservedTime', $7::text, 'ReportingController', $11::text, 'AttachedObjectReferenceID', ref_id)
          FROM ids),
        ref AS (
          INSERT INTO ${AttachedObjectReference.table} (id, data)
          SELECT ref_id, jsonb_build_object('ObjectType', 'v0.' || $1::text, 'ObjectID', $2::bigint, 'AttachedObjectType', 'v0.Event',
            'AttachedObjectID', event_id)
          FROM ids),
        recorded AS (SELECT event_id AS id FROM ids)`
      : mode === 'bump'
        ? `, recorded AS (
            UPDATE ${Event.table} SET updated_at = now(),
              data = data || jsonb_build_object('Count', coalesce((data->>'Count')::bigint, 0) + 1, 'LastObservedTime', $7::text)
            WHERE id = $11 AND deleted_at IS NULL
              AND data @> jsonb_build_object('Reason', $8::text, 'Note', $9::text, 'Type', $10::text)
              AND (EXISTS (SELECT 1 FROM gone) OR EXISTS (SELECT 1 FROM again))
            RETURNING id)`
        : `, recorded AS (SELECT NULL::bigint AS id WHERE false)`;
  text = `WITH held AS (SELECT 1 FROM ${Q} WHERE kind = $1 AND object_id = $2 AND lease_owner = $3),
    before AS (SELECT data @> '{"Reconciled": true}'::jsonb AS reconciled FROM ${kind.table} WHERE id = $2),
    obj AS (
      UPDATE ${kind.table} SET data = data || $6::jsonb, updated_at = now()
      WHERE id = $2 AND deleted_at IS NULL AND EXISTS (SELECT 1 FROM held) RETURNING id),
    changed AS (SELECT pg_notify('${CHANGE_CHANNEL}', $1::text || ':' || obj.id || ':U'
      || CASE WHEN $6::jsonb ? 'ObservedGeneration' OR NOT coalesce((SELECT reconciled FROM before), true) THEN ':G' ELSE '' END) FROM obj),
    gone AS (
      DELETE FROM ${Q} WHERE kind = $1 AND object_id = $2 AND lease_owner = $3 AND generation = $4
        AND EXISTS (SELECT 1 FROM obj) RETURNING 1),
    again AS (
      UPDATE ${Q} SET lease_owner = NULL, lease_expires_at = NULL, attempts = 0, last_error = NULL,
        operation = CASE WHEN operation = 'Created' AND $5::boolean THEN 'Updated' ELSE operation END
      WHERE kind = $1 AND object_id = $2 AND lease_owner = $3
        AND EXISTS (SELECT 1 FROM obj) AND NOT EXISTS (SELECT 1 FROM gone) RETURNING 1)${event}
    SELECT EXISTS (SELECT 1 FROM held) AS held, EXISTS (SELECT 1 FROM obj) AS found, EXISTS (SELECT 1 FROM gone) AS done,
      EXISTS (SELECT 1 FROM again) AS again, (SELECT id FROM recorded LIMIT 1) AS event_id, (SELECT count(*) FROM changed) AS announced`;
  statements.set(key, text);
  return text;
}

export async function commitSuccess(
  client: Queryable,
  kind: Kind,
  item: LeasedItem,
  owner: string,
  changes: JsonObject,
  at: Date,
  success: SuccessEvent,
): Promise<SuccessResult> {
  const values: unknown[] = [item.kind, item.objectId, owner, item.generation, item.operation === 'Created', JSON.stringify(changes)];
  if (success.mode !== 'none') {
    const e = success.event;
    values.push(at.toISOString(), e.reason, e.note, e.type, success.mode === 'insert' ? e.reportingController : success.eventId);
  }
  const res = await client.query({ name: `rs_${success.mode}_${kind.table}`.slice(0, 63), text: sql(kind, success.mode), values });
  const row = res.rows[0] as { held: boolean; found: boolean; done: boolean; again: boolean; event_id: number | null };
  return { held: row.held, found: row.found, done: row.done, again: row.again, eventId: row.event_id };
}
