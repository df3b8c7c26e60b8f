// The few v0 routes that are not per-kind CRUD (spec §2.1 "Custom routes").
import type { FastifyInstance } from 'fastify';
import { kindNamed } from '../kinds/index.js';
import { parseFilters, validatePayload, jsonTypeOf } from '../kinds/validate.js';
import { InputError } from '../errors.js';
import type { ObjectStore } from '../store/object-store.js';
import { listAttachedEvents } from '../store/attached-events.js';
import { envelope } from './envelope.js';
import { JSON_TYPE, parseId, parsePagination } from './kind-routes.js';

const WRD = kindNamed('WorkloadResourceDefinition');
const WORKLOAD_EVENT = kindNamed('WorkloadEvent');
const EVENT = kindNamed('Event');

export function registerCustomRoutes(app: FastifyInstance, store: ObjectStore): void {
  // A JSON array of WorkloadResourceDefinitions, created in one transaction.
  app.post('/v0/workload-resource-definition-sets', async (req, reply) => {
    const body = req.body;
    if (body === undefined || body === null) throw new InputError('JSON payload is empty');
    if (!Array.isArray(body)) {
      throw new InputError(`JSON payload must be an array of WorkloadResourceDefinition objects, got ${jsonTypeOf(body)}`);
    }
    if (body.length === 0) throw new InputError('JSON payload is empty');
    const items = body.map((item, i) => {
      try {
        return validatePayload(WRD, item, 'create');
      } catch (err) {
        throw new InputError(`item ${i}: ${(err as Error).message}`);
      }
    });
    const created = await store.createMany(WRD, items);
    return reply
      .code(201)
      .type(JSON_TYPE)
      .send(envelope(WRD.name, created, { page: 1, size: created.length, total: created.length }, 201));
  });

  // Bulk delete of a workload instance's events: exactly one of the two keys.
  app.delete('/v0/workload-events', async (req, reply) => {
    const query = req.query as Record<string, unknown>;
    const keys = ['workloadinstanceid', 'helmworkloadinstanceid'].filter((k) => query[k] !== undefined);
    if (keys.length !== 1) {
      throw new InputError('exactly one of the query parameters workloadinstanceid or helmworkloadinstanceid is required');
    }
    const key = keys[0]!;
    const id = parseId(query[key]);
    const field = key === 'workloadinstanceid' ? 'WorkloadInstanceID' : 'HelmWorkloadInstanceID';
    const deleted = await store.deleteWhere(WORKLOAD_EVENT, { [field]: id });
    return reply.type(JSON_TYPE).send(envelope(WORKLOAD_EVENT.name, [], { page: 1, size: deleted, total: deleted }));
  });

  // Events attached to one object, optionally matching reason, note and type (the dedup look-up of spec §1.8).
  app.get('/v0/events-join-attached-object-references', async (req, reply) => {
    const query = req.query as Record<string, unknown>;
    if (query['objectid'] === undefined) throw new InputError('query parameter objectid is required');
    const objectId = parseId(query['objectid']);
    const { page, size } = parsePagination(query);
    const filter = parseFilters(EVENT, query);
    const found = await listAttachedEvents(store.db.pool, objectId, filter, page, size);
    return reply.type(JSON_TYPE).send(envelope(EVENT.name, found.items, { page, size, total: found.total }));
  });
}
