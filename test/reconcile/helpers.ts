// Shared set-up for the reconcile engine's tests: a real PostgreSQL with the
// schema applied, a store, quiet logs, and bounded waits on settlements.
import { KINDS } from '../../src/kinds/index.js';
import { FieldCipher } from '../../src/crypto/field-encryption.js';
import { Database } from '../../src/store/database.js';
import { migrate } from '../../src/store/migrate.js';
import { ObjectStore } from '../../src/store/object-store.js';
import { QUEUE_TABLE, RESYNC_TABLE } from '../../src/store/schema.js';
import { createLogger } from '../../src/logger.js';
import { ReconcileRuntime, type ReconcileRuntimeOptions } from '../../src/reconcile/runtime.js';
import type { Reconciler, Settlement } from '../../src/reconcile/types.js';
import { startTestPostgres, type TestPostgres } from '../harness/postgres.js';
import type { Kind } from '../../src/kinds/declare.js';
import { validatePayload, type JsonObject } from '../../src/kinds/validate.js';

export const quietLogger = () => createLogger({ level: process.env['THREEPORT_TEST_LOG'] ?? 'silent' });

export interface Env {
  pg: TestPostgres;
  db: Database;
  store: ObjectStore;
  key: string;
  close(): Promise<void>;
}

export async function startEnv(): Promise<Env> {
  const pg = await startTestPostgres();
  const db = await Database.open({ url: pg.url, poolSize: 20 });
  await migrate(db, KINDS);
  const key = FieldCipher.generateKey();
  // The engine's tests reconcile control-plane kinds with reconcilers of their own, though no
  // built-in controller serves them yet.
  const store = new ObjectStore(db, new FieldCipher(key), new Set(['ControlPlaneDefinition', 'ControlPlaneInstance']));
  return {
    pg,
    db,
    store,
    key,
    async close() {
      await db.close();
      await pg.stop();
    },
  };
}

/** Empties the queue, the resync bookkeeping and every object table. */
export async function resetData(db: Database): Promise<void> {
  const tables = [...new Set(KINDS.map((k) => k.table))];
  await db.query(`TRUNCATE ${QUEUE_TABLE}, ${RESYNC_TABLE}, ${tables.join(', ')}`);
}

/** Records settlements and lets a test wait, boundedly, for a condition on them. */
export class Settlements {
  readonly all: Settlement[] = [];
  #waiters: Array<() => void> = [];

  readonly push = (s: Settlement): void => {
    this.all.push(s);
    for (const w of this.#waiters) w();
  };

  of(id: number): Settlement[] {
    return this.all.filter((s) => s.id === id);
  }

  async until(predicate: (all: Settlement[]) => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.all)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; settlements: ${JSON.stringify(this.all.slice(-10))}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 200));
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#waiters.push(done);
      });
      this.#waiters = [];
    }
  }
}

export function startRuntime(
  env: Env,
  reconcilers: Reconciler[],
  settlements: Settlements,
  options: Partial<ReconcileRuntimeOptions> = {},
): Promise<ReconcileRuntime> {
  return ReconcileRuntime.start({
    store: env.store,
    reconcilers,
    logger: quietLogger(),
    onSettled: settlements.push,
    pollIntervalMs: 200,
    resyncIntervalMs: 0,
    retry: { initialIntervalMs: 50, maximumIntervalMs: 200 },
    ...options,
  });
}

/** Polls `check` until it returns a value other than undefined (bounded). */
export async function eventually<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export async function queueRow(db: Database, kind: string, id: number): Promise<Record<string, unknown> | undefined> {
  const res = await db.query(`SELECT * FROM ${QUEUE_TABLE} WHERE kind = $1 AND object_id = $2`, [kind, id]);
  return res.rows[0];
}

export async function eventsOf(db: Database, kind: string, id: number): Promise<Array<Record<string, unknown>>> {
  const res = await db.query<{ id: number; data: Record<string, unknown> }>(
    `SELECT e.id, e.data FROM v0_events e JOIN v0_attached_object_references r
       ON (r.data->>'AttachedObjectID')::bigint = e.id AND r.deleted_at IS NULL
     WHERE e.deleted_at IS NULL AND r.data @> jsonb_build_object('ObjectType', $1::text, 'ObjectID', $2::bigint, 'AttachedObjectType', 'v0.Event')
     ORDER BY e.id`,
    [`v0.${kind}`, id],
  );
  return res.rows.map((r) => ({ ID: r.id, ...r.data }));
}

export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Creates an object as the API does: validated, defaults applied, its reconcile queued in the same statement; its ID. */
export async function createObject(store: ObjectStore, kind: Kind, fields: JsonObject): Promise<number> {
  return (JSON.parse(await store.create(kind, validatePayload(kind, fields, 'create'))) as { ID: number }).ID;
}
