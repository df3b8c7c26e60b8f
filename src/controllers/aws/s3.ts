// AwsObjectStorageBucketInstance reconciler (spec §3.3 "S3 Created").
//
// Created/Updated (skipped while InterruptReconciliation is set):
//  1. attach to the WorkloadInstance; wait for its EKS runtime and for the workload's own
//     resources (the env var goes onto them);
//  2. the S3 stack (bucket, access policy, IRSA role), recorded in ResourceInventory;
//  3. the workload's resources: the ServiceAccount `WorkloadServiceAccountName` gets the
//     `eks.amazonaws.com/role-arn` annotation (a ServiceAccount WRI is added if the workload has
//     none), a ConfigMap `<workload>-s3-config-<6 random>` holds the bucket name, and every
//     container of every pod abstraction (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
//     CronJob) gets `WorkloadBucketEnvVar` from it. Changed WRIs are marked unreconciled and the
//     WorkloadInstance is PATCHed Reconciled:false (spec §1.6).
// Deleted: the WRI changes are undone, then the stack is deleted in reverse (the bucket is
// emptied first), and the attached reference dropped.
import { AwsObjectStorageBucketDefinition, AwsObjectStorageBucketInstance } from '../../kinds/aws.js';
import { WorkloadInstance } from '../../kinds/workload.js';
import type { JsonObject } from '../../kinds/validate.js';
import { TerminalError } from '../../reconcile/errors.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import { bucketName, deleteBucket, provisionBucket } from '../../providers/aws/s3.js';
import type { ResourceInventory } from '../../providers/aws/inventory.js';
import type { RuntimeNetwork } from '../../providers/aws/eks.js';
import { stackName } from '../../providers/aws/tags.js';
import {
  OWNER_ANNOTATION_PREFIX,
  POD_ABSTRACTIONS,
  annotations,
  asReconcileError,
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
  retriggerWorkload,
  scheduleWriDeletion,
  updateWri,
  workloadNamespace,
  workloadResources,
  workloadRuntime,
  type Wri,
} from './common.js';
import type { AwsControllerDeps } from './deps.js';

const KIND = AwsObjectStorageBucketInstance.name;
export const S3_OWNER_KEY = 'aws-object-storage-bucket-instance';
export const ROLE_ARN_ANNOTATION = 'eks.amazonaws.com/role-arn';

type Container = { name?: string; env?: Array<{ name: string; value?: string; valueFrom?: JsonObject }> };

