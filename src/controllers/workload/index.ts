// workload controller (spec §3.1, §4, §5.2; docs/workloads.md): reconcilers for
// WorkloadDefinition and WorkloadInstance, plus what the in-cluster agent did upstream, done from
// the control plane. Its parts:
// - this file: the WorkloadInstance reconciler (plan, record WRIs, apply, delete);
// - definition.ts: the WorkloadDefinition reconciler;
// - runtime-watches.ts: one watcher per runtime (runtime-watch.ts) recording live state and
//   Kubernetes events, and which replica owns each runtime;
// - status-writer.ts: the instance's Status, derived from its phase and what the watches see;
// - drift-repair.ts: resources changed or deleted out of band are reconciled back.
//
// Differences from upstream, on purpose:
// - server-side apply (field manager `threeport`, forced) instead of create-or-update;
// - WorkloadResourceInstances are recorded before their resources are applied, so a crash never
//   leaves an applied resource that deletion does not know about;
// - a changed definition rolls out to its instances; resources it no longer declares are removed;
// - no ThreeportWorkload custom resource and no agent: the control plane watches the clusters;
// - Status is derived on the server; drift is repaired on resync and when a watch sees it;
// - nested workloads: WorkloadInstance.DependsOn.
import type { Logger } from 'pino';
import { KIND_BY_NAME } from '../../kinds/index.js';
import { AttachedObjectReference } from '../../kinds/events.js';
import { KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import { DomainNameInstance, GatewayInstance } from '../../kinds/gateway.js';
import {
  WorkloadDefinition,
  WorkloadEvent,
  WorkloadInstance,
  WorkloadResourceDefinition,
  WorkloadResourceInstance,
  dependencyIds,
} from '../../kinds/workload.js';
import type { Kind } from '../../kinds/declare.js';
import type { JsonObject } from '../../kinds/validate.js';
import { ConflictError, NotFoundError, describeError, ignoreNotFound } from '../../errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import type { Leases } from '../../store/leases.js';
import { ReconcileError, TerminalError } from '../../reconcile/errors.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import type { KubeClients } from '../../providers/kube/clients.js';
import { KubeError } from '../../providers/kube/errors.js';
import type { KubeClusterClient, KubeObject, ObjectRef } from '../../providers/kube/client.js';
import { workloadDefinitionReconciler } from './definition.js';
import { edgesOf } from '../graph.js';
import { untilWoken } from '../../reconcile/wait-for.js';
import {
  ANNOTATION_DEFINITION,
  ANNOTATION_MANAGED_NAMESPACE,
  addThreeportLabels,
  applyRank,
  canonicalJson,
  clone,
  describeResource,
  generateNamespaceName,
  isNamespaceObject,
  managedNamespaceObject,
  resourceKey,
} from './resources.js';
import { runtimeDefinitionOf, type RuntimeWatcher } from './runtime-watch.js';
import { RuntimeWatches, trackedResource } from './runtime-watches.js';
import { InstanceStatusWriter, type InstanceState } from './status-writer.js';
import { DriftRepair } from './drift-repair.js';
import { statusFields, statusKey } from './status.js';
import { reportWorkloadEvent } from './workload-events.js';
import { backoffDelay } from '../../system.js';

export { runtimeLease } from './runtime-watches.js';

export const CONTROLLER_NAME = 'WorkloadController';

/** Resources of one instance applied at once (within one apply step). */
const APPLY_PARALLELISM = 8;

export interface WorkloadControllerOptions {
  logger: Logger;
  /** Kube clients (default: own ones, decrypting with the store's key). */
  kube?: KubeClients;
  /** How often watch observations are written (RuntimeDefinition, WorkloadEvents) and statuses derived (default 500 ms). */
  flushIntervalMs?: number;
  /** Warning events make an instance Unhealthy for this long (default 60 s). */
  warningWindowMs?: number;
  /** A running pod may take this long to become ready (default 30 s). */
  startupGraceMs?: number;
  /**
   * Where a runtime must be watched from: 'here' or 'elsewhere' for a simulated cluster (it runs
   * as child processes of one server), undefined for one any replica can watch.
   */
  pinning?: (store: ObjectStore, runtime: JsonObject) => Promise<'here' | 'elsewhere' | undefined>;
}

/** One resource the instance should have on its cluster, and the WRI that records it. */
interface Planned {
  object: KubeObject;
  key: string;
  source: 'namespace' | 'definition' | 'other';
  /** Discovery failed for it: applying it fails with this error. */
  error?: unknown;
  wri?: JsonObject;
  /** Its JSONDefinition changed (or it is new) in this reconcile. */
  changed: boolean;
  /** It had been applied before this reconcile. */
  wasApplied: boolean;
}

/**
 * Applies and reads are idempotent: a request that lost its connection (a pooled keep-alive
 * socket the API server closed at that moment) is sent again at once, twice at most, before it
 * counts as a failure with the engine's backoff.
 */
async function resent<T>(signal: AbortSignal, request: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await request();
    } catch (err) {
      if (attempt >= 3 || signal.aborted || !(err instanceof KubeError) || err.failure !== 'Unreachable') throw err;
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

function refOf(o: KubeObject): ObjectRef {
  return { apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) };
}

function label(wi: JsonObject): string {
  return `WorkloadInstance ${JSON.stringify(wi['Name'])} (ID ${String(wi['ID'])})`;
}

function jsonObject(v: unknown): KubeObject {
  return clone(v) as KubeObject;
}

/** Every field `desired` declares has the same value in `live` (arrays element by element). */
export function containsDeclared(live: unknown, desired: unknown): boolean {
  if (desired === null || typeof desired !== 'object') return live === desired || (live !== undefined && String(live) === String(desired));
  if (Array.isArray(desired)) {
    return Array.isArray(live) && live.length === desired.length && desired.every((d, i) => containsDeclared(live[i], d));
  }
  if (live === null || typeof live !== 'object' || Array.isArray(live)) return false;
  return Object.entries(desired as Record<string, unknown>).every(([k, v]) => containsDeclared((live as Record<string, unknown>)[k], v));
}

export class WorkloadController {
  readonly reconcilers: Reconciler[];
  readonly #log: Logger;
  #store: ObjectStore | undefined;
  readonly #status: InstanceStatusWriter;
  readonly #runtimes: RuntimeWatches;
  readonly #drift: DriftRepair;
  /** The WorkloadResourceDefinitions of each definition, by the definition's version. */
  readonly #wrdCache = new Map<number, { version: string; wrds: JsonObject[] }>();

  constructor(options: WorkloadControllerOptions) {
    this.#log = options.logger;
    const { flushIntervalMs, warningWindowMs, startupGraceMs } = options;
    this.#status = new InstanceStatusWriter({
      log: this.#log,
      // The registry is built next; the writer asks it only once statuses are written.
      sources: {
        watcher: (runtimeId) => this.#runtimes.watcher(runtimeId),
        holds: (runtimeId) => this.#runtimes.holds(runtimeId),
        fence: (tx, runtimeId) => this.#runtimes.fence(tx, runtimeId),
      },
      ...(flushIntervalMs !== undefined ? { flushIntervalMs } : {}),
      ...(warningWindowMs !== undefined ? { warningWindowMs } : {}),
      ...(startupGraceMs !== undefined ? { startupGraceMs } : {}),
    });
    this.#drift = new DriftRepair(this.#log, () => this.#store);
    this.#runtimes = new RuntimeWatches({
      log: this.#log,
      status: this.#status,
      onDrift: (instanceId, key, how) => this.#drift.report(instanceId, key, how),
      ...(options.kube ? { kube: options.kube } : {}),
      ...(flushIntervalMs ? { flushIntervalMs } : {}),
      ...(options.pinning ? { pinning: options.pinning } : {}),
    });
    this.reconcilers = [workloadDefinitionReconciler(CONTROLLER_NAME), this.#instanceReconciler()];
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /** Starts watches for the runtimes that have workload instances (after a restart, say). */
  async start(store: ObjectStore, context: { leases?: Leases } = {}): Promise<void> {
    this.#store = store;
    this.#runtimes.useLeases(context.leases);
    this.#status.start(store);
    const instances = (await store.find(WorkloadInstance, {})).filter((wi) => !wi['DeletionScheduled']);
    if (instances.length === 0) return;
    if (this.#runtimes.leased) {
      // Each runtime is taken by one replica (its share); the holder loads its instances then.
      for (const runtimeId of new Set(instances.map((wi) => Number(wi['KubernetesRuntimeInstanceID'])))) {
        const runtime = await store.getObject(KubernetesRuntimeInstance, runtimeId).catch(ignoreNotFound);
        if (runtime?.['APIEndpoint']) await this.#runtimes.want(store, runtime);
      }
      return;
    }
    await this.#runtimes.resume(store, instances);
    this.#log.info({ instances: instances.length, runtimes: this.#runtimes.size }, 'workload watches started');
  }

  async stop(): Promise<void> {
    this.#drift.stop();
    await this.#status.stop();
    await this.#runtimes.stop();
  }

  /** The watcher of a runtime, when there is one (tests). */
  watcher(runtimeId: number): RuntimeWatcher | undefined {
    return this.#runtimes.watcher(runtimeId);
  }

  // ---- the WorkloadInstance reconciler ------------------------------------------------------

  #instanceReconciler(): Reconciler {
    return {
      kind: WorkloadInstance.name,
      controller: CONTROLLER_NAME,
      // A reconcile mostly waits on the cluster's API server, so more run at once than the
      // runtime's default: bench/workloads met its 1.5x goal at 24 and missed it at 16.
      concurrency: 24,
      // Waiting for a runtime, a definition or a dependency is a reaction to these writes.
      ...edgesOf(WorkloadInstance.name),
      created: (ctx, wi) => this.#converge(ctx, wi),
      updated: (ctx, wi) => this.#converge(ctx, wi),
      deleted: (ctx, wi) => this.#remove(ctx, wi),
    };
  }

  async #get(ctx: ReconcileContext, kind: Kind, id: number): Promise<JsonObject | undefined> {
    try {
      return await ctx.store.getObject(kind, id);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /**
   * Not ready to apply yet: say why (event, Status Reconciling) and wait for the write that the
   * graph's watches turn into a wake-up (the runtime, definition or dependency becoming ready).
   */
  async #wait(ctx: ReconcileContext, state: InstanceState, reason: string, note: string): Promise<ReconcileResult> {
    if (state.phase !== 'applied') state.phase = 'reconciling';
    await ctx.recordEvent({ reason, note, type: 'Normal' });
    await this.#status.refresh(ctx.id);
    const waited = ctx.clock.now() - ctx.firstQueuedAt.getTime();
    return untilWoken(ctx, Math.round(Math.min(10_000, Math.max(1_000, waited / 10))));
  }

  async #runtimeOf(ctx: ReconcileContext, wi: JsonObject): Promise<JsonObject> {
    const id = wi['KubernetesRuntimeInstanceID'];
    if (typeof id === 'number') {
      const runtime = await this.#get(ctx, KubernetesRuntimeInstance, id);
      if (!runtime) throw new TerminalError(`${label(wi)}: its KubernetesRuntimeInstance ${id} does not exist`);
      return runtime;
    }
    const [runtime] = await ctx.store.find(KubernetesRuntimeInstance, { DefaultRuntime: true });
    if (!runtime) {
      throw new TerminalError(`${label(wi)} names no KubernetesRuntimeInstance, and no runtime has DefaultRuntime: true`);
    }
    return runtime;
  }

  /** Before the first apply, every dependency must be Healthy; returns a wait when one is not. */
  async #waitForDependencies(ctx: ReconcileContext, wi: JsonObject, state: InstanceState): Promise<ReconcileResult | undefined> {
    for (const depId of dependencyIds(wi)) {
      const dep = await this.#get(ctx, WorkloadInstance, depId);
      if (!dep) throw new TerminalError(`${label(wi)} depends on WorkloadInstance ${depId}, which does not exist`);
      if (dep['DeletionScheduled']) throw new TerminalError(`${label(wi)} depends on ${label(dep)}, which is being deleted`);
      if (dep['Status'] === 'Healthy') continue;
      // Two concurrent updates can still close a cycle the API checks one at a time.
      const cycle = await WorkloadInstance.checkStored?.(wi, { id: ctx.id, get: (k, i) => this.#get(ctx, KIND_BY_NAME.get(k)!, i) });
      if (cycle) throw new TerminalError(`${label(wi)}: ${cycle}`);
      return this.#wait(
        ctx,
        state,
        'WaitingForDependency',
        `waiting for WorkloadInstance ${JSON.stringify(dep['Name'])} (ID ${depId}) to be Healthy (it is ${String(dep['Status'] ?? 'Reconciling')})`,
      );
    }
    return undefined;
  }

  async #converge(ctx: ReconcileContext, wi: JsonObject): Promise<ReconcileResult> {
    const store = ctx.store;
    this.#store ??= store;
    this.#status.start(store);
    const id = ctx.id;
    const state = this.#status.track(id, wi);
    const definitionId = Number(wi['WorkloadDefinitionID']);
    // Independent reads, at once.
    const [found, definition, runtimeOrError] = await Promise.all([
      store.find(WorkloadResourceInstance, { WorkloadInstanceID: id }),
      this.#get(ctx, WorkloadDefinition, definitionId),
      this.#runtimeOf(ctx, wi).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err)))),
    ]);
    const existing = found.sort((a, b) => Number(a['ID']) - Number(b['ID']));
    const everApplied = existing.some((w) => w['Reconciled'] === true);
    if (!everApplied) state.phase = 'reconciling';
    if (!definition) throw new TerminalError(`${label(wi)}: its WorkloadDefinition ${definitionId} does not exist`);
    if (definition['Reconciled'] !== true) {
      return this.#wait(
        ctx,
        state,
        'WaitingForWorkloadDefinition',
        `waiting for WorkloadDefinition ${JSON.stringify(definition['Name'])} (ID ${definitionId}) to be reconciled`,
      );
    }
    if (runtimeOrError instanceof Error) throw runtimeOrError;
    const runtime = runtimeOrError;
    if (runtime['Reconciled'] !== true || !runtime['APIEndpoint']) {
      // An EKS runtime waiting for its first user (lazy provisioning) was woken by this instance's
      // creation (a watch: src/controllers/graph.ts).
      return this.#wait(
        ctx,
        state,
        'WaitingForKubernetesRuntimeInstance',
        `waiting for KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])} (ID ${String(runtime['ID'])}) to be Reconciled`,
      );
    }
    const elsewhere = await this.#runtimes.own(store, runtime);
    if (elsewhere) {
      if (state.runtimeId === undefined) this.#status.forget(id);
      return elsewhere;
    }
    state.runtimeId = Number(runtime['ID']);
    if (!everApplied) {
      const waiting = await this.#waitForDependencies(ctx, wi, state);
      if (waiting) return waiting;
    }
    const wrds = await this.#resourceDefinitions(store, definition);
    if (wrds.length === 0) {
      throw new ReconcileError(`${label(wi)}: WorkloadDefinition ${JSON.stringify(definition['Name'])} has no resources yet`);
    }

    const watcher = this.#runtimes.watcherFor(runtime, store);
    if (existing.length === 0) watcher.fresh(id);
    const client = watcher.client;
    const plan = await this.#plan(ctx, client, wi, definition, wrds, existing);
    await this.#assertNotOwnedElsewhere(ctx, wi, state, runtime, watcher, plan);
    const stale = await this.#record(ctx, plan, existing);

    // Apply in order: namespaces, then CRDs, then the rest; within each step, several at once.
    // Drift repaired on the way is reported.
    const appliedObjects: Array<{ wri: JsonObject; after: KubeObject }> = [];
    const applyOne = async (p: Planned): Promise<void> => {
      const driftCheck = ctx.operation === 'Updated' && p.wasApplied && !p.changed;
      let before: KubeObject | undefined;
      watcher.applying(p.key);
      let after: KubeObject | undefined;
      try {
        if (p.error) throw p.error;
        if (driftCheck) before = await resent(ctx.signal, () => client.get(refOf(p.object), { signal: ctx.signal }));
        after = await resent(ctx.signal, () => client.apply(p.object, { signal: ctx.signal, force: true }));
      } finally {
        watcher.applied(p.key, after);
      }
      appliedObjects.push({ wri: p.wri!, after });
      if (driftCheck) {
        const how = !before ? 'deleted' : !containsDeclared(before, p.object) && before.metadata.resourceVersion !== after.metadata.resourceVersion ? 'modified' : undefined;
        if (how) await this.#reportRestored(ctx, p, how);
      }
    };
    for (const step of [0, 1, 2]) {
      const batch = plan.filter((p) => applyRank(p.object) === step);
      const failures: Array<{ p: Planned; err: unknown }> = [];
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(APPLY_PARALLELISM, batch.length) }, async () => {
          while (next < batch.length) {
            const p = batch[next++]!;
            await applyOne(p).catch((err: unknown) => failures.push({ p, err }));
          }
        }),
      );
      if (failures.length > 0) {
        // The first failing resource in manifest order is the one reported.
        const first = failures.sort((a, b) => batch.indexOf(a.p) - batch.indexOf(b.p))[0]!;
        throw await this.#applyFailed(ctx, wi, state, first.p, first.err);
      }
    }

    // Record what was applied, with the status it gives, in one transaction.
    watcher.setInstanceResources(id, plan.filter((p) => p.wri).map((p) => trackedResource(id, p.wri!)));
    // The phase turns 'applied' only once the WRIs say so: the status writer must not report the
    // instance Healthy while its resources are still unrecorded (or the transaction fails).
    const derived = this.#status.derive(id, { ...state, phase: 'applied' });
    await ctx.transaction(async (tx) => {
      await this.#runtimes.fence(tx.client, Number(runtime['ID']));
      for (const { wri, after } of appliedObjects) {
        const rd = runtimeDefinitionOf(after);
        const known = wri['RuntimeDefinition'] as KubeObject | undefined;
        if (wri['Reconciled'] === true && known?.metadata?.resourceVersion === after.metadata.resourceVersion) continue;
        await tx.patch(WorkloadResourceInstance, Number(wri['ID']), { Reconciled: true, RuntimeDefinition: rd, LastOperation: 'Apply' });
        watcher.recorded(Number(wri['ID']), rd);
      }
      if (statusKey(derived.status, derived.reason) !== state.written) await tx.patch(WorkloadInstance, id, statusFields(derived), { enqueue: false });
    });
    state.phase = 'applied';
    state.written = statusKey(derived.status, derived.reason);
    // Derived again shortly: a watch may have written meanwhile from an older phase.
    this.#status.markDirty(id);
    // Remove what is no longer wanted (recorded WRIs only).
    await this.#deleteResources(ctx, client, watcher, stale);
    return undefined;
  }

  /**
   * The definition's WRDs. Cached per definition version: they change only when the definition's
   * reconciler replaces them, which also updates the definition (Reconciled, UpdatedAt).
   */
  async #resourceDefinitions(store: ObjectStore, definition: JsonObject): Promise<JsonObject[]> {
    const id = Number(definition['ID']);
    const version = String(definition['UpdatedAt']);
    const cached = this.#wrdCache.get(id);
    if (cached && cached.version === version) return cached.wrds;
    const wrds = (await store.find(WorkloadResourceDefinition, { WorkloadDefinitionID: id })).sort((a, b) => Number(a['ID']) - Number(b['ID']));
    if (wrds.length > 0) this.#wrdCache.set(id, { version, wrds });
    return wrds;
  }

  /** The resources the instance should have now: namespace rules (spec §3.1), labels, order. */
  async #plan(
    ctx: ReconcileContext,
    client: KubeClusterClient,
    wi: JsonObject,
    definition: JsonObject,
    wrds: JsonObject[],
    existing: JsonObject[],
  ): Promise<Planned[]> {
    const id = ctx.id;
    const names = { definitionName: String(definition['Name']), instanceName: String(wi['Name']), instanceId: id };
    const live = existing.filter((w) => !w['ScheduledForDeletion']);
    const sourceOf = (w: JsonObject): Planned['source'] => {
      const annotations = (w['JSONDefinition'] as KubeObject | undefined)?.metadata?.annotations ?? {};
      if (annotations[ANNOTATION_MANAGED_NAMESPACE] !== undefined) return 'namespace';
      if (annotations[ANNOTATION_DEFINITION] !== undefined) return 'definition';
      return 'other';
    };
    const definitionObjects = wrds.map((w) => jsonObject(w['JSONDefinition']));
    const manifestNamespace = definitionObjects.some(isNamespaceObject);
    let namespace: string | undefined;
    if (!manifestNamespace) {
      const recorded = live.find((w) => sourceOf(w) === 'namespace');
      namespace = recorded ? String((recorded['JSONDefinition'] as KubeObject).metadata.name) : generateNamespaceName(String(wi['Name']));
    }

    const place = async (o: KubeObject): Promise<{ object: KubeObject; error?: unknown }> => {
      const object = addThreeportLabels(o, names);
      try {
        const info = await client.discover(object.apiVersion, object.kind, { signal: ctx.signal });
        if (info.namespaced) object.metadata.namespace = namespace ?? object.metadata.namespace ?? 'default';
        else delete object.metadata.namespace;
        return { object };
      } catch (error) {
        if (namespace && !isNamespaceObject(object)) object.metadata.namespace = namespace;
        return { object, error };
      }
    };

    const wanted: Array<{ object: KubeObject; source: Planned['source']; error?: unknown; wri?: JsonObject }> = [];
    if (namespace) wanted.push({ object: addThreeportLabels(managedNamespaceObject(namespace, id), names), source: 'namespace' });
    for (const o of definitionObjects) {
      o.metadata.annotations = { ...(o.metadata.annotations ?? {}), [ANNOTATION_DEFINITION]: String(definition['ID']) };
      wanted.push({ ...(await place(o)), source: 'definition' });
    }
    // WRIs other controllers added (gateway, secrets, ...) get the workload's namespace and labels too.
    for (const w of live.filter((x) => sourceOf(x) === 'other')) {
      wanted.push({ ...(await place(jsonObject(w['JSONDefinition']))), source: 'other', wri: w });
    }

    const byKey = new Map<string, JsonObject>();
    for (const w of live) if (sourceOf(w) !== 'other') byKey.set(resourceKey(w['JSONDefinition'] as KubeObject), w);
    const plan: Planned[] = [];
    const seen = new Set<string>();
    for (const w of wanted) {
      const key = resourceKey(w.object);
      if (seen.has(key)) continue; // the same resource twice: the first one wins
      seen.add(key);
      const match = w.wri ?? byKey.get(key);
      const changed = !match || canonicalJson(match['JSONDefinition']) !== canonicalJson(w.object);
      plan.push({
        object: w.object,
        key,
        source: w.source,
        ...(w.error !== undefined ? { error: w.error } : {}),
        ...(match ? { wri: match } : {}),
        changed,
        wasApplied: match?.['Reconciled'] === true,
      });
    }
    return plan.map((p, i) => ({ p, i })).sort((a, b) => applyRank(a.p.object) - applyRank(b.p.object) || a.i - b.i).map((x) => x.p);
  }

  /**
   * Two instances must not manage one resource (a manifest with its own Namespace, deployed
   * twice to one runtime): the second is refused, as upstream's CLI refuses it.
   */
  async #assertNotOwnedElsewhere(
    ctx: ReconcileContext,
    wi: JsonObject,
    state: InstanceState,
    runtime: JsonObject,
    watcher: RuntimeWatcher,
    plan: Planned[],
  ): Promise<void> {
    for (const p of plan) {
      const owner = watcher.ownerOf(p.key);
      if (owner === undefined || owner === ctx.id) continue;
      const other = await this.#get(ctx, WorkloadInstance, owner);
      if (!other || other['DeletionScheduled']) continue;
      const message =
        `${label(wi)}: ${describeResource(p.object)} on KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])} already belongs to ${label(other)}; ` +
        'a manifest that names its own Namespace can be deployed once per runtime';
      await reportWorkloadEvent(ctx.store, { instanceId: ctx.id, type: 'Warning', reason: 'CreateResourceError', message, key: p.key });
      state.phase = 'error';
      await this.#status.refresh(ctx.id);
      throw new TerminalError(message);
    }
  }

  /**
   * Writes the plan's WRIs (new ones, changed JSONDefinitions) and schedules the deletion of
   * WRIs no longer wanted, in one transaction, before anything is applied. Returns the WRIs
   * whose resources must be deleted from the cluster (and objects left at an old identity).
   */
  async #record(ctx: ReconcileContext, plan: Planned[], existing: JsonObject[]): Promise<Array<{ wri?: JsonObject; object: KubeObject }>> {
    const id = ctx.id;
    const wanted = new Set(plan.map((p) => p.wri && Number(p.wri['ID'])).filter((x) => x));
    return ctx.transaction(async (tx) => {
      const stale: Array<{ wri?: JsonObject; object: KubeObject }> = [];
      for (const p of plan) {
        if (!p.wri) {
          p.wri = await tx.create(WorkloadResourceInstance, { JSONDefinition: p.object, WorkloadInstanceID: id, Reconciled: false });
        } else if (p.changed) {
          const old = p.wri['JSONDefinition'] as KubeObject;
          if (resourceKey(old) !== p.key) stale.push({ object: old });
          p.wri = await tx.patch(WorkloadResourceInstance, Number(p.wri['ID']), { JSONDefinition: p.object, Reconciled: false });
        }
      }
      const now = new Date(ctx.clock.now()).toISOString();
      for (const w of existing) {
        const scheduled = Boolean(w['ScheduledForDeletion']);
        if (!scheduled && wanted.has(Number(w['ID']))) continue;
        const annotations = (w['JSONDefinition'] as KubeObject | undefined)?.metadata?.annotations ?? {};
        const ours = annotations[ANNOTATION_DEFINITION] !== undefined || annotations[ANNOTATION_MANAGED_NAMESPACE] !== undefined;
        if (!scheduled && !ours) continue; // another controller's WRI is removed only when it schedules that
        const marked = scheduled ? w : await tx.patch(WorkloadResourceInstance, Number(w['ID']), { ScheduledForDeletion: now, Reconciled: false });
        stale.push({ wri: marked, object: marked['JSONDefinition'] as KubeObject });
      }
      return stale;
    });
  }

  /** Deletes resources from the cluster (NotFound is fine), then their WRIs; namespaces last. */
  async #deleteResources(
    ctx: ReconcileContext,
    client: KubeClusterClient,
    watcher: RuntimeWatcher | undefined,
    items: Array<{ wri?: JsonObject; object: KubeObject }>,
  ): Promise<void> {
    const ordered = [...items].sort((a, b) => applyRank(b.object) - applyRank(a.object));
    for (const item of ordered) {
      const key = resourceKey(item.object);
      watcher?.expectDeletion(key);
      try {
        await resent(ctx.signal, () => client.delete(refOf(item.object), { signal: ctx.signal }));
      } catch (err) {
        if (!(await this.#deletedAnyway(client, item.object, err))) {
          throw new ReconcileError(`WorkloadInstance ${ctx.id}: cannot delete ${describeResource(item.object)}: ${describeError(err)}`, { cause: err });
        }
      }
      if (item.wri) await ctx.store.softDelete(WorkloadResourceInstance, Number(item.wri['ID'])).catch((e: unknown) => {
        if (!(e instanceof NotFoundError)) throw e;
      });
    }
  }

  /** A delete that failed but needs no retry: the kind is gone, or the object is already terminating. */
  async #deletedAnyway(client: KubeClusterClient, object: KubeObject, err: unknown): Promise<boolean> {
    if (!(err instanceof KubeError)) return false;
    if (err.failure === 'UnknownKind') return true;
    if (err.failure === 'Conflict') {
      const current = await client.get(refOf(object)).catch(() => undefined);
      return !current || Boolean(current.metadata['deletionTimestamp']);
    }
    return false;
  }

  async #reportRestored(ctx: ReconcileContext, p: Planned, how: 'deleted' | 'modified'): Promise<void> {
    const note = `Restored ${describeResource(p.object)} ${how} out of band`;
    ctx.log.info({ resource: p.key }, note);
    await ctx.recordEvent({ reason: 'ResourceRestored', note, type: 'Normal' });
    await reportWorkloadEvent(ctx.store, {
      instanceId: ctx.id,
      ...(p.wri ? { wriId: Number(p.wri['ID']) } : {}),
      type: 'Normal',
      reason: 'ResourceRestored',
      message: note,
    });
  }

  /** An apply failed: a WorkloadEvent, Status Error when the cluster refused it, and the error to throw. */
  async #applyFailed(ctx: ReconcileContext, wi: JsonObject, state: InstanceState, p: Planned, err: unknown): Promise<Error> {
    if (ctx.signal.aborted) return err instanceof Error ? err : new Error(String(err));
    const message = `${label(wi)}: cannot apply ${describeResource(p.object)}: ${describeError(err)}`;
    const kubeErr = err instanceof KubeError ? err : undefined;
    const refused = !kubeErr || !kubeErr.unreachable;
    if (refused) {
      await reportWorkloadEvent(ctx.store, {
        instanceId: ctx.id,
        ...(p.wri ? { wriId: Number(p.wri['ID']) } : {}),
        type: 'Warning',
        reason: 'CreateResourceError',
        message,
        key: p.key,
      }).catch((e: unknown) => ctx.log.warn({ err: describeError(e) }, 'cannot record a workload event'));
      state.phase = 'error';
      await this.#status.refresh(ctx.id);
    }
    if (kubeErr && !kubeErr.retryable) return new TerminalError(message, { cause: err });
    if (kubeErr?.failure === 'UnknownKind') {
      // The CRD may come later (installed by a dependency, say): retry, but slowly.
      return new ReconcileError(message, { cause: err, requeueAfterMs: backoffDelay(ctx.attempt, { initialMs: 5_000, maxMs: 300_000 }) });
    }
    return new ReconcileError(message, { cause: err });
  }

  // ---- deletion -----------------------------------------------------------------------------

  async #remove(ctx: ReconcileContext, wi: JsonObject): Promise<ReconcileResult> {
    const store = ctx.store;
    this.#store ??= store;
    const id = ctx.id;
    // Dependents go first (nested workloads).
    const dependents = (await store.find(WorkloadInstance, { DependsOn: [id] })).filter((d) => Number(d['ID']) !== id);
    if (dependents.length > 0) {
      const d = dependents[0]!;
      await ctx.recordEvent({
        reason: 'WaitingForDependents',
        note: `waiting for dependent WorkloadInstance ${JSON.stringify(d['Name'])} (ID ${String(d['ID'])}) to be deleted first`,
      });
      const waited = ctx.clock.now() - ctx.firstQueuedAt.getTime();
      return untilWoken(ctx, Math.round(Math.min(10_000, Math.max(1_000, waited / 10))));
    }

    // Objects attached to the instance (gateways, secrets, databases, ...), except its events.
    for (const ref of await store.find(AttachedObjectReference, { ObjectType: 'v0.WorkloadInstance', ObjectID: id })) {
      const type = String(ref['AttachedObjectType']);
      if (type === 'v0.Event') continue;
      const kind = KIND_BY_NAME.get(type.replace(/^v\d+\./, ''));
      if (kind) {
        await store.delete(kind, Number(ref['AttachedObjectID'])).catch((err: unknown) => {
          if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
        });
      }
      await store.softDelete(AttachedObjectReference, Number(ref['ID'])).catch(ignoreNotFound);
    }

    // Its DNS records and gateways' routes go before the Services they point at (issue 11:
    // deletion in reverse), and before the instance, so their definitions can be deleted after it.
    for (const kind of [DomainNameInstance, GatewayInstance]) {
      const [g] = await store.find(kind, { WorkloadInstanceID: id });
      if (!g) continue;
      if (!g['DeletionScheduled']) {
        await store.delete(kind, Number(g['ID'])).catch((err: unknown) => {
          if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
        });
      }
      await ctx.recordEvent({
        reason: kind === GatewayInstance ? 'WaitingForGateways' : 'WaitingForDomainNames',
        note: `waiting for ${kind.name} ${JSON.stringify(g['Name'])} (ID ${String(g['ID'])}) to be deleted first`,
      });
      return { requeueAfterMs: 500 };
    }

    // The instance's resources, by its recorded WRIs; the generated namespace last.
    const wris = await store.find(WorkloadResourceInstance, { WorkloadInstanceID: id });
    const runtimeId = Number(wi['KubernetesRuntimeInstanceID']);
    const runtime = await this.#get(ctx, KubernetesRuntimeInstance, runtimeId);
    let watcher: RuntimeWatcher | undefined;
    if (wris.length > 0 && runtime?.['APIEndpoint']) {
      const elsewhere = await this.#runtimes.own(store, runtime);
      if (elsewhere) return elsewhere;
      watcher = this.#runtimes.watcherFor(runtime, store);
      watcher.removeInstance(id);
      const now = new Date(ctx.clock.now()).toISOString();
      await ctx.transaction(async (tx) => {
        for (const w of wris) if (!w['ScheduledForDeletion']) await tx.patch(WorkloadResourceInstance, Number(w['ID']), { ScheduledForDeletion: now });
      });
      await this.#deleteResources(
        ctx,
        watcher.client,
        watcher,
        wris.map((w) => ({ wri: w, object: w['JSONDefinition'] as KubeObject })),
      );
    } else {
      if (wris.length > 0) ctx.log.warn({ runtimeId }, 'the runtime has no endpoint: the instance\'s records are removed, its cluster is not touched');
      for (const w of wris) await store.softDelete(WorkloadResourceInstance, Number(w['ID'])).catch(ignoreNotFound);
    }
    await watcher?.settle();
    await store.deleteWhere(WorkloadEvent, { WorkloadInstanceID: id });
    this.#status.forget(id);

    // No instance left on the runtime: stop watching it.
    const others = (await store.find(WorkloadInstance, { KubernetesRuntimeInstanceID: runtimeId })).filter((o) => Number(o['ID']) !== id);
    if (others.length === 0) await this.#runtimes.release(runtimeId);
    return undefined;
  }
}
