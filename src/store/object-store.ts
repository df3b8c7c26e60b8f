// The object repository: create, read, list, update and delete objects of any
// declared kind. Each hot-path operation is one prepared statement: a create
// inserts the row, queues its reconcile and fires the wake-up in a single round
// trip, so an acknowledged write can never lose its reconcile request.
//
// Objects leave the database as JSON text built by PostgreSQL, and the API
// copies that text into the response without parsing it.
import type pg from 'pg';
import { randomUUID } from 'node:crypto';
import { KIND_BY_NAME, blockingReferences } from '../kinds/index.js';
import type { FieldSpec, Kind } from '../kinds/declare.js';
import type { JsonObject } from '../kinds/validate.js';
import { ConflictError, InputError, NotFoundError } from '../errors.js';
import type { FieldCipher } from '../crypto/field-encryption.js';
import type { Database, Queryable } from './database.js';
import { CHANGE_CHANNEL, NOTIFY_CHANNEL, QUEUE_TABLE, nameConstraint, uniqueConstraint, uniqueTrueConstraint } from './schema.js';
import { deletesInTwoPhases } from '../kinds/availability.js';

export type Operation = 'Created' | 'Updated' | 'Deleted';

export interface ListPage {
  total: number;
  items: string[];
}

export interface WriteOptions {
  /** Queue a reconcile when the object is left unreconciled (spec §1.6). Controllers writing their own status pass false. */
  enqueue?: boolean;
  /**
   * A client's write (the API's): one that changes a desired field raises `Generation` and,
   * unless it sets `Reconciled` itself, leaves the object unreconciled, so it is queued in the
   * same statement. Controllers' writes never raise it.
   */
  client?: boolean;
}

/** The association lists among `fields` (nested children such as GatewayDefinition.HttpPorts). */
function associationsIn(kind: Kind, fields: JsonObject): Array<[string, FieldSpec]> {
  return Object.entries(kind.allFields).filter(([n, s]) => s.type === 'association' && Array.isArray(fields[n]));
}

/**
 * SQL: true when the JSON `changes` (and the transient `payload`) change a desired field of the
 * row `alias` (see Kind.desiredFields). Encrypted values are fresh ciphertext on every write, so
 * writing one counts as a change.
 */
function desiredChange(kind: Kind, alias: string, changes: string, payload: string): string {
  if (kind.desiredFields.length === 0) return 'false';
  const keys = `ARRAY[${kind.desiredFields.map((f) => `'${f}'`).join(',')}]::text[]`;
  return `(${payload} IS NOT NULL OR EXISTS (SELECT 1 FROM jsonb_each(${changes}) c WHERE c.key = ANY(${keys}) AND ${alias}.data->c.key IS DISTINCT FROM c.value))`;
}

/** SQL: the row's `Generation` raised by one (and `Reconciled` false) when `bump` holds; else nothing. */
function generationBump(kind: Kind, alias: string, bump: string): string {
  // Without generations the condition still names its parameters, which PostgreSQL must type.
  if (!kind.reconciled) return `(CASE WHEN ${bump} THEN '{}'::jsonb ELSE '{}'::jsonb END)`;
  return `CASE WHEN ${bump} THEN jsonb_build_object('Generation', coalesce((${alias}.data->>'Generation')::bigint, 1) + 1, 'Reconciled', false) ELSE '{}'::jsonb END`;
}

/** SQL for PUT: the replacement keeps the server-managed generation fields, and a changed desired field raises Generation. */
function putGeneration(kind: Kind, alias: string, replacement: string, forced: string): string {
  // Without generations the flag still has to be typed.
  if (!kind.reconciled) return `(CASE WHEN ${forced} THEN '{}'::jsonb ELSE '{}'::jsonb END)`;
  const keys = `ARRAY[${kind.desiredFields.map((f) => `'${f}'`).join(',')}]::text[]`;
  const desired = (data: string): string => `coalesce((SELECT jsonb_object_agg(d.key, d.value) FROM jsonb_each(${data}) d WHERE d.key = ANY(${keys})), '{}'::jsonb)`;
  return `jsonb_strip_nulls(jsonb_build_object(
      'Generation', coalesce((${alias}.data->>'Generation')::bigint, 1) + CASE WHEN ${forced} OR ${desired(`${alias}.data`)} IS DISTINCT FROM ${desired(replacement)} THEN 1 ELSE 0 END,
      'ObservedGeneration', ${alias}.data->'ObservedGeneration', 'Conditions', ${alias}.data->'Conditions'))`;
}

