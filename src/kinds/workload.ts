import { defineKind, f, type StoredCheckContext } from './declare.js';
import { ManifestError, splitManifest } from './manifest.js';

export const WorkloadDefinition = defineKind({
  name: 'WorkloadDefinition',
  plural: 'workload-definitions',
  domain: 'workload',
  base: 'definition',
  reconciled: true,
  description: 'A multi-document Kubernetes manifest that instances deploy.',
  fields: {
    YAMLDocument: f.string({ required: true, description: 'Multi-document Kubernetes YAML.' }),
  },
  // Upstream accepts any text and fails later in the controller; we refuse it at the door.
  check: (def) => {
    try {
      splitManifest(String(def['YAMLDocument']));
      return undefined;
    } catch (err) {
      if (err instanceof ManifestError) return err.message;
      throw err;
    }
  },
});

export const WorkloadResourceDefinition = defineKind({
  name: 'WorkloadResourceDefinition',
  plural: 'workload-resource-definitions',
  domain: 'workload',
  base: 'plain',
  reconciled: false,
  description: 'One Kubernetes resource of a WorkloadDefinition.',
  fields: {
    JSONDefinition: f.json({ required: true }),
    WorkloadDefinitionID: f.id('WorkloadDefinition', { required: true }),
  },
});

export const WorkloadInstance = defineKind({
  name: 'WorkloadInstance',
  plural: 'workload-instances',
  domain: 'workload',
  base: 'instance',
  reconciled: true,
  description: 'A WorkloadDefinition deployed to a Kubernetes runtime.',
  fields: {
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true, blocksDelete: true }),
    WorkloadDefinitionID: f.id('WorkloadDefinition', { required: true, blocksDelete: true }),
    // Beyond upstream (docs/workloads.md, "Nested workloads"): the WorkloadInstances this one
    // depends on. They must be Healthy before it is applied, and are deleted after it.
    DependsOn: f.json({ ref: 'WorkloadInstance', description: 'IDs of the WorkloadInstances this one depends on: a JSON array of integers.' }),
    // Beyond upstream (docs/workloads.md, "Status"): written by the workload controller with Status.
    StatusReason: f.string({ query: false, observed: true, description: 'Why the Status is Down or Unhealthy, in one line (null otherwise).' }),
  },
  check: (wi) => dependsOnProblem(wi['DependsOn']),
  checkStored: (wi, context) => dependencyCycle(wi, context),
});

/** DependsOn must be an array of distinct object IDs. */
function dependsOnProblem(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) return `field WorkloadInstance.DependsOn must be an array of WorkloadInstance IDs, got ${JSON.stringify(value)}`;
  const bad = value.find((v) => typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1);
  if (bad !== undefined) return `field WorkloadInstance.DependsOn must hold WorkloadInstance IDs (positive integers), got ${JSON.stringify(bad)}`;
  if (new Set(value).size !== value.length) return `field WorkloadInstance.DependsOn lists a WorkloadInstance twice: ${JSON.stringify(value)}`;
  return undefined;
}

/** The IDs in a WorkloadInstance's DependsOn (invalid entries ignored). */
export function dependencyIds(wi: Readonly<Record<string, unknown>>): number[] {
  const value = wi['DependsOn'];
  return Array.isArray(value) ? value.filter((v): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0) : [];
}

/**
 * Every dependency exists, and following DependsOn from this instance never leads back to it.
 * A cycle is named by instance names: "dependency cycle: a → b → c → a".
 */
async function dependencyCycle(wi: Readonly<Record<string, unknown>>, context: StoredCheckContext): Promise<string | undefined> {
  const self = { id: context.id, name: String(wi['Name']) };
  const names = new Map<number, string>();
  const edges = new Map<number, number[]>();
  const load = async (id: number): Promise<Readonly<Record<string, unknown>> | undefined> => {
    const found = await context.get('WorkloadInstance', id);
    if (found) {
      names.set(id, String(found['Name']));
      edges.set(id, dependencyIds(found));
    }
    return found;
  };
  for (const id of dependencyIds(wi)) {
    if (id === self.id) return `dependency cycle: ${self.name} → ${self.name}`;
    if (!(await load(id))) return `WorkloadInstance.DependsOn: WorkloadInstance ${id} does not exist`;
  }
  if (self.id === undefined) return undefined; // a new object: nothing can depend on it yet
  // Depth-first from each dependency; the path back to self is the cycle.
  const visited = new Set<number>();
  const walk = async (id: number, path: number[]): Promise<number[] | undefined> => {
    if (id === self.id) return path;
    if (visited.has(id)) return undefined;
    visited.add(id);
    if (!edges.has(id) && !(await load(id))) return undefined;
    for (const next of edges.get(id) ?? []) {
      const found = await walk(next, [...path, next]);
      if (found) return found;
    }
    return undefined;
  };
  for (const id of dependencyIds(wi)) {
    const path = await walk(id, [id]);
    if (path) return `dependency cycle: ${[self.name, ...path.map((p) => (p === self.id ? self.name : (names.get(p) ?? String(p))))].join(' → ')}`;
  }
  return undefined;
}

export const WorkloadResourceInstance = defineKind({
  name: 'WorkloadResourceInstance',
  plural: 'workload-resource-instances',
  domain: 'workload',
  base: 'plain',
  reconciled: false,
  description: 'One Kubernetes resource applied for a WorkloadInstance, with its live state.',
  fields: {
    JSONDefinition: f.json({ required: true }),
    WorkloadInstanceID: f.id('WorkloadInstance', { required: true }),
    LastOperation: f.string(),
    Reconciled: f.boolean({ default: false }),
    RuntimeDefinition: f.json(),
    ScheduledForDeletion: f.time(),
  },
});

export const WorkloadEvent = defineKind({
  name: 'WorkloadEvent',
  plural: 'workload-events',
  domain: 'workload',
  base: 'plain',
  reconciled: false,
  description: 'A Kubernetes event about a workload resource.',
  fields: {
    RuntimeEventUID: f.string({ required: true }),
    Type: f.string(),
    Reason: f.string(),
    Message: f.string(),
    Timestamp: f.time({ required: true }),
    WorkloadInstanceID: f.id('WorkloadInstance'),
    WorkloadResourceInstanceID: f.id('WorkloadResourceInstance'),
    HelmWorkloadInstanceID: f.id('HelmWorkloadInstance'),
  },
});
