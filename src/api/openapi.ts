// The OpenAPI 3.1 document, generated from the kind declarations.
import { KINDS, kindNamed } from '../kinds/index.js';
import type { FieldSpec, Kind } from '../kinds/declare.js';
import { VERSION } from '../version.js';

type Schema = Record<string, unknown>;

function fieldSchema(spec: FieldSpec): Schema {
  const base: Schema = {};
  if (spec.description) base['description'] = spec.description;
  if (spec.encrypted) base['description'] = `${spec.description ? `${spec.description} ` : ''}Encrypted at rest (AES-256-GCM); responses carry the ciphertext.`;
  if (spec.default !== undefined) base['default'] = spec.default;
  switch (spec.type) {
    case 'string':
      return { ...base, type: 'string', ...(spec.enum ? { enum: [...spec.enum] } : {}) };
    case 'integer':
      return { ...base, type: 'integer', format: 'int64' };
    case 'id':
      return { ...base, type: 'integer', format: 'int64', minimum: 1, ...(spec.ref ? { 'x-references': spec.ref } : {}) };
    case 'boolean':
      return { ...base, type: 'boolean' };
    case 'time':
      return { ...base, type: 'string', format: 'date-time' };
    case 'json':
      return { ...base };
    case 'stringMap':
      return { ...base, type: 'object', additionalProperties: { type: 'string' } };
    case 'association':
      return { ...base, type: 'array', items: { $ref: `#/components/schemas/${spec.ref}` } };
  }
}

function kindSchema(kind: Kind): Schema {
  const properties: Record<string, Schema> = {
    ID: { type: 'integer', format: 'int64', readOnly: true },
    CreatedAt: { type: 'string', format: 'date-time', readOnly: true },
    UpdatedAt: { type: 'string', format: 'date-time', readOnly: true },
    DeletedAt: { type: ['string', 'null'], format: 'date-time', readOnly: true },
  };
  for (const [name, spec] of Object.entries(kind.allFields)) {
    properties[name] = spec.serverSet ? { ...fieldSchema(spec), readOnly: true } : fieldSchema(spec);
  }
  return {
    type: 'object',
    ...(kind.description ? { description: kind.description } : {}),
    properties,
    ...(kind.requiredFields.length > 0 ? { required: [...kind.requiredFields] } : {}),
  };
}

const ENVELOPE_META: Schema = {
  type: 'object',
  properties: {
    Page: { type: 'integer' },
    Size: { type: 'integer' },
    TotalCount: { type: 'integer' },
  },
};

function envelopeFor(ref: string | undefined): Schema {
  return {
    type: 'object',
    properties: {
      Meta: ENVELOPE_META,
      Type: { type: 'string' },
      Data: ref ? { type: ['array', 'null'], items: { $ref: ref } } : { type: 'null' },
      Status: { $ref: '#/components/schemas/Status' },
    },
  };
}

