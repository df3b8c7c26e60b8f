// secret controller (spec §3.6), AWS Secrets Manager backend, direct delivery.
//
// SecretDefinition
//   Created/Updated: the Data that travels with the request (encrypted values; never stored on the
//   row) is decrypted and written to Secrets Manager as one JSON secret named after the definition,
//   in its account's DefaultRegion. A secret of that name that Threeport did not create is refused.
//   Deleted: the secret is deleted without a recovery window (so the name can be used again).
// SecretInstance (docs/support-services.md, "Secrets": why direct delivery, not external-secrets)
//   Created/Updated: the control plane reads the definition's secret from Secrets Manager with the
//   account's credentials and server-side-applies a Kubernetes Secret named after the instance into
//   the namespace of its WorkloadInstance (the workload's Namespace) or HelmWorkloadInstance
//   (ReleaseNamespace) on the runtime. It then asks to run again after the refresh interval: each
//   run compares the Secrets Manager VersionId with the one recorded on the Secret and re-applies
//   on a change (event SecretRotated). A workload that goes first takes the Secret with it.
//   Deleted: the Secret is deleted (only if this instance wrote it).
import { SecretDefinition, SecretInstance } from '../../kinds/secret.js';
import { HelmWorkloadInstance } from '../../kinds/helm-workload.js';
import { WorkloadInstance } from '../../kinds/workload.js';
import type { JsonObject } from '../../kinds/validate.js';
import { ReconcileError, TerminalError } from '../../reconcile/errors.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import { deleteSecret, getSecretValue, putSecret } from '../../providers/aws/secrets.js';
import { KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import type { KubeObject } from '../../providers/kube/client.js';
import { stackName } from '../../providers/aws/tags.js';
import {
  OWNER_ANNOTATION_PREFIX,
  canonical,
  ensureAttached,
  getOrUndefined,
  idOf,
  label,
  loadAccount,
  removeAttached,
  workloadNamespace,
  workloadResources,
} from '../aws/common.js';
import { controllerDeps, type AwsControllerDeps, type AwsControllerOptions } from '../aws/deps.js';
import { edgesOf } from '../graph.js';
import { untilWoken } from '../../reconcile/wait-for.js';

export const SECRET_CONTROLLER_NAME = 'SecretController';
/** On the delivered Secret: which SecretInstance wrote it, and the Secrets Manager version it holds. */
export const SECRET_OWNER_ANNOTATION = `${OWNER_ANNOTATION_PREFIX}secret-instance`;
export const SECRET_VERSION_ANNOTATION = `${OWNER_ANNOTATION_PREFIX}secret-version`;
/** Refresh interval of every SecretInstance (ms); rotation reaches the Secret within it. */
export const SECRET_REFRESH_ENV = 'THREEPORT_SECRET_REFRESH_INTERVAL_MS';
export const DEFAULT_SECRET_REFRESH_MS = 60_000;

export interface SecretControllerOptions {
  /** How often a delivered Secret is compared with Secrets Manager (default $THREEPORT_SECRET_REFRESH_INTERVAL_MS, else 60 s). */
  refreshIntervalMs?: number;
}

function refreshFromEnv(): number {
  const v = Number(process.env[SECRET_REFRESH_ENV]);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_SECRET_REFRESH_MS;
}

function decryptData(ctx: ReconcileContext): Record<string, string> | undefined {
  const data = ctx.payload?.['Data'];
  if (!data || typeof data !== 'object') return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new TerminalError(`SecretDefinition Data.${k} must be a string`);
    out[k] = ctx.store.decrypt(v);
  }
  return out;
}

function secretDefinitionReconciler(deps: AwsControllerDeps): Reconciler {
  async function write(ctx: ReconcileContext, obj: JsonObject): Promise<ReconcileResult> {
    const what = label(SecretDefinition.name, obj);
    const account = await loadAccount(ctx.store, idOf(obj, 'AwsAccountID'), what);
    const session = deps.provider(ctx.store).session(account);
    const name = String(obj['Name']);
    const out = await putSecret(session, { name, stack: stackName(name, idOf(obj)!), data: decryptData(ctx) }, ctx.signal);
    await ctx.patchSelf({ Status: `stored in AWS Secrets Manager as ${name} (${session.region})` });
    ctx.log.info({ secret: name, region: session.region, created: out.created }, 'secret written to AWS Secrets Manager');
  }
  return {
    kind: SecretDefinition.name,
    controller: SECRET_CONTROLLER_NAME,
    created: write,
    updated: write,
    async deleted(ctx, obj) {
      const what = label(SecretDefinition.name, obj);
      let account;
      try {
        account = await loadAccount(ctx.store, idOf(obj, 'AwsAccountID'), what);
      } catch (err) {
        // Never reconciled successfully (no ObservedGeneration), so never stored in AWS: there is
        // nothing to remove there, and the delete must not wait forever for an account that will
        // not come (upstream's integration test creates one with no account at all).
        if (err instanceof TerminalError && typeof obj['ObservedGeneration'] !== 'number') {
          await ctx.recordEvent({ reason: 'SecretNeverStored', note: `${what} was never stored in AWS Secrets Manager (${err.message}); nothing to remove there` });
          return;
        }
        throw err;
      }
      const session = deps.provider(ctx.store).session(account);
      const name = String(obj['Name']);
      const r = await deleteSecret(session, { name, stack: stackName(name, idOf(obj)!) }, ctx.signal);
      if (r === 'foreign') {
        await ctx.recordEvent({ reason: 'SecretLeftInPlace', note: `${name} in AWS Secrets Manager was not created by Threeport for ${what}; it was left in place`, type: 'Warning' });
      }
    },
  };
}