/** SQL that upserts a reconcile request for the rows of CTE `src(id)`; repeated changes coalesce into one row. */
function enqueueSql(kind: Kind, operationParam: string, payloadParam: string, where: string): string {
  return `INSERT INTO ${QUEUE_TABLE} AS q (kind, object_id, operation, payload)
      SELECT '${kind.name}', src.id, ${operationParam}, ${payloadParam} FROM src WHERE ${where}
      ON CONFLICT (kind, object_id) DO UPDATE SET
        operation = CASE
          WHEN EXCLUDED.operation = 'Deleted' OR q.operation = 'Deleted' THEN 'Deleted'
          WHEN q.operation = 'Created' THEN 'Created'
          ELSE EXCLUDED.operation END,
        generation = q.generation + 1,
        queued_at = now(),
        not_before = now(),
        attempts = 0,
        payload = coalesce(EXCLUDED.payload, q.payload)
      RETURNING q.kind`;
}

/**
 * A CTE that announces the rows of `rows` on the change channel (one NOTIFY per written row, the
 * payload `<Kind>:<id>:<op>`). The statement must reference it (`changed`), or PostgreSQL skips it.
 */
function changeSql(kind: Kind, rows: string, op: 'C' | 'U' | 'D'): string {
  return `changed AS (SELECT pg_notify('${CHANGE_CHANNEL}', '${kind.name}:' || ${rows}.id || ':${op}') FROM ${rows})`;
}

/** The object's JSON as clients see it: model fields, stored fields and nested associations. */
export function objectJson(kind: Kind, alias: string, withDeletedAt = false): string {
  const model = `jsonb_build_object('ID', ${alias}.id, 'CreatedAt', ${alias}.created_at, 'UpdatedAt', ${alias}.updated_at${
    withDeletedAt ? `, 'DeletedAt', ${alias}.deleted_at` : ''
  })`;
  const associations = Object.entries(kind.allFields)
    .filter(([, s]) => s.type === 'association')
    .map(([field, s]) => {
      const child = KIND_BY_NAME.get(s.ref!)!;
      return `jsonb_build_object('${field}', coalesce((SELECT jsonb_agg(${objectJson(child, 'c')} ORDER BY c.id) FROM ${
        child.table
      } c WHERE c.deleted_at IS NULL AND c.data @> jsonb_build_object('${s.backRef}', ${alias}.id)), '[]'::jsonb))`;
    });
  return [model, `${alias}.data`, ...associations].join(' || ');
}

/**
 * The `id` fields whose target must be a live object when written: required references and
 * those that block their target's deletion. (Optional back-pointers such as an event's
 * WorkloadInstanceID are records of the past and may outlive their target.)
 */
export function checkedReferences(kind: Kind): Array<{ field: string; target: Kind; blocksDelete: boolean }> {
  return Object.entries(kind.allFields).flatMap(([field, spec]) => {
    const target = spec.type === 'id' && spec.ref ? KIND_BY_NAME.get(spec.ref) : undefined;
    if (!target || !(spec.required || spec.blocksDelete)) return [];
    return [{ field, target, blocksDelete: spec.blocksDelete === true }];
  });
}

/** The target row of a reference is live (and, for a deletion-blocking one, not being deleted). */
function liveTarget(blocksDelete: boolean, alias: string): string {
  return `${alias}.deleted_at IS NULL${blocksDelete ? ` AND coalesce(${alias}.data->>'DeletionScheduled', '') = ''` : ''}`;
}

/**
 * SQL that is true when every checked reference in the JSON `data` names a live object. Each
 * target row is locked FOR SHARE, which conflicts with the FOR UPDATE a DELETE holds while it
 * looks for referrers: a delete and a write that refers to its object serialise, and whichever
 * comes second sees the other (the write then matches no target and is refused).
 */
function referenceGuard(kind: Kind, data: string): string {
  const checks = checkedReferences(kind).map(
    ({ field, target, blocksDelete }) =>
      `(${data}->'${field}' IS NULL OR EXISTS (SELECT 1 FROM ${target.table} r WHERE r.id = (${data}->>'${field}')::bigint AND ${liveTarget(blocksDelete, 'r')} FOR SHARE))`,
  );
  return checks.length > 0 ? checks.join(' AND ') : 'true';
}

