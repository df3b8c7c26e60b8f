// The controllers' side of the reconcile queue: lease, renew, acknowledge,
// retry and release items, and queue periodic resyncs. The API side (queuing a
// request in the same statement as the object's write) lives in object-store.ts.
//
// An item is one row per object (kind, object_id). A worker owns it while
// `lease_owner` is its id and `lease_expires_at` is in the future; an expired
// lease makes the row available again, so a crashed process's items come back.
// Every change to the object bumps `generation`, also while the item is leased:
// a worker that finishes deletes the row only if the generation is the one it
// leased, and otherwise releases it so that the newer change runs again.
//
// All times are the database's now() shifted by the caller's clock skew (0 in
// production), so every process agrees on expiries and due times.
import type { JsonObject } from '../kinds/validate.js';
import type { Kind } from '../kinds/declare.js';
import type { Database, Queryable } from './database.js';
import type { Operation } from './object-store.js';
import { NOTIFY_CHANNEL, QUEUE_TABLE, RESYNC_TABLE } from './schema.js';
import { LEASE_TABLE } from './leases.js';

const T = QUEUE_TABLE;

/**
 * Lease bookkeeping commits without waiting for the WAL flush (synchronous_commit
 * off for that one statement's transaction). Losing such a record in a database
 * crash only makes an item available again, and every outcome a worker records
 * afterwards is a durable commit, which flushes the earlier WAL too.
 */
const NO_FLUSH = `no_flush AS (SELECT set_config('synchronous_commit', 'off', true) AS v)`;
const NO_FLUSH_USED = `EXISTS (SELECT 1 FROM no_flush)`;

/** The shifted now(): `$n` is the clock skew in milliseconds. */
const at = (n: number): string => `(now() + $${n}::double precision * interval '1 millisecond')`;

export interface LeasedItem {
  kind: string;
  objectId: number;
  operation: Operation;
  generation: number;
  /** Consecutive failed attempts so far (0 for a fresh change). */
  attempts: number;
  firstQueuedAt: Date;
  payload: JsonObject | null;
}

export interface LeaseRequest {
  kind: string;
  limit: number;
}

export interface QueueDepthRow {
  kind: string;
  operation: Operation;
  /** ready (due now), delayed (waiting for a retry or requeue), leased, or failed (terminal, waits for a change). */
  state: 'ready' | 'delayed' | 'leased' | 'failed';
  count: number;
}

interface LeaseRow {
  kind: string;
  object_id: number;
  operation: Operation;
  generation: number;
  attempts: number;
  first_queued_at: Date;
  payload: JsonObject | null;
}

