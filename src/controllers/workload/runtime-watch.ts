// Status without an in-cluster agent: per runtime, the control plane watches what it applied for
// workload instances (one watch per resource type, selected by the threeport labels), plus the
// instances' Pods and ReplicaSets and the cluster's Events. From what it sees it
//  - records each resource's live object in its WorkloadResourceInstance's RuntimeDefinition
//    (coalesced, written only when it changed);
//  - turns Kubernetes events about labelled objects into WorkloadEvents;
//  - tells the controller when an instance's observations changed (its status is derived again)
//    and when a managed resource was deleted or changed by someone else (drift, repaired by a
//    reconcile).
// Watches resume from their last resourceVersion after a disconnect and list again when that is
// too old (src/providers/kube/watch.ts), so no change is lost.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { WorkloadEvent, WorkloadResourceInstance } from '../../kinds/workload.js';
import type { JsonObject } from '../../kinds/validate.js';
import { NotFoundError, describeError } from '../../errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import type { Queryable } from '../../store/database.js';
import type { KubeClusterClient, KubeObject } from '../../providers/kube/client.js';
import type { KubeWatch, WatchEvent } from '../../providers/kube/watch.js';
import { LABEL_WORKLOAD_INSTANCE, MANAGED_SELECTOR, canonicalJson, groupOf, resourceKey } from './resources.js';
import type { AppliedResource, WarningEvent } from './status.js';
import { upsertWorkloadEvent, type WorkloadEventFields } from './workload-events.js';

/** A resource the control plane applied: the WorkloadResourceInstance that records it. */
export interface TrackedResource {
  key: string;
  wriId: number;
  instanceId: number;
  apiVersion: string;
  kind: string;
}

export interface RuntimeWatcherOptions {
  runtimeId: number;
  client: KubeClusterClient;
  store: ObjectStore;
  log: Logger;
  /** A managed resource was deleted, or its spec or labels changed, by someone else. */
  onDrift(instanceId: number, key: string, how: 'deleted' | 'modified'): void;
  /** Something about the instance's objects changed: derive its status again. */
  onObserved(instanceId: number): void;
  /** How often buffered writes go to the database (default 500 ms). */
  flushIntervalMs?: number;
  /**
   * Several replicas: called first in each write transaction; throws when this replica no longer
   * owns the runtime (src/store/leases.ts), so nothing is written.
   */
  fence?: (tx: Queryable) => Promise<void>;
  /** The Event watch resumes after this resourceVersion (the previous owner's last), not from a list. */
  resumeEventsFrom?: string;
  /** After events were written: the Event watch's resourceVersion, for the next owner. */
  onEventsCheckpoint?: (resourceVersion: string) => void;
}

interface Watched {
  watch: KubeWatch;
  synced: boolean;
}

interface PendingEvent {
  event: KubeObject;
  at: number;
}

const BASE_TYPES = [
  { apiVersion: 'v1', kind: 'Pod' },
  { apiVersion: 'apps/v1', kind: 'ReplicaSet' },
] as const;
const PENDING_EVENT_TTL_MS = 60_000;
const PENDING_EVENT_LIMIT = 20_000;

function typeKey(apiVersion: string, kind: string): string {
  return `${apiVersion} ${kind}`;
}

