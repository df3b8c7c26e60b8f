// The events attached to one object (spec §1.8: the reconcilers' dedup look-up, served as
// GET /v0/events-join-attached-object-references): a join of Event with the
// AttachedObjectReferences that point at it, filtered and paged like a kind's list.
import { kindNamed } from '../kinds/index.js';
import type { JsonObject } from '../kinds/validate.js';
import type { Queryable } from './database.js';
import { objectJson, type ListPage } from './object-store.js';

const EVENT = kindNamed('Event');
const REF = kindNamed('AttachedObjectReference');

/** One page of the Events attached to object `objectId` that contain `filter`; size -1 is all. */
export async function listAttachedEvents(db: Queryable, objectId: number, filter: JsonObject, page: number, size: number): Promise<ListPage> {
  const res = await db.query(
    `SELECT (${objectJson(EVENT, 'e')})::text AS json, count(*) OVER () AS total
       FROM ${EVENT.table} e JOIN ${REF.table} r
         ON r.deleted_at IS NULL AND (r.data->>'AttachedObjectID')::bigint = e.id
        AND r.data @> jsonb_build_object('ObjectID', $1::bigint, 'AttachedObjectType', 'v0.Event')
      WHERE e.deleted_at IS NULL AND e.data @> $2::jsonb
      ORDER BY e.id LIMIT $3 OFFSET $4`,
    [objectId, JSON.stringify(filter), size < 0 ? null : size, size < 0 ? 0 : (page - 1) * size],
  );
  const rows = res.rows as Array<{ json: string; total: number }>;
  return { total: rows[0]?.total ?? 0, items: rows.map((r) => r.json) };
}
