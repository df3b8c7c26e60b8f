// The REST routes every kind gets (spec §2.1), derived from its declaration.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Kind, StoredCheckContext } from '../kinds/declare.js';
import { kindNamed } from '../kinds/index.js';
import { parseFilters, validatePayload } from '../kinds/validate.js';
import { refuseUnavailableWrite } from '../kinds/availability.js';
import { prepareAssociationUpdate } from './association-updates.js';
import { InputError, NotFoundError } from '../errors.js';
import type { ObjectStore } from '../store/object-store.js';
import type { Queryable } from '../store/database.js';
import { envelope, single } from './envelope.js';

export const JSON_TYPE = 'application/json; charset=UTF-8';

export function parseId(raw: unknown): number {
  const text = String(raw);
  if (!/^[1-9]\d{0,18}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new InputError(`invalid object ID ${JSON.stringify(text)} in path: must be a positive integer`);
  }
  return Number(text);
}

export interface Pagination {
  page: number;
  size: number;
}

/** `page` (default 1) and `size` (default 50, -1 for all): integers ≥ -1 (spec §2.3). */
export function parsePagination(query: Record<string, unknown>): Pagination {
  const read = (key: string, fallback: number): number => {
    const raw = query[key];
    if (raw === undefined || raw === '') return fallback;
    const text = Array.isArray(raw) ? String(raw[0]) : String(raw);
    if (!/^-?\d{1,9}$/.test(text) || Number(text) < -1) {
      throw new InputError(`query parameter ${key} must be an integer of -1 or more, got ${JSON.stringify(text)}`);
    }
    return Number(text);
  };
  const size = read('size', 50);
  let page = read('page', 1);
  if (page < 1) page = 1;
  if (size === 0) throw new InputError('query parameter size must be -1 (all) or a positive integer, got "0"');
  return { page, size };
}

/** Runs the kind's `checkStored` rule (e.g. no dependency cycle) on `client`; a problem is a 400. */
async function checkStored(
  kind: Kind,
  store: ObjectStore,
  fields: Readonly<Record<string, unknown>>,
  id: number | undefined,
  client: Queryable,
): Promise<void> {
  if (!kind.checkStored) return;
  const context: StoredCheckContext = {
    id,
    get: async (kindName, objectId) => {
      try {
        return await store.getObject(kindNamed(kindName), objectId, client);
      } catch (err) {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      }
    },
  };
  const problem = await kind.checkStored(fields, context);
  if (problem) throw new InputError(problem);
}

type Req = FastifyRequest<{ Params: { id?: string }; Querystring: Record<string, unknown> }>;

/** A rule the server adds to a kind from its own configuration: the fields of a write → the problem (400). */
export type ServerCheck = (fields: Readonly<Record<string, unknown>>) => string | undefined;

/** What a route does for one kind; the generic routes below pick it by the path's plural. */
type Handler = (req: Req, reply: FastifyReply) => Promise<FastifyReply>;
interface KindHandlers {
  versions: Handler;
  create: Handler;
  list: Handler;
  get: Handler;
  patch: Handler;
  put: Handler;
  delete: Handler;
}