/** Where the Secret goes: the runtime, its namespace there, or what delivery waits for. */
type Target =
  | { kind: 'ready'; kri: JsonObject; namespace: string; workload: string }
  | { kind: 'waiting'; reason: string }
  | { kind: 'gone'; reason: string };

async function targetOf(ctx: ReconcileContext, obj: JsonObject, what: string): Promise<Target> {
  const wiId = idOf(obj, 'WorkloadInstanceID');
  const hwiId = idOf(obj, 'HelmWorkloadInstanceID');
  const kri = await getOrUndefined(ctx.store, KubernetesRuntimeInstance, idOf(obj, 'KubernetesRuntimeInstanceID'));
  if (!kri || kri['DeletionScheduled']) return { kind: 'gone', reason: 'its KubernetesRuntimeInstance is gone' };
  if (wiId !== undefined) {
    const wi = await getOrUndefined(ctx.store, WorkloadInstance, wiId);
    if (!wi || wi['DeletionScheduled']) return { kind: 'gone', reason: `WorkloadInstance ${wiId} is gone` };
    const workload = label(WorkloadInstance.name, wi);
    const namespace = workloadNamespace(await workloadResources(ctx.store, wiId));
    if (!namespace) return { kind: 'waiting', reason: `waiting for ${workload} to be deployed (its namespace is not known yet)` };
    return { kind: 'ready', kri, namespace, workload };
  }
  if (hwiId !== undefined) {
    const hwi = await getOrUndefined(ctx.store, HelmWorkloadInstance, hwiId);
    if (!hwi || hwi['DeletionScheduled']) return { kind: 'gone', reason: `HelmWorkloadInstance ${hwiId} is gone` };
    const workload = label(HelmWorkloadInstance.name, hwi);
    const namespace = typeof hwi['ReleaseNamespace'] === 'string' && hwi['ReleaseNamespace'] ? hwi['ReleaseNamespace'] : undefined;
    if (!namespace) return { kind: 'waiting', reason: `waiting for ${workload} to choose its release namespace` };
    return { kind: 'ready', kri, namespace, workload };
  }
  throw new TerminalError(`${what}: set WorkloadInstanceID or HelmWorkloadInstanceID`);
}

function ownerOf(secret: KubeObject | undefined): string | undefined {
  return secret?.metadata.annotations?.[SECRET_OWNER_ANNOTATION];
}

