// The database schema, derived from the kind declarations. Every kind gets a
// table `v0_<snake_plural>`: the database-owned columns, and the object's own
// fields as one JSONB document (fields change without DDL). The reconcile
// queue lives beside them so that an object's write and its reconcile request
// commit together.
import type { Kind } from '../kinds/declare.js';
import { LEASE_TABLE, leaseDdl } from './leases.js';

export const ID_SEQUENCE = 'threeport_object_ids';
export const QUEUE_TABLE = 'threeport_reconcile_queue';
export const NOTIFY_CHANNEL = 'threeport_reconcile';
/** Every object write notifies here with `<Kind>:<id>:<C|U|D>` (the dashboard's change feed). */
export const CHANGE_CHANNEL = 'threeport_objects';
export const RESYNC_TABLE = 'threeport_resync';

export function nameConstraint(kind: Kind): string {
  return `${kind.table}_live_name`;
}

export function uniqueTrueConstraint(kind: Kind, field: string): string {
  return `${kind.table}_one_${field.toLowerCase()}`;
}

export function uniqueConstraint(kind: Kind): string {
  return `${kind.table}_live_unique`;
}

function kindDdl(kind: Kind): string[] {
  const t = kind.table;
  const ddl = [
    `CREATE TABLE IF NOT EXISTS ${t} (
       id bigint PRIMARY KEY DEFAULT nextval('${ID_SEQUENCE}'),
       created_at timestamptz NOT NULL DEFAULT now(),
       updated_at timestamptz NOT NULL DEFAULT now(),
       deleted_at timestamptz,
       data jsonb NOT NULL
     )`,
    // Query-key filters are JSON containment (data @> {...}) on live rows.
    // fastupdate off: a pending list of unmerged entries would be scanned linearly by every filtered list.
    `CREATE INDEX IF NOT EXISTS ${t}_data ON ${t} USING gin (data jsonb_path_ops) WITH (fastupdate = off) WHERE deleted_at IS NULL`,
  ];
  if (kind.uniqueName) {
    ddl.push(`CREATE UNIQUE INDEX IF NOT EXISTS ${nameConstraint(kind)} ON ${t} ((data->>'Name')) WHERE deleted_at IS NULL`);
  }
  for (const field of kind.uniqueWhenTrue ?? []) {
    ddl.push(
      `CREATE UNIQUE INDEX IF NOT EXISTS ${uniqueTrueConstraint(kind, field)} ON ${t} ((data->>'${field}')) WHERE deleted_at IS NULL AND data->>'${field}' = 'true'`,
    );
  }
  for (const fields of kind.lookupIndexes ?? []) {
    const name = `${t}_by_${fields.map((f) => f.toLowerCase()).join('_')}`.slice(0, 63);
    ddl.push(`CREATE INDEX IF NOT EXISTS ${name} ON ${t} (${fields.map((f) => `(data->>'${f}')`).join(', ')}) WHERE deleted_at IS NULL`);
  }
  if (kind.uniqueTogether) {
    const cols = kind.uniqueTogether.map((f) => `(data->>'${f}')`).join(', ');
    ddl.push(`CREATE UNIQUE INDEX IF NOT EXISTS ${uniqueConstraint(kind)} ON ${t} (${cols}) WHERE deleted_at IS NULL`);
  }
  return ddl;
}

export function schemaDdl(kinds: readonly Kind[]): string[] {
  return [
    `CREATE SEQUENCE IF NOT EXISTS ${ID_SEQUENCE}`,
    `CREATE TABLE IF NOT EXISTS threeport_schema (
       version integer PRIMARY KEY,
       applied_at timestamptz NOT NULL DEFAULT now()
     )`,
    // One row per object with pending work. Repeated changes coalesce into the
    // row (generation counts them); a worker leases it until lease_expires_at.
    `CREATE TABLE IF NOT EXISTS ${QUEUE_TABLE} (
       kind text NOT NULL,
       object_id bigint NOT NULL,
       operation text NOT NULL CHECK (operation IN ('Created', 'Updated', 'Deleted')),
       generation bigint NOT NULL DEFAULT 1,
       first_queued_at timestamptz NOT NULL DEFAULT now(),
       queued_at timestamptz NOT NULL DEFAULT now(),
       not_before timestamptz NOT NULL DEFAULT now(),
       attempts integer NOT NULL DEFAULT 0,
       lease_owner text,
       lease_expires_at timestamptz,
       last_error text,
       payload jsonb,
       PRIMARY KEY (kind, object_id)
     )`,
    `CREATE INDEX IF NOT EXISTS ${QUEUE_TABLE}_due ON ${QUEUE_TABLE} (kind, not_before)`,
    // A reconcile handed to the replica that owns the object's runtime (src/store/leases.ts):
    // other replicas skip the row while that replica is alive.
    `ALTER TABLE ${QUEUE_TABLE} ADD COLUMN IF NOT EXISTS prefer_owner text`,
    leaseDdl(),
    `CREATE INDEX IF NOT EXISTS ${LEASE_TABLE}_holder ON ${LEASE_TABLE} (holder)`,
    // A watched object changed while this item was leased (src/reconcile/watches.ts): a
    // requeue that the running reconcile returns is due at once instead of at its delay.
    `ALTER TABLE ${QUEUE_TABLE} ADD COLUMN IF NOT EXISTS woken boolean NOT NULL DEFAULT false`,
    // When each kind was last queued for resync: exactly one controller process claims each interval.
    `CREATE TABLE IF NOT EXISTS ${RESYNC_TABLE} (
       kind text PRIMARY KEY,
       last_resync_at timestamptz NOT NULL
     )`,
    ...kinds.flatMap(kindDdl),
  ];
}
