// Checks a JSON payload against a kind's declaration. The messages keep
// upstream Threeport's wording where clients may match on it, and add the
// field, the value's type and what is allowed everywhere else.
import { InputError } from '../errors.js';
import { KIND_BY_NAME } from './index.js';
import { MODEL_FIELDS, type FieldSpec, type Kind } from './declare.js';
import { MAX_NAME_LENGTH, RESERVED_KEYS, clip, jsonValueProblem, listNames, stringProblem } from './input-limits.js';

export type WriteMode = 'create' | 'patch' | 'put';

export type JsonObject = Record<string, unknown>;

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

export function jsonTypeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function checkValue(kind: Kind, field: string, spec: FieldSpec, value: unknown, path: string): string | undefined {
  const got = jsonTypeOf(value);
  const where = `${kind.name}.${path}`;
  switch (spec.type) {
    case 'string': {
      if (typeof value !== 'string') return `field ${where} must be a string, got ${got}`;
      const bad = stringProblem(value);
      if (bad) return `field ${where} ${bad}`;
      if (spec.enum && !spec.enum.includes(value)) {
        return `field ${where} has invalid value ${clip(JSON.stringify(value), 100)}: must be one of ${spec.enum.join(', ')}`;
      }
      // Names (and strings in a unique index) must fit a btree index row; upstream's names are Kubernetes-style.
      if ((field === 'Name' || kind.uniqueTogether?.includes(field) || kind.lookupIndexes?.some((i) => i.includes(field))) && value.length > MAX_NAME_LENGTH) {
        return `field ${where} is ${value.length} characters long: at most ${MAX_NAME_LENGTH} are allowed`;
      }
      return undefined;
    }
    case 'integer':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) return `field ${where} must be an integer, got ${got === 'number' ? String(value) : got}`;
      return undefined;
    case 'id':
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
        return `field ${where} must be a positive integer object ID, got ${got === 'number' ? String(value) : got}`;
      }
      return undefined;
    case 'boolean':
      if (typeof value !== 'boolean') return `field ${where} must be a boolean, got ${got}`;
      return undefined;
    case 'time':
      if (typeof value !== 'string' || !RFC3339.test(value) || Number.isNaN(Date.parse(value))) {
        return `field ${where} must be an RFC 3339 timestamp such as "2024-01-02T15:04:05Z", got ${got === 'string' ? clip(JSON.stringify(value), 100) : got}`;
      }
      return undefined;
    case 'json':
      return jsonValueProblem(value, `field ${where}`);
    case 'stringMap':
      if (got !== 'object') return `field ${where} must be an object of strings, got ${got}`;
      for (const [k, v] of Object.entries(value as JsonObject)) {
        if (typeof v !== 'string') return `field ${where}.${clip(k, 100)} must be a string, got ${jsonTypeOf(v)}`;
      }
      return jsonValueProblem(value, `field ${where}`);
    case 'association':
      if (!Array.isArray(value)) return `field ${where} must be an array of ${spec.ref} objects, got ${got}`;
      return undefined;
  }
  void field;
}

/**
 * Validates `body` for `mode` and returns the fields to store: nulls dropped
 * (upstream treats a null pointer as absent), defaults applied on create,
 * association items validated as creates of their own kind (in a PATCH or PUT
 * too, where a list replaces the stored children). Encryption happens later, in
 * the store, because only the store holds the key.
 */