/** SQL: no immutable field in `pinned` differs from the row's value (an absent field may be set). */
function immutableGuard(alias: string, pinned: string): string {
  return `NOT EXISTS (SELECT 1 FROM jsonb_each(${pinned}) p WHERE ${alias}.data ? p.key AND ${alias}.data->p.key <> p.value)`;
}

interface KindStatements {
  create: string;
  get: string;
  list: string;
  count: string;
  patch: string;
  put: string;
}

export function statementsFor(kind: Kind): KindStatements {
  const t = kind.table;
  const notify = `n AS (SELECT pg_notify('${NOTIFY_CHANNEL}', kind) FROM q)`;
  const announced = `(SELECT count(*) FROM changed) AS announced`;
  const unreconciled = `$3::boolean AND NOT coalesce((src.data->>'Reconciled')::boolean, false)`;
  const nameMatch = kind.uniqueName ? `($4::text IS NULL OR t.data->>'Name' = $4::text)` : `$4::text IS NULL`;
  return {
    // $1 data, $2 queue payload, $3 may enqueue
    create: `WITH src AS (INSERT INTO ${t} (data) SELECT $1::jsonb WHERE ${referenceGuard(kind, '$1::jsonb')} RETURNING *),
      q AS (${enqueueSql(kind, "'Created'", '$2::jsonb', unreconciled)}),
      ${notify}, ${changeSql(kind, 'src', 'C')}
      SELECT (${objectJson(kind, 'src')})::text AS json, (SELECT count(*) FROM n) AS queued, ${announced} FROM src`,
    get: `SELECT (${objectJson(kind, 't')})::text AS json FROM ${t} t WHERE t.id = $1 AND t.deleted_at IS NULL`,
    // $1 filter, $2 limit (NULL = all), $3 offset, $4 name. The name, the most common filter, goes
    // through the unique name index; the other query keys through containment on the GIN index.
    list: `SELECT (${objectJson(kind, 't')})::text AS json, count(*) OVER () AS total
      FROM ${t} t WHERE t.deleted_at IS NULL AND t.data @> $1::jsonb AND ${nameMatch} ORDER BY t.id LIMIT $2 OFFSET $3`,
    count: `SELECT count(*) AS total FROM ${t} t WHERE t.deleted_at IS NULL AND t.data @> $1::jsonb AND ${nameMatch.replaceAll('$4', '$2')}`,
    // $1 id, $2 changes, $3 may enqueue, $4 immutable fields that must match, $5 payload, $6 a client's write,
    // $7 the write also replaced nested children (a desired change the row's own data cannot show).
    // A client's change to a desired field raises Generation and leaves the object unreconciled
    // (unless the change sets Reconciled itself), so the enqueue below queues it at once.
    patch: `WITH src AS (UPDATE ${t} t SET data = t.data || ${generationBump(kind, 't', `$6::boolean AND ($7::boolean OR ${desiredChange(kind, 't', '$2::jsonb', '$5::jsonb')})`)} || $2::jsonb, updated_at = now()
        WHERE t.id = $1 AND t.deleted_at IS NULL AND ${immutableGuard('t', '$4::jsonb')} AND ${referenceGuard(kind, '$2::jsonb')} RETURNING t.*),
      q AS (${enqueueSql(kind, "'Updated'", '$5::jsonb', unreconciled)}),
      ${notify}, ${changeSql(kind, 'src', 'U')}
      SELECT (${objectJson(kind, 'src')})::text AS json, (SELECT count(*) FROM n) AS queued, ${announced} FROM src`,
    // $1 id, $2 replacement, $3 immutable fields that must match, $4 nested children replaced. PUT never queues (spec §1.6).
    put: `WITH t AS (UPDATE ${t} u SET data = $2::jsonb || ${putGeneration(kind, 'u', '$2::jsonb', '$4::boolean')}, updated_at = now()
        WHERE u.id = $1 AND u.deleted_at IS NULL AND ${immutableGuard('u', '$3::jsonb')} AND ${referenceGuard(kind, '$2::jsonb')} RETURNING u.*),
      ${changeSql(kind, 't', 'U')}
      SELECT (${objectJson(kind, 't')})::text AS json, ${announced} FROM t`,
  };
}