const errorResponses = (codes: number[]): Record<string, unknown> =>
  Object.fromEntries(
    codes.map((c) => [
      String(c),
      { description: 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorEnvelope' } } } },
    ]),
  );

function ok(kind: Kind, description: string): Record<string, unknown> {
  return {
    description,
    content: { 'application/json': { schema: { $ref: `#/components/schemas/${kind.name}Envelope` } } },
  };
}

export function buildOpenApi(): Record<string, unknown> {
  const schemas: Record<string, Schema> = {
    Status: {
      type: 'object',
      properties: { code: { type: 'integer' }, message: { type: 'string' }, error: { type: 'string' } },
    },
    ErrorEnvelope: envelopeFor(undefined),
  };
  const paths: Record<string, unknown> = {
    '/version': {
      get: {
        operationId: 'getVersion',
        summary: 'The API server version',
        responses: {
          '200': {
            description: 'OK',
            content: { 'application/json': { schema: { type: 'object', properties: { Version: { type: 'string' } } } } },
          },
        },
      },
    },
  };
  for (const kind of KINDS) {
    if (kind.noRoutes) continue;
    schemas[kind.name] = kindSchema(kind);
    schemas[`${kind.name}Envelope`] = envelopeFor(`#/components/schemas/${kind.name}`);
    const tag = kind.domain;
    const body = {
      required: true,
      content: { 'application/json': { schema: { $ref: `#/components/schemas/${kind.name}` } } },
    };
    const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'integer', format: 'int64', minimum: 1 } };
    const queryParams = [
      { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1, default: 1 } },
      { name: 'size', in: 'query', schema: { type: 'integer', minimum: -1, default: 50 }, description: '-1 returns every object.' },
      ...[...kind.queryKeys.entries()].map(([key, field]) => ({
        name: key,
        in: 'query',
        description: `Filter on ${field} (equality; zero values are ignored).`,
        schema: fieldSchema({ ...kind.allFields[field]!, default: undefined } as FieldSpec),
      })),
    ];
    paths[`/${kind.plural}/versions`] = {
      get: {
        tags: [tag],
        operationId: `get${kind.name}Versions`,
        responses: { '200': { description: 'Supported versions', content: { 'application/json': { schema: { type: 'object' } } } } },
      },
    };
    paths[`/v0/${kind.plural}`] = {
      get: {
        tags: [tag],
        operationId: `list${kind.name}s`,
        parameters: queryParams,
        responses: { '200': ok(kind, 'A page of objects'), ...errorResponses([400, 500]) },
      },
      post: {
        tags: [tag],
        operationId: `add${kind.name}`,
        requestBody: body,
        responses: { '201': ok(kind, 'Created'), ...errorResponses([400, 409, 413, 500]) },
      },
    };
    paths[`/v0/${kind.plural}/{id}`] = {
      parameters: [idParam],
      get: { tags: [tag], operationId: `get${kind.name}`, responses: { '200': ok(kind, 'The object'), ...errorResponses([400, 404]) } },
      patch: {
        tags: [tag],
        operationId: `update${kind.name}`,
        requestBody: body,
        responses: { '200': ok(kind, 'Updated'), ...errorResponses([400, 404, 409]) },
      },
      put: {
        tags: [tag],
        operationId: `replace${kind.name}`,
        requestBody: body,
        responses: { '200': ok(kind, 'Replaced'), ...errorResponses([400, 404, 409]) },
      },
      delete: {
        tags: [tag],
        operationId: `delete${kind.name}`,
        description: kind.reconciled
          ? 'Two-phase: the first call schedules deletion and returns the object; the controller then removes it.'
          : 'Deletes the object.',
        responses: { '200': ok(kind, 'Deleted or scheduled for deletion'), ...errorResponses([400, 404, 409]) },
      },
    };
  }
  const wrd = '#/components/schemas/WorkloadResourceDefinition';
  paths['/readyz'] = {
    get: { operationId: 'getReadiness', responses: { '200': { description: 'Ready', content: { 'text/plain': { schema: { type: 'string' } } } } } },
  };
  paths['/v0/workload-resource-definition-sets'] = {
    post: {
      tags: ['workload'],
      operationId: 'addWorkloadResourceDefinitionSet',
      description: 'Creates every WorkloadResourceDefinition of the array in one transaction.',
      requestBody: { required: true, content: { 'application/json': { schema: { type: 'array', items: { $ref: wrd } } } } },
      responses: { '201': ok(kindNamed('WorkloadResourceDefinition'), 'Created'), ...errorResponses([400, 409]) },
    },
  };
  const eventsPath = paths['/v0/workload-events'] as Record<string, unknown>;
  eventsPath['delete'] = {
    tags: ['workload'],
    operationId: 'deleteWorkloadEvents',
    description: 'Deletes every event of one workload instance or helm workload instance: give exactly one parameter.',
    parameters: ['workloadinstanceid', 'helmworkloadinstanceid'].map((name) => ({
      name,
      in: 'query',
      schema: { type: 'integer', format: 'int64', minimum: 1 },
    })),
    responses: { '200': ok(kindNamed('WorkloadEvent'), 'Deleted; Meta.TotalCount is the number deleted'), ...errorResponses([400]) },
  };
  paths['/v0/events-join-attached-object-references'] = {
    get: {
      tags: ['events'],
      operationId: 'listEventsOfObject',
      description: 'Events attached to one object through AttachedObjectReferences.',
      parameters: [
        { name: 'objectid', in: 'query', required: true, schema: { type: 'integer', format: 'int64', minimum: 1 } },
        ...['reason', 'note', 'type'].map((name) => ({ name, in: 'query', schema: { type: 'string' } })),
        { name: 'page', in: 'query', schema: { type: 'integer', minimum: 1, default: 1 } },
        { name: 'size', in: 'query', schema: { type: 'integer', minimum: -1, default: 50 } },
      ],
      responses: { '200': ok(kindNamed('Event'), 'Matching events'), ...errorResponses([400]) },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'Threeport API',
      version: VERSION,
      description: 'The Threeport v0 REST API. Every response is wrapped in the v0 envelope.',
    },
    paths,
    components: { schemas },
  };
}
