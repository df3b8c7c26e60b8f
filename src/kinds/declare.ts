// The one place where an object kind is described. Validation, storage, routes,
// OpenAPI, the typed client and the CLI's config parsing all read these
// declarations; nothing else lists a kind's fields.

export type FieldType =
  | 'string'
  | 'integer'
  | 'boolean'
  | 'time' // RFC 3339 timestamp string
  | 'id' // a 64-bit object ID referring to another kind
  | 'json' // any JSON value (manifests, inventories, runtime state)
  | 'stringMap' // an object of string values (secret data)
  | 'association'; // a nested list of child objects created with the parent

export interface FieldSpec {
  readonly type: FieldType;
  /** `validate:"required"` upstream: must be present on POST and PUT. */
  readonly required?: boolean;
  /** Applied on create when the field is absent. */
  readonly default?: string | number | boolean;
  /** Stored as AES-256-GCM ciphertext; plaintext never reaches the database. */
  readonly encrypted?: boolean;
  /** The query-string key that filters on this field; `false` for none. Defaults to the lower-cased field name. */
  readonly query?: string | false;
  /** Allowed values for strings. */
  readonly enum?: readonly string[];
  /** For `id` fields: the kind referred to. For `json` fields: the kind of the IDs an array of them holds. For `association` fields: the child kind. */
  readonly ref?: string;
  /** For `id` fields: a live referrer blocks deletion of the referred object (409). */
  readonly blocksDelete?: boolean;
  /** For `association` fields: the child's field that points back at the parent. */
  readonly backRef?: string;
  /** Rejected by PATCH and PUT once set (upstream's BeforeUpdate hooks). */
  readonly immutable?: boolean;
  /** Not stored on the object; travels with the reconcile request only (upstream `persist:"false"`). */
  readonly transient?: boolean;
  /** Set by the server, never accepted from clients. */
  readonly serverSet?: boolean;
  /**
   * Written by the controller to report what it observed (status), not desired state: a client
   * write of it does not raise `Generation`. Every other stored field is desired state.
   */
  readonly observed?: boolean;
  readonly description?: string;
}

export type Base = 'definition' | 'instance' | 'plain';

export interface KindInput {
  /** Go type name, also the envelope's `Type` and the notification's object type. */
  readonly name: string;
  /** Kebab-case plural: the `/v0/<plural>` path segment. */
  readonly plural: string;
  /** Controller domain that reconciles it (upstream's stream name), when reconciled. */
  readonly domain: string;
  readonly base: Base;
  /** Has a controller: POST/PATCH leaving `Reconciled` false queue a reconcile, DELETE is two-phase. */
  readonly reconciled: boolean;
  /**
   * A reconciled kind that this build has no controller for yet: why, in words a user can act on.
   * The API refuses any write that would ask for a reconcile (Reconciled absent or false) with a
   * 400 carrying this text, and deletes registered objects (Reconciled: true) in one phase, since
   * nothing was ever done for them. The guard test (test/reconcile/no-hollow-kinds) insists that
   * every other reconciled kind has a built-in reconciler, and that these have none.
   */
  readonly unavailable?: string;
  /** Carries the reconciliation fields without being reconciled (upstream DomainNameDefinition). */
  readonly reconciliationFields?: boolean;
  readonly fields: Readonly<Record<string, FieldSpec>>;
  /** Unique index across these fields among live rows. */
  readonly uniqueTogether?: readonly string[];
  /** Extra equality indexes over these fields among live rows, for look-ups that filters alone plan badly. */
  readonly lookupIndexes?: readonly (readonly string[])[];
  /** Boolean fields at most one live object may have true (e.g. the default AWS account): 409 otherwise. */
  readonly uniqueWhenTrue?: readonly string[];
  /**
   * Rules across fields, beyond each field's own type (upstream's BeforeCreate hooks). Gets the
   * validated fields of a create or PUT; returns the problem, or undefined when the object is fine.
   */
  readonly check?: (fields: Readonly<Record<string, unknown>>) => string | undefined;
  /**
   * Rules that need other stored objects (e.g. references that must not form a cycle). The API
   * runs it after `check` on create, PATCH (on the object as it will be) and PUT; a returned
   * problem is a 400 and nothing is written.
   */
  readonly checkStored?: (fields: Readonly<Record<string, unknown>>, context: StoredCheckContext) => Promise<string | undefined>;
  /** Has no REST routes (kept for storage only). */
  readonly noRoutes?: boolean;
  readonly description?: string;
}

/** What a kind's `checkStored` rule may read. */
export interface StoredCheckContext {
  /** The object's ID on PATCH and PUT; undefined on create. */
  readonly id: number | undefined;
  /** A live object of a kind by ID, or undefined when there is none. */
  get(kindName: string, id: number): Promise<Readonly<Record<string, unknown>> | undefined>;
}

export interface Kind extends KindInput {
  /** Every field, including the ones the base and reconciliation add. */
  readonly allFields: Readonly<Record<string, FieldSpec>>;
  /** `v0_<snake_plural>`. */
  readonly table: string;
  /** The `uniqueName` constraint applies: names are unique among live rows. */
  readonly uniqueName: boolean;
  readonly requiredFields: readonly string[];
  readonly encryptedFields: readonly string[];
  /** query key → field name. */
  readonly queryKeys: ReadonlyMap<string, string>;
  readonly hasReconciliation: boolean;
  /**
   * Every field's declared default (the reconciliation booleans among them). A create through
   * any path (the API or a controller writing through the store) starts from these, so every
   * reconciled kind's response carries `Reconciled`, `CreationFailed` and
   * `InterruptReconciliation`, as upstream's GORM defaults do.
   */
  readonly defaults: Readonly<Record<string, string | number | boolean>>;
  /**
   * The fields a client write changes to raise `Generation` (reconciled kinds only): every
   * stored field that is not a model, reconciliation, generation, server-set, observed or
   * association field. Transient fields count too (a new secret value is a new desire).
   */
  readonly desiredFields: readonly string[];
}

