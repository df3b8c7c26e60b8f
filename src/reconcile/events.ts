// Events (spec §1.8): what a controller did or failed to do to an object. One
// Event per (object, reason, note, type): a repeat increments Count and moves
// LastObservedTime. The Event is linked to its object through an
// AttachedObjectReference {ObjectType: "v0.<Kind>", ObjectID,
// AttachedObjectType: "v0.Event", AttachedObjectID}, and the Event points back
// at that reference (AttachedObjectReferenceID).
//
// Upstream needs five API calls and a compensating rollback for this. Here it
// is at most two statements: bump the matching event, or else allocate both ids
// and insert the Event and its reference together. Callers run them inside the
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

// Counts a repeat: the object's references lead to its events by primary key. Planned per call
// (not a named prepared statement): a generic plan cached while the tables were empty would scan
// them; planned per call it is two index probes at any size.
const BUMP_SQL = `UPDATE ${Event.table} e SET updated_at = now(),
    data = e.data || jsonb_build_object('Count', coalesce((e.data->>'Count')::bigint, 0) + 1, 'LastObservedTime', $6::text)
  WHERE e.id = (
    SELECT x.id FROM ${AttachedObjectReference.table} r
    JOIN ${Event.table} x ON x.id = (r.data->>'AttachedObjectID')::bigint
    WHERE r.deleted_at IS NULL AND r.data->>'ObjectType' = $1::text AND r.data->>'ObjectID' = $2::bigint::text
      AND r.data->>'AttachedObjectType' = 'v0.Event'
      AND x.deleted_at IS NULL AND x.data @> jsonb_build_object('Reason', $3::text, 'Note', $4::text, 'Type', $5::text)
    ORDER BY x.id LIMIT 1)
  RETURNING e.id`;

// A new event and its reference, each pointing at the other: ids first, then both rows. No scans,
// so a named prepared statement is safe here.
const INSERT_SQL = `WITH ids AS (SELECT nextval('${ID_SEQUENCE}') AS event_id, nextval('${ID_SEQUENCE}') AS ref_id),
  ev AS (
    INSERT INTO ${Event.table} (id, data)
    SELECT event_id, jsonb_build_object('Reason', $3::text, 'Note', $4::text, 'Type', $5::text, 'Count', 1,
      'EventTime', $6::text, 'LastObservedTime', $6::text, 'ReportingController', $7::text, 'AttachedObjectReferenceID', ref_id)
    FROM ids),
  ref AS (
    INSERT INTO ${AttachedObjectReference.table} (id, data)
    SELECT ref_id, jsonb_build_object('ObjectType', $1::text, 'ObjectID', $2::bigint, 'AttachedObjectType', 'v0.Event',
      'AttachedObjectID', event_id)
    FROM ids)
  SELECT event_id AS id FROM ids`;

// Counts a repeat of an event whose id is known: a primary-key update, safe as a named statement.
const BUMP_BY_ID_SQL = `UPDATE ${Event.table} SET updated_at = now(),
    data = data || jsonb_build_object('Count', coalesce((data->>'Count')::bigint, 0) + 1, 'LastObservedTime', $2::text)
  WHERE id = $1 AND deleted_at IS NULL AND data @> jsonb_build_object('Reason', $3::text, 'Note', $4::text, 'Type', $5::text)
  RETURNING id`;

async function insertEvent(client: Queryable, object: string, objectId: number, event: EventInput, time: string): Promise<number> {
  const res = await client.query({
    name: 'reconcile_insert_event',
    text: INSERT_SQL,
    values: [object, objectId, event.reason, event.note, event.type, time, event.reportingController],
  });
  return (res.rows[0] as { id: number }).id;
}

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
  const object = `v0.${kindName}`;
  const time = at.toISOString();
  const bumped = await client.query(BUMP_SQL, [object, objectId, event.reason, event.note, event.type, time]);
  if (bumped.rows.length > 0) return { id: (bumped.rows[0] as { id: number }).id, repeated: true };
  return { id: await insertEvent(client, object, objectId, event, time), repeated: false };
}

/**
 * The runtime's event writer: the same de-duplication, cheaper on the hot
 * path. It remembers the ids of recent events (bounded), so a repeat is a
 * primary-key update; and a caller that knows the event cannot exist yet (the
 * first successful create of an object: the queue never runs a create again
 * once one has succeeded) skips the lookup. A remembered id that no longer
 * matches (the event was deleted) falls back to the lookup, so the database
 * stays the truth.
 */
export class EventRecorder {
  readonly #known = new Map<string, number>();

  constructor(private readonly maxRemembered = 20_000) {}

  static key(kindName: string, objectId: number, event: EventInput): string {
    return `${kindName}\u0000${objectId}\u0000${event.reason}\u0000${event.type}\u0000${event.note}`;
  }

  /** How to write `event` without a lookup: bump a remembered id, or insert a first one; undefined: look it up. */
  fastPath(key: string, firstOfItsKind: boolean): { mode: 'bump'; eventId: number } | { mode: 'insert' } | undefined {
    const known = this.#known.get(key);
    if (known !== undefined) return { mode: 'bump', eventId: known };
    return firstOfItsKind ? { mode: 'insert' } : undefined;
  }

  remember(key: string, eventId: number): void {
    this.#known.delete(key);
    this.#known.set(key, eventId);
    if (this.#known.size > this.maxRemembered) this.#known.delete(this.#known.keys().next().value!);
  }

  forgetKey(key: string): void {
    this.#known.delete(key);
  }

  /** Forgets an object's events (it was deleted). */
  forget(kindName: string, objectId: number): void {
    const prefix = `${kindName}\u0000${objectId}\u0000`;
    for (const key of this.#known.keys()) if (key.startsWith(prefix)) this.#known.delete(key);
  }

  /** Records `event` on `client`, through the fast path when it can. */
  async record(
    client: Queryable,
    kindName: string,
    objectId: number,
    event: EventInput,
    at: Date,
    options: { firstOfItsKind?: boolean } = {},
  ): Promise<RecordedEvent> {
    const key = EventRecorder.key(kindName, objectId, event);
    const time = at.toISOString();
    const fast = this.fastPath(key, options.firstOfItsKind ?? false);
    let recorded: RecordedEvent | undefined;
    if (fast?.mode === 'bump') {
      const res = await client.query({
        name: 'reconcile_bump_event_by_id',
        text: BUMP_BY_ID_SQL,
        values: [fast.eventId, time, event.reason, event.note, event.type],
      });
      if (res.rows.length > 0) recorded = { id: fast.eventId, repeated: true };
    } else if (fast?.mode === 'insert') {
      recorded = { id: await insertEvent(client, `v0.${kindName}`, objectId, event, time), repeated: false };
    }
    recorded ??= await recordEvent(client, kindName, objectId, event, at);
    this.remember(key, recorded.id);
    return recorded;
  }
}