export function validatePayload(kind: Kind, body: unknown, mode: WriteMode, nested?: { parentField: string }): JsonObject {
  if (body === undefined || body === null || (typeof body === 'string' && body.trim() === '')) {
    throw new InputError('JSON payload is empty');
  }
  if (typeof body !== 'object' || Array.isArray(body)) {
    throw new InputError(`JSON payload must be an object of ${kind.name} fields, got ${jsonTypeOf(body)}`);
  }
  const input = body as JsonObject;
  const keys = Object.keys(input);
  if (keys.length === 0) throw new InputError('JSON payload is empty');

  const modelFields = keys.filter((k) => (MODEL_FIELDS as readonly string[]).includes(k));
  if (modelFields.length > 0) {
    throw new InputError(`Update of GORM Model fields is not allowed : ${modelFields.join(',')}`);
  }
  // Own properties only: `in` would find toString, constructor and __proto__ on Object.prototype.
  const unsupported = keys.filter((k) => RESERVED_KEYS.has(k) || !Object.hasOwn(kind.allFields, k));
  if (unsupported.length > 0) {
    throw new InputError(
      `Unsupported fields are not allowed : ${listNames(unsupported)} (${kind.name} accepts ${Object.keys(kind.allFields).join(', ')})`,
    );
  }
  const serverSet = keys.filter((k) => kind.allFields[k]?.serverSet && input[k] !== null);
  if (serverSet.length > 0) {
    throw new InputError(`field(s) ${serverSet.join(',')} of ${kind.name} are set by the server and cannot be written`);
  }
  const out: JsonObject = {};
  const problems: string[] = [];
  for (const key of keys) {
    const value = input[key];
    const spec = kind.allFields[key]!;
    if (value === null) continue;
    const problem = checkValue(kind, key, spec, value, key);
    if (problem) {
      problems.push(problem);
      continue;
    }
    if (spec.type === 'association') {
      const child = KIND_BY_NAME.get(spec.ref ?? '');
      if (!child) throw new Error(`declaration error: ${kind.name}.${key} refers to unknown kind ${spec.ref}`);
      out[key] = (value as unknown[]).map((item, i) => {
        try {
          return validatePayload(child, item, 'create', { parentField: spec.backRef ?? '' });
        } catch (err) {
          throw new InputError(`${kind.name}.${key}[${i}]: ${(err as Error).message}`);
        }
      });
      continue;
    }
    out[key] = spec.type === 'time' ? new Date(value as string).toISOString() : value;
  }
  if (problems.length > 0) throw new InputError(problems.join('; '));
  // Upstream treats any non-nil value as present, "" included, except that an object always has a Name.
  if (mode === 'patch' && typeof out['Name'] === 'string' && out['Name'].trim() === '' && kind.requiredFields.includes('Name')) {
    throw new InputError(`field ${kind.name}.Name must not be empty`);
  }

  if (mode === 'create' || mode === 'put') {
    const missing = kind.requiredFields.filter((name) => {
      if (nested && name === nested.parentField) return false;
      const v = Object.hasOwn(out, name) ? out[name] : undefined;
      return v === undefined || (name === 'Name' && typeof v === 'string' && v.trim() === '');
    });
    if (missing.length > 0) throw new InputError(`Missing required field(s) : ${missing.join(',')}`);
  }
  if (mode === 'create') {
    for (const [name, value] of Object.entries(kind.defaults)) {
      if (out[name] === undefined) out[name] = value;
    }
  }
  if ((mode === 'create' || mode === 'put') && kind.check) {
    const problem = kind.check(out);
    if (problem) throw new InputError(problem);
  }
  return out;
}

/**
 * Turns query-string filters into a JSON containment filter on the kind's
 * query keys. Upstream binds them into a struct, so zero values ("" , 0,
 * false) filter nothing, and keys that are no query key are ignored.
 */
export function parseFilters(kind: Kind, query: Record<string, unknown>): JsonObject {
  const filter: JsonObject = {};
  for (const [key, raw] of Object.entries(query)) {
    const field = kind.queryKeys.get(key);
    if (!field || raw === undefined) continue;
    const text = Array.isArray(raw) ? String(raw[0]) : String(raw);
    const bad = stringProblem(text);
    if (bad) throw new InputError(`query parameter ${key} ${bad}`);
    const spec = kind.allFields[field]!;
    switch (spec.type) {
      case 'string':
        if (text !== '') filter[field] = text;
        break;
      case 'integer':
      case 'id': {
        if (!/^-?\d+$/.test(text)) {
          throw new InputError(`query parameter ${key} must be an integer, got ${clip(JSON.stringify(text), 100)}`);
        }
        const n = Number(text);
        if (!Number.isSafeInteger(n)) throw new InputError(`query parameter ${key} is out of range: ${text}`);
        if (n !== 0) filter[field] = n;
        break;
      }
      case 'boolean':
        if (text === 'true' || text === '1') filter[field] = true;
        else if (text !== 'false' && text !== '0' && text !== '') {
          throw new InputError(`query parameter ${key} must be true or false, got ${JSON.stringify(text)}`);
        }
        break;
      case 'time': {
        if (text === '') break;
        const ms = Date.parse(text);
        if (Number.isNaN(ms)) throw new InputError(`query parameter ${key} must be an RFC 3339 timestamp, got ${JSON.stringify(text)}`);
        filter[field] = new Date(ms).toISOString();
        break;
      }
      default:
        break;
    }
  }
  return filter;
}
