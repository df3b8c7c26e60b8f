// The dependency graph between Threeport kinds: which writes queue which reconciles (watches)
// and which objects belong to which (owns). This is the one place for these facts: the
// controllers' reconcilers take their `watches` and `owns` from here, and
// docs/dependency-graph.md is generated from it (`npm run docs:graph`).
import { KubernetesRuntimeInstance } from '../kinds/kubernetes-runtime.js';
import { WorkloadDefinition, WorkloadInstance, dependencyIds } from '../kinds/workload.js';
import type { JsonObject } from '../kinds/validate.js';
import type { ObjectStore } from '../store/object-store.js';
import type { Owns, Watch } from '../reconcile/types.js';

export interface KindEdges {
  readonly watches?: readonly Watch[];
  readonly owns?: readonly Owns[];
}

const ids = (objects: readonly JsonObject[]): number[] => objects.map((o) => Number(o['ID']));
const live = (o: JsonObject): boolean => !o['DeletionScheduled'] && !o['DeletedAt'];

/** Instances of `WorkloadInstance` matching `filter` that still wait for something (not yet Reconciled). */
async function waitingInstances(store: ObjectStore, filter: JsonObject): Promise<number[]> {
  return ids((await store.find(WorkloadInstance, { ...filter, Reconciled: false })).filter(live));
}

export const GRAPH: Readonly<Record<string, KindEdges>> = {
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
          const deps = await Promise.all(dependencyIds(w).map((id) => store.getObject(WorkloadInstance, id).catch(() => undefined)));
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