function secretInstanceReconciler(deps: AwsControllerDeps, refreshMs: number): Reconciler {
  async function reconcile(ctx: ReconcileContext, obj: JsonObject): Promise<ReconcileResult> {
    const id = idOf(obj)!;
    const what = label(SecretInstance.name, obj);
    const name = String(obj['Name']);
    const def = await getOrUndefined(ctx.store, SecretDefinition, idOf(obj, 'SecretDefinitionID'));
    if (!def) throw new TerminalError(`${what}: its SecretDefinition does not exist`);
    if (def['Reconciled'] !== true) {
      await ctx.patchSelf({ Status: `waiting for ${label(SecretDefinition.name, def)} to be stored in AWS Secrets Manager` });
      // Short: the definition is usually stored within a second of the instance being created.
      return untilWoken(ctx, Math.min(deps.waitPollMs, refreshMs, 1_000));
    }
    const target = await targetOf(ctx, obj, what);
    if (target.kind === 'gone') {
      // The workload went first (deleting its namespace deletes the Secret); nothing is left to refresh.
      await ctx.patchSelf({ Status: `not delivered: ${target.reason}` });
      return;
    }
    if (target.kind === 'waiting') {
      await ctx.patchSelf({ Status: target.reason });
      return { requeueAfterMs: Math.min(deps.waitPollMs, refreshMs) };
    }
    const wiId = idOf(obj, 'WorkloadInstanceID');
    if (wiId !== undefined) await ensureAttached(ctx.store, wiId, SecretInstance.name, id);
    const client = deps.kube(ctx.store).forRuntime(target.kri);
    const where = `Secret ${target.namespace}/${name}`;
    const existing = await client.get({ apiVersion: 'v1', kind: 'Secret', name, namespace: target.namespace }, { signal: ctx.signal });
    if (existing && ownerOf(existing) !== String(id)) {
      throw new TerminalError(`${what}: ${where} already exists on ${client.label} and was not written by this SecretInstance; rename one of them`);
    }
    if (!(await client.get({ apiVersion: 'v1', kind: 'Namespace', name: target.namespace }, { signal: ctx.signal }))) {
      await ctx.patchSelf({ Status: `waiting for namespace ${target.namespace} of ${target.workload}` });
      return { requeueAfterMs: Math.min(deps.waitPollMs, refreshMs) };
    }

    const account = await loadAccount(ctx.store, idOf(def, 'AwsAccountID'), what);
    const session = deps.provider(ctx.store).session(account);
    const defName = String(def['Name']);
    let value;
    value = await getSecretValue(session, defName, ctx.signal);
    if (!value) throw new ReconcileError(`${what}: secret ${defName} is not in AWS Secrets Manager (${session.region})`);

    const before = existing?.metadata.annotations?.[SECRET_VERSION_ANNOTATION];
    const keys = Object.keys(value.data).sort();
    const liveKeys = Object.keys((existing?.['data'] as Record<string, string> | undefined) ?? {}).sort();
    // Re-apply when the version moved, or when someone changed the Secret's keys (drift).
    if (before !== value.versionId || canonical(keys) !== canonical(liveKeys)) {
      const data: Record<string, string> = {};
      for (const k of keys) data[k] = Buffer.from(value.data[k]!, 'utf8').toString('base64');
      await client.apply(
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: {
            name,
            namespace: target.namespace,
            labels: { [SECRET_OWNER_ANNOTATION]: String(id) },
            annotations: { [SECRET_OWNER_ANNOTATION]: String(id), [SECRET_VERSION_ANNOTATION]: value.versionId },
          },
          type: 'Opaque',
          data,
        } as KubeObject,
        { signal: ctx.signal },
      );
      // Notes name keys and versions, never values.
      if (!existing) {
        await ctx.recordEvent({ reason: 'SecretDelivered', note: `${where} on ${client.label} holds ${defName} from AWS Secrets Manager (keys ${keys.join(', ')})` });
      } else if (before !== value.versionId) {
        await ctx.recordEvent({
          reason: 'SecretRotated',
          note: `${where} on ${client.label} updated: ${defName} changed in AWS Secrets Manager (version ${String(before)} → ${value.versionId}, keys ${keys.join(', ')})`,
        });
      } else {
        await ctx.recordEvent({ reason: 'SecretRepaired', note: `${where} on ${client.label} had other keys than ${defName}; re-applied`, type: 'Warning' });
      }
      ctx.log.info({ secret: where, version: value.versionId }, 'secret delivered');
    }
    // Reconciled: the Secret matches now. The item stays queued for the next refresh (a change or a
    // delete of the instance replaces it at once), so rotation keeps arriving.
    await ctx.patchSelf({ Reconciled: true, Status: `delivered: ${where} holds ${defName} from AWS Secrets Manager (${session.region}); refreshed every ${Math.round(refreshMs / 1000)} s` });
    return { requeueAfterMs: refreshMs };
  }

  return {
    kind: SecretInstance.name,
    // The definition being stored in AWS wakes the instances waiting for it.
    ...edgesOf(SecretInstance.name),
    controller: SECRET_CONTROLLER_NAME,
    created: reconcile,
    updated: reconcile,
    async deleted(ctx, obj) {
      const id = idOf(obj)!;
      const name = String(obj['Name']);
      const target = await targetOf(ctx, obj, label(SecretInstance.name, obj));
      if (target.kind === 'ready') {
        const client = deps.kube(ctx.store).forRuntime(target.kri);
        const ref = { apiVersion: 'v1', kind: 'Secret', name, namespace: target.namespace };
        const current = await client.get(ref, { signal: ctx.signal });
        // Only the Secret this instance wrote; one someone else owns stays.
        if (current && ownerOf(current) === String(id) && (await client.delete(ref, { signal: ctx.signal }))) {
          await ctx.recordEvent({ reason: 'SecretRemoved', note: `Secret ${target.namespace}/${name} deleted from ${client.label}` });
        }
      }
      await removeAttached(ctx.store, idOf(obj, 'WorkloadInstanceID'), SecretInstance.name, id);
      return;
    },
  };
}

export class SecretController {
  readonly reconcilers: Reconciler[];
  readonly deps: AwsControllerDeps;

  /** Pass the AWS controller's deps to share its provider (one set of clients and call counters). */
  constructor(options: (AwsControllerOptions | { deps: AwsControllerDeps }) & SecretControllerOptions = {}) {
    this.deps = 'deps' in options ? options.deps : controllerDeps(options);
    const refreshMs = options.refreshIntervalMs ?? refreshFromEnv();
    this.reconcilers = [secretDefinitionReconciler(this.deps), secretInstanceReconciler(this.deps, refreshMs)];
  }
}