const SQL = {
  lease: `WITH ${NO_FLUSH}, want AS (SELECT w.kind, w.n FROM unnest($1::text[], $2::int[]) AS w(kind, n)),
      due AS (
        SELECT c.kind, c.object_id FROM want CROSS JOIN LATERAL (
          SELECT q.kind, q.object_id FROM ${T} q
          WHERE q.kind = want.kind AND q.not_before <= ${at(5)}
            AND (q.lease_expires_at IS NULL OR q.lease_expires_at <= ${at(5)})
            AND (q.prefer_owner IS NULL OR q.prefer_owner = $3 OR NOT EXISTS (
              SELECT 1 FROM ${LEASE_TABLE} l WHERE l.holder = q.prefer_owner AND l.expires_at > now()))
          ORDER BY q.not_before
          LIMIT want.n
          FOR UPDATE SKIP LOCKED) c)
    UPDATE ${T} q SET woken = false, lease_owner = $3, lease_expires_at = ${at(5)} + $4::double precision * interval '1 millisecond'
    FROM due WHERE q.kind = due.kind AND q.object_id = due.object_id AND ${NO_FLUSH_USED}
    RETURNING q.kind, q.object_id, q.operation, q.generation, q.attempts, q.first_queued_at, q.payload`,

  renew: `WITH ${NO_FLUSH} UPDATE ${T} SET lease_expires_at = ${at(3)} + $2::double precision * interval '1 millisecond'
    WHERE lease_owner = $1 AND ${NO_FLUSH_USED} RETURNING kind, object_id`,

  // Success: done unless the object changed meanwhile; then run again (a finished create continues as an update).
  ack: `WITH gone AS (
        DELETE FROM ${T} WHERE kind = $1 AND object_id = $2 AND lease_owner = $3 AND generation = $4 RETURNING 1),
      again AS (
        UPDATE ${T} SET lease_owner = NULL, lease_expires_at = NULL, attempts = 0, last_error = NULL,
          operation = CASE WHEN operation = 'Created' AND $5::boolean THEN 'Updated' ELSE operation END
        WHERE kind = $1 AND object_id = $2 AND lease_owner = $3 AND NOT EXISTS (SELECT 1 FROM gone) RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM gone) AS done, EXISTS (SELECT 1 FROM again) AS again`,

  // Failure: retry after the delay, or park the row (terminal) until the object changes. A change made
  // during the failed attempt already set not_before = now and attempts = 0: that one runs at once.
  fail: `UPDATE ${T} SET lease_owner = NULL, lease_expires_at = NULL, last_error = $6,
      attempts = CASE WHEN generation = $4 THEN attempts + 1 ELSE attempts END,
      not_before = CASE WHEN generation <> $4 THEN not_before
                        WHEN $7::boolean THEN 'infinity'::timestamptz
                        ELSE ${at(8)} + $5::double precision * interval '1 millisecond' END
    WHERE kind = $1 AND object_id = $2 AND lease_owner = $3
    RETURNING attempts, not_before`,

  // The reconciler asked to run again later (polling an external operation): not a failure.
  requeue: `UPDATE ${T} SET lease_owner = NULL, lease_expires_at = NULL, last_error = NULL, attempts = 0, prefer_owner = $7::text, woken = false,
      not_before = CASE WHEN generation <> $4 THEN not_before
                        WHEN woken THEN ${at(6)}
                        ELSE ${at(6)} + $5::double precision * interval '1 millisecond' END
    WHERE kind = $1 AND object_id = $2 AND lease_owner = $3 RETURNING 1`,

  release: `WITH ${NO_FLUSH} UPDATE ${T} SET lease_owner = NULL, lease_expires_at = NULL
    WHERE lease_owner = $1 AND (kind, object_id) IN (SELECT * FROM unnest($2::text[], $3::bigint[])) AND ${NO_FLUSH_USED}`,

  releaseAll: `WITH ${NO_FLUSH} UPDATE ${T} SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = $1 AND ${NO_FLUSH_USED}`,

  drop: `WITH ${NO_FLUSH} DELETE FROM ${T} WHERE kind = $1 AND object_id = $2 AND lease_owner = $3 AND ${NO_FLUSH_USED}`,

  holds: `SELECT 1 FROM ${T} WHERE kind = $1 AND object_id = $2 AND lease_owner = $3 FOR UPDATE`,

  depth: `SELECT kind, operation,
      CASE WHEN not_before = 'infinity' THEN 'failed'
           WHEN lease_expires_at > ${at(1)} THEN 'leased'
           WHEN not_before > ${at(1)} THEN 'delayed'
           ELSE 'ready' END AS state,
      count(*)::int AS count
    FROM ${T} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,

  waiting: `SELECT kind, count(*)::int AS count FROM ${T} WHERE NOT (kind = ANY($1::text[])) GROUP BY kind ORDER BY kind`,

  resyncInit: `INSERT INTO ${RESYNC_TABLE} (kind, last_resync_at) VALUES ($1, ${at(2)}) ON CONFLICT (kind) DO NOTHING`,

  // Exactly one process wins the claim per interval, however many run.
  resyncClaim: `UPDATE ${RESYNC_TABLE} SET last_resync_at = ${at(2)}
    WHERE kind = $1 AND last_resync_at <= ${at(2)} - $3::double precision * interval '1 millisecond'
    RETURNING kind`,
};

/**
 * Queues `Updated` for the live objects `ids` of `kind` because something they watch changed
 * (src/reconcile/watches.ts). An object with no queue row gets one, unless it is being deleted
 * (`onlyQueued` never adds rows: an owner waiting for its children). A row waiting for a retry
 * or requeue is due now, with its attempts reset; a leased row is marked `woken`, so a requeue
 * the running reconcile returns (it was waiting) is due at once, while a success or a failure
 * stands (a terminal failure stays parked: only a change to the object itself retries it); a
 * due row is left alone.
 */
function wakeSql(kind: Kind, onlyQueued: boolean, retryParked: boolean): string {
  const live = `t.deleted_at IS NULL AND t.id = ANY($1::bigint[])`;
  const insertable = onlyQueued
    ? `EXISTS (SELECT 1 FROM ${T} e WHERE e.kind = '${kind.name}' AND e.object_id = t.id)`
    : `(coalesce(t.data->>'DeletionScheduled', '') = '' OR EXISTS (SELECT 1 FROM ${T} e WHERE e.kind = '${kind.name}' AND e.object_id = t.id))`;
  return `WITH q AS (
      INSERT INTO ${T} AS q (kind, object_id, operation)
      SELECT '${kind.name}', t.id, 'Updated' FROM ${kind.table} t WHERE ${live} AND ${insertable}
      ON CONFLICT (kind, object_id) DO UPDATE SET
        not_before = CASE WHEN q.not_before > now() THEN now() ELSE q.not_before END,
        attempts = CASE WHEN q.not_before > now() THEN 0 ELSE q.attempts END,
        woken = q.lease_owner IS NOT NULL
      WHERE ${retryParked ? '' : `q.not_before <> 'infinity' AND `}(q.not_before > now() OR q.lease_owner IS NOT NULL)
      RETURNING q.kind),
    n AS (SELECT pg_notify('${NOTIFY_CHANNEL}', '${kind.name}') WHERE EXISTS (SELECT 1 FROM q))
    SELECT (SELECT count(*) FROM q)::int AS woken, (SELECT count(*) FROM n)::int AS notified`;
}

export class ReconcileQueue {
  constructor(readonly db: Database) {}

  /** Leases up to `limit` due items of each requested kind for `leaseMs`. */
  async lease(owner: string, requests: readonly LeaseRequest[], leaseMs: number, skewMs: number): Promise<LeasedItem[]> {
    const wanted = requests.filter((r) => r.limit > 0);
    if (wanted.length === 0) return [];
    // Not a named prepared statement: the queue swings from empty to thousands of rows, and a
    // generic plan cached while it was empty would scan it all.
    const res = await this.db.query<LeaseRow>(SQL.lease, [wanted.map((r) => r.kind), wanted.map((r) => r.limit), owner, leaseMs, skewMs]);
    return res.rows.map((r) => ({
      kind: r.kind,
      objectId: r.object_id,
      operation: r.operation,
      generation: r.generation,
      attempts: r.attempts,
      firstQueuedAt: r.first_queued_at,
      payload: r.payload,
    }));
  }

  /** Extends every lease `owner` holds; returns the items still held. */
  async renew(owner: string, leaseMs: number, skewMs: number): Promise<Array<{ kind: string; objectId: number }>> {
    const res = await this.db.query<{ kind: string; object_id: number }>({
      name: 'reconcile_renew',
      text: SQL.renew,
      values: [owner, leaseMs, skewMs],
    });
    return res.rows.map((r) => ({ kind: r.kind, objectId: r.object_id }));
  }

  /**
   * Marks a leased item done. `done`: the row is gone. `again`: the object
   * changed while it ran, so the row stays queued for another run. Neither:
   * the lease was lost.
   */
  async ack(
    item: LeasedItem,
    owner: string,
    ranCreate: boolean,
    client: Queryable = this.db.pool,
  ): Promise<{ done: boolean; again: boolean }> {
    const res = await client.query({
      name: 'reconcile_ack',
      text: SQL.ack,
      values: [item.kind, item.objectId, owner, item.generation, ranCreate],
    });
    return res.rows[0] as { done: boolean; again: boolean };
  }

  /** Records a failure: retry after `delayMs`, or, when `terminal`, not until the object changes. False: lease lost. */
  async fail(
    item: LeasedItem,
    owner: string,
    failure: { delayMs: number; terminal: boolean; message: string },
    skewMs: number,
    client: Queryable = this.db.pool,
  ): Promise<{ attempts: number; notBefore: Date } | undefined> {
    const res = await client.query({
      name: 'reconcile_fail',
      text: SQL.fail,
      values: [item.kind, item.objectId, owner, item.generation, failure.delayMs, failure.message, failure.terminal, skewMs],
    });
    const row = res.rows[0] as { attempts: number; not_before: Date } | undefined;
    return row ? { attempts: row.attempts, notBefore: row.not_before } : undefined;
  }

  /**
   * Runs the item again after `delayMs` (a reconciler's own requeue); with `preferOwner`, only
   * that replica takes it while it is alive (a hand-off). False: lease lost.
   */
  async requeue(item: LeasedItem, owner: string, delayMs: number, skewMs: number, preferOwner?: string): Promise<boolean> {
    const res = await this.db.query({
      name: 'reconcile_requeue',
      text: SQL.requeue,
      values: [item.kind, item.objectId, owner, item.generation, delayMs, skewMs, preferOwner ?? null],
    });
    return (res.rowCount ?? 0) > 0;
  }

  /** Wakes objects of `kind` whose watched objects changed; returns how many rows it queued or woke. */
  async wake(kind: Kind, ids: readonly number[], options: { onlyQueued?: boolean; retryParked?: boolean } = {}): Promise<number> {
    if (ids.length === 0) return 0;
    const onlyQueued = options.onlyQueued === true;
    const retryParked = options.retryParked === true;
    const res = await this.db.query<{ woken: number }>({
      name: `reconcile_wake_${kind.name}_${onlyQueued ? 'q' : 'a'}${retryParked ? 'p' : ''}`,
      text: wakeSql(kind, onlyQueued, retryParked),
      values: [ids],
    });
    return res.rows[0]?.woken ?? 0;
  }

  /** Gives items back untouched (shutdown, or leased but never started). */
  async release(owner: string, items: ReadonlyArray<{ kind: string; objectId: number }>): Promise<void> {
    if (items.length === 0) return;
    await this.db.query(SQL.release, [owner, items.map((i) => i.kind), items.map((i) => i.objectId)]);
  }

  async releaseAll(owner: string): Promise<number> {
    const res = await this.db.query(SQL.releaseAll, [owner]);
    return res.rowCount ?? 0;
  }

  /** Drops an item whose object no longer exists. */
  async drop(item: LeasedItem, owner: string): Promise<void> {
    await this.db.query({ name: 'reconcile_drop', text: SQL.drop, values: [item.kind, item.objectId, owner] });
  }

  /** True, with the queue row locked until the transaction ends, when `owner` still holds the item. */
  async holds(item: LeasedItem, owner: string, client: Queryable): Promise<boolean> {
    const res = await client.query({ name: 'reconcile_holds', text: SQL.holds, values: [item.kind, item.objectId, owner] });
    return res.rows.length > 0;
  }

  async depth(skewMs = 0): Promise<QueueDepthRow[]> {
    const res = await this.db.query<QueueDepthRow>(SQL.depth, [skewMs]);
    return res.rows;
  }

  /** Queued items of kinds outside `kinds` (no controller here), per kind. */
  async waitingOutside(kinds: readonly string[]): Promise<Array<{ kind: string; count: number }>> {
    const res = await this.db.query<{ kind: string; count: number }>(SQL.waiting, [kinds]);
    return res.rows;
  }

  /**
   * Claims this interval's resync of `kind`: true for exactly one caller per
   * interval across all processes. The first call for a kind only records the
   * time, so a fresh database does not resync at once.
   */
  async claimResync(kind: string, intervalMs: number, skewMs: number): Promise<boolean> {
    await this.db.query({ name: 'reconcile_resync_init', text: SQL.resyncInit, values: [kind, skewMs] });
    const res = await this.db.query({ name: 'reconcile_resync_claim', text: SQL.resyncClaim, values: [kind, skewMs, intervalMs] });
    return (res.rowCount ?? 0) > 0;
  }

  /**
   * Queues an 'Updated' item for every live object of `kind` with
   * `Reconciled: true`, in batches of `batchSize`, each due at a random time
   * within `spreadMs`. Objects with pending work keep their item. Returns how
   * many items were queued.
   */
  async resync(kind: Kind, options: { batchSize: number; spreadMs: number; skewMs: number }): Promise<number> {
    const statement = `WITH objs AS (
        SELECT id FROM ${kind.table}
        WHERE deleted_at IS NULL AND id > $1 AND data @> '{"Reconciled": true}'::jsonb
        ORDER BY id LIMIT $2),
      ins AS (
        INSERT INTO ${T} (kind, object_id, operation, not_before)
        SELECT $3, id, 'Updated', ${at(5)} + random() * $4::double precision * interval '1 millisecond' FROM objs
        ON CONFLICT (kind, object_id) DO NOTHING RETURNING 1)
      SELECT (SELECT max(id) FROM objs) AS last_id, (SELECT count(*) FROM ins)::int AS queued`;
    let cursor = 0;
    let queued = 0;
    // Bounded: each batch advances the cursor past at least one id.
    for (;;) {
      const res = await this.db.query<{ last_id: number | null; queued: number }>(statement, [
        cursor,
        options.batchSize,
        kind.name,
        options.spreadMs,
        options.skewMs,
      ]);
      const row = res.rows[0]!;
      queued += row.queued;
      if (row.last_id === null) break;
      cursor = row.last_id;
    }
    if (queued > 0) await this.db.query(`SELECT pg_notify('${NOTIFY_CHANNEL}', $1)`, [kind.name]);
    return queued;
  }
}
