// AwsObjectStorageBucketInstance reconciler (spec §3.3 "S3 Created").
//
// Created/Updated (skipped while InterruptReconciliation is set):
//  1. attach to the WorkloadInstance; wait for its EKS runtime and for the workload to be deployed
//     (the bucket wiring goes onto its resources);
//  2. the S3 stack (bucket, access policy, IRSA role), recorded in ResourceInventory;
//  3. the workload: a ConfigMap WRI `<workload>-s3-config-<6 random>` holds the bucket name under
//     the key `WorkloadBucketEnvVar`; a ServiceAccount WRI `WorkloadServiceAccountName` with the
//     `eks.amazonaws.com/role-arn` annotation is added when the workload has none; then the
//     WorkloadInstance is PATCHed Reconciled:false (spec §1.6) so its controller applies them.
//  4. the workload's own resources are changed in the cluster, not in their WRIs: every container
//     of every pod abstraction (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) gets
//     `WorkloadBucketEnvVar` from the ConfigMap, and the workload's own ServiceAccount gets the
//     role annotation, by server-side apply with a field manager of our own (`threeport-aws`).
//     Upstream edits those WRIs instead; our workload controller re-renders its resources from
//     the definition on every update, which would drop such edits, while fields another manager
//     owns survive its applies. (Bare Pods are not changed: their env is immutable.)
// Deleted: the same in reverse (our fields are withdrawn by applying an empty configuration, our
// WRIs are scheduled for deletion), then the stack is deleted in reverse (the bucket is emptied
// first), and the attached reference dropped.
import { AwsObjectStorageBucketDefinition, AwsObjectStorageBucketInstance } from '../../kinds/aws.js';
import { WorkloadInstance } from '../../kinds/workload.js';
import type { JsonObject } from '../../kinds/validate.js';
import { ReconcileError, TerminalError, isTerminal } from '../../reconcile/errors.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import { bucketName, deleteBucket, provisionBucket } from '../../providers/aws/s3.js';
import type { ResourceInventory } from '../../providers/aws/inventory.js';
import type { RuntimeNetwork } from '../../providers/aws/eks.js';
import { stackName } from '../../providers/aws/tags.js';
import { KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import { KubeError } from '../../providers/kube/errors.js';
import type { KubeClusterClient, KubeObject } from '../../providers/kube/client.js';
import { describeError } from '../../errors.js';
import {
  OWNER_ANNOTATION_PREFIX,
  POD_ABSTRACTIONS,
  annotations,
  canonical,
  createWri,
  ensureAttached,
  getOrUndefined,
  idOf,
  inventoryOf,
  label,
  loadAccount,
  metadata,
  ownedWri,
  podSpecOf,
  randomFrom,
  removeAttached,
  scheduleWriDeletion,
  updateWri,
  workloadNamespace,
  workloadResources,
  workloadRuntime,
  type Wri,
} from './common.js';
import { edgesOf } from '../graph.js';
import type { AwsControllerDeps } from './deps.js';

const KIND = AwsObjectStorageBucketInstance.name;
export const S3_OWNER_KEY = 'aws-object-storage-bucket-instance';
export const ROLE_ARN_ANNOTATION = 'eks.amazonaws.com/role-arn';

/** The field manager whose fields on the workload's own objects are the bucket wiring. */
export const OVERLAY_FIELD_MANAGER = 'threeport-aws';

type Container = { name?: string };

function containersOf(def: JsonObject): string[] {
  return ((podSpecOf(def)?.['containers'] ?? []) as Container[]).flatMap((c) => (c.name ? [c.name] : []));
}

/** A pod template path with `spec` at its end, for the object's kind. */
function podTemplateOverlay(kind: string, podSpec: JsonObject): JsonObject {
  const template = { spec: podSpec };
  return kind === 'CronJob' ? { jobTemplate: { spec: { template } } } : { template };
}

/** The partial object that adds the env var to every container (server-side apply merges it by container and env name). */
function envOverlay(target: KubeObject, containers: string[], envVar: string, configMap: string): KubeObject {
  return {
    apiVersion: target.apiVersion,
    kind: target.kind,
    metadata: { name: target.metadata.name, ...(target.metadata.namespace ? { namespace: target.metadata.namespace } : {}) },
    spec: podTemplateOverlay(target.kind, {
      containers: containers.map((name) => ({ name, env: [{ name: envVar, valueFrom: { configMapKeyRef: { name: configMap, key: envVar } } }] })),
    }),
  };
}

/** Applying just the identity withdraws every field this manager set before. */
function emptyOverlay(target: KubeObject): KubeObject {
  return {
    apiVersion: target.apiVersion,
    kind: target.kind,
    metadata: { name: target.metadata.name, ...(target.metadata.namespace ? { namespace: target.metadata.namespace } : {}) },
  };
}

/** Where a WRI's object lives: its own namespace, else the workload's. */
function targetOf(wri: Wri, namespace: string | undefined): KubeObject {
  const meta = metadata(wri.def);
  const ns = typeof meta['namespace'] === 'string' ? meta['namespace'] : namespace;
  return {
    apiVersion: String(wri.def['apiVersion']),
    kind: String(wri.def['kind']),
    metadata: { name: String(meta['name']), ...(ns ? { namespace: ns } : {}) },
  };
}

async function applyOverlay(client: KubeClusterClient, overlay: KubeObject, signal: AbortSignal): Promise<'applied' | 'missing'> {
  const ref = {
    apiVersion: overlay.apiVersion,
    kind: overlay.kind,
    name: overlay.metadata.name,
    ...(overlay.metadata.namespace ? { namespace: overlay.metadata.namespace } : {}),
  };
  // Never create the object from a fragment: it must exist (the workload controller makes it).
  if (!(await client.get(ref, { signal }))) return 'missing';
  try {
    await client.apply(overlay, { fieldManager: OVERLAY_FIELD_MANAGER, force: false, signal });
  } catch (err) {
    if (err instanceof KubeError && err.failure === 'Conflict') {
      throw new TerminalError(`${overlay.kind} ${overlay.metadata.name} already sets what the bucket wiring sets (${describeError(err)}); remove it from the workload's manifest`);
    }
    if (err instanceof KubeError && err.failure === 'NotFound') return 'missing';
    throw err;
  }
  return 'applied';
}

function withRoleAnnotation(def: JsonObject, roleArn: string | undefined): JsonObject | undefined {
  const current = annotations(def)[ROLE_ARN_ANNOTATION];
  if (current === roleArn) return undefined;
  const copy = structuredClone(def);
  const meta = (copy['metadata'] ??= {}) as JsonObject;
  const ann = { ...((meta['annotations'] ?? {}) as Record<string, string>) };
  if (roleArn === undefined) delete ann[ROLE_ARN_ANNOTATION];
  else ann[ROLE_ARN_ANNOTATION] = roleArn;
  meta['annotations'] = ann;
  return copy;
}

function serviceAccountOf(wris: Wri[], name: string): Wri | undefined {
  return wris.find((w) => w.def['kind'] === 'ServiceAccount' && metadata(w.def)['name'] === name && !w.scheduledForDeletion);
}

function ownerAnnotation(id: number): Record<string, string> {
  return { [`${OWNER_ANNOTATION_PREFIX}${S3_OWNER_KEY}`]: String(id) };
}

export function s3Reconciler(deps: AwsControllerDeps): Reconciler {
  const saver = (ctx: ReconcileContext) => async (inventory: ResourceInventory) => {
    const status = inventory.waitingFor ? `${inventory.phase}: waiting for ${inventory.waitingFor}` : inventory.phase;
    const { delivered: _, ...saved } = inventory;
    await ctx.patchSelf({ ResourceInventory: saved as unknown as JsonObject, Status: status });
  };

  async function reconcile(ctx: ReconcileContext, obj: JsonObject): Promise<ReconcileResult> {
    if (obj['InterruptReconciliation'] === true) {
      ctx.log.info('InterruptReconciliation is set; nothing done');
      return;
    }
    const id = idOf(obj)!;
    const what = label(KIND, obj);
    const def = await getOrUndefined(ctx.store, AwsObjectStorageBucketDefinition, idOf(obj, 'AwsObjectStorageBucketDefinitionID'));
    if (!def) throw new TerminalError(`${what}: its AwsObjectStorageBucketDefinition does not exist`);
    const wiId = idOf(obj, 'WorkloadInstanceID')!;
    const wi = await getOrUndefined(ctx.store, WorkloadInstance, wiId);
    if (!wi) throw new TerminalError(`${what}: WorkloadInstance ${wiId} does not exist`);
    if (wi['DeletionScheduled']) return;
    await ensureAttached(ctx.store, wiId, KIND, id);

    const runtime = await workloadRuntime(ctx.store, wi, what);
    if (!runtime.ready) {
      await ctx.patchSelf({ Status: `waiting for ${runtime.waitingFor}` });
      return { requeueAfterMs: deps.waitPollMs };
    }
    let wris = await workloadResources(ctx.store, wiId);
    const wiredBefore = inventoryOf(obj)?.delivered === true;
    if (wris.length === 0 || (wi['Reconciled'] !== true && !wiredBefore)) {
      await ctx.patchSelf({ Status: `waiting for ${label('WorkloadInstance', wi)} to be deployed before its resources get the bucket` });
      return { requeueAfterMs: deps.waitPollMs };
    }
    const account = await loadAccount(ctx.store, idOf(def, 'AwsAccountID'), what);
    const session = deps.provider(ctx.store).session(account, runtime.network.region);
    const stack = stackName(String(obj['Name'] ?? 'bucket'), id);
    const bucket = bucketName(String(account.AccountID ?? 'account'), id, String(obj['Name'] ?? 'bucket'));
    const serviceAccount = String(def['WorkloadServiceAccountName']);
    const envVar = String(def['WorkloadBucketEnvVar']);
    if (!obj['CreationAcknowledged']) await ctx.patchSelf({ CreationAcknowledged: new Date(ctx.clock.now()).toISOString() });

    let result;
    result = await provisionBucket({
      session,
      stack,
      network: runtime.network,
      bucket: { bucketName: bucket, publicRead: def['PublicReadAccess'] === true, serviceAccountName: serviceAccount },
      inventory: inventoryOf(obj),
      save: saver(ctx),
      signal: ctx.signal,
    });
    if (!result.done) return { requeueAfterMs: result.pollMs };
    const roleArn = result.inventory.resources['s3-role']!.arn!;

    // The workload's resources: our own WRIs first.
    wris = await workloadResources(ctx.store, wiId);
    let changed = false;
    const namespace = workloadNamespace(wris);
    const ownSa = ownedWri(wris, S3_OWNER_KEY, id, 'ServiceAccount');
    const sa = serviceAccountOf(wris, serviceAccount);
    if (!sa) {
      await createWri(ctx, wiId, {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: {
          name: serviceAccount,
          ...(namespace ? { namespace } : {}),
          annotations: { [ROLE_ARN_ANNOTATION]: roleArn, ...ownerAnnotation(id) },
        },
      });
      changed = true;
    } else if (sa === ownSa) {
      const next = withRoleAnnotation(sa.def, roleArn);
      if (next) {
        await updateWri(ctx, sa.id, next);
        changed = true;
      }
    }
    const existingCm = ownedWri(wris, S3_OWNER_KEY, id, 'ConfigMap');
    const cmName = existingCm
      ? String(metadata(existingCm.def)['name'])
      : `${String(wi['Name'] ?? 'workload').toLowerCase().slice(0, 40)}-s3-config-${randomFrom('abcdefghijklmnopqrstuvwxyz0123456789', 6)}`;
    const cm: JsonObject = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: cmName, ...(namespace ? { namespace } : {}), annotations: ownerAnnotation(id) },
      data: { [envVar]: bucket },
    };
    if (!existingCm) {
      await createWri(ctx, wiId, cm);
      changed = true;
    } else if (canonical(existingCm.def['data']) !== canonical(cm['data'])) {
      await updateWri(ctx, existingCm.id, { ...existingCm.def, data: cm['data'] });
      changed = true;
    }
    // Each WRI write above left the workload Reconciled: false in its transaction: it applies them.

    // Then the workload's own objects, in the cluster.
    const client = deps.kube(ctx.store).forRuntime(runtime.kri);
    const missing: string[] = [];
    const overlays: KubeObject[] = [];
    if (sa && sa !== ownSa) {
      const target = targetOf(sa, namespace);
      overlays.push({ ...target, metadata: { ...target.metadata, annotations: { [ROLE_ARN_ANNOTATION]: roleArn } } });
    }
    for (const w of wris) {
      if (w.scheduledForDeletion || !POD_ABSTRACTIONS.includes(String(w.def['kind'])) || ownedWri([w], S3_OWNER_KEY, id)) continue;
      const containers = containersOf(w.def);
      if (containers.length > 0) overlays.push(envOverlay(targetOf(w, namespace), containers, envVar, cmName));
    }
    for (const overlay of overlays) {
      try {
        if ((await applyOverlay(client, overlay, ctx.signal)) === 'missing') missing.push(`${overlay.kind} ${overlay.metadata.name}`);
      } catch (err) {
        if (isTerminal(err)) throw err;
        throw new ReconcileError(`${what}: cannot wire the bucket into ${overlay.kind} ${overlay.metadata.name}: ${describeError(err)}`, { cause: err });
      }
    }
    if (missing.length > 0) {
      await ctx.patchSelf({ Status: `waiting for ${missing.join(', ')} of ${label('WorkloadInstance', wi)} to exist in the cluster` });
      return { requeueAfterMs: deps.waitPollMs };
    }
    if (!wiredBefore || changed) {
      await ctx.patchSelf({
        ResourceInventory: { ...result.inventory, delivered: true } as unknown as JsonObject,
        CreationConfirmed: obj['CreationConfirmed'] ?? new Date(ctx.clock.now()).toISOString(),
        Status: `created: bucket ${bucket}; ServiceAccount ${serviceAccount} assumes ${roleArn}; env ${envVar} from ConfigMap ${cmName}`,
      });
    }
    return;
  }

  return {
    kind: KIND,
    // Its WRIs leave the workload Reconciled: false in their transaction (src/controllers/graph.ts).
    ...edgesOf(KIND),
    controller: 'AwsController',
    created: reconcile,
    updated: reconcile,
    async deleted(ctx, obj) {
      const id = idOf(obj)!;
      const wiId = idOf(obj, 'WorkloadInstanceID');
      const def = await getOrUndefined(ctx.store, AwsObjectStorageBucketDefinition, idOf(obj, 'AwsObjectStorageBucketDefinitionID'));
      const wi = await getOrUndefined(ctx.store, WorkloadInstance, wiId);
      let network: RuntimeNetwork | undefined;
      if (wi && wiId !== undefined) {
        const wris = await workloadResources(ctx.store, wiId);
        const namespace = workloadNamespace(wris);
        if (!wi['DeletionScheduled']) {
          // Withdraw our fields from the workload's own objects (when its cluster can still be reached).
          const kri = await getOrUndefined(ctx.store, KubernetesRuntimeInstance, idOf(wi, 'KubernetesRuntimeInstanceID'));
          if (kri?.['APIEndpoint']) {
            const client = deps.kube(ctx.store).forRuntime(kri);
            const sa = serviceAccountOf(wris, String(def?.['WorkloadServiceAccountName'] ?? ''));
            const targets = wris.filter(
              (w) =>
                !w.scheduledForDeletion &&
                !ownedWri([w], S3_OWNER_KEY, id) &&
                (POD_ABSTRACTIONS.includes(String(w.def['kind'])) || w === sa),
            );
            for (const w of targets) {
              try {
                await applyOverlay(client, emptyOverlay(targetOf(w, namespace)), ctx.signal);
              } catch (err) {
                throw new ReconcileError(`${label(KIND, obj)}: cannot unwire the bucket from ${String(w.def['kind'])} ${String(metadata(w.def)['name'])}: ${describeError(err)}`, { cause: err });
              }
            }
          }
        }
        for (const kind of ['ServiceAccount', 'ConfigMap']) {
          const own = ownedWri(wris, S3_OWNER_KEY, id, kind);
          // The workload, left Reconciled: false by the same transaction, removes it from the cluster.
          if (own && !own.scheduledForDeletion) await scheduleWriDeletion(ctx, own.id, ctx.clock.now());
        }
        const runtime = await workloadRuntime(ctx.store, wi, label(KIND, obj)).catch(() => undefined);
        if (runtime?.ready) network = runtime.network;
      }
      const inventory = inventoryOf(obj);
      if (inventory && inventory.phase !== 'deleted' && inventory.phase !== 'deferred') {
        if (!obj['DeletionAcknowledged']) await ctx.patchSelf({ DeletionAcknowledged: new Date(ctx.clock.now()).toISOString() });
        const account = await loadAccount(ctx.store, def ? idOf(def, 'AwsAccountID') : undefined, label(KIND, obj));
        const session = deps.provider(ctx.store).session(account, inventory.region);
        let result;
        result = await deleteBucket({
          session,
          stack: inventory.stack,
          network: network ?? ({ clusterName: '', region: inventory.region } as RuntimeNetwork),
          bucket: {
            bucketName: inventory.resources['bucket']?.id ?? bucketName(String(account.AccountID ?? 'account'), id, String(obj['Name'] ?? 'bucket')),
            publicRead: false,
            serviceAccountName: '',
          },
          inventory,
          save: saver(ctx),
          signal: ctx.signal,
        });
        // Upstream looks again 10 s after the first delete.
        if (!result.done) return { requeueAfterMs: Math.min(result.pollMs, 10_000) };
      }
      await removeAttached(ctx.store, wiId, KIND, id);
      return;
    },
  };
}
