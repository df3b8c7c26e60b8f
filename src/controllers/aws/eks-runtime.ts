// AwsEksKubernetesRuntimeInstance reconciler (spec §3.3 "EKS Created/Deleted").
//
// Created/Updated:
//  - provisioned already → keep the KubernetesRuntimeInstance's connection current (token refresh);
//  - no workload uses the runtime yet (lazy provisioning) → record `phase: deferred` and a Status,
//    look again later; the first user starts it (its creation wakes this, src/controllers/graph.ts);
//  - otherwise run the EKS steps as far as they go; each created resource is recorded in
//    ResourceInventory at once. While AWS is still creating something, requeue and look again.
//  - when all steps are done, write the connection onto the KubernetesRuntimeInstance with
//    Reconciled:false (its controller then reconciles it, spec §3.2 Updated) and CreationConfirmed.
// Deleted: the steps in reverse, requeueing while AWS deletes; then the runtime confirms.
import { AwsEksKubernetesRuntimeDefinition, AwsEksKubernetesRuntimeInstance } from '../../kinds/aws.js';
import { KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import { LOCATION_TO_AWS_REGION } from '../../kinds/locations.js';
import type { JsonObject } from '../../kinds/validate.js';
import type { ObjectStore } from '../../store/object-store.js';
import { TerminalError } from '../../reconcile/errors.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import { deleteEks, provisionEks, clusterName, type EksSpec } from '../../providers/aws/eks.js';
import { newInventory, type ResourceInventory } from '../../providers/aws/inventory.js';
import { stackName } from '../../providers/aws/tags.js';
import { tokenNeedsRefresh } from '../../providers/aws/connection.js';
import { describeAwsError } from '../../providers/aws/errors.js';
import { getOrUndefined, idOf, inventoryOf, label, loadAccount, runtimeUser } from './common.js';
import type { AwsControllerDeps } from './deps.js';
import { edgesOf } from '../graph.js';

const KIND = AwsEksKubernetesRuntimeInstance.name;

function specOf(def: JsonObject): EksSpec {
  return {
    zoneCount: Number(def['ZoneCount']),
    instanceType: String(def['DefaultNodeGroupInstanceType']),
    initialSize: Number(def['DefaultNodeGroupInitialSize']),
    minSize: Number(def['DefaultNodeGroupMinimumSize']),
    maxSize: Number(def['DefaultNodeGroupMaximumSize']),
  };
}

interface Loaded {
  def: JsonObject;
  kri: JsonObject | undefined;
  region: string;
  stack: string;
  spec: EksSpec;
}

async function load(store: ObjectStore, obj: JsonObject): Promise<Loaded & { account: Awaited<ReturnType<typeof loadAccount>> }> {
  const what = label(KIND, obj);
  const def = await getOrUndefined(store, AwsEksKubernetesRuntimeDefinition, idOf(obj, 'AwsEksKubernetesRuntimeDefinitionID'));
  if (!def) throw new TerminalError(`${what}: its AwsEksKubernetesRuntimeDefinition ${String(obj['AwsEksKubernetesRuntimeDefinitionID'])} does not exist`);
  const account = await loadAccount(store, idOf(def, 'AWSAccountID'), what);
  const kri = await getOrUndefined(store, KubernetesRuntimeInstance, idOf(obj, 'KubernetesRuntimeInstanceID'));
  const region =
    (typeof obj['Region'] === 'string' && obj['Region']) ||
    (kri ? LOCATION_TO_AWS_REGION[String(kri['Location'])] : undefined) ||
    account.DefaultRegion;
  if (!region) throw new TerminalError(`${what}: no Region, no runtime Location and no account DefaultRegion to provision in`);
  return { def, kri, account, region, stack: stackName(String(obj['Name'] ?? 'eks'), idOf(obj)!), spec: specOf(def) };
}

export function eksRuntimeReconciler(deps: AwsControllerDeps): Reconciler {
  const saver =
    (ctx: ReconcileContext) =>
    async (inventory: ResourceInventory): Promise<void> => {
      const status = inventory.waitingFor ? `${inventory.phase}: waiting for ${inventory.waitingFor}` : inventory.phase;
      await ctx.patchSelf({ ResourceInventory: inventory as unknown as JsonObject, Status: status });
    };

  async function writeConnection(ctx: ReconcileContext, obj: JsonObject, loaded: Loaded & { account: Awaited<ReturnType<typeof loadAccount>> }, trigger: boolean): Promise<void> {
    if (!loaded.kri) return;
    const session = deps.provider(ctx.store).session(loaded.account, loaded.region);
    const conn = await deps.connectionResolver.resolve({
      session,
      clusterName: clusterName(loaded.stack),
      now: ctx.clock.now(),
      signal: ctx.signal,
    });
    const changes: JsonObject = {
      APIEndpoint: conn.apiEndpoint,
      CACertificate: conn.caCertificate,
      ...(conn.token ? { ConnectionToken: conn.token } : {}),
      ...(conn.tokenExpiration ? { ConnectionTokenExpiration: conn.tokenExpiration.toISOString() } : {}),
      ...(conn.certificate ? { Certificate: conn.certificate } : {}),
      ...(conn.certificateKey ? { CertificateKey: conn.certificateKey } : {}),
    };
    const kriId = idOf(loaded.kri)!;
    if (trigger) {
      // Reconciled:false makes the runtime controller reconcile the instance now that it can be reached (§3.2).
      await ctx.store.patch(KubernetesRuntimeInstance, kriId, { ...changes, Reconciled: false });
    } else {
      await ctx.store.patch(KubernetesRuntimeInstance, kriId, changes, { enqueue: false });
    }
    ctx.log.info({ runtime: kriId, trigger }, 'wrote the EKS connection onto the KubernetesRuntimeInstance');
  }

  async function reconcile(ctx: ReconcileContext, obj: JsonObject): Promise<ReconcileResult> {
    const loaded = await load(ctx.store, obj);
    let inventory = inventoryOf(obj);
    if (inventory?.phase === 'created') {
      // Provisioned: keep the connection usable (the token lasts 14 minutes; resyncs come through here).
      const kri = loaded.kri;
      const missing = kri && !kri['APIEndpoint'];
      const stale = kri && kri['ConnectionToken'] !== undefined && tokenNeedsRefresh(kri['ConnectionTokenExpiration'] as string | undefined, ctx.clock.now(), deps.tokenRefreshMarginMs);
      if (missing || stale) await writeConnection(ctx, obj, loaded, Boolean(missing));
      if (!obj['CreationConfirmed']) await ctx.patchSelf({ CreationConfirmed: new Date(ctx.clock.now()).toISOString() });
      return;
    }
    if (deps.lazyProvisioning && (!inventory || inventory.phase === 'deferred')) {
      const kriId = idOf(obj, 'KubernetesRuntimeInstanceID')!;
      const user = await runtimeUser(ctx.store, kriId);
      if (!user) {
        if (inventory?.phase !== 'deferred') {
          await ctx.patchSelf({
            ResourceInventory: newInventory(loaded.stack, loaded.region, 'deferred') as unknown as JsonObject,
            Status: `deferred: no workload uses ${loaded.kri ? label('KubernetesRuntimeInstance', loaded.kri) : 'this runtime'} yet; the EKS cluster is provisioned for the first one`,
          });
          await ctx.recordEvent({
            reason: 'ProvisioningDeferred',
            note: `the EKS cluster for ${label(KIND, obj)} is provisioned when the first workload is deployed to it`,
          });
        }
        return { requeueAfterMs: deps.lazyCheckIntervalMs };
      }
      ctx.log.info({ user }, 'first user of the runtime; provisioning the EKS cluster');
      await ctx.recordEvent({ reason: 'ProvisioningStarted', note: `${user} uses this runtime: provisioning the EKS cluster ${loaded.stack}` });
      inventory = undefined;
    }
    if (!obj['CreationAcknowledged']) await ctx.patchSelf({ CreationAcknowledged: new Date(ctx.clock.now()).toISOString() });
    const session = deps.provider(ctx.store).session(loaded.account, loaded.region);
    let result;
    result = await provisionEks({
      session,
      stack: loaded.stack,
      spec: loaded.spec,
      inventory: inventory?.phase === 'deferred' ? undefined : inventory,
      save: saver(ctx),
      signal: ctx.signal,
      poll: deps.eksPoll,
    });
    if (!result.done) return { requeueAfterMs: result.pollMs };
    await writeConnection(ctx, obj, loaded, true);
    await ctx.patchSelf({
      CreationConfirmed: new Date(ctx.clock.now()).toISOString(),
      Status: `created: EKS cluster ${loaded.stack} in ${loaded.region}`,
    });
    return;
  }

  return {
    kind: KIND,
    controller: 'AwsController',
    // A first user of a deferred runtime wakes it (src/controllers/graph.ts).
    ...edgesOf(KIND),
    created: reconcile,
    updated: reconcile,
    async deleted(ctx, obj) {
      const inventory = inventoryOf(obj);
      // Never provisioned (deferred, or not started): nothing exists in AWS.
      if (!inventory || inventory.phase === 'deferred' || inventory.phase === 'deleted') return;
      const loaded = await load(ctx.store, obj);
      if (!obj['DeletionAcknowledged']) await ctx.patchSelf({ DeletionAcknowledged: new Date(ctx.clock.now()).toISOString() });
      const session = deps.provider(ctx.store).session(loaded.account, inventory.region || loaded.region);
      let result;
      result = await deleteEks({ session, stack: inventory.stack, spec: loaded.spec, inventory, save: saver(ctx), signal: ctx.signal, poll: deps.eksPoll });
      if (!result.done) return { requeueAfterMs: result.pollMs };
      return;
    },
  };
}

/**
 * A fresh connection token for a provisioned EKS runtime, written onto its KubernetesRuntimeInstance.
 * The kube provider can call this when `tokenNeedsRefresh(ConnectionTokenExpiration)`; resyncs of the
 * AwsEksKubernetesRuntimeInstance also refresh it.
 */
export async function refreshRuntimeConnection(deps: AwsControllerDeps, store: ObjectStore, kriId: number, now = Date.now()): Promise<boolean> {
  const [eks] = await store.find(AwsEksKubernetesRuntimeInstance, { KubernetesRuntimeInstanceID: kriId });
  if (!eks || inventoryOf(eks)?.phase !== 'created') return false;
  const loaded = await load(store, eks);
  try {
    const conn = await deps.connectionResolver.resolve({
      session: deps.provider(store).session(loaded.account, loaded.region),
      clusterName: clusterName(loaded.stack),
      now,
    });
    if (!conn.token) return false;
    await store.patch(
      KubernetesRuntimeInstance,
      kriId,
      { ConnectionToken: conn.token, ...(conn.tokenExpiration ? { ConnectionTokenExpiration: conn.tokenExpiration.toISOString() } : {}) },
      { enqueue: false },
    );
    return true;
  } catch (err) {
    throw new Error(`cannot refresh the connection token of KubernetesRuntimeInstance ${kriId}: ${describeAwsError(err)}`);
  }
}