function kindHandlers(kind: Kind, store: ObjectStore, serverCheck?: ServerCheck): KindHandlers {
  const send = (reply: FastifyReply, body: string, code = 200) => reply.code(code).type(JSON_TYPE).send(body);

  // A kind with a rule over other stored objects checks and writes under its graph lock, so two
  // concurrent writes cannot each pass the check against the state before the other.
  const checked = <T>(work: (client: Queryable) => Promise<T>): Promise<T> =>
    kind.checkStored ? store.withGraphLock(kind, work) : work(store.db.pool);
  const validate = (body: unknown, mode: 'create' | 'patch' | 'put') => {
    const fields = validatePayload(kind, body, mode);
    refuseUnavailableWrite(kind, fields, mode, store.served);
    const problem = serverCheck?.(fields);
    if (problem) throw new InputError(problem);
    return fields;
  };

  // A PATCH or PUT that sends nested children replaces them, unless they are sent back unchanged
  // (get-modify-update); only then is the stored object read before validation.
  const associationNames = Object.entries(kind.allFields).filter(([, s]) => s.type === 'association').map(([n]) => n);
  const withAssociations = async (body: unknown, id: number): Promise<unknown> => {
    const sends = body && typeof body === 'object' && associationNames.some((n) => Object.hasOwn(body, n));
    return sends ? prepareAssociationUpdate(kind, body, await store.getObject(kind, id)) : body;
  };

  return {
    versions: async (_req, reply) => reply.type(JSON_TYPE).send(JSON.stringify({ API: kind.name, Versions: ['v0'] })),

    create: async (req, reply) => {
      const fields = validate(req.body, 'create');
      const json = await checked(async (client) => {
        await checkStored(kind, store, fields, undefined, client);
        return store.create(kind, fields, {}, client);
      });
      return send(reply, single(kind.name, json, 201), 201);
    },

    list: async (req, reply) => {
      const { page, size } = parsePagination(req.query);
      const filter = parseFilters(kind, req.query);
      const result = await store.list(kind, filter, page, size);
      return send(reply, envelope(kind.name, result.items, { page, size, total: result.total }));
    },

    get: async (req, reply) => send(reply, single(kind.name, await store.get(kind, parseId(req.params.id)))),

    patch: async (req, reply) => {
      const id = parseId(req.params.id);
      const fields = validate(await withAssociations(req.body, id), 'patch');
      const json = await checked(async (client) => {
        if (kind.check || kind.checkStored) {
          // Cross-field rules hold for the object as it will be, not just for the patch.
          const merged = { ...(await store.getObject(kind, id, client)), ...fields };
          const problem = kind.check?.(merged);
          if (problem) throw new InputError(problem);
          await checkStored(kind, store, merged, id, client);
        }
        // A client's write: a changed desired field raises Generation and queues the reconcile at once
        // (not for an unavailable kind, whose registered objects ask for nothing).
        return store.patch(kind, id, fields, { client: !kind.unavailable || store.served.has(kind.name) }, client);
      });
      return send(reply, single(kind.name, json));
    },

    put: async (req, reply) => {
      const id = parseId(req.params.id);
      const fields = validate(await withAssociations(req.body, id), 'put');
      const json = await checked(async (client) => {
        await checkStored(kind, store, fields, id, client);
        return store.put(kind, id, fields, client);
      });
      return send(reply, single(kind.name, json));
    },

    delete: async (req, reply) => send(reply, single(kind.name, await store.delete(kind, parseId(req.params.id)))),
  };
}

/** The route patterns below, with the plural as a parameter: a path matches only with a routed kind's plural. */
export const KIND_ROUTE_PLURAL = ':plural';

/**
 * The CRUD routes of every routed kind, as seven routes with the plural as a parameter rather than
 * seven per kind. Fastify's route registration was the largest part of an API replica's start-up
 * (about 300 routes and their HEAD twins, half of buildApiServer's CPU); a table lookup per
 * request costs nothing in comparison. A path with an unknown plural gets `notFound`.
 */
export function registerKindRoutes(
  app: FastifyInstance,
  kinds: readonly Kind[],
  store: ObjectStore,
  serverChecks: Readonly<Record<string, ServerCheck>>,
  notFound: (req: FastifyRequest, reply: FastifyReply) => FastifyReply,
): ReadonlySet<string> {
  const byPlural = new Map(kinds.map((k) => [k.plural, kindHandlers(k, store, serverChecks[k.name])]));
  type PluralReq = FastifyRequest<{ Params: { plural: string; id?: string }; Querystring: Record<string, unknown> }>;
  const route = (op: keyof KindHandlers) => async (req: PluralReq, reply: FastifyReply) => {
    const handlers = byPlural.get(req.params.plural);
    return handlers ? handlers[op](req as unknown as Req, reply) : notFound(req, reply);
  };
  const base = `/v0/${KIND_ROUTE_PLURAL}`;
  app.get(`/${KIND_ROUTE_PLURAL}/versions`, route('versions'));
  app.post(base, route('create'));
  app.get(base, route('list'));
  app.get(`${base}/:id`, route('get'));
  app.patch(`${base}/:id`, route('patch'));
  app.put(`${base}/:id`, route('put'));
  app.delete(`${base}/:id`, route('delete'));
  return new Set(byPlural.keys());
}