/** Adds (add=true) or removes the env var on every container; returns the new manifest, or undefined when nothing changes. */
function withBucketEnv(def: JsonObject, envVar: string, configMap: string, add: boolean): JsonObject | undefined {
  const copy = structuredClone(def);
  const pod = podSpecOf(copy);
  const containers = (pod?.['containers'] ?? []) as Container[];
  let changed = false;
  for (const c of containers) {
    const env = c.env ?? [];
    const at = env.findIndex((e) => e.name === envVar);
    const wanted = { name: envVar, valueFrom: { configMapKeyRef: { name: configMap, key: envVar } } };
    if (add) {
      if (at >= 0 && JSON.stringify(env[at]) === JSON.stringify(wanted)) continue;
      if (at >= 0) env[at] = wanted;
      else env.push(wanted);
      c.env = env;
      changed = true;
    } else if (at >= 0 && (env[at]!.valueFrom as { configMapKeyRef?: { name?: string } } | undefined)?.configMapKeyRef?.name === configMap) {
      env.splice(at, 1);
      c.env = env;
      changed = true;
    }
  }
  return changed ? copy : undefined;
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
    await ctx.patchSelf({ ResourceInventory: inventory as unknown as JsonObject, Status: status });
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
    const wiredBefore = String(obj['Status'] ?? '').startsWith('created');
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
    try {
      result = await provisionBucket({
        session,
        stack,
        network: runtime.network,
        bucket: { bucketName: bucket, publicRead: def['PublicReadAccess'] === true, serviceAccountName: serviceAccount },
        inventory: inventoryOf(obj),
        save: saver(ctx),
        signal: ctx.signal,
      });
    } catch (err) {
      throw asReconcileError(err);
    }
    if (!result.done) return { requeueAfterMs: result.pollMs };
    const roleArn = result.inventory.resources['s3-role']!.arn!;

    // The workload's resources.
    wris = await workloadResources(ctx.store, wiId);
    let changed = false;
    const namespace = workloadNamespace(wris);
    const sa = serviceAccountOf(wris, serviceAccount);
    if (sa) {
      const next = withRoleAnnotation(sa.def, roleArn);
      if (next) {
        await updateWri(ctx.store, sa.id, next);
        changed = true;
      }
    } else {
      await createWri(ctx.store, wiId, {
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: {
          name: serviceAccount,
          ...(namespace ? { namespace } : {}),
          annotations: { [ROLE_ARN_ANNOTATION]: roleArn, ...ownerAnnotation(id) },
        },
      });
      changed = true;
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
      await createWri(ctx.store, wiId, cm);
      changed = true;
    } else if (JSON.stringify(existingCm.def['data']) !== JSON.stringify(cm['data'])) {
      await updateWri(ctx.store, existingCm.id, { ...existingCm.def, data: cm['data'] });
      changed = true;
    }
    for (const w of wris) {
      if (w.scheduledForDeletion || !POD_ABSTRACTIONS.includes(String(w.def['kind']))) continue;
      const next = withBucketEnv(w.def, envVar, cmName, true);
      if (next) {
        await updateWri(ctx.store, w.id, next);
        changed = true;
      }
    }
    if (changed) await retriggerWorkload(ctx.store, wiId);
    if (!wiredBefore || changed) {
      await ctx.patchSelf({
        CreationConfirmed: obj['CreationConfirmed'] ?? new Date(ctx.clock.now()).toISOString(),
        Status: `created: bucket ${bucket}; ServiceAccount ${serviceAccount} assumes ${roleArn}; env ${envVar} from ConfigMap ${cmName}`,
      });
    }
    return;
  }

  return {
    kind: KIND,
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
        let changed = false;
        const cm = ownedWri(wris, S3_OWNER_KEY, id, 'ConfigMap');
        if (!wi['DeletionScheduled']) {
          const envVar = String(def?.['WorkloadBucketEnvVar'] ?? '');
          const cmName = cm ? String(metadata(cm.def)['name']) : '';
          for (const w of wris) {
            if (!cm || w.scheduledForDeletion || !POD_ABSTRACTIONS.includes(String(w.def['kind']))) continue;
            const next = withBucketEnv(w.def, envVar, cmName, false);
            if (next) {
              await updateWri(ctx.store, w.id, next);
              changed = true;
            }
          }
          const ownSa = ownedWri(wris, S3_OWNER_KEY, id, 'ServiceAccount');
          const sa = ownSa ?? serviceAccountOf(wris, String(def?.['WorkloadServiceAccountName'] ?? ''));
          if (ownSa && !ownSa.scheduledForDeletion) {
            await scheduleWriDeletion(ctx.store, ownSa.id, ctx.clock.now());
            changed = true;
          } else if (sa) {
            const next = withRoleAnnotation(sa.def, undefined);
            if (next) {
              await updateWri(ctx.store, sa.id, next);
              changed = true;
            }
          }
        }
        if (cm && !cm.scheduledForDeletion) {
          await scheduleWriDeletion(ctx.store, cm.id, ctx.clock.now());
          changed = true;
        }
        if (changed && !wi['DeletionScheduled']) await retriggerWorkload(ctx.store, wiId);
        const runtime = await workloadRuntime(ctx.store, wi, label(KIND, obj)).catch(() => undefined);
        if (runtime?.ready) network = runtime.network;
      }
      const inventory = inventoryOf(obj);
      if (inventory && inventory.phase !== 'deleted' && inventory.phase !== 'deferred') {
        if (!obj['DeletionAcknowledged']) await ctx.patchSelf({ DeletionAcknowledged: new Date(ctx.clock.now()).toISOString() });
        const account = await loadAccount(ctx.store, def ? idOf(def, 'AwsAccountID') : undefined, label(KIND, obj));
        const session = deps.provider(ctx.store).session(account, inventory.region);
        let result;
        try {
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
        } catch (err) {
          throw asReconcileError(err);
        }
        // Upstream looks again 10 s after the first delete.
        if (!result.done) return { requeueAfterMs: Math.min(result.pollMs, 10_000) };
      }
      await removeAttached(ctx.store, wiId, KIND, id);
      return;
    },
  };
}
