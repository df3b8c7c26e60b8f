// The dependency graph between Threeport kinds: which writes queue which reconciles (watches)
// and which objects belong to which (owns). This is the one place for these facts: the
// controllers' reconcilers take their `watches` and `owns` from here, and
// docs/dependency-graph.md is generated from it (`npm run docs:graph`).
import { KubernetesRuntimeInstance } from '../kinds/kubernetes-runtime.js';
import { KINDS } from '../kinds/index.js';
import { AwsEksKubernetesRuntimeInstance } from '../kinds/aws.js';
import { parseInventory } from '../providers/aws/inventory.js';
import { WorkloadDefinition, WorkloadInstance, WorkloadResourceInstance, dependencyIds } from '../kinds/workload.js';
import type { JsonObject } from '../kinds/validate.js';
import type { Kind } from '../kinds/declare.js';
import { HelmWorkloadInstance } from '../kinds/helm-workload.js';
import { SecretDefinition, SecretInstance } from '../kinds/secret.js';
import { DomainNameDefinition, DomainNameInstance, GatewayInstance } from '../kinds/gateway.js';
import type { ObjectStore } from '../store/object-store.js';
import type { Owns, Supply, Watch } from '../reconcile/types.js';
import { ignoreNotFound } from '../errors.js';

export interface KindEdges {
  readonly watches?: readonly Watch[];
  readonly owns?: readonly Owns[];
  readonly supplies?: readonly Supply[];
}

const ids = (objects: readonly JsonObject[]): number[] => objects.map((o) => Number(o['ID']));
const live = (o: JsonObject): boolean => !o['DeletionScheduled'] && !o['DeletedAt'];

/** Objects of `kind` matching `filter` that still wait for something (not yet Reconciled). */
async function waiting(store: ObjectStore, kind: Kind, filter: JsonObject): Promise<number[]> {
  return ids((await store.find(kind, { ...filter, Reconciled: false })).filter(live));
}
const waitingInstances = (store: ObjectStore, filter: JsonObject) => waiting(store, WorkloadInstance, filter);

/** A managed service's WRIs (its connection Secret, ConfigMap, ServiceAccount) go to its workload, which applies them. */
const suppliesWorkload = (what: string): Supply => ({
  kind: WorkloadInstance.name,
  written: WorkloadResourceInstance.name,
  via: `the workload it adds ${what} to, changes or schedules off (left Reconciled: false in the same transaction)`,
  when: (w) => w['Reconciled'] === false && typeof w['WorkloadInstanceID'] === 'number',
  map: (w) => [Number(w['WorkloadInstanceID'])],
});

/** Kinds whose objects run on a KubernetesRuntimeInstance (its users), but the EKS record of the runtime itself. */
export const RUNTIME_USERS = KINDS.filter(
  (k) =>
    k.name !== AwsEksKubernetesRuntimeInstance.name &&
    k.allFields['KubernetesRuntimeInstanceID']?.type === 'id' &&
    k.allFields['KubernetesRuntimeInstanceID']?.ref === KubernetesRuntimeInstance.name,
);

/** The runtime's EKS cluster, when its provisioning waits for a first user (lazy provisioning). */
async function deferredEks(user: JsonObject, store: ObjectStore): Promise<number[]> {
  if (typeof user['KubernetesRuntimeInstanceID'] !== 'number') return [];
  const eks = await store.find(AwsEksKubernetesRuntimeInstance, { KubernetesRuntimeInstanceID: user['KubernetesRuntimeInstanceID'] });
  return ids(
    eks.filter((e) => {
      const inventory = parseInventory(e['ResourceInventory']);
      return live(e) && (!inventory || inventory.phase === 'deferred');
    }),
  );
}

