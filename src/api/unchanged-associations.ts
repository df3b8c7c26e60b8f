// Get-modify-update with the nested children unchanged. Upstream tags only some nested lists as
// associations (GatewayDefinition.HttpPorts and TcpPorts are plain fields there), so its clients
// GET an object and PATCH or PUT it back whole, ports included, and upstream answers 200. We keep
// nested children immutable through PATCH/PUT, but a list equal to the stored one changes
// nothing, so it is dropped before validation; a list that differs still gets the 400.
import { KIND_BY_NAME } from '../kinds/index.js';
import { MODEL_FIELDS, type Kind } from '../kinds/declare.js';

type Json = Record<string, unknown>;

/** `body` without the association lists that equal the stored object's; the rest is untouched. */
export function dropUnchangedAssociations(kind: Kind, body: unknown, stored: Json): unknown {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return body;
  const out: Json = { ...(body as Json) };
  for (const [name, spec] of Object.entries(kind.allFields)) {
    if (spec.type !== 'association' || !Object.hasOwn(out, name) || !Array.isArray(out[name])) continue;
    const child = KIND_BY_NAME.get(spec.ref ?? '');
    if (!child) continue;
    const sent = canonical(child, spec.backRef, out[name] as unknown[]);
    const have = canonical(child, spec.backRef, Array.isArray(stored[name]) ? (stored[name] as unknown[]) : []);
    if (sent !== undefined && sent === have) delete out[name];
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
