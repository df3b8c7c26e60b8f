// HelmWorkloadInstance Status (spec §5.2: Reconciling | Healthy | Unhealthy | Down | Error),
// derived on the server by the same rules as WorkloadInstance status (deriveStatus in
// src/controllers/workload/status.ts, described in docs/workloads.md).
//
// What it looks at differs: a helm release has no WorkloadResourceInstances, but the
// post-renderer puts `control-plane.threeport.io/helm-workload-instance=<id>` on every object
// and pod template, so one labelled list per kind and runtime finds every instance's workloads,
// ReplicaSets and Pods; Warning events come from the instances' namespaces. This is polled
// (every `intervalMs`, and soon after a deploy), not watched: releases are few compared with
// workload resources, and a poll needs no per-release bookkeeping.
import type { Logger } from 'pino';
import { HelmWorkloadInstance } from '../../kinds/helm-workload.js';
import { KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import type { JsonObject } from '../../kinds/validate.js';
import { NotFoundError, describeError } from '../../errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import type { Leases } from '../../store/leases.js';
import type { KubeClusterClient, KubeObject } from '../../providers/kube/client.js';
import { HELM_WORKLOAD_INSTANCE_LABEL } from '../../providers/helm/post-render.js';
import { deriveStatus, type AppliedResource, type Phase, type WarningEvent, type WorkloadStatus } from '../workload/status.js';

/** Kinds whose readiness counts, as in deriveStatus. */
const WORKLOAD_KINDS = [
  { apiVersion: 'apps/v1', kind: 'Deployment' },
  { apiVersion: 'apps/v1', kind: 'StatefulSet' },
  { apiVersion: 'apps/v1', kind: 'DaemonSet' },
  { apiVersion: 'batch/v1', kind: 'Job' },
] as const;

/** How soon to look again while an instance is Reconciling. */
const STARTING_RECHECK_MS = 2_000;

export interface HelmStatusMonitorOptions {
  /** The kube client of a runtime instance (as read from the store). */
  kube(runtime: JsonObject): KubeClusterClient;
  log: Logger;
  /** Time between passes (default 10 s). */
  intervalMs?: number;
  now?: () => number;
}

/**
 * Where the instance's reconciler is, from its reconciliation fields: a failed create, or a
 * terminal failure the reconciler marked with Status Error and not yet followed by a success.
 */
export function phaseOf(instance: JsonObject): Phase {
  if (instance['CreationFailed'] === true) return 'error';
  if (instance['Status'] === 'Error' && instance['Reconciled'] !== true) return 'error';
  return instance['Reconciled'] === true ? 'applied' : 'reconciling';
}

function labelOf(o: KubeObject): number | undefined {
  const v = o.metadata.labels?.[HELM_WORKLOAD_INSTANCE_LABEL];
  const n = v === undefined ? NaN : Number(v);
  return Number.isInteger(n) ? n : undefined;
}

function byInstance(items: readonly KubeObject[]): Map<number, KubeObject[]> {
  const out = new Map<number, KubeObject[]>();
  for (const o of items) {
    const id = labelOf(o);
    if (id === undefined) continue;
    (out.get(id) ?? out.set(id, []).get(id)!).push(o);
  }
  return out;
}

function eventTime(e: KubeObject): number {
  const r = e as unknown as { lastTimestamp?: string; eventTime?: string; series?: { lastObservedTime?: string }; metadata: { creationTimestamp?: string } };
  for (const t of [r.series?.lastObservedTime, r.lastTimestamp, r.eventTime, r.metadata.creationTimestamp]) {
    const ms = typeof t === 'string' ? Date.parse(t) : NaN;
    if (Number.isFinite(ms)) return ms;
  }
  return 0;
}

export const HELM_STATUS_LEASE = 'singleton:helm-status';

export class HelmStatusMonitor {
  readonly #options: HelmStatusMonitorOptions;
  #store: ObjectStore | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Several replicas: one at a time runs the passes (lease `singleton:helm-status`), fenced per write. */
  #leases: Leases | undefined;
  #soon: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(options: HelmStatusMonitorOptions) {
    this.#options = options;
  }

  start(store: ObjectStore, leases?: Leases): void {
    this.#store = store;
    this.#leases = leases;
    this.#stopped = false;
    this.#timer = setInterval(() => this.#pass(), this.#options.intervalMs ?? 10_000);
    this.#timer.unref();
    this.poke();
  }

  /** Asks for a pass soon (after a deploy or a failure), coalesced. */
  poke(delayMs = 500): void {
    if (this.#stopped || !this.#store || this.#soon) return;
    this.#soon = setTimeout(() => {
      this.#soon = undefined;
      this.#pass();
    }, delayMs);
    this.#soon.unref();
  }

  #pass(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    const leases = this.#leases;
    this.#running = (async () => {
      if (!leases || (await leases.claim(HELM_STATUS_LEASE))) await this.refresh();
    })()
      .catch((err: unknown) => this.#options.log.warn({ err: describeError(err) }, 'helm workload status pass failed'))
      .finally(() => {
        this.#running = undefined;
        if (this.#again && !this.#stopped) {
          this.#again = false;
          this.#pass();
        }
      });
  }

  /** One pass over every live HelmWorkloadInstance; writes Status where it changed. */
  async refresh(): Promise<void> {
    const store = this.#store;
    if (!store) return;
    const instances = (await store.find(HelmWorkloadInstance, {})).filter((i) => !i['DeletionScheduled']);
    const byRuntime = new Map<number, JsonObject[]>();
    for (const i of instances) {
      const rid = Number(i['KubernetesRuntimeInstanceID']);
      (byRuntime.get(rid) ?? byRuntime.set(rid, []).get(rid)!).push(i);
    }
    let starting = false;
    for (const [runtimeId, group] of byRuntime) {
      if (this.#stopped) return;
      const statuses = await this.#statusesOn(store, runtimeId, group);
      for (const [instance, status] of statuses) {
        if (status === 'Reconciling') starting = true;
        if (instance['Status'] === status) continue;
        try {
          const leases = this.#leases;
          const id = Number(instance['ID']);
          await store.db.transaction(async (tx) => {
            if (leases?.wants(HELM_STATUS_LEASE)) await leases.fence(tx, HELM_STATUS_LEASE);
            // The status was derived from a snapshot: when the reconciler has moved the instance on
            // since (a terminal failure marked Error), its word stands until the next pass.
            const fresh = await store.getForUpdate(HelmWorkloadInstance, id, tx);
            if (phaseOf(fresh) !== phaseOf(instance) || fresh['Status'] !== instance['Status']) return;
            await store.patch(HelmWorkloadInstance, id, { Status: status }, { enqueue: false }, tx);
          });
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err; // deleted meanwhile
        }
      }
    }
    // Something is starting or being reconciled: look again before the next regular pass.
    if (starting) this.poke(STARTING_RECHECK_MS);
  }

  async #statusesOn(store: ObjectStore, runtimeId: number, instances: JsonObject[]): Promise<Array<[JsonObject, WorkloadStatus]>> {
    const now = (this.#options.now ?? Date.now)();
    const out: Array<[JsonObject, WorkloadStatus]> = [];
    const applied = instances.filter((i) => phaseOf(i) === 'applied');
    for (const i of instances) {
      if (phaseOf(i) !== 'applied') out.push([i, deriveStatus({ phase: phaseOf(i), resources: [], pods: [], replicaSets: [], warnings: [], synced: true, now }).status]);
    }
    if (applied.length === 0) return out;

    let runtime: JsonObject;
    try {
      runtime = await store.getObject(KubernetesRuntimeInstance, runtimeId);
    } catch (err) {
      if (err instanceof NotFoundError) return out;
      throw err;
    }
    if (!runtime['APIEndpoint']) return out;
    const selector = { labelSelector: HELM_WORKLOAD_INSTANCE_LABEL };
    let workloads: KubeObject[];
    let replicaSets: KubeObject[];
    let pods: KubeObject[];
    const events: KubeObject[] = [];
    try {
      const client = this.#options.kube(runtime);
      workloads = (await Promise.all(WORKLOAD_KINDS.map((k) => client.list(k.apiVersion, k.kind, selector)))).flatMap((l) => l.items);
      replicaSets = (await client.list('apps/v1', 'ReplicaSet', selector)).items;
      pods = (await client.list('v1', 'Pod', selector)).items;
      const namespaces = new Set(applied.map((i) => String(i['ReleaseNamespace'] ?? '')).filter(Boolean));
      for (const ns of namespaces) events.push(...(await client.list('v1', 'Event', { namespace: ns, fieldSelector: 'type=Warning' })).items);
    } catch (err) {
      // The runtime is unreachable or refusing: keep the last status; the next pass tries again.
      this.#options.log.debug({ runtimeId, err: describeError(err) }, 'cannot read helm workload objects for status');
      return out;
    }
    const workloadsOf = byInstance(workloads);
    const replicaSetsOf = byInstance(replicaSets);
    const podsOf = byInstance(pods);
    for (const i of applied) {
      const id = Number(i['ID']);
      const own = workloadsOf.get(id) ?? [];
      const rs = replicaSetsOf.get(id) ?? [];
      const ps = podsOf.get(id) ?? [];
      // ReplicaSets a chart declares itself count as workloads; a Deployment's are its parts.
      const resources: AppliedResource[] = [
        ...own,
        ...rs.filter((r) => !(r.metadata['ownerReferences'] as unknown[] | undefined)?.length),
      ].map((o) => ({ apiVersion: o.apiVersion, kind: o.kind, live: o }));
      const uids = new Set([...own, ...rs, ...ps].map((o) => o.metadata.uid).filter(Boolean));
      const warnings: WarningEvent[] = events
        .filter((e) => uids.has((e['involvedObject'] as { uid?: string } | undefined)?.uid))
        .map((e) => ({ involvedUid: String((e['involvedObject'] as { uid: string }).uid), at: eventTime(e) }));
      out.push([i, deriveStatus({ phase: 'applied', resources, pods: ps, replicaSets: rs, warnings, synced: true, now }).status]);
    }
    return out;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#soon) clearTimeout(this.#soon);
    this.#timer = undefined;
    this.#soon = undefined;
  }

  /** Resolves when a pass in progress has finished (for stop()). */
  async settled(): Promise<void> {
    await this.#running;
  }
}
