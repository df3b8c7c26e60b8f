// What the post-renderer does to the manifests helm rendered, before helm applies them:
// - the threeport labels (spec §3 "Kube access") go onto every object, each only when the chart
//   did not set that label already; two of them also go onto pod templates;
// - the definition's and the instance's AdditionalResources are appended (and labelled too).
// Pure functions: post-renderer.ts is the executable helm runs; tests call these directly.
import { parseAllDocuments, stringify } from 'yaml';

export interface PostRenderConfig {
  /** Added to metadata.labels of every object, when absent. */
  labels: Record<string, string>;
  /** Added to the pod template labels of workload kinds, when absent. */
  podTemplateLabels: Record<string, string>;
  /** Appended after the chart's objects. */
  additionalResources: Array<Record<string, unknown>>;
}

/** Kinds whose pod template gets labels too (upstream's list, plus CronJob's nested template). */
const POD_TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Deployment: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const NAME_LABEL = 'app.kubernetes.io/name';
export const INSTANCE_LABEL = 'app.kubernetes.io/instance';
export const HELM_WORKLOAD_INSTANCE_LABEL = 'control-plane.threeport.io/helm-workload-instance';
export const CONTROL_PLANE_MANAGED_BY_LABEL = 'control-plane.threeport.io/managed-by';

/** A Kubernetes label value made from any string: at most 63 of [A-Za-z0-9._-], alphanumeric at both ends. */
export function labelValue(s: string): string {
  return s
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .slice(0, 63)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
}

/** The labels of a HelmWorkloadInstance's objects (spec §3 "Kube access", helm variant). */
export function threeportLabels(definitionName: string, instanceName: string, instanceId: number): Pick<
  PostRenderConfig,
  'labels' | 'podTemplateLabels'
> {
  const own = {
    [HELM_WORKLOAD_INSTANCE_LABEL]: String(instanceId),
    [CONTROL_PLANE_MANAGED_BY_LABEL]: 'threeport',
  };
  return {
    labels: {
      [MANAGED_BY_LABEL]: 'threeport',
      [NAME_LABEL]: labelValue(definitionName),
      [INSTANCE_LABEL]: labelValue(instanceName),
      ...own,
    },
    podTemplateLabels: own,
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function addMissing(holder: Record<string, unknown>, labels: Record<string, string>): void {
  const meta = isObject(holder['metadata']) ? holder['metadata'] : (holder['metadata'] = {});
  const current = isObject(meta['labels']) ? meta['labels'] : (meta['labels'] = {});
  for (const [k, v] of Object.entries(labels)) {
    if (current[k] === undefined || current[k] === null) current[k] = v;
  }
}

function podTemplate(obj: Record<string, unknown>): Record<string, unknown> | undefined {
  const path = POD_TEMPLATE_PATHS[String(obj['kind'])];
  if (!path) return undefined;
  let at: unknown = obj;
  for (const key of path) {
    if (!isObject(at)) return undefined;
    at = at[key];
  }
  return isObject(at) ? at : undefined;
}

/** Labels one object (and its pod template, and the items of a List) in place. */
export function labelObject(obj: Record<string, unknown>, config: Pick<PostRenderConfig, 'labels' | 'podTemplateLabels'>): void {
  if (typeof obj['kind'] === 'string' && obj['kind'].endsWith('List') && Array.isArray(obj['items'])) {
    for (const item of obj['items']) if (isObject(item)) labelObject(item, config);
    return;
  }
  addMissing(obj, config.labels);
  const template = podTemplate(obj);
  if (template) addMissing(template, config.podTemplateLabels);
}

export class PostRenderError extends Error {
  override name = 'PostRenderError';
}

/** The rendered multi-document manifest with labels added and the additional resources appended. */
export function postRender(manifests: string, config: PostRenderConfig): string {
  const out: string[] = [];
  let index = 0;
  for (const doc of parseAllDocuments(manifests)) {
    index++;
    if (doc.errors.length > 0) {
      throw new PostRenderError(`rendered document ${index} is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
    }
    const value: unknown = doc.toJS({ maxAliasCount: -1 });
    if (value === null || value === undefined) continue;
    if (!isObject(value)) throw new PostRenderError(`rendered document ${index} is not a Kubernetes object`);
    labelObject(value, config);
    out.push(stringify(value, { lineWidth: 0 }));
  }
  for (const extra of config.additionalResources) {
    const copy = structuredClone(extra);
    labelObject(copy, config);
    out.push(stringify(copy, { lineWidth: 0 }));
  }
  return out.map((d) => `---\n${d}`).join('');
}
