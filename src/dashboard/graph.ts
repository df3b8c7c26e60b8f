// The dependency graph of one object, derived from the kind declarations: every `id` field with a
// `ref` (and every `json` field with a `ref`, an array of IDs such as WorkloadInstance.DependsOn)
// is an edge from the referring object to the referred one. Nothing here lists a kind's fields.
//
// From the root the graph takes
//  - everything the root refers to, transitively (its definition, runtime, the runtime's
//    definition, AWS account, the workloads it DependsOn, ...);
//  - everything that refers to the root (databases, buckets, gateways, domain names, secrets,
//    the workloads that depend on it);
//  - for every instance reached, the objects that refer to it without belonging to another app
//    (a runtime's EKS stack, but not the other apps on that runtime).
// Records (events, attached-object references, resource definitions and instances) are not nodes:
// only definitions, instances, and the plain kinds something may not be deleted out from under.
import { KINDS, KIND_BY_NAME, type Kind } from '../kinds/index.js';
import type { JsonObject } from '../kinds/validate.js';
import type { ObjectStore } from '../store/object-store.js';
import { objectJson } from '../store/object-store.js';
import type { DeleteStep, GraphEdge, GraphNode, ObjectGraph } from './api-types.js';
import { ignoreNotFound } from '../errors.js';

/** The kinds the Apps view lists: what users deploy. */
export const APP_KINDS: readonly Kind[] = [KIND_BY_NAME.get('WorkloadInstance')!, KIND_BY_NAME.get('HelmWorkloadInstance')!];
const APP_KIND_NAMES = new Set(APP_KINDS.map((k) => k.name));

export interface Reference {
  /** The referring kind and its field. */
  from: Kind;
  field: string;
  /** The referred kind. */
  to: Kind;
  /** The field holds an array of IDs (json), not one ID. */
  many: boolean;
}

/** Every reference field of every kind. */
export const REFERENCES: readonly Reference[] = KINDS.flatMap((from) =>
  Object.entries(from.allFields)
    .filter(([, s]) => (s.type === 'id' || s.type === 'json') && s.ref && KIND_BY_NAME.has(s.ref))
    .map(([field, s]) => ({ from, field, to: KIND_BY_NAME.get(s.ref!)!, many: s.type === 'json' })),
);

/** Kinds an app cannot exist without (its runtime, its definition): never deleted with one. */
const APP_NEEDS = new Set(REFERENCES.filter((r) => APP_KIND_NAMES.has(r.from.name) && r.from.allFields[r.field]!.required).map((r) => r.to.name));

const blockedKinds = new Set(REFERENCES.filter((r) => r.from.allFields[r.field]!.blocksDelete).map((r) => r.to.name));
/** Kinds that appear as graph nodes. */
export function isGraphKind(kind: Kind): boolean {
  return kind.base !== 'plain' || blockedKinds.has(kind.name);
}

/** References whose referring kind belongs to an app (it points at a WorkloadInstance or HelmWorkloadInstance). */
function belongsToApp(kind: Kind): boolean {
  return APP_KIND_NAMES.has(kind.name) || REFERENCES.some((r) => r.from === kind && APP_KIND_NAMES.has(r.to.name) && !r.many);
}

export type { GraphNode, GraphEdge, DeleteStep, ObjectGraph };

export const keyOf = (kind: string, id: number): string => `${kind}:${id}`;

/** A status in words for any object: its Status field, else where its reconciliation stands. */
export function statusOf(kind: Kind, o: JsonObject): string {
  if (o['DeletionScheduled']) return 'Deleting';
  if (typeof o['Status'] === 'string' && o['Status'] !== '') return o['Status'];
  if (!kind.hasReconciliation) return 'Stored';
  if (o['CreationFailed'] === true) return 'Failed';
  return o['Reconciled'] === true ? 'Reconciled' : 'Reconciling';
}

function nameOf(o: JsonObject): string {
  return typeof o['Name'] === 'string' ? o['Name'] : '';
}

function idsIn(value: unknown, many: boolean): number[] {
  if (many) return Array.isArray(value) ? value.filter((v): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0) : [];
  return typeof value === 'number' && value > 0 ? [value] : [];
}

/** Live objects of `from` whose `field` refers to `id`, in one indexed containment query. */
async function referrers(store: ObjectStore, ref: Reference, id: number): Promise<JsonObject[]> {
  const probe = JSON.stringify({ [ref.field]: ref.many ? [id] : id });
  const res = await store.db.query(
    `SELECT (${objectJson(ref.from, 't')})::text AS json FROM ${ref.from.table} t WHERE t.deleted_at IS NULL AND t.data @> $1::jsonb ORDER BY t.id LIMIT 500`,
    [probe],
  );
  return (res.rows as Array<{ json: string }>).map((r) => JSON.parse(r.json) as JsonObject);
}

const MAX_NODES = 400;

