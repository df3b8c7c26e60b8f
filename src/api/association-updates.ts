// Nested children in a PATCH or PUT (GatewayDefinition.HttpPorts and TcpPorts). Upstream tags only
// some nested lists as associations; these are plain fields there, so its clients send them in
// updates: the get-modify-update of a whole object, and upstream's own integration test, which
// PATCHes a definition's HttpPorts to a new list. Here a list sent in an update replaces the
// stored children (the store does it in the parent's transaction), and a list left out keeps them.
//   - A list equal to the stored one changes nothing: it is dropped before validation, so sending
//     an object back unchanged raises no Generation.
//   - Items echoed from a GET may carry their model fields and back-reference: an ID must be one
//     of this object's children of that field, and the back-reference must name this object;
//     both are then dropped, and each item is validated as a create of the child kind.
import { KIND_BY_NAME } from '../kinds/index.js';
import { MODEL_FIELDS, type Kind } from '../kinds/declare.js';
import { InputError } from '../errors.js';

type Json = Record<string, unknown>;

/** `body` ready for validation: unchanged association lists dropped, changed ones stripped of what only names the stored rows. */
export function prepareAssociationUpdate(kind: Kind, body: unknown, stored: Json): unknown {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return body;
  const out: Json = { ...(body as Json) };
  const parentId = stored['ID'];
  for (const [name, spec] of Object.entries(kind.allFields)) {
    if (spec.type !== 'association' || !Object.hasOwn(out, name) || !Array.isArray(out[name])) continue;
    const child = KIND_BY_NAME.get(spec.ref ?? '');
    if (!child) continue;
    const storedItems = Array.isArray(stored[name]) ? (stored[name] as unknown[]) : [];
    const sent = canonical(child, spec.backRef, out[name] as unknown[]);
    if (sent !== undefined && sent === canonical(child, spec.backRef, storedItems)) {
      delete out[name];
      continue;
    }
    const ownIds = new Set(storedItems.map((c) => (c as Json)['ID']));
    out[name] = (out[name] as unknown[]).map((item, i) => {
      if (!item || typeof item !== 'object' || Array.isArray(item)) return item; // validation names it
      const own: Json = { ...(item as Json) };
      const where = `${kind.name}.${name}[${i}]`;
      if (own['ID'] !== undefined && own['ID'] !== null && !ownIds.has(own['ID'])) {
        throw new InputError(`field ${where}.ID: ${child.name} ${JSON.stringify(own['ID'])} is not one of the ${name} of ${kind.name} ${String(parentId)}`);
      }
      const back = spec.backRef ? own[spec.backRef] : undefined;
      if (back !== undefined && back !== null && back !== parentId) {
        throw new InputError(`field ${where}.${spec.backRef}: the ${name} of ${kind.name} ${String(parentId)} belong to it, not to ${kind.name} ${JSON.stringify(back)}`);
      }
      for (const f of MODEL_FIELDS) delete own[f];
      if (spec.backRef) delete own[spec.backRef];
      return own;
    });
  }
  return out;
}

/** The children as a sorted list of their own desired fields (defaults filled in), or undefined when one is not an object. */
function canonical(child: Kind, backRef: string | undefined, items: unknown[]): string | undefined {
  const rows: string[] = [];
  for (const item of items) {
    if (!item || typeof item !== 'object' || Array.isArray(item)) return undefined;
    const own = item as Json;
    const row: Json = {};
    for (const [field, spec] of Object.entries(child.allFields).sort(([a], [b]) => a.localeCompare(b))) {
      if (field === backRef || spec.serverSet || (MODEL_FIELDS as readonly string[]).includes(field)) continue;
      row[field] = (Object.hasOwn(own, field) ? own[field] : undefined) ?? child.defaults[field] ?? null;
    }
    rows.push(JSON.stringify(row));
  }
  return JSON.stringify(rows.sort());
}
