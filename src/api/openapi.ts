// The OpenAPI 3.1 document, generated from the kind declarations.
import { KINDS, kindNamed } from '../kinds/index.js';
import type { FieldSpec, Kind } from '../kinds/declare.js';
import { VERSION } from '../version.js';
import { MAX_NAME_LENGTH } from '../kinds/input-limits.js';

type Schema = Record<string, unknown>;

/** IDs and integers are JSON numbers the server keeps exact: at most 2^53 - 1. */
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** PostgreSQL stores no NUL character. */
const NO_NUL = '^[^\\u0000]*$';
/** A Name: not empty or only blanks, no NUL. */
const NAME_PATTERN = '^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$';
/** page and size: at most nine digits (parsePagination). */
const MAX_PAGE = 999_999_999;

/** Which schema of a kind: what responses carry, what POST/PUT take, or what PATCH takes. */
type Variant = 'response' | 'create' | 'patch';

function fieldSchema(spec: FieldSpec, name = ''): Schema {
  const base: Schema = {};
  if (spec.description) base['description'] = spec.description;
  if (spec.encrypted) base['description'] = `${spec.description ? `${spec.description} ` : ''}Encrypted at rest (AES-256-GCM); responses carry the ciphertext.`;
  if (spec.default !== undefined) base['default'] = spec.default;
  switch (spec.type) {
    case 'string':
      if (spec.enum) return { ...base, type: 'string', enum: [...spec.enum] };
      if (name === 'Name') return { ...base, type: 'string', minLength: 1, maxLength: MAX_NAME_LENGTH, pattern: NAME_PATTERN };
      return { ...base, type: 'string', pattern: NO_NUL };
    case 'integer':
      return { ...base, type: 'integer', format: 'int64', minimum: -MAX_SAFE, maximum: MAX_SAFE };
    case 'id':
      return { ...base, type: 'integer', format: 'int64', minimum: 1, maximum: MAX_SAFE, ...(spec.ref ? { 'x-references': spec.ref } : {}) };
    case 'boolean':
      return { ...base, type: 'boolean' };
    case 'time':
      return { ...base, type: 'string', format: 'date-time' };
    case 'json':
      return { ...base };
    case 'stringMap':
      return { ...base, type: 'object', additionalProperties: { type: 'string', pattern: NO_NUL } };
    case 'association':
      return { ...base, type: 'array', items: { $ref: `#/components/schemas/${spec.ref}` } };
  }
}

/** The schema's name for a variant: `Kind` for responses, `KindCreate`, `KindPatch`. */
function schemaName(kindName: string, variant: Variant): string {
  return variant === 'response' ? kindName : `${kindName}${variant === 'create' ? 'Create' : 'Patch'}`;
}

/**
 * What the server really does, per variant. Responses carry the model fields and never a
 * transient field (SecretDefinition.Data travels only to the controller); no field is
 * required in a response. Requests refuse unknown fields, model fields and server-set
 * ones; PATCH requires nothing but at least one field. A nested list in PATCH or PUT replaces
 * the stored children.
 */