/** The graph of the live object `root` (throws NotFoundError when there is none). */
export async function objectGraph(store: ObjectStore, rootKind: Kind, rootId: number): Promise<ObjectGraph> {
  const root = await store.getObject(rootKind, rootId);
  const nodes = new Map<string, GraphNode>();
  const objects = new Map<string, { kind: Kind; o: JsonObject }>();
  const edges = new Map<string, GraphEdge>();
  const add = (kind: Kind, o: JsonObject, role: GraphNode['role']): { key: string; fresh: boolean } => {
    const key = keyOf(kind.name, Number(o['ID']));
    if (nodes.has(key)) return { key, fresh: false };
    const runtimeRef = REFERENCES.find((r) => r.from === kind && r.to.name === 'KubernetesRuntimeInstance' && r.from.allFields[r.field]!.required);
    const runtimeId = kind.name === 'KubernetesRuntimeInstance' ? Number(o['ID']) : runtimeRef ? Number(o[runtimeRef.field]) : undefined;
    nodes.set(key, {
      key,
      kind: kind.name,
      plural: kind.plural,
      id: Number(o['ID']),
      name: nameOf(o),
      status: statusOf(kind, o),
      role,
      ...(runtimeId ? { runtimeId } : {}),
    });
    objects.set(key, { kind, o });
    return { key, fresh: true };
  };
  const edge = (from: string, to: string, field: string) => edges.set(`${from}>${to}>${field}`, { from, to, field });

  const rootKey = add(rootKind, root, 'root').key;
  // Work list. `referrers` says which referring objects to take: all of them (the root), those
  // that belong to no other app (an instance), only dependent apps (a dependent), or none.
  type Expand = 'all' | 'instance' | 'dependents' | 'none';
  const queue: Array<{ key: string; referrers: Expand }> = [{ key: rootKey, referrers: 'all' }];
  while (queue.length > 0 && nodes.size < MAX_NODES) {
    const { key, referrers: expand } = queue.shift()!;
    const { kind, o } = objects.get(key)!;
    const reachedAs = nodes.get(key)!.role;
    if (reachedAs !== 'dependent') {
      const role: GraphNode['role'] = reachedAs === 'attached' ? 'attached' : 'dependency';
      for (const ref of REFERENCES.filter((r) => r.from === kind && isGraphKind(r.to))) {
        for (const id of idsIn(o[ref.field], ref.many)) {
          const target = await store.getObject(ref.to, id).catch(ignoreNotFound);
          if (!target) continue;
          const added = add(ref.to, target, role);
          edge(key, added.key, ref.field);
          if (added.fresh) queue.push({ key: added.key, referrers: ref.to.base === 'instance' ? 'instance' : 'none' });
        }
      }
    }
    if (expand === 'none') continue;
    for (const ref of REFERENCES.filter((r) => r.to === kind && isGraphKind(r.from))) {
      const isApp = APP_KIND_NAMES.has(ref.from.name);
      if (expand === 'instance' && belongsToApp(ref.from)) continue;
      if (expand === 'dependents' && !isApp) continue;
      for (const referrer of await referrers(store, ref, Number(o['ID']))) {
        const dependent = isApp && (key === rootKey || reachedAs === 'dependent');
        const added = add(ref.from, referrer, dependent ? 'dependent' : 'attached');
        edge(added.key, key, ref.field);
        if (added.fresh) queue.push({ key: added.key, referrers: dependent ? 'dependents' : 'instance' });
      }
    }
  }
  const graph = { root: rootKey, nodes: [...nodes.values()], edges: [...edges.values()] };
  return { ...graph, deletePlan: deletePlan(graph) };
}

/**
 * Deleting an app deletes, in this order: the apps that depend on it (dependents before their
 * dependencies, as the workload controller requires), then what belongs to it (databases,
 * buckets, gateways, domain names, secrets), then the app itself. Its definition, runtime and
 * accounts stay: other apps may use them.
 */
export function deletePlan(graph: Omit<ObjectGraph, 'deletePlan'>): DeleteStep[] {
  const byKey = new Map(graph.nodes.map((n) => [n.key, n]));
  const steps: DeleteStep[] = [];
  const seen = new Set<string>();
  const step = (key: string, why: string) => {
    if (seen.has(key)) return;
    seen.add(key);
    const n = byKey.get(key)!;
    steps.push({ key, kind: n.kind, plural: n.plural, id: n.id, name: n.name, why });
  };
  const pointingAt = (key: string) => graph.edges.filter((e) => e.to === key).map((e) => e.from);
  // Dependents: deepest first (a dependent of a dependent goes before it).
  const visit = (key: string) => {
    for (const from of pointingAt(key)) {
      if (byKey.get(from)?.role !== 'dependent' || seen.has(from)) continue;
      visit(from);
      step(from, `depends on ${byKey.get(key)!.name || key}`);
    }
  };
  visit(graph.root);
  // What belongs to the app: objects that refer to it (a database, a secret), except the kinds apps
  // themselves need (a runtime that names the app as its gateway workload stays).
  for (const e of graph.edges.filter((e) => e.to === graph.root)) {
    const n = byKey.get(e.from)!;
    if (n.role === 'attached' && !APP_NEEDS.has(n.kind)) step(e.from, `belongs to ${byKey.get(graph.root)!.name}`);
  }
  step(graph.root, 'the app itself; its Kubernetes resources are removed from its runtime');
  return steps;
}
