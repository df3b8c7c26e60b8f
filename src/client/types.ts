// Object types derived from the kind declarations: `ObjectOf<typeof
// WorkloadInstance>` is what the API returns for a WorkloadInstance. Nothing
// here lists a kind's fields; they all come from src/kinds.
import type { FieldSpec, Kind } from '../kinds/declare.js';

/** What the database adds to every object. IDs are 64-bit upstream; here they stay below 2^53. */
export type ModelFields = {
  ID: number;
  CreatedAt: string;
  UpdatedAt: string;
  DeletedAt?: string | null;
};

export type ReconciliationFields = {
  Reconciled?: boolean;
  CreationAcknowledged?: string | null;
  CreationConfirmed?: string | null;
  CreationFailed?: boolean;
  DeletionScheduled?: string | null;
  DeletionAcknowledged?: string | null;
  DeletionConfirmed?: string | null;
  InterruptReconciliation?: boolean;
};

type BaseFields<B> = B extends 'definition'
  ? { Name: string; ProfileID?: number | null; TierID?: number | null }
  : B extends 'instance'
    ? { Name: string; Status?: string | null }
    : unknown;

/** The TypeScript type of one declared field's value. */
export type ValueOf<S> = S extends { type: 'string'; enum: readonly (infer E)[] }
  ? E
  : S extends { type: 'string' | 'time' }
    ? string
    : S extends { type: 'integer' | 'id' }
      ? number
      : S extends { type: 'boolean' }
        ? boolean
        : S extends { type: 'stringMap' }
          ? Record<string, string>
          : S extends { type: 'association' }
            ? Array<Record<string, unknown>>
            : unknown;

type RequiredKeys<F> = { [P in keyof F]: F[P] extends { required: true } ? P : never }[keyof F];
type OptionalKeys<F> = Exclude<keyof F, RequiredKeys<F>>;

type DeclaredFields<F> = { [P in RequiredKeys<F>]: ValueOf<F[P]> } & { [P in OptionalKeys<F>]?: ValueOf<F[P]> | null };

/** The fields a client writes (POST body) for a kind. */
export type FieldsOf<K> = K extends { declaration?: { fields: infer F; base: infer B } }
  ? BaseFields<B> & DeclaredFields<F>
  : Record<string, unknown>;

/** An object as the API returns it. */
export type ObjectOf<K> = ModelFields & ReconciliationFields & FieldsOf<K>;

/** A filter on a kind's query keys, by field name (`{ Name: 'x' }` → `?name=x`). */
export type FilterOf<K> = Partial<Record<keyof FieldsOf<K> & string, string | number | boolean>>;

/** Any object, for code that works on kinds known only at run time. */
export type AnyObject = ModelFields & ReconciliationFields & Record<string, unknown>;

export type { FieldSpec, Kind };