/** Fields the database owns. Upstream calls them the GORM model fields. */
export const MODEL_FIELDS = ['ID', 'CreatedAt', 'UpdatedAt', 'DeletedAt'] as const;

export const RECONCILIATION_FIELDS: Readonly<Record<string, FieldSpec>> = {
  Reconciled: { type: 'boolean', default: false },
  CreationAcknowledged: { type: 'time' },
  CreationConfirmed: { type: 'time' },
  CreationFailed: { type: 'boolean', default: false },
  DeletionScheduled: { type: 'time' },
  DeletionAcknowledged: { type: 'time' },
  DeletionConfirmed: { type: 'time' },
  InterruptReconciliation: { type: 'boolean', default: false },
};

/**
 * Server-managed fields of every reconciled kind (additive to upstream's wire contract, which
 * ignores unknown fields). `Generation` goes up when a client write changes a desired field;
 * the engine writes `ObservedGeneration` (the Generation its last successful reconcile saw) and
 * `Conditions`. The status is stale while ObservedGeneration < Generation.
 */
export const GENERATION_FIELDS: Readonly<Record<string, FieldSpec>> = {
  Generation: {
    type: 'integer',
    default: 1,
    serverSet: true,
    query: false,
    description: 'Raised by the server when a client write changes a desired (non-status) field.',
  },
  ObservedGeneration: {
    type: 'integer',
    serverSet: true,
    query: false,
    description: 'The Generation the last successful reconcile saw; the status is stale while it is below Generation.',
  },
  Conditions: {
    type: 'json',
    serverSet: true,
    description:
      'Ready and Synced, each {Type, Status: True|False|Unknown, Reason, Message, LastTransitionTime} (Kubernetes/Crossplane style).',
  },
};

const DEFINITION_FIELDS: Readonly<Record<string, FieldSpec>> = {
  Name: { type: 'string', required: true },
  ProfileID: { type: 'id', ref: 'Profile' },
  TierID: { type: 'id', ref: 'Tier' },
};

const INSTANCE_FIELDS: Readonly<Record<string, FieldSpec>> = {
  Name: { type: 'string', required: true },
  Status: { type: 'string', observed: true },
};

// Field builders keep the per-kind declarations short and uniform. They keep
// their options' literal types, so the typed client can derive each kind's
// object type from its declaration (`ObjectOf` in src/client/types.ts).
type Opts = Omit<FieldSpec, 'type'>;
type Spec<T extends FieldType, O> = { readonly type: T } & O;
function spec<T extends FieldType, O extends Opts>(type: T, o: O | undefined): Spec<T, O> {
  return { type, ...o } as Spec<T, O>;
}
export const f = {
  string: <const O extends Opts = {}>(o?: O) => spec('string', o),
  integer: <const O extends Opts = {}>(o?: O) => spec('integer', o),
  boolean: <const O extends Opts = {}>(o?: O) => spec('boolean', o),
  time: <const O extends Opts = {}>(o?: O) => spec('time', o),
  json: <const O extends Opts = {}>(o?: O) => spec('json', o),
  stringMap: <const O extends Opts = {}>(o?: O) => spec('stringMap', o),
  id: <const O extends Opts = {}>(ref: string, o?: O) => ({ ...spec('id', o), ref }),
  association: <const O extends Opts = {}>(ref: string, backRef: string, o?: O) => ({
    ...spec('association', o),
    ref,
    backRef,
  }),
};

function snake(kebab: string): string {
  return kebab.replace(/-/g, '_');
}

/** A kind that keeps its declaration's literal types (type-level only), for typed clients. */
export type DeclaredKind<I extends KindInput> = Kind & { readonly declaration?: I };

export function defineKind<const I extends KindInput>(input: I): DeclaredKind<I> {
  const baseFields = input.base === 'definition' ? DEFINITION_FIELDS : input.base === 'instance' ? INSTANCE_FIELDS : {};
  const hasReconciliation = input.reconciled || input.reconciliationFields === true;
  const allFields: Record<string, FieldSpec> = {
    ...baseFields,
    ...(hasReconciliation ? RECONCILIATION_FIELDS : {}),
    ...(input.reconciled ? GENERATION_FIELDS : {}),
    ...input.fields,
  };
  const queryKeys = new Map<string, string>();
  for (const [name, spec] of Object.entries(allFields)) {
    if (spec.query === false || spec.type === 'association' || spec.type === 'json' || spec.type === 'stringMap') continue;
    if (spec.encrypted || spec.transient) continue;
    queryKeys.set(spec.query ?? name.toLowerCase(), name);
  }
  return {
    ...input,
    allFields,
    table: `v0_${snake(input.plural)}`,
    uniqueName: 'Name' in allFields,
    requiredFields: Object.entries(allFields)
      .filter(([, s]) => s.required)
      .map(([n]) => n),
    encryptedFields: Object.entries(allFields)
      .filter(([, s]) => s.encrypted)
      .map(([n]) => n),
    queryKeys,
    hasReconciliation,
    defaults: Object.fromEntries(
      Object.entries(allFields)
        .filter(([, s]) => s.default !== undefined)
        .map(([n, s]) => [n, s.default!]),
    ),
    desiredFields: input.reconciled
      ? Object.entries(allFields)
          .filter(([n, s]) => !(n in RECONCILIATION_FIELDS) && !s.serverSet && !s.observed && s.type !== 'association')
          .map(([n]) => n)
      : [],
  };
}
