// Limits on what a client may send, and the one walk that enforces them on any
// JSON value. Each limit exists because something downstream fails badly
// without it: PostgreSQL refuses NUL and lone surrogates, a btree index row
// cannot hold an arbitrarily long name, recursion over a 10,000-deep value
// overflows the stack, and a prototype key can stand in for a missing field.

/** Longest object Name (upstream's names are Kubernetes-style: at most 253 characters). */
export const MAX_NAME_LENGTH = 253;
/** Deepest nesting of a `json` field's value, or of a YAML document, counting the value itself as 1. */
export const MAX_JSON_DEPTH = 64;
/** Keys refused anywhere in a payload: they reach or shadow Object.prototype. */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
/** Most names an error message lists (e.g. unknown fields) before it says how many more there were. */
export const MAX_LISTED_NAMES = 20;
/** Longest error message a client gets; the rest is cut (a 200,000-key body must not echo 1.5 MB). */
export const MAX_ERROR_MESSAGE = 4096;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why a string cannot be stored, or undefined when it can. */
export function stringProblem(value: string): string | undefined {
  if (value.includes('\u0000')) return 'contains a NUL character (\\u0000), which cannot be stored';
  if (LONE_SURROGATE.test(value)) return 'contains a lone UTF-16 surrogate (invalid Unicode), which cannot be stored';
  return undefined;
}

/** `a,b,c` for at most MAX_LISTED_NAMES names, then `(and N more)`. */
export function listNames(names: readonly string[]): string {
  const shown = names.slice(0, MAX_LISTED_NAMES).map((n) => clip(n, 100));
  return names.length > MAX_LISTED_NAMES ? `${shown.join(',')} (and ${names.length - MAX_LISTED_NAMES} more)` : shown.join(',');
}

/** Cuts a string for echoing in an error. */
export function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
}

/**
 * Walks a JSON value without recursion and returns the first problem: nesting deeper than
 * `maxDepth`, a reserved key, or a string (key or value) that cannot be stored. `path` names
 * the value in the message ("field WorkloadDefinition.JSONDefinition").
 */
export function jsonValueProblem(value: unknown, path: string, maxDepth: number | undefined = MAX_JSON_DEPTH): string | undefined {
  const stack: Array<[unknown, number, string]> = [[value, 1, path]];
  while (stack.length > 0) {
    const [v, depth, where] = stack.pop()!;
    if (typeof v === 'string') {
      const problem = stringProblem(v);
      if (problem) return `${where} ${problem}`;
      continue;
    }
    if (typeof v !== 'object' || v === null) continue;
    if (maxDepth !== undefined && depth > maxDepth) return `${where} is nested deeper than ${maxDepth} levels`;
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], depth + 1, `${where}[${i}]`]);
      continue;
    }
    for (const key of Object.keys(v)) {
      const at = `${where}.${clip(key, 100)}`;
      if (RESERVED_KEYS.has(key)) return `${at}: the key ${JSON.stringify(key)} is not allowed`;
      const problem = stringProblem(key);
      if (problem) return `${where} has a key that ${problem}`;
      stack.push([(v as Record<string, unknown>)[key], depth + 1, at]);
    }
  }
  return undefined;
}
