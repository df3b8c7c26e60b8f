// The per-runtime watcher registry of the workload controller: one RuntimeWatcher per runtime
// that has workload instances, and, with several controllers replicas, which replica owns each
// runtime's watches and status writes (a lease in PostgreSQL, issue 12). A replica that takes a
// runtime's lease loads its instances and resumes its Kubernetes events where the last owner
// stopped; one that loses it stops watching and forgets the instances.
import type { Logger } from 'pino';
import { KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import { WorkloadInstance, WorkloadResourceInstance } from '../../kinds/workload.js';
import type { JsonObject } from '../../kinds/validate.js';
import { describeError, ignoreNotFound } from '../../errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import type { Leases } from '../../store/leases.js';
import type { Queryable } from '../../store/database.js';
import type { ReconcileResult } from '../../reconcile/types.js';
import { KubeClients } from '../../providers/kube/clients.js';
import type { KubeObject } from '../../providers/kube/client.js';
import { resourceKey } from './resources.js';
import { RuntimeWatcher, type TrackedResource } from './runtime-watch.js';
import type { InstanceStatusWriter, StatusSources } from './status-writer.js';

/** The lease that makes one replica the owner of a runtime's watches and status writes. */
export function runtimeLease(runtimeId: number): string {
  return `runtime:${runtimeId}`;
}

/** What a runtime's watcher tracks for one recorded WorkloadResourceInstance. */
export function trackedResource(instanceId: number, wri: JsonObject): TrackedResource {
  const o = wri['JSONDefinition'] as KubeObject;
  return { key: resourceKey(o), wriId: Number(wri['ID']), instanceId, apiVersion: o.apiVersion, kind: o.kind };
}

/** The WRIs of an instance that are applied and not scheduled for deletion. */
async function appliedWris(store: ObjectStore, instanceId: number): Promise<JsonObject[]> {
  return (await store.find(WorkloadResourceInstance, { WorkloadInstanceID: instanceId })).filter((w) => !w['ScheduledForDeletion']);
}

export interface RuntimeWatchesOptions {
  log: Logger;
  status: InstanceStatusWriter;
  /** Kube clients (default: own ones, decrypting with the store's key). */
  kube?: KubeClients;
  flushIntervalMs?: number;
  /** A watch saw a managed resource deleted or changed by someone else. */
  onDrift: (instanceId: number, key: string, how: 'deleted' | 'modified') => void;
  /**
   * Where a runtime must be watched from: 'here' or 'elsewhere' for a simulated cluster (it runs
   * as child processes of one server), undefined for one any replica can watch.
   */
  pinning?: (store: ObjectStore, runtime: JsonObject) => Promise<'here' | 'elsewhere' | undefined>;
}

export class RuntimeWatches implements StatusSources {
  readonly #options: RuntimeWatchesOptions;
  readonly #log: Logger;
  readonly #watchers = new Map<number, RuntimeWatcher>();
  #kube: KubeClients | undefined;
  #ownsKube = false;
  /** Several replicas: a runtime is watched by the holder of its lease only. */
  #leases: Leases | undefined;

  constructor(options: RuntimeWatchesOptions) {
    this.#options = options;
    this.#log = options.log;
    this.#kube = options.kube;
  }

  get leased(): boolean {
    return this.#leases !== undefined;
  }

  get size(): number {
    return this.#watchers.size;
  }

  useLeases(leases: Leases | undefined): void {
    this.#leases = leases;
  }

  watcher(runtimeId: number): RuntimeWatcher | undefined {
    return this.#watchers.get(runtimeId);
  }

  holds(runtimeId: number): boolean | undefined {
    return this.#leases ? this.#leases.holds(runtimeLease(runtimeId)) : undefined;
  }

  /** Several replicas: throws unless this replica owns the runtime, holding the lease until `tx` ends. */
  async fence(tx: Queryable, runtimeId: number): Promise<void> {
    await this.#leases?.fence(tx, runtimeLease(runtimeId));
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#watchers.values()].map((w) => w.stop()));
    this.#watchers.clear();
    if (this.#ownsKube) this.#kube?.close();
  }

  /** Registers interest in a runtime's lease: pinned simulated runtimes only where they run. */
  async want(store: ObjectStore, runtime: JsonObject): Promise<'here' | 'elsewhere' | undefined> {
    const leases = this.#leases!;
    const runtimeId = Number(runtime['ID']);
    const name = runtimeLease(runtimeId);
    const pinned = await this.#options.pinning?.(store, runtime).catch(() => undefined);
    if (!leases.wants(name) || pinned === 'elsewhere') {
      leases.want(name, {
        ...(pinned === undefined ? { group: 'runtime' } : {}),
        ...(pinned === 'elsewhere' ? { eligible: () => false } : {}),
        onAcquired: () => void this.#adopt(store, runtimeId),
        onLost: () => void this.#abandon(runtimeId),
      });
    }
    return pinned;
  }

  /**
   * Before a reconcile touches a runtime: this replica owns it (taking a free lease now), or the
   * reconcile is handed to the replica that does.
   */
  async own(store: ObjectStore, runtime: JsonObject): Promise<ReconcileResult | undefined> {
    const leases = this.#leases;
    if (!leases) return undefined;
    const name = runtimeLease(Number(runtime['ID']));
    if (leases.holds(name)) return undefined;
    const pinned = await this.want(store, runtime);
    if (pinned === 'elsewhere') {
      // Simulated on another server: that server watches it. Taken here only when no replica holds it
      // (a simulated cluster registered from outside, which no server runs).
      const holder = await leases.holderOf(name);
      if (holder && holder !== leases.holder) return { requeueAfterMs: 0, handoffTo: holder };
    }
    if (await leases.acquire(name)) return undefined;
    const holder = await leases.holderOf(name);
    if (holder && holder !== leases.holder) return { requeueAfterMs: 0, handoffTo: holder };
    return { requeueAfterMs: 1_000 }; // between owners (or its simulated cluster's process is starting): soon again
  }

  /** No instance is left on the runtime: stop watching it and give up its lease. */
  async release(runtimeId: number): Promise<void> {
    const w = this.#watchers.get(runtimeId);
    if (w) {
      this.#watchers.delete(runtimeId);
      await w.stop();
    }
    await this.#leases?.unwant(runtimeLease(runtimeId));
  }

  /** The runtime's watcher; replaced when the runtime's connection changed. */
  watcherFor(runtime: JsonObject, store: ObjectStore): RuntimeWatcher {
    const runtimeId = Number(runtime['ID']);
    const client = this.#kubeClients(store).forRuntime(runtime);
    const existing = this.#watchers.get(runtimeId);
    if (existing && existing.client === client && !existing.stopped) return existing;
    if (existing) void existing.stop();
    const leases = this.#leases;
    const lease = runtimeLease(runtimeId);
    const resume = leases?.data(lease)?.['eventsResourceVersion'];
    const { status, onDrift, flushIntervalMs } = this.#options;
    const watcher = new RuntimeWatcher({
      runtimeId,
      client,
      store,
      log: this.#log,
      onDrift,
      onObserved: (instanceId) => status.markDirty(instanceId),
      ...(flushIntervalMs ? { flushIntervalMs } : {}),
      ...(leases
        ? {
            fence: (tx: Queryable) => this.fence(tx, runtimeId),
            ...(typeof resume === 'string' && !existing ? { resumeEventsFrom: resume } : {}),
            onEventsCheckpoint: (rv: string) =>
              void leases.setData(lease, { eventsResourceVersion: rv }).catch((err: unknown) => this.#log.debug({ err: describeError(err) }, 'cannot checkpoint')),
          }
        : {}),
    });
    this.#watchers.set(runtimeId, watcher);
    if (existing) void this.#reload(runtimeId, watcher, store);
    return watcher;
  }

  /**
   * One replica, after a restart: a watcher for every runtime with instances, told what each
   * applied, and every instance's status derived again.
   */
  async resume(store: ObjectStore, instances: JsonObject[]): Promise<void> {
    const wris = await store.find(WorkloadResourceInstance, {});
    const byInstance = new Map<number, JsonObject[]>();
    for (const w of wris) {
      const id = Number(w['WorkloadInstanceID']);
      (byInstance.get(id) ?? byInstance.set(id, []).get(id)!).push(w);
    }
    const runtimes = new Map<number, JsonObject | undefined>();
    for (const wi of instances) {
      const id = Number(wi['ID']);
      const runtimeId = Number(wi['KubernetesRuntimeInstanceID']);
      if (!runtimes.has(runtimeId)) {
        runtimes.set(runtimeId, await store.getObject(KubernetesRuntimeInstance, runtimeId).catch(ignoreNotFound));
      }
      const state = this.#options.status.track(id, wi);
      const runtime = runtimes.get(runtimeId);
      if (!runtime || !runtime['APIEndpoint']) continue;
      state.runtimeId = runtimeId;
      const applied = (byInstance.get(id) ?? []).filter((w) => !w['ScheduledForDeletion']);
      this.#tell(this.watcherFor(runtime, store), id, applied);
      this.#options.status.markDirty(id);
    }
  }

  #kubeClients(store: ObjectStore): KubeClients {
    if (!this.#kube) {
      this.#kube = new KubeClients({ decrypt: (v) => store.decrypt(v) });
      this.#ownsKube = true;
    }
    return this.#kube;
  }

  /** The watcher learns what an instance applied, and the live state last recorded for it. */
  #tell(watcher: RuntimeWatcher, instanceId: number, applied: JsonObject[]): void {
    watcher.setInstanceResources(instanceId, applied.map((w) => trackedResource(instanceId, w)));
    for (const w of applied) if (w['RuntimeDefinition']) watcher.recorded(Number(w['ID']), w['RuntimeDefinition'] as JsonObject);
  }

  /** This replica took a runtime's lease: watch it, resuming Kubernetes events where the last owner stopped. */
  async #adopt(store: ObjectStore, runtimeId: number): Promise<void> {
    try {
      const runtime = await store.getObject(KubernetesRuntimeInstance, runtimeId);
      if (!runtime['APIEndpoint'] || !this.#leases?.holds(runtimeLease(runtimeId))) return;
      await this.#load(store, runtimeId, this.watcherFor(runtime, store));
    } catch (err) {
      this.#log.warn({ runtimeId, err: describeError(err) }, 'cannot start watching a runtime this replica now owns');
    }
  }

  /** The lease is gone (another replica owns the runtime now): stop watching and writing. */
  async #abandon(runtimeId: number): Promise<void> {
    const watcher = this.#watchers.get(runtimeId);
    this.#watchers.delete(runtimeId);
    this.#options.status.forgetRuntime(runtimeId);
    await watcher?.stop();
  }

  /** The instances of a runtime and what they applied, into its watcher (after a restart or a takeover). */
  async #load(store: ObjectStore, runtimeId: number, watcher: RuntimeWatcher): Promise<void> {
    const { status } = this.#options;
    for (const wi of await store.find(WorkloadInstance, { KubernetesRuntimeInstanceID: runtimeId })) {
      if (wi['DeletionScheduled']) continue;
      const id = Number(wi['ID']);
      const state = status.track(id, wi);
      state.runtimeId = runtimeId;
      status.markDirty(id);
      const applied = await appliedWris(store, id);
      // A reconcile running here meanwhile told the watcher what it applied: that is newer than this read.
      if (watcher.tracks(id)) continue;
      this.#tell(watcher, id, applied);
    }
  }

  /** A new watcher for a runtime learns what its instances applied. */
  async #reload(runtimeId: number, watcher: RuntimeWatcher, store: ObjectStore): Promise<void> {
    try {
      for (const wi of await store.find(WorkloadInstance, { KubernetesRuntimeInstanceID: runtimeId })) {
        if (wi['DeletionScheduled']) continue;
        const id = Number(wi['ID']);
        const wris = await appliedWris(store, id);
        watcher.setInstanceResources(id, wris.map((w) => trackedResource(id, w)));
      }
    } catch (err) {
      this.#log.warn({ runtimeId, err: describeError(err) }, 'cannot load the workload resources of a runtime');
    }
  }
}