export const GRAPH: Readonly<Record<string, KindEdges>> = {
  AwsRelationalDatabaseInstance: { supplies: [suppliesWorkload('a connection Secret')] },
  AwsObjectStorageBucketInstance: { supplies: [suppliesWorkload('a ServiceAccount or a bucket ConfigMap')] },
  // An EKS runtime provisioned lazily starts when its first user appears, not at its next check.
  AwsEksKubernetesRuntimeInstance: {
    watches: RUNTIME_USERS.map((k) => ({
      kind: k.name,
      via: `the runtime's EKS cluster, while it waits for a first user, once one of the runtime's ${k.name}s is written unreconciled`,
      when: (o: JsonObject) => o['Reconciled'] !== true && live(o),
      map: deferredEks,
    })),
  },
  // Definitions own their instances: a changed definition, once reconciled, rolls out to them.
  // (Their ID fields block the definition's deletion while instances exist, as upstream does.)
  WorkloadDefinition: { owns: [{ kind: WorkloadInstance.name, by: 'WorkloadDefinitionID' }] },
  HelmWorkloadDefinition: { owns: [{ kind: HelmWorkloadInstance.name, by: 'HelmWorkloadDefinitionID' }] },
  TerraformDefinition: { owns: [{ kind: 'TerraformInstance', by: 'TerraformDefinitionID' }] },
  ObservabilityStackDefinition: { owns: [{ kind: 'ObservabilityStackInstance', by: 'ObservabilityStackDefinitionID' }] },
  MetricsDefinition: { owns: [{ kind: 'MetricsInstance', by: 'MetricsDefinitionID' }] },
  LoggingDefinition: { owns: [{ kind: 'LoggingInstance', by: 'LoggingDefinitionID' }] },
  GatewayDefinition: { owns: [{ kind: GatewayInstance.name, by: 'GatewayDefinitionID' }] },
  DomainNameInstance: {
    watches: [
      {
        kind: KubernetesRuntimeInstance.name,
        via: 'the waiting DomainNameInstances on the runtime, once it is Reconciled with an API endpoint',
        when: (r) => r['Reconciled'] === true && Boolean(r['APIEndpoint']) && live(r),
        map: (r, store) => waiting(store, DomainNameInstance, { KubernetesRuntimeInstanceID: Number(r['ID']) }),
      },
      {
        kind: GatewayInstance.name,
        via: "the DomainNameInstances of the gateway's workload, once the gateway is Healthy or gone (what external-dns publishes changes)",
        when: (g) => g['Status'] === 'Healthy' || Boolean(g['DeletedAt']),
        map: async (g, store) => ids((await store.find(DomainNameInstance, { WorkloadInstanceID: Number(g['WorkloadInstanceID']) })).filter(live)),
      },
      {
        kind: DomainNameDefinition.name,
        via: 'the instances of the definition, when it changes (another Domain or Zone)',
        when: live,
        map: async (d, store) => ids((await store.find(DomainNameInstance, { DomainNameDefinitionID: Number(d['ID']) })).filter(live)),
      },
    ],
  },
  SecretInstance: {
    watches: [
      {
        kind: SecretDefinition.name,
        via: 'the waiting instances of the definition, once it is Reconciled (stored in AWS Secrets Manager)',
        when: (d) => d['Reconciled'] === true && live(d),
        map: (d, store) => waiting(store, SecretInstance, { SecretDefinitionID: Number(d['ID']) }),
      },
    ],
  },
  HelmWorkloadInstance: {
    watches: [
      {
        kind: KubernetesRuntimeInstance.name,
        via: 'the waiting HelmWorkloadInstances on the runtime, once it has an API endpoint',
        when: (r) => Boolean(r['APIEndpoint']) && live(r),
        map: (r, store) => waiting(store, HelmWorkloadInstance, { KubernetesRuntimeInstanceID: Number(r['ID']) }),
      },
    ],
  },
  WorkloadInstance: {
    watches: [
      {
        kind: KubernetesRuntimeInstance.name,
        via: 'the waiting WorkloadInstances on the runtime, once it is Reconciled with an API endpoint',
        when: (r) => r['Reconciled'] === true && Boolean(r['APIEndpoint']) && live(r),
        map: (r, store) => waitingInstances(store, { KubernetesRuntimeInstanceID: Number(r['ID']) }),
      },
      {
        kind: WorkloadDefinition.name,
        via: 'the waiting instances of the definition, once it is Reconciled',
        when: (d) => d['Reconciled'] === true && live(d),
        map: (d, store) => waitingInstances(store, { WorkloadDefinitionID: Number(d['ID']) }),
      },
      {
        kind: WorkloadInstance.name,
        via: 'the waiting instances that list it in DependsOn, once it is Healthy',
        when: (w) => w['Status'] === 'Healthy' && live(w),
        map: async (w, store) => (await waitingInstances(store, { DependsOn: [Number(w['ID'])] })).filter((id) => id !== Number(w['ID'])),
      },
      {
        kind: WorkloadInstance.name,
        via: 'the instances in its DependsOn that are being deleted, once it is gone (dependents go first)',
        when: (w) => Boolean(w['DeletedAt']) && dependencyIds(w).length > 0,
        map: async (w, store) => {
          const deps = await Promise.all(dependencyIds(w).map((id) => store.getObject(WorkloadInstance, id).catch(ignoreNotFound)));
          return ids(deps.filter((d): d is JsonObject => d !== undefined && Boolean(d['DeletionScheduled'])));
        },
      },
    ],
  },
};

/** The declared edges of `kind`, for its reconciler: `{ kind: 'X', ...edgesOf('X'), created, ... }`. */
export function edgesOf(kind: string): KindEdges {
  return GRAPH[kind] ?? {};
}
