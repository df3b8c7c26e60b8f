// What a WorkloadInstance puts on its cluster: the definition's resources with the namespace
// rules of spec §3.1 and the threeport labels of spec §3 ("Kube access"), in apply order.
import { randomInt } from 'node:crypto';
import type { KubeObject } from '../../providers/kube/client.js';

export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_INSTANCE = 'app.kubernetes.io/instance';
export const LABEL_WORKLOAD_INSTANCE = 'control-plane.threeport.io/workload-instance';
export const LABEL_CP_MANAGED_BY = 'control-plane.threeport.io/managed-by';
/** Marks resources that come from the instance's WorkloadDefinition (rollouts may remove them). */
export const ANNOTATION_DEFINITION = 'control-plane.threeport.io/workload-definition';
/** Marks the Namespace the controller generated for the instance. */
export const ANNOTATION_MANAGED_NAMESPACE = 'control-plane.threeport.io/managed-namespace';

/** Watches select what threeport manages for workload instances (helm workloads carry another instance label). */
export const MANAGED_SELECTOR = `${LABEL_CP_MANAGED_BY}=threeport,${LABEL_WORKLOAD_INSTANCE}`;

/** Kinds whose pod template also gets the control-plane labels. */
const POD_TEMPLATE_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

export function groupOf(apiVersion: string): string {
  const i = apiVersion.indexOf('/');
  return i < 0 ? '' : apiVersion.slice(0, i);
}

/** Identity of a resource on one cluster, independent of API version: `apps/Deployment/shop/web`. */
export function resourceKey(o: { apiVersion: string; kind: string; metadata: { name?: string; namespace?: string } }): string {
  return `${groupOf(o.apiVersion)}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;
}

/** `Deployment shop/web`, `Namespace shop`: for events. */
export function describeResource(o: { kind: string; metadata: { name?: string; namespace?: string } }): string {
  return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name ?? '?'}`;
}

export function clone<T>(value: T): T {
  return structuredClone(value);
}

/** Labels added only when absent (spec §3): the object's own, and the two control-plane ones on pod templates. */
export function addThreeportLabels(object: KubeObject, labels: { definitionName: string; instanceName: string; instanceId: number }): KubeObject {
  const own: Record<string, string> = {
    [LABEL_MANAGED_BY]: 'threeport',
    [LABEL_NAME]: labelValue(labels.definitionName),
    [LABEL_INSTANCE]: labelValue(labels.instanceName),
    [LABEL_WORKLOAD_INSTANCE]: String(labels.instanceId),
    [LABEL_CP_MANAGED_BY]: 'threeport',
  };
  const out = clone(object);
  out.metadata.labels = { ...own, ...(out.metadata.labels ?? {}) };
  // The control-plane labels are ours: they must hold even when the manifest sets them.
  out.metadata.labels[LABEL_WORKLOAD_INSTANCE] = String(labels.instanceId);
  out.metadata.labels[LABEL_CP_MANAGED_BY] = 'threeport';
  if (POD_TEMPLATE_KINDS.has(out.kind)) {
    const spec = out['spec'] as { template?: { metadata?: { labels?: Record<string, string> } } } | undefined;
    if (spec && typeof spec === 'object') {
      spec.template ??= {};
      spec.template.metadata ??= {};
      spec.template.metadata.labels = {
        ...(spec.template.metadata.labels ?? {}),
        [LABEL_WORKLOAD_INSTANCE]: String(labels.instanceId),
        [LABEL_CP_MANAGED_BY]: 'threeport',
      };
    }
  }
  return out;
}

/** A label value: at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric. */
function labelValue(text: string): string {
  return text
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

const ALNUM = 'abcdefghijklmnopqrstuvwxyz0123456789';

/**
 * `<instanceName>-<10 random lowercase alphanumerics>` (spec §3.1). The name part is made a valid
 * DNS label (lower case, [a-z0-9-], at most 52 characters) so that the whole fits in 63.
 */
export function generateNamespaceName(instanceName: string, random: (n: number) => number = randomInt): string {
  const base =
    instanceName
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+/, '')
      .slice(0, 52)
      .replace(/-+$/, '') || 'workload';
  let suffix = '';
  for (let i = 0; i < 10; i++) suffix += ALNUM[random(ALNUM.length)];
  return `${base}-${suffix}`;
}

export function managedNamespaceObject(name: string, instanceId: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, annotations: { [ANNOTATION_MANAGED_NAMESPACE]: String(instanceId) } },
  };
}

/** Apply order: Namespaces, then CustomResourceDefinitions, then the rest in manifest order. Deletion runs in reverse. */
export function applyRank(o: { kind: string; apiVersion: string }): number {
  if (o.kind === 'Namespace' && o.apiVersion === 'v1') return 0;
  if (o.kind === 'CustomResourceDefinition') return 1;
  return 2;
}

export function isNamespaceObject(o: { kind: string; apiVersion: string }): boolean {
  return o.kind === 'Namespace' && groupOf(o.apiVersion) === '';
}

/** Stable JSON (sorted keys) for comparing definitions. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value as Record<string, unknown>)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}
