// Kubernetes manifests as Threeport receives them: one YAML string holding
// several documents. Splitting and checking happen here, once, for the API's
// create-time validation and for the workload controller.
import type { parseAllDocuments } from 'yaml';
import { yaml } from './yaml.js';
import { MAX_JSON_DEPTH, jsonValueProblem } from './input-limits.js';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; generateName?: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export class ManifestError extends Error {}

/** A stack overflow inside the parser: a RangeError, or a SyntaxError when it hits inside a regular expression. */
function isStackOverflow(err: unknown): boolean {
  return (err instanceof RangeError || err instanceof SyntaxError) && err.message.includes('Maximum call stack size exceeded');
}

/** Splits a multi-document manifest into objects; throws ManifestError naming the document and what is wrong. */
export function splitManifest(yamlText: string, field = 'YAMLDocument'): KubeObject[] {
  // The parser and toJS recurse: a document nested thousands deep overflows the stack there,
  // before any depth check could run on the result, so that overflow is caught and named.
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = yaml().parseAllDocuments(yamlText, { prettyErrors: true });
  } catch (err) {
    if (isStackOverflow(err)) throw new ManifestError(`${field} is nested too deeply: at most ${MAX_JSON_DEPTH} levels are allowed`);
    throw err;
  }
  const objects: KubeObject[] = [];
  let index = 0;
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    index++;
    if (doc.errors.length > 0) {
      throw new ManifestError(`${field} is not valid YAML (document ${index}): ${doc.errors[0]!.message.split('\n')[0]}`);
    }
    const where = `${field} document ${index}`;
    let value: unknown;
    try {
      // maxAliasCount bounds "billion laughs": aliases that expand to exponentially many nodes.
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      if (isStackOverflow(err)) throw new ManifestError(`${where} is nested too deeply: at most ${MAX_JSON_DEPTH} levels are allowed`);
      if (err instanceof ReferenceError) throw new ManifestError(`${where} expands too many aliases (at most 100): ${err.message}`);
      throw err;
    }
    if (value === null || value === undefined) continue; // empty document, e.g. a trailing ---
    const limit = jsonValueProblem(value, where);
    if (limit) throw new ManifestError(limit);
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new ManifestError(`${where} is not a Kubernetes object: expected a mapping with apiVersion, kind and metadata`);
    }
    const obj = value as Record<string, unknown>;
    const missing = ['apiVersion', 'kind'].filter((k) => typeof obj[k] !== 'string' || obj[k] === '');
    if (missing.length > 0) {
      throw new ManifestError(`${where} is not a Kubernetes object: ${missing.join(' and ')} missing or not a string`);
    }
    const metadata = obj['metadata'];
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
      throw new ManifestError(`${where} (${String(obj['kind'])}) has no metadata mapping`);
    }
    const meta = metadata as Record<string, unknown>;
    if (typeof meta['name'] !== 'string' && typeof meta['generateName'] !== 'string') {
      throw new ManifestError(`${where} (${String(obj['kind'])}) has no metadata.name`);
    }
    objects.push(obj as KubeObject);
  }
  if (objects.length === 0) throw new ManifestError(`${field} holds no Kubernetes objects`);
  return objects;
}