function kindSchema(kind: Kind, variant: Variant): Schema {
  const properties: Record<string, Schema> = {};
  if (variant === 'response') {
    properties['ID'] = { type: 'integer', format: 'int64', minimum: 1, maximum: MAX_SAFE, readOnly: true };
    properties['CreatedAt'] = { type: 'string', format: 'date-time', readOnly: true };
    properties['UpdatedAt'] = { type: 'string', format: 'date-time', readOnly: true };
    properties['DeletedAt'] = { type: ['string', 'null'], format: 'date-time', readOnly: true };
  }
  for (const [name, spec] of Object.entries(kind.allFields)) {
    if (variant === 'response' && spec.transient) continue;
    if (variant !== 'response' && spec.serverSet) continue;
    let schema = fieldSchema(spec, name);
    if (spec.type === 'association' && variant !== 'response') schema = { ...schema, items: { $ref: `#/components/schemas/${schemaName(spec.ref!, 'create')}` } };
    // Upstream treats null as absent in requests.
    if (variant !== 'response' && typeof schema['type'] === 'string') schema = { ...schema, type: [schema['type'], 'null'] };
    if (variant !== 'response' && schema['enum']) schema = { ...schema, enum: [...(schema['enum'] as unknown[]), null] };
    properties[name] = spec.serverSet ? { ...schema, readOnly: true } : schema;
  }
  const required = variant === 'create' ? kind.requiredFields : [];
  return {
    type: 'object',
    ...(kind.description ? { description: kind.description } : {}),
    properties,
    ...(required.length > 0 ? { required: [...required] } : {}),
    ...(variant !== 'response' ? { additionalProperties: false, minProperties: 1 } : {}),
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

const ERROR_MEANINGS: Record<number, string> = {
  400: 'Bad input; the message names the field, the value and what is allowed. Nothing was written.',
  404: 'No live object with this ID (or no such route).',
  409: 'Conflicts with stored state: a duplicate name, live dependents, a deletion in progress.',
  413: 'The body is larger than the server accepts.',
  415: 'A Content-Encoding the server does not decode.',
  500: 'An internal error; the message carries a request ID to find in the server log.',
};
const errorResponses = (codes: number[]): Record<string, unknown> =>
  Object.fromEntries(
    codes.map((c) => [
      String(c),
      { description: ERROR_MEANINGS[c] ?? 'Error', content: { 'application/json': { schema: { $ref: '#/components/schemas/ErrorEnvelope' } } } },
    ]),
  );
/** Every request may carry a Content-Encoding (415) and can hit an internal error (500). */
const READ_ERRORS = [400, 415, 500];
const WRITE_ERRORS = [400, 404, 409, 413, 415, 500];

function ok(kind: Kind, description: string): Record<string, unknown> {
  return {
    description,
    content: { 'application/json': { schema: { $ref: `#/components/schemas/${kind.name}Envelope` } } },
  };
}

const ID_PARAM = { name: 'id', in: 'path', required: true, schema: { type: 'integer', format: 'int64', minimum: 1, maximum: MAX_SAFE } };
/** parsePagination: page below 1 counts as 1; size -1 returns everything, 0 is refused. */
const PAGINATION = [
  { name: 'page', in: 'query', schema: { type: 'integer', minimum: -1, maximum: MAX_PAGE, default: 1 }, description: 'Page number; 1 and below give the first page.' },
  {
    name: 'size',
    in: 'query',
    schema: { type: 'integer', minimum: -1, maximum: MAX_PAGE, not: { const: 0 }, default: 50 },
    description: 'Objects per page; -1 returns every object.',
  },
];

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
    for (const variant of ['response', 'create', 'patch'] as const) schemas[schemaName(kind.name, variant)] = kindSchema(kind, variant);
    schemas[`${kind.name}Envelope`] = envelopeFor(`#/components/schemas/${kind.name}`);
    const tag = kind.domain;
    const body = (variant: Variant) => ({
      required: true,
      content: { 'application/json': { schema: { $ref: `#/components/schemas/${schemaName(kind.name, variant)}` } } },
    });
    const idParam = ID_PARAM;
    const queryParams = [
      ...PAGINATION,
      ...[...kind.queryKeys.entries()].map(([key, field]) => {
        const schema = fieldSchema({ ...kind.allFields[field]!, default: undefined } as FieldSpec);
        // A filter's zero value ("" or 0) filters nothing: it is allowed where a field's own range is not.
        if (schema['type'] === 'integer') schema['minimum'] = -MAX_SAFE;
        if (schema['enum']) schema['enum'] = [...(schema['enum'] as string[]), ''];
        return { name: key, in: 'query', description: `Filter on ${field} (equality; zero values are ignored).`, schema };
      }),
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
        responses: { '200': ok(kind, 'A page of objects'), ...errorResponses(READ_ERRORS) },
      },
      post: {
        tags: [tag],
        operationId: `add${kind.name}`,
        requestBody: body('create'),
        responses: { '201': ok(kind, 'Created'), ...errorResponses(WRITE_ERRORS) },
      },
    };
    paths[`/v0/${kind.plural}/{id}`] = {
      parameters: [idParam],
      get: { tags: [tag], operationId: `get${kind.name}`, responses: { '200': ok(kind, 'The object'), ...errorResponses([400, 404, 415, 500]) } },
      patch: {
        tags: [tag],
        operationId: `update${kind.name}`,
        description: 'Changes only the fields given. Immutable fields cannot change once set. A nested list (the HttpPorts or TcpPorts of a GatewayDefinition) replaces the stored children; one equal to the stored list, as a get-modify-update sends, changes nothing.',
        requestBody: body('patch'),
        responses: { '200': ok(kind, 'Updated'), ...errorResponses(WRITE_ERRORS) },
      },
      put: {
        tags: [tag],
        operationId: `replace${kind.name}`,
        description: 'Replaces every field: fields left out are gone, except nested lists (a list sent replaces the stored children, one left out keeps them). Never queues a reconcile.',
        requestBody: body('create'),
        responses: { '200': ok(kind, 'Replaced'), ...errorResponses(WRITE_ERRORS) },
      },
      delete: {
        tags: [tag],
        operationId: `delete${kind.name}`,
        description: kind.reconciled
          ? 'Two-phase. The first call sets DeletionScheduled and Reconciled: false, queues the controller\'s cleanup and answers 200 with the object, which stays readable (GET 200) while the controller works; a second DELETE meanwhile is a 409. Once the controller confirms (DeletionConfirmed) it removes the object, and GET then answers 404.'
          : 'Deletes the object at once (soft delete: its name becomes reusable). 409 while live objects refer to it.',
        responses: { '200': ok(kind, 'Deleted, or scheduled for deletion'), ...errorResponses([400, 404, 409, 415, 500]) },
      },
    };
  }
  const wrd = '#/components/schemas/WorkloadResourceDefinitionCreate';
  const text = (description: string) => ({ description, content: { 'text/plain': { schema: { type: 'string' } } } });
  paths['/readyz'] = {
    get: { operationId: 'getReadiness', responses: { '200': text('Ready'), '503': text('Shutting down') } },
  };
  paths['/v0/workload-resource-definition-sets'] = {
    post: {
      tags: ['workload'],
      operationId: 'addWorkloadResourceDefinitionSet',
      description: 'Creates every WorkloadResourceDefinition of the array in one transaction.',
      requestBody: { required: true, content: { 'application/json': { schema: { type: 'array', minItems: 1, items: { $ref: wrd } } } } },
      responses: { '201': ok(kindNamed('WorkloadResourceDefinition'), 'Created'), ...errorResponses(WRITE_ERRORS) },
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
      schema: ID_PARAM.schema,
    })),
    responses: { '200': ok(kindNamed('WorkloadEvent'), 'Deleted; Meta.TotalCount is the number deleted'), ...errorResponses(READ_ERRORS) },
  };
  paths['/v0/events-join-attached-object-references'] = {
    get: {
      tags: ['events'],
      operationId: 'listEventsOfObject',
      description: 'Events attached to one object through AttachedObjectReferences.',
      parameters: [
        { name: 'objectid', in: 'query', required: true, schema: ID_PARAM.schema },
        ...['reason', 'note', 'type'].map((name) => ({ name, in: 'query', schema: { type: 'string', pattern: NO_NUL } })),
        ...PAGINATION,
      ],
      responses: { '200': ok(kindNamed('Event'), 'Matching events'), ...errorResponses(READ_ERRORS) },
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