function instanceOf(o: KubeObject): number | undefined {
  const v = o.metadata?.labels?.[LABEL_WORKLOAD_INSTANCE];
  const n = Number(v);
  return v && Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** The live object as recorded in RuntimeDefinition: no managedFields, no Secret values. */
export function runtimeDefinitionOf(o: KubeObject): JsonObject {
  const metadata: Record<string, unknown> = { ...o.metadata };
  delete metadata['managedFields'];
  const out: Record<string, unknown> = { ...o, metadata };
  if (o.kind === 'Secret' && groupOf(o.apiVersion) === '') {
    for (const field of ['data', 'stringData']) {
      const v = o[field];
      if (v && typeof v === 'object') out[field] = Object.fromEntries(Object.keys(v).map((k) => [k, '[redacted]']));
    }
    const annotations = metadata['annotations'] as Record<string, string> | undefined;
    if (annotations?.['kubectl.kubernetes.io/last-applied-configuration']) {
      const rest = { ...annotations };
      delete rest['kubectl.kubernetes.io/last-applied-configuration'];
      metadata['annotations'] = rest;
    }
  }
  return out as JsonObject;
}

function hashOf(runtimeDefinition: JsonObject): string {
  return createHash('sha1').update(canonicalJson(runtimeDefinition)).digest('base64');
}

function eventTime(e: KubeObject): string {
  const series = e['series'] as { lastObservedTime?: string } | undefined;
  const t = (e['lastTimestamp'] as string | undefined) ?? series?.lastObservedTime ?? (e['eventTime'] as string | undefined) ?? (e['firstTimestamp'] as string | undefined);
  const parsed = t ? Date.parse(t) : NaN;
  return new Date(Number.isFinite(parsed) ? parsed : Date.parse(e.metadata.creationTimestamp as string) || Date.now()).toISOString();
}

export class RuntimeWatcher {
  readonly runtimeId: number;
  readonly client: KubeClusterClient;
  readonly #o: RuntimeWatcherOptions;
  readonly #log: Logger;
  readonly #watches = new Map<string, Watched>();
  readonly #resources = new Map<string, TrackedResource>();
  readonly #byInstance = new Map<number, Map<string, TrackedResource>>();
  /** Every labelled object the watches have seen, by resource key (applied or not yet recorded as applied). */
  readonly #live = new Map<string, KubeObject>();
  readonly #pods = new Map<number, Map<string, KubeObject>>();
  readonly #replicaSets = new Map<number, Map<string, KubeObject>>();
  /** uid of a labelled object → its instance and, for applied resources, its key. */
  readonly #uids = new Map<string, { instanceId: number; key: string }>();
  readonly #warnings = new Map<number, Map<string, WarningEvent>>();
  readonly #pendingEvents = new Map<string, PendingEvent[]>();
  #pendingCount = 0;
  readonly #generation = new Map<string, number>();
  readonly #applying = new Map<string, number>();
  /** resourceVersion our last apply of a resource produced: a change event at it is our own. */
  readonly #ownVersion = new Map<string, string>();
  readonly #expectDeleted = new Set<string>();
  /** Instances being deleted: their objects are no longer reported. */
  readonly #removed = new Set<number>();
  readonly #dirtyDefs = new Map<number, KubeObject>();
  readonly #writtenHash = new Map<number, string>();
  readonly #eventWrites = new Map<string, WorkloadEventFields>();
  readonly #eventIds = new Map<string, number>();
  readonly #primed = new Set<number>();
  #timer: NodeJS.Timeout | undefined;
  #checkpointed: string | undefined;
  #flushing: Promise<void> | undefined;
  #stopped = false;

  constructor(options: RuntimeWatcherOptions) {
    this.#o = options;
    this.runtimeId = options.runtimeId;
    this.client = options.client;
    this.#log = options.log.child({ runtime: options.runtimeId });
    for (const t of BASE_TYPES) this.#ensureWatch(t.apiVersion, t.kind, MANAGED_SELECTOR);
    // Objects are listed (the status needs their current state; a list misses no change), but Kubernetes
    // events resume where the previous owner stopped, so the ones in between still become WorkloadEvents.
    this.#ensureWatch('v1', 'Event', undefined, options.resumeEventsFrom);
    this.#timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 500);
    this.#timer.unref();
  }

  get instanceCount(): number {
    return this.#byInstance.size;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** Watches started so far (type keys), for tests and logs. */
  get watchedTypes(): string[] {
    return [...this.#watches.keys()];
  }

  // ---- what the controller tells the watcher ------------------------------------------------

  /** The resources an instance applied (replaces what was known); starts watches for new types. */
  setInstanceResources(instanceId: number, resources: readonly TrackedResource[]): void {
    if (this.#stopped) return;
    this.#removed.delete(instanceId);
    const before = this.#byInstance.get(instanceId) ?? new Map<string, TrackedResource>();
    const after = new Map(resources.map((r) => [r.key, r]));
    for (const key of before.keys()) {
      if (!after.has(key)) {
        this.#resources.delete(key);
        this.#generation.delete(key);
        this.#ownVersion.delete(key);
      }
    }
    for (const r of resources) {
      this.#resources.set(r.key, r);
      this.#ensureWatch(r.apiVersion, r.kind, MANAGED_SELECTOR);
      // Seen before it was recorded as applied (the watch can be quicker than the reconciler).
      const seen = this.#live.get(r.key);
      if (seen && !before.has(r.key)) this.#dirtyDefs.set(r.wriId, seen);
    }
    this.#byInstance.set(instanceId, after);
  }

  /** The watcher was told what this instance applied (by a reconcile, or a load). */
  tracks(instanceId: number): boolean {
    return this.#byInstance.has(instanceId);
  }

  /** The instance is being deleted: forget it and stop reporting its objects. */
  removeInstance(instanceId: number): void {
    this.#removed.add(instanceId);
    for (const key of this.#byInstance.get(instanceId)?.keys() ?? []) {
      this.#resources.delete(key);
      this.#generation.delete(key);
      this.#ownVersion.delete(key);
    }
    this.#byInstance.delete(instanceId);
    this.#pods.delete(instanceId);
    this.#replicaSets.delete(instanceId);
    this.#warnings.delete(instanceId);
    for (const [uid, owner] of this.#uids) if (owner.instanceId === instanceId) this.#uids.delete(uid);
    for (const [uid, fields] of this.#eventWrites) if (fields.WorkloadInstanceID === instanceId) this.#eventWrites.delete(uid);
    for (const [wriId] of this.#dirtyDefs) {
      if (![...this.#resources.values()].some((r) => r.wriId === wriId)) this.#dirtyDefs.delete(wriId);
    }
  }

  /** A new instance (nothing applied before): it has no Kubernetes events recorded to look up. */
  fresh(instanceId: number): void {
    this.#primed.add(instanceId);
  }

  /** An apply of `key` is starting: changes seen meanwhile are our own. */
  applying(key: string): void {
    this.#applying.set(key, (this.#applying.get(key) ?? 0) + 1);
  }

  /** An apply of `key` ended (with the object as stored, when it succeeded). */
  applied(key: string, result: KubeObject | undefined): void {
    const n = (this.#applying.get(key) ?? 1) - 1;
    if (n <= 0) this.#applying.delete(key);
    else this.#applying.set(key, n);
    if (result?.metadata?.resourceVersion) this.#ownVersion.set(key, result.metadata.resourceVersion);
    const generation = result?.metadata?.['generation'];
    if (typeof generation === 'number') this.#generation.set(key, Math.max(generation, this.#generation.get(key) ?? 0));
  }

  /** The reconciler wrote this state of a resource to its WRI: the watches need not write it again. */
  recorded(wriId: number, runtimeDefinition: JsonObject): void {
    this.#writtenHash.set(wriId, hashOf(runtimeDefinition));
  }

  /** We are deleting `key`: its DELETED event is not drift. */
  expectDeletion(key: string): void {
    this.#expectDeleted.add(key);
  }

  /** The instance whose applied resources include `key`, when one does. */
  ownerOf(key: string): number | undefined {
    return this.#resources.get(key)?.instanceId;
  }

  /** The live object of an applied resource, when seen. */
  live(key: string): KubeObject | undefined {
    return this.#live.get(key);
  }

  /** What status derivation needs about one instance. */
  snapshot(instanceId: number): {
    resources: AppliedResource[];
    pods: KubeObject[];
    replicaSets: KubeObject[];
    warnings: WarningEvent[];
    synced: boolean;
  } {
    const tracked = [...(this.#byInstance.get(instanceId)?.values() ?? [])];
    const synced =
      BASE_TYPES.every((t) => this.#watches.get(typeKey(t.apiVersion, t.kind))?.synced) &&
      tracked.every((r) => this.#watches.get(typeKey(r.apiVersion, r.kind))?.synced);
    return {
      resources: tracked.map((r) => ({ apiVersion: r.apiVersion, kind: r.kind, live: this.#live.get(r.key) })),
      pods: [...(this.#pods.get(instanceId)?.values() ?? [])],
      replicaSets: [...(this.#replicaSets.get(instanceId)?.values() ?? [])],
      warnings: [...(this.#warnings.get(instanceId)?.values() ?? [])],
      synced,
    };
  }

  // ---- watches ------------------------------------------------------------------------------

  /** The Event watch's last resourceVersion. */
  get eventsResourceVersion(): string | undefined {
    return this.#watches.get(typeKey('v1', 'Event'))?.watch.resourceVersion;
  }

  #ensureWatch(apiVersion: string, kind: string, labelSelector: string | undefined, resourceVersion?: string): void {
    const k = typeKey(apiVersion, kind);
    if (this.#watches.has(k) || this.#stopped) return;
    const isEvents = kind === 'Event' && apiVersion === 'v1';
    const entry: Watched = {
      synced: false,
      watch: this.client.watch(apiVersion, kind, {
        ...(labelSelector ? { labelSelector } : {}),
        ...(resourceVersion ? { resourceVersion } : {}),
        onEvent: (e) => {
          try {
            if (isEvents) this.#onKubeEvent(e);
            else this.#onObject(e);
          } catch (err) {
            this.#log.warn({ err: describeError(err), type: k }, 'cannot process a watch event');
          }
        },
        onError: (err) => this.#log.debug({ err: err.message, type: k }, 'watch interrupted; resuming'),
        onRelist: (list) => this.#log.debug({ type: k, items: list.items.length }, 'watch listed'),
      }),
    };
    this.#watches.set(k, entry);
    void entry.watch.ready.then(() => {
      entry.synced = true;
      // Resources deleted while nobody watched (the control plane was down): drift too.
      for (const r of this.#resources.values()) {
        if (r.apiVersion === apiVersion && r.kind === kind && !this.#live.has(r.key) && !this.#applying.has(r.key) && !this.#removed.has(r.instanceId)) {
          this.#o.onDrift(r.instanceId, r.key, 'deleted');
        }
      }
      for (const id of this.#byInstance.keys()) this.#o.onObserved(id);
    });
  }

  #onObject(e: WatchEvent): void {
    const o = e.object;
    const uid = o.metadata?.uid;
    const instanceId = instanceOf(o);
    const deleted = e.type === 'DELETED';
    const key = resourceKey(o);
    if (deleted || instanceId === undefined) this.#live.delete(key);
    else this.#live.set(key, o);
    if (instanceId === undefined || this.#removed.has(instanceId)) {
      if (uid) this.#uids.delete(uid);
      return;
    }
    const tracked = this.#resources.get(key);
    const isApplied = tracked !== undefined && tracked.instanceId === instanceId;
    if (uid) {
      if (deleted) this.#uids.delete(uid);
      else this.#uids.set(uid, { instanceId, key });
    }
    const group = groupOf(o.apiVersion);
    if (o.kind === 'Pod' && group === '') this.#index(this.#pods, instanceId, o, deleted);
    else if (o.kind === 'ReplicaSet' && group === 'apps') this.#index(this.#replicaSets, instanceId, o, deleted);

    if (isApplied) {
      if (deleted) {
        this.#generation.delete(key);
        if (this.#expectDeleted.delete(key)) {
          // our own deletion
        } else if (!this.#applying.has(key)) {
          this.#o.onDrift(instanceId, key, 'deleted');
        }
      } else {
        this.#expectDeleted.delete(key);
        this.#dirtyDefs.set(tracked.wriId, o);
        this.#checkModified(e, key, instanceId);
      }
    }
    if (uid && !deleted) this.#resolvePending(uid);
    this.#o.onObserved(instanceId);
  }

  /** A change to the spec (generation) or to our labels that we did not make is drift. */
  #checkModified(e: WatchEvent, key: string, instanceId: number): void {
    const o = e.object;
    const generation = o.metadata['generation'];
    const before = this.#generation.get(key);
    if (typeof generation === 'number') this.#generation.set(key, Math.max(generation, before ?? 0));
    if (e.type !== 'MODIFIED' || this.#applying.has(key) || o.metadata['deletionTimestamp']) return;
    if (o.metadata.resourceVersion && o.metadata.resourceVersion === this.#ownVersion.get(key)) return;
    const labelsLost = instanceOf(o) !== instanceId;
    const specChanged = typeof generation === 'number' ? before !== undefined && generation > before : true;
    if (specChanged || labelsLost) this.#o.onDrift(instanceId, key, 'modified');
  }

  #index(map: Map<number, Map<string, KubeObject>>, instanceId: number, o: KubeObject, deleted: boolean): void {
    const uid = o.metadata.uid;
    if (!uid) return;
    let m = map.get(instanceId);
    if (deleted) {
      m?.delete(uid);
      if (m && m.size === 0) map.delete(instanceId);
      return;
    }
    if (!m) map.set(instanceId, (m = new Map()));
    m.set(uid, o);
  }

  #onKubeEvent(e: WatchEvent): void {
    if (e.type === 'DELETED') return; // events expire; the WorkloadEvent stays
    const involved = e.object['involvedObject'] as { uid?: string } | undefined;
    const uid = involved?.uid;
    if (!uid) return;
    if (this.#uids.has(uid)) {
      this.#recordEvent(e.object, uid);
      return;
    }
    if (this.#pendingCount >= PENDING_EVENT_LIMIT) return;
    const list = this.#pendingEvents.get(uid) ?? [];
    list.push({ event: e.object, at: Date.now() });
    this.#pendingEvents.set(uid, list);
    this.#pendingCount++;
  }

  #resolvePending(uid: string): void {
    const list = this.#pendingEvents.get(uid);
    if (!list) return;
    this.#pendingEvents.delete(uid);
    this.#pendingCount -= list.length;
    for (const p of list) this.#recordEvent(p.event, uid);
  }

  #recordEvent(event: KubeObject, involvedUid: string): void {
    const owner = this.#uids.get(involvedUid);
    const eventUid = event.metadata?.uid;
    if (!owner || !eventUid || this.#removed.has(owner.instanceId)) return;
    const tracked = this.#resources.get(owner.key);
    const type = String(event['type'] ?? 'Normal');
    const timestamp = eventTime(event);
    this.#eventWrites.set(eventUid, {
      RuntimeEventUID: eventUid,
      Type: type,
      Reason: String(event['reason'] ?? ''),
      Message: String(event['message'] ?? ''),
      Timestamp: timestamp,
      WorkloadInstanceID: owner.instanceId,
      ...(tracked && tracked.instanceId === owner.instanceId ? { WorkloadResourceInstanceID: tracked.wriId } : {}),
    });
    if (type === 'Warning' || type === 'Failed') {
      let m = this.#warnings.get(owner.instanceId);
      if (!m) this.#warnings.set(owner.instanceId, (m = new Map()));
      m.set(eventUid, { involvedUid, reason: String(event['reason'] ?? ''), message: String(event['message'] ?? ''), at: Date.parse(timestamp) });
      this.#o.onObserved(owner.instanceId);
    }
  }

  // ---- writes -------------------------------------------------------------------------------

  /** Writes buffered RuntimeDefinitions and WorkloadEvents (one flush at a time). */
  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    this.#flushing = this.#flush().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  async #flush(): Promise<void> {
    this.#expirePending();
    const store = this.#o.store;
    const defs = [...this.#dirtyDefs];
    this.#dirtyDefs.clear();
    const changed: Array<{ wriId: number; rd: JsonObject; hash: string }> = [];
    for (const [wriId, o] of defs) {
      const rd = runtimeDefinitionOf(o);
      const hash = hashOf(rd);
      if (this.#writtenHash.get(wriId) !== hash) changed.push({ wriId, rd, hash });
    }
    if (changed.length > 0) {
      try {
        await store.db.transaction(async (tx) => {
          await this.#o.fence?.(tx);
          for (const c of changed) {
            try {
              await store.patch(WorkloadResourceInstance, c.wriId, { RuntimeDefinition: c.rd }, {}, tx);
            } catch (err) {
              if (!(err instanceof NotFoundError) && !/matched no row/.test(describeError(err))) throw err;
            }
          }
        });
        for (const c of changed) this.#writtenHash.set(c.wriId, c.hash);
      } catch (err) {
        // Keep them for the next flush, unless newer states arrived meanwhile.
        for (const [wriId, o] of defs) if (!this.#dirtyDefs.has(wriId)) this.#dirtyDefs.set(wriId, o);
        this.#log.warn({ err: describeError(err) }, 'cannot record runtime definitions; will retry');
      }
    }

    const events = [...this.#eventWrites.values()];
    this.#eventWrites.clear();
    const rv = this.eventsResourceVersion;
    if (events.length === 0) {
      if (rv && rv !== this.#checkpointed) {
        this.#checkpointed = rv;
        this.#o.onEventsCheckpoint?.(rv);
      }
      return;
    }
    try {
      for (const id of new Set(events.map((e) => e.WorkloadInstanceID))) await this.#prime(id);
      await store.db.transaction(async (tx) => {
        await this.#o.fence?.(tx);
        for (const fields of events) {
          if (this.#removed.has(fields.WorkloadInstanceID)) continue;
          const id = await upsertWorkloadEvent(store, fields, this.#eventIds.get(fields.RuntimeEventUID), tx);
          this.#eventIds.set(fields.RuntimeEventUID, id);
        }
      });
      if (rv) {
        this.#checkpointed = rv;
        this.#o.onEventsCheckpoint?.(rv);
      }
    } catch (err) {
      for (const f of events) if (!this.#eventWrites.has(f.RuntimeEventUID)) this.#eventWrites.set(f.RuntimeEventUID, f);
      this.#log.warn({ err: describeError(err) }, 'cannot record workload events; will retry');
    }
  }

  /** Learns the WorkloadEvents an instance already has (after a restart), so repeats update them. */
  async #prime(instanceId: number): Promise<void> {
    if (this.#primed.has(instanceId)) return;
    for (const e of await this.#o.store.find(WorkloadEvent, { WorkloadInstanceID: instanceId })) {
      this.#eventIds.set(String(e['RuntimeEventUID']), Number(e['ID']));
    }
    this.#primed.add(instanceId);
  }

  #expirePending(): void {
    const cutoff = Date.now() - PENDING_EVENT_TTL_MS;
    for (const [uid, list] of this.#pendingEvents) {
      const kept = list.filter((p) => p.at >= cutoff);
      this.#pendingCount -= list.length - kept.length;
      if (kept.length === 0) this.#pendingEvents.delete(uid);
      else this.#pendingEvents.set(uid, kept);
    }
  }

  /** Waits for buffered writes of a deleted instance to settle (so none lands after its cleanup). */
  async settle(): Promise<void> {
    await this.#flushing;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await Promise.all([...this.#watches.values()].map((w) => w.watch.stop().catch(() => {})));
    this.#watches.clear();
    await this.flush().catch(() => {});
  }
}
