// What the support-service controllers of a runtime (gateways, DNS) share: the per-runtime
// controller WorkloadInstance that upstream records on the KubernetesRuntimeInstance
// (`GatewayWorkloadInstanceID`, `DnsControllerInstanceId`), and the events of the supervised host
// processes that serve simulated runtimes.
import type { Logger } from 'pino';
import { KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import { WorkloadDefinition, WorkloadInstance } from '../../kinds/workload.js';
import type { JsonObject } from '../../kinds/validate.js';
import type { Kind } from '../../kinds/declare.js';
import { ConflictError, NotFoundError, describeError, ignoreNotFound } from '../../errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import { recordEvent } from '../../reconcile/events.js';
import type { PeerEvent } from '../../providers/support-peers/index.js';

/**
 * Installs and removals on one runtime, one at a time (per runtime ID): two gateways or domain
 * names arriving together must not both start the runtime's peer or create its controller workload.
 */
export class PerRuntimeLock {
  readonly #tails = new Map<number, Promise<unknown>>();

  async run<T>(runtimeId: number, work: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(runtimeId) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(work);
    this.#tails.set(runtimeId, next);
    try {
      return await next;
    } finally {
      if (this.#tails.get(runtimeId) === next) this.#tails.delete(runtimeId);
    }
  }
}

/** A support controller's WorkloadInstance on one runtime, and the runtime field that records it. */
export interface SupportWorkload {
  /** WorkloadDefinition and WorkloadInstance name, e.g. `external-dns-<runtime>`. */
  name: string;
  yaml: string;
  /** The KubernetesRuntimeInstance field (JSON name) that holds the WorkloadInstance's ID. */
  runtimeField: string;
}

/** A name part that is a valid DNS label. */
export function dnsLabel(s: string, fallback = 'x'): string {
  return (s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || fallback).slice(0, 50);
}

async function getOr(store: ObjectStore, kind: Kind, id: unknown): Promise<JsonObject | undefined> {
  if (typeof id !== 'number') return undefined;
  return store.getObject(kind, id).catch((err: unknown) => {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  });
}

const ignoreGone = (err: unknown): void => {
  if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
};

/** The runtime's support WorkloadInstance, created (and recorded on the runtime) when missing. */
export async function ensureSupportWorkload(store: ObjectStore, runtime: JsonObject, w: SupportWorkload): Promise<JsonObject> {
  const runtimeId = Number(runtime['ID']);
  const fresh = (await getOr(store, KubernetesRuntimeInstance, runtimeId)) ?? runtime;
  const recorded = await getOr(store, WorkloadInstance, fresh[w.runtimeField]);
  if (recorded && !recorded['DeletionScheduled']) return recorded;
  let [wd] = await store.find(WorkloadDefinition, { Name: w.name });
  if (!wd) wd = JSON.parse(await store.create(WorkloadDefinition, { Name: w.name, YAMLDocument: w.yaml })) as JsonObject;
  let [wi] = (await store.find(WorkloadInstance, { Name: w.name })).filter((o) => !o['DeletionScheduled']);
  if (!wi) {
    wi = JSON.parse(await store.create(WorkloadInstance, { Name: w.name, WorkloadDefinitionID: Number(wd['ID']), KubernetesRuntimeInstanceID: runtimeId })) as JsonObject;
  }
  await store.patch(KubernetesRuntimeInstance, runtimeId, { [w.runtimeField]: Number(wi['ID']) }, { enqueue: false });
  return wi;
}

/**
 * Deletes the runtime's support WorkloadInstance, then its definition, then clears the runtime
 * field. Resolves true once all is gone; false while the WorkloadInstance is still being deleted
 * (call again).
 */
export async function removeSupportWorkload(store: ObjectStore, runtime: JsonObject, w: SupportWorkload): Promise<boolean> {
  const runtimeId = Number(runtime['ID']);
  const fresh = (await getOr(store, KubernetesRuntimeInstance, runtimeId)) ?? runtime;
  const wi = (await getOr(store, WorkloadInstance, fresh[w.runtimeField])) ?? (await store.find(WorkloadInstance, { Name: w.name }))[0];
  if (wi) {
    if (!wi['DeletionScheduled']) await store.delete(WorkloadInstance, Number(wi['ID'])).catch(ignoreGone);
    return false;
  }
  const [wd] = await store.find(WorkloadDefinition, { Name: w.name });
  if (wd) {
    if ((await store.find(WorkloadInstance, { WorkloadDefinitionID: Number(wd['ID']) })).length > 0) return false;
    if (!wd['DeletionScheduled']) await store.delete(WorkloadDefinition, Number(wd['ID'])).catch(ignoreGone);
  }
  if (fresh[w.runtimeField] != null) await store.patch(KubernetesRuntimeInstance, runtimeId, { [w.runtimeField]: null }, { enqueue: false }).catch(ignoreNotFound);
  return true;
}

/** Records a support peer's start, exit and restart as an event on its KubernetesRuntimeInstance. */
export function peerEventsOnRuntime(store: ObjectStore, log: Logger, runtimeId: number, controller: string): (e: PeerEvent) => void {
  return (e) => {
    log.info({ runtimeId, peer: e.peer, reason: e.reason }, e.message);
    void recordEvent(store.db.pool, KubernetesRuntimeInstance.name, runtimeId, { reason: e.reason, note: e.message, type: e.type, reportingController: controller }, new Date()).catch(
      (err: unknown) => log.warn({ err: describeError(err) }, 'cannot record a support peer event'),
    );
  };
}