function isUniqueViolation(err: unknown): err is { code: string; constraint?: string } {
  return typeof err === 'object' && err !== null && (err as { code?: string }).code === '23505';
}

export class ObjectStore {
  readonly #statements = new Map<string, KindStatements>();

  /**
   * `served` names unavailable kinds that this deployment reconciles anyway (explicit and
   * THREEPORT_TEST_RECONCILERS reconcilers): the API accepts writes of them, and their deletes
   * wait for the reconciler as any reconciled kind's do.
   */
  constructor(
    readonly db: Database,
    private readonly cipher: FieldCipher | undefined,
    readonly served: ReadonlySet<string> = new Set(),
  ) {}

  #sql(kind: Kind): KindStatements {
    let s = this.#statements.get(kind.name);
    if (!s) {
      s = statementsFor(kind);
      this.#statements.set(kind.name, s);
    }
    return s;
  }

  /** Encrypts encrypted fields; splits transient fields off into the reconcile payload. */
  #forStorage(kind: Kind, fields: JsonObject): { data: JsonObject; payload: JsonObject | null } {
    const data: JsonObject = { ...fields };
    let payload: JsonObject | null = null;
    for (const name of kind.encryptedFields) {
      if (data[name] === undefined) continue;
      if (!this.cipher) {
        throw new Error(`${kind.name}.${name} must be encrypted, but the server has no encryption key (ENCRYPTION_KEY)`);
      }
      const spec = kind.allFields[name]!;
      const value = data[name];
      const encrypted =
        spec.type === 'stringMap'
          ? Object.fromEntries(Object.entries(value as Record<string, string>).map(([k, v]) => [k, this.cipher!.encrypt(v)]))
          : this.cipher.encrypt(String(value));
      if (spec.transient) {
        payload = { ...(payload ?? {}), [name]: encrypted };
        delete data[name];
      } else {
        data[name] = encrypted;
      }
    }
    for (const [name, spec] of Object.entries(kind.allFields)) {
      if (spec.transient && data[name] !== undefined) {
        payload = { ...(payload ?? {}), [name]: data[name] };
        delete data[name];
      }
    }
    return { data, payload };
  }

  #conflict(kind: Kind, err: unknown): never {
    if (isUniqueViolation(err)) {
      if (err.constraint === nameConstraint(kind)) throw new ConflictError('object with provided name already exists');
      for (const field of kind.uniqueWhenTrue ?? []) {
        if (err.constraint === uniqueTrueConstraint(kind, field)) {
          throw new ConflictError(`another ${kind.name} already has ${field} set to true; only one may`);
        }
      }
      if (err.constraint === uniqueConstraint(kind)) {
        throw new ConflictError(`${kind.name} with the same ${kind.uniqueTogether?.join(', ')} already exists`);
      }
    }
    throw err;
  }

  #immutable(kind: Kind, fields: JsonObject): JsonObject {
    const pinned: JsonObject = {};
    for (const [name, spec] of Object.entries(kind.allFields)) {
      if (spec.immutable && fields[name] !== undefined) pinned[name] = fields[name];
    }
    return pinned;
  }

  /** Why a write's reference guard failed: the first reference whose target is missing or being deleted. */
  async #explainReferences(kind: Kind, data: JsonObject, client: Queryable): Promise<void> {
    for (const { field, target, blocksDelete } of checkedReferences(kind)) {
      const id = data[field];
      if (id === undefined || id === null) continue;
      const res = await client.query(`SELECT coalesce(r.data->>'DeletionScheduled', '') <> '' AS deleting FROM ${target.table} r WHERE r.id = $1 AND r.deleted_at IS NULL`, [id]);
      const row = res.rows[0] as { deleting: boolean } | undefined;
      if (!row) throw new InputError(`field ${kind.name}.${field} refers to ${target.name} ${String(id)}, which does not exist`);
      if (blocksDelete && row.deleting) throw new ConflictError(`field ${kind.name}.${field} refers to ${target.name} ${String(id)}, which is being deleted`);
    }
  }

  /** Why an update matched no row: the object is gone, it names a missing object, or it would change an immutable field. */
  async #explainNoMatch(kind: Kind, id: number, pinned: JsonObject, data: JsonObject, client: Queryable = this.db.pool): Promise<never> {
    const current = await this.getObject(kind, id, client);
    await this.#explainReferences(kind, data, client);
    for (const [name, value] of Object.entries(pinned)) {
      if (current[name] !== undefined && current[name] !== value) {
        throw new InputError(
          `field ${kind.name}.${name} cannot be changed once set: it is ${JSON.stringify(current[name])}, the request asks for ${JSON.stringify(value)}`,
        );
      }
    }
    throw new Error(`update of ${kind.name} ${id} matched no row`);
  }

  async create(kind: Kind, fields: JsonObject, options: WriteOptions = {}, client: Queryable = this.db.pool): Promise<string> {
    const associations = Object.entries(kind.allFields).filter(([n, s]) => s.type === 'association' && fields[n]);
    if (associations.length > 0 && client === this.db.pool) {
      return this.db.transaction((tx) => this.create(kind, fields, options, tx));
    }
    const own: JsonObject = { ...kind.defaults, ...fields };
    for (const [name] of associations) delete own[name];
    if (kind.name === 'AwsAccount' && own['ExternalId'] === undefined) own['ExternalId'] = randomUUID();
    const { data, payload } = this.#forStorage(kind, own);
    const enqueue = kind.reconciled && options.enqueue !== false;
    let row: { json: string; id?: number };
    try {
      const res = await client.query({
        name: `create_${kind.table}`,
        text: this.#sql(kind).create,
        values: [JSON.stringify(data), payload === null ? null : JSON.stringify(payload), enqueue],
      });
      row = res.rows[0];
    } catch (err) {
      this.#conflict(kind, err);
    }
    if (!row) {
      await this.#explainReferences(kind, data, client);
      throw new Error(`create of ${kind.name} inserted no row`);
    }
    if (associations.length === 0) return row.json;
    // Nested children (e.g. GatewayDefinition.HttpPorts) are rows of their own kind pointing back at the parent.
    const parentId = (JSON.parse(row.json) as { ID: number }).ID;
    for (const [name, spec] of associations) {
      const child = KIND_BY_NAME.get(spec.ref!)!;
      for (const item of fields[name] as JsonObject[]) {
        await this.create(child, { ...item, [spec.backRef!]: parentId }, options, client);
      }
    }
    return this.get(kind, parentId, client);
  }

  /** Creates several objects of one kind atomically (POST /v0/workload-resource-definition-sets). */
  async createMany(kind: Kind, items: JsonObject[]): Promise<string[]> {
    return this.db.transaction(async (tx) => {
      const out: string[] = [];
      for (const item of items) out.push(await this.create(kind, item, {}, tx));
      return out;
    });
  }

  async get(kind: Kind, id: number, client: Queryable = this.db.pool): Promise<string> {
    const res = await client.query({ name: `get_${kind.table}`, text: this.#sql(kind).get, values: [id] });
    const row = res.rows[0] as { json: string } | undefined;
    if (!row) throw new NotFoundError('record not found');
    return row.json;
  }

  async getObject(kind: Kind, id: number, client: Queryable = this.db.pool): Promise<JsonObject> {
    return JSON.parse(await this.get(kind, id, client)) as JsonObject;
  }

  /**
   * The object, its row locked until the transaction `tx` ends: for a read-check-write that must
   * not interleave with another writer (a status derived from a snapshot that may be stale).
   */
  async getForUpdate(kind: Kind, id: number, tx: Queryable): Promise<JsonObject> {
    const locked = await tx.query(`SELECT 1 FROM ${kind.table} WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, [id]);
    if (locked.rowCount === 0) throw new NotFoundError('record not found');
    return this.getObject(kind, id, tx);
  }

  async list(kind: Kind, filter: JsonObject, page: number, size: number, client: Queryable = this.db.pool): Promise<ListPage> {
    const limit = size < 0 ? null : size;
    const offset = size < 0 ? 0 : (page - 1) * size;
    const { Name: name, ...rest } = filter;
    const byName = kind.uniqueName && typeof name === 'string' ? name : null;
    const filterJson = JSON.stringify(byName === null ? filter : rest);
    // Deliberately unnamed: a named statement soon switches to a generic plan that cannot see the
    // filter and walks the primary key; an unnamed one is planned for its actual filter each time.
    const res = await client.query({ text: this.#sql(kind).list, values: [filterJson, limit, offset, byName] });
    const rows = res.rows as Array<{ json: string; total: number }>;
    if (rows.length > 0) return { total: rows[0]!.total, items: rows.map((r) => r.json) };
    if (offset === 0) return { total: 0, items: [] };
    const count = await client.query({ text: this.#sql(kind).count, values: [filterJson, byName] });
    return { total: (count.rows[0] as { total: number }).total, items: [] };
  }

  /** Parsed objects, for controllers. */
  async find(kind: Kind, filter: JsonObject, client: Queryable = this.db.pool): Promise<JsonObject[]> {
    const page = await this.list(kind, filter, 1, -1, client);
    return page.items.map((j) => JSON.parse(j) as JsonObject);
  }

  /**
   * PATCH: the fields in `changes` replace the stored ones. An association list in `changes`
   * replaces the object's nested children of that field (in one transaction with the parent's
   * write), and counts as a change of a desired field.
   */
  async patch(kind: Kind, id: number, changes: JsonObject, options: WriteOptions = {}, client: Queryable = this.db.pool): Promise<string> {
    const lists = associationsIn(kind, changes);
    if (lists.length > 0 && client === this.db.pool) {
      return this.db.transaction((tx) => this.patch(kind, id, changes, options, tx));
    }
    const own: JsonObject = { ...changes };
    for (const [name] of lists) delete own[name];
    const pinned = this.#immutable(kind, own);
    const { data, payload } = this.#forStorage(kind, own);
    const enqueue = kind.reconciled && options.enqueue !== false;
    const res = await client
      .query({
        name: `patch_${kind.table}`,
        text: this.#sql(kind).patch,
        values: [id, JSON.stringify(data), enqueue, JSON.stringify(pinned), payload === null ? null : JSON.stringify(payload), options.client === true, lists.length > 0],
      })
      .catch((err: unknown) => this.#conflict(kind, err));
    const row = res.rows[0] as { json: string } | undefined;
    if (!row) return this.#explainNoMatch(kind, id, pinned, data, client);
    if (lists.length === 0) return row.json;
    await this.#replaceChildren(kind, id, changes, lists, client);
    return this.get(kind, id, client);
  }

  /** PUT: a full replacement of the stored fields; an association list sent replaces those children, one left out keeps them. */
  async put(kind: Kind, id: number, replacement: JsonObject, client: Queryable = this.db.pool): Promise<string> {
    const lists = associationsIn(kind, replacement);
    if (lists.length > 0 && client === this.db.pool) {
      return this.db.transaction((tx) => this.put(kind, id, replacement, tx));
    }
    const own: JsonObject = { ...replacement };
    for (const [name] of lists) delete own[name];
    const pinned = this.#immutable(kind, own);
    const { data } = this.#forStorage(kind, own);
    const res = await client
      .query({
        name: `put_${kind.table}`,
        text: this.#sql(kind).put,
        values: [id, JSON.stringify(data), JSON.stringify(pinned), lists.length > 0],
      })
      .catch((err: unknown) => this.#conflict(kind, err));
    const row = res.rows[0] as { json: string } | undefined;
    if (!row) return this.#explainNoMatch(kind, id, pinned, data, client);
    if (lists.length === 0) return row.json;
    await this.#replaceChildren(kind, id, replacement, lists, client);
    return this.get(kind, id, client);
  }

  /** The parent's children of each listed association field become the sent items (validated by the API as creates). */
  async #replaceChildren(kind: Kind, id: number, fields: JsonObject, lists: Array<[string, FieldSpec]>, client: Queryable): Promise<void> {
    for (const [name, spec] of lists) {
      const child = KIND_BY_NAME.get(spec.ref!)!;
      await this.deleteWhere(child, { [spec.backRef!]: id }, client);
      for (const item of fields[name] as JsonObject[]) {
        await this.create(child, { ...item, [spec.backRef!]: id }, {}, client);
      }
    }
  }

  /**
   * Runs `work` in one transaction that holds `kind`'s graph lock (a transaction-level advisory
   * lock): rules that read other objects before writing (a DependsOn cycle check) see every
   * earlier writer's commit, and no later writer slips between their check and their write.
   */
  async withGraphLock<T>(kind: Kind, work: (tx: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`threeport:graph:${kind.name}`]);
      return work(tx);
    });
  }

  /**
   * DELETE /v0/<plural>/:id. Live referrers that block deletion give 409.
   * Reconciled kinds are deleted in two phases (spec §1.7): the first call
   * schedules deletion and queues the controller's cleanup; once the
   * controller confirms, the final call soft-deletes the row.
   */
  async delete(kind: Kind, id: number): Promise<string> {
    return this.db.transaction(async (tx) => {
      const locked = await tx.query(`SELECT data FROM ${kind.table} WHERE id = $1 AND deleted_at IS NULL FOR UPDATE`, [id]);
      const current = locked.rows[0] as { data: JsonObject } | undefined;
      if (!current) throw new NotFoundError('record not found');
      await this.#assertNoBlockingReferences(kind, id, tx);
      if (deletesInTwoPhases(kind, current.data, this.served) && !current.data['DeletionConfirmed']) {
        if (current.data['DeletionScheduled']) throw new ConflictError(`object with ID ${id} already being deleted`);
        return this.#scheduleDeletion(kind, id, tx);
      }
      return this.softDelete(kind, id, tx);
    });
  }

  async #scheduleDeletion(kind: Kind, id: number, tx: pg.PoolClient): Promise<string> {
    const res = await tx.query(
      `WITH src AS (UPDATE ${kind.table} SET updated_at = now(),
          data = data || jsonb_build_object('DeletionScheduled', to_jsonb(now()), 'Reconciled', false)
          WHERE id = $1 RETURNING *),
        q AS (${enqueueSql(kind, "'Deleted'", 'NULL::jsonb', 'true')}),
        n AS (SELECT pg_notify('${NOTIFY_CHANNEL}', kind) FROM q), ${changeSql(kind, 'src', 'U')}
       SELECT (${objectJson(kind, 'src')})::text AS json, (SELECT count(*) FROM n) AS queued, (SELECT count(*) FROM changed) AS announced FROM src`,
      [id],
    );
    return (res.rows[0] as { json: string }).json;
  }

  /** The final, irreversible step: hide the row (its name becomes reusable) and drop pending work. */
  async softDelete(kind: Kind, id: number, client: Queryable = this.db.pool): Promise<string> {
    const res = await client.query(
      `WITH gone AS (DELETE FROM ${QUEUE_TABLE} WHERE kind = $2 AND object_id = $1),
         t AS (UPDATE ${kind.table} SET deleted_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING *),
         ${changeSql(kind, 't', 'D')}
       SELECT (${objectJson(kind, 't', true)})::text AS json, (SELECT count(*) FROM changed) AS announced FROM t`,
      [id, kind.name],
    );
    const row = res.rows[0] as { json: string } | undefined;
    if (!row) throw new NotFoundError('record not found');
    return row.json;
  }

  async #assertNoBlockingReferences(kind: Kind, id: number, client: Queryable): Promise<void> {
    for (const ref of blockingReferences(kind)) {
      const res = await client.query(
        `SELECT id FROM ${ref.kind.table} WHERE deleted_at IS NULL AND data @> jsonb_build_object($1::text, $2::bigint) LIMIT 1`,
        [ref.field, id],
      );
      if (res.rows.length > 0) {
        throw new ConflictError(
          `${kind.name} ${id} has related ${ref.kind.name}s (for example ${ref.kind.name} ${(res.rows[0] as { id: number }).id}) - cannot be deleted`,
        );
      }
    }
  }

  /** Soft-deletes every live object of `kind` matching `filter`; returns how many. */
  async deleteWhere(kind: Kind, filter: JsonObject, client: Queryable = this.db.pool): Promise<number> {
    const res = await client.query(
      `WITH t AS (UPDATE ${kind.table} SET deleted_at = now() WHERE deleted_at IS NULL AND data @> $1::jsonb RETURNING id),
         ${changeSql(kind, 't', 'D')}
       SELECT count(*) AS deleted FROM changed`,
      [JSON.stringify(filter)],
    );
    return Number((res.rows[0] as { deleted: number | string }).deleted);
  }

  decrypt(value: string): string {
    if (!this.cipher) throw new Error('the server has no encryption key (ENCRYPTION_KEY)');
    return this.cipher.decrypt(value);
  }
}
