// The vocabulary the object config formats (spec §5.4) are declared in. A
// field either mirrors a field of an API kind (its type, enum and
// required-ness then come from the kind declaration), names another object
// (resolved to an ID through `?name=`), or points at a file whose contents
// the CLI reads.
import type { FieldSpec, Kind } from '../../kinds/declare.js';

export type Shape =
  | { readonly type: 'string'; readonly enum?: readonly string[] }
  | { readonly type: 'integer' }
  | { readonly type: 'boolean' }
  | { readonly type: 'stringMap' }
  | { readonly type: 'object'; readonly fields: Fields }
  | { readonly type: 'list'; readonly item: Shape };

/** Where a config value ends up in the API object. */
export type Target =
  /** copied into this field of the object */
  | { readonly copy: string }
  /** the contents of the file (or of every `.tf` file of the directory) at this path go into the field */
  | { readonly file: string; readonly dir?: boolean }
  /** the value names an object of `kind`; its ID goes into `to` */
  | { readonly ref: Kind; readonly to: string; readonly byName?: 'object' | 'string'; readonly defaultRuntime?: boolean };

export interface ConfigField {
  readonly shape: Shape;
  readonly required?: boolean;
  readonly target?: Target;
  /** One line for `tptctl` docs and error messages. */
  readonly doc?: string;
}

export type Fields = Readonly<Record<string, ConfigField>>;

/** A parsed config value: plain JSON-like data. */
export type Values = Record<string, unknown>;

/** A cross-field check: returns the offending field (relative to the object) and what is wrong. */
export type Rule = (values: Values) => { field?: string; message: string } | undefined;

/** "a WorkloadInstance", "an AwsAccount". */
export function article(name: string): string {
  return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
}

export function describeShape(shape: Shape): string {
  switch (shape.type) {
    case 'string':
      return shape.enum ? `one of ${shape.enum.join(', ')}` : 'a string';
    case 'integer':
      return 'an integer';
    case 'boolean':
      return 'true or false';
    case 'stringMap':
      return 'a mapping of names to strings';
    case 'object':
      return `a mapping with ${Object.keys(shape.fields).join(', ')}`;
    case 'list':
      return `a list of ${describeShape(shape.item).replace(/^an? /, '')}s`;
  }
}

function shapeOfSpec(kind: Kind, field: string, spec: FieldSpec): Shape {
  switch (spec.type) {
    case 'string':
    case 'time':
      return spec.enum ? { type: 'string', enum: spec.enum } : { type: 'string' };
    case 'integer':
      return { type: 'integer' };
    case 'boolean':
      return { type: 'boolean' };
    case 'stringMap':
      return { type: 'stringMap' };
    default:
      throw new Error(`config format declaration error: ${kind.name}.${field} (${spec.type}) cannot be written in a config file directly`);
  }
}

/** A config field that mirrors `kind.field` (same name unless `as` is given elsewhere). */
export function fromKind(kind: Kind, field: string, options: { required?: boolean; doc?: string } = {}): ConfigField {
  const spec = kind.allFields[field];
  if (!spec) throw new Error(`config format declaration error: ${kind.name} has no field ${field}`);
  return {
    shape: shapeOfSpec(kind, field, spec),
    required: options.required ?? spec.required === true,
    target: { copy: field },
    ...(options.doc ?? spec.description ? { doc: options.doc ?? spec.description } : {}),
  };
}

/** Several fields of one kind at once. */
export function fieldsOf(kind: Kind, names: readonly string[], options: { optional?: boolean } = {}): Record<string, ConfigField> {
  return Object.fromEntries(names.map((n) => [n, fromKind(kind, n, options.optional ? { required: false } : {})]));
}

/** The plain object shape of a nested kind (e.g. GatewayHttpPort), without the field that points at the parent. */
export function nestedKind(kind: Kind, omit: readonly string[]): Shape {
  const names = Object.keys(kind.allFields).filter((n) => !omit.includes(n));
  return { type: 'object', fields: fieldsOf(kind, names) };
}

const NAME_ONLY: Shape = { type: 'object', fields: { Name: { shape: { type: 'string' }, required: true } } };

/** `Field: {Name: x}`: names an object of `kind`; its ID goes into `to`. */
export function refByObject(
  kind: Kind,
  to: string,
  options: { required?: boolean; defaultRuntime?: boolean; doc?: string } = {},
): ConfigField {
  return {
    shape: NAME_ONLY,
    required: options.required ?? false,
    target: { ref: kind, to, byName: 'object', ...(options.defaultRuntime ? { defaultRuntime: true } : {}) },
    ...(options.doc || options.defaultRuntime ? { doc: options.doc ?? 'default: the default KubernetesRuntimeInstance (DefaultRuntime: true)' } : {}),
  };
}

/** `FieldName: x`: a plain string naming an object of `kind` (e.g. `AwsAccountName`). */
export function refByString(kind: Kind, to: string, options: { required?: boolean } = {}): ConfigField {
  return {
    shape: { type: 'string' },
    required: options.required ?? false,
    target: { ref: kind, to, byName: 'string' },
  };
}

/** A path, relative to the config file, whose contents go into `to`. */
export function filePath(to: string, options: { required?: boolean; dir?: boolean; doc?: string } = {}): ConfigField {
  return {
    shape: { type: 'string' },
    required: options.required ?? false,
    target: { file: to, ...(options.dir ? { dir: true } : {}) },
    doc: options.doc ?? (options.dir ? 'a directory of .tf files, relative to the config file' : 'a file path, relative to the config file'),
  };
}

/** A field that only the format's own planning reads (no direct target). */
export function plain(shape: Shape, options: { required?: boolean; doc?: string } = {}): ConfigField {
  return { shape, required: options.required ?? false, ...(options.doc ? { doc: options.doc } : {}) };
}

/** Rule: at most one of the fields may be set. */
export function atMostOne(...fields: string[]): Rule {
  return (v) => {
    const set = fields.filter((f) => v[f] !== undefined);
    return set.length > 1 ? { field: set[1]!, message: `cannot be set together with ${set[0]}: give only one of ${fields.join(', ')}` } : undefined;
  };
}

/** Rule: exactly one of the fields must be set. */
export function exactlyOne(...fields: string[]): Rule {
  const most = atMostOne(...fields);
  return (v) => {
    if (fields.every((f) => v[f] === undefined)) return { message: `one of ${fields.join(', ')} is required` };
    return most(v);
  };
}

/** Rule: at least one of the fields must be set. */
export function atLeastOne(...fields: string[]): Rule {
  return (v) => (fields.every((f) => v[f] === undefined) ? { message: `one of ${fields.join(', ')} is required` } : undefined);
}
