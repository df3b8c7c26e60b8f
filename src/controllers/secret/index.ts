// secret controller (spec §3.6), AWS Secrets Manager backend.
//
// SecretDefinition
//   Created/Updated: the Data that travels with the request (encrypted values; never stored on the
//   row) is decrypted and written to Secrets Manager as one JSON secret named after the definition,
//   in its account's DefaultRegion. A secret of that name that Threeport did not create is refused.
//   Deleted: the secret is deleted without a recovery window (so the name can be used again).
// SecretInstance
//   Created/Updated: attaches to its WorkloadInstance and adds an external-secrets.io SecretStore
//   (Secrets Manager, the account's region) and an ExternalSecret (refresh 1 h, target Secret named
//   after the instance, `dataFrom.extract.key` = the definition's name) as WRIs, then re-triggers
//   the workload; for a HelmWorkloadInstance they are appended to AdditionalResources instead.
//   Deleted: undoes that.
//   Not done yet (docs/aws.md): installing the external-secrets operator and its IRSA role into
//   the cluster (upstream's `external-secrets-<runtime>` workload); the cluster needs the operator.
import { SecretDefinition, SecretInstance } from '../../kinds/secret.js';
import { HelmWorkloadInstance } from '../../kinds/helm-workload.js';
import { WorkloadInstance } from '../../kinds/workload.js';
import type { JsonObject } from '../../kinds/validate.js';
import { TerminalError } from '../../reconcile/errors.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import { deleteSecret, putSecret } from '../../providers/aws/secrets.js';
import { stackName } from '../../providers/aws/tags.js';
import {
  OWNER_ANNOTATION_PREFIX,
  asReconcileError,
  canonical,
  createWri,
  ensureAttached,
  getOrUndefined,
  idOf,
  label,
  loadAccount,
  ownedWri,
  removeAttached,
  retriggerWorkload,
  scheduleWriDeletion,
  updateWri,
  workloadNamespace,
  workloadResources,
} from '../aws/common.js';
import { controllerDeps, type AwsControllerDeps, type AwsControllerOptions } from '../aws/deps.js';

export const SECRET_CONTROLLER_NAME = 'SecretController';
const OWNER_KEY = 'secret-instance';

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
    try {
      const out = await putSecret(session, { name, stack: stackName(name, idOf(obj)!), data: decryptData(ctx) }, ctx.signal);
      await ctx.patchSelf({ Status: `stored in AWS Secrets Manager as ${name} (${session.region})` });
      ctx.log.info({ secret: name, region: session.region, created: out.created }, 'secret written to AWS Secrets Manager');
    } catch (err) {
      throw asReconcileError(err);
    }
  }
  return {
    kind: SecretDefinition.name,
    controller: SECRET_CONTROLLER_NAME,
    created: write,
    updated: write,
    async deleted(ctx, obj) {
      const what = label(SecretDefinition.name, obj);
      const account = await loadAccount(ctx.store, idOf(obj, 'AwsAccountID'), what);
      const session = deps.provider(ctx.store).session(account);
      const name = String(obj['Name']);
      try {
        const r = await deleteSecret(session, { name, stack: stackName(name, idOf(obj)!) }, ctx.signal);
        if (r === 'foreign') {
          await ctx.recordEvent({ reason: 'SecretLeftInPlace', note: `${name} in AWS Secrets Manager was not created by Threeport for ${what}; it was left in place`, type: 'Warning' });
        }
      } catch (err) {
        throw asReconcileError(err);
      }
    },
  };
}

function externalSecretManifests(input: { instanceName: string; instanceId: number; definitionName: string; region: string; namespace: string | undefined }): JsonObject[] {
  const ns = input.namespace ? { namespace: input.namespace } : {};
  const owner = { [`${OWNER_ANNOTATION_PREFIX}${OWNER_KEY}`]: String(input.instanceId) };
  const store = `${input.instanceName}-store`;
  return [
    {
      apiVersion: 'external-secrets.io/v1beta1',
      kind: 'SecretStore',
      metadata: { name: store, ...ns, annotations: owner },
      spec: { provider: { aws: { service: 'SecretsManager', region: input.region } } },
    },
    {
      apiVersion: 'external-secrets.io/v1beta1',
      kind: 'ExternalSecret',
      metadata: { name: input.instanceName, ...ns, annotations: owner },
      spec: {
        refreshInterval: '1h',
        secretStoreRef: { name: store, kind: 'SecretStore' },
        target: { name: input.instanceName, creationPolicy: 'Owner' },
        dataFrom: [{ extract: { key: input.definitionName } }],
      },
    },
  ];
}

function isOurs(resource: unknown, id: number): boolean {
  const ann = ((resource as JsonObject | null)?.['metadata'] as JsonObject | undefined)?.['annotations'] as Record<string, string> | undefined;
  return ann?.[`${OWNER_ANNOTATION_PREFIX}${OWNER_KEY}`] === String(id);
}

function secretInstanceReconciler(deps: AwsControllerDeps): Reconciler {
  async function reconcile(ctx: ReconcileContext, obj: JsonObject): Promise<ReconcileResult> {
    const id = idOf(obj)!;
    const what = label(SecretInstance.name, obj);
    const def = await getOrUndefined(ctx.store, SecretDefinition, idOf(obj, 'SecretDefinitionID'));
    if (!def) throw new TerminalError(`${what}: its SecretDefinition does not exist`);
    if (def['Reconciled'] !== true) {
      await ctx.patchSelf({ Status: `waiting for ${label(SecretDefinition.name, def)} to be stored in AWS Secrets Manager` });
      return { requeueAfterMs: Math.min(deps.waitPollMs, 5_000) };
    }
    const account = await loadAccount(ctx.store, idOf(def, 'AwsAccountID'), what);
    const region = account.DefaultRegion!;
    const wiId = idOf(obj, 'WorkloadInstanceID');
    const hwiId = idOf(obj, 'HelmWorkloadInstanceID');
    if (wiId !== undefined) {
      const wi = await getOrUndefined(ctx.store, WorkloadInstance, wiId);
      if (!wi) throw new TerminalError(`${what}: WorkloadInstance ${wiId} does not exist`);
      if (wi['DeletionScheduled']) return;
      await ensureAttached(ctx.store, wiId, SecretInstance.name, id);
      const wris = await workloadResources(ctx.store, wiId);
      if (wris.length === 0) {
        await ctx.patchSelf({ Status: `waiting for ${label('WorkloadInstance', wi)} to be deployed` });
        return { requeueAfterMs: deps.waitPollMs };
      }
      const wanted = externalSecretManifests({
        instanceName: String(obj['Name']),
        instanceId: id,
        definitionName: String(def['Name']),
        region,
        namespace: workloadNamespace(wris),
      });
      let changed = false;
      for (const manifest of wanted) {
        const existing = ownedWri(wris, OWNER_KEY, id, String(manifest['kind']));
        if (!existing) {
          await createWri(ctx.store, wiId, manifest);
          changed = true;
        } else if (canonical(existing.def['spec']) !== canonical(manifest['spec'])) {
          // Only the spec is ours to compare: the workload controller adds labels and the namespace.
          await updateWri(ctx.store, existing.id, { ...existing.def, spec: manifest['spec'] });
          changed = true;
        }
      }
      if (changed) await retriggerWorkload(ctx.store, wiId);
    } else if (hwiId !== undefined) {
      const hwi = await getOrUndefined(ctx.store, HelmWorkloadInstance, hwiId);
      if (!hwi) throw new TerminalError(`${what}: HelmWorkloadInstance ${hwiId} does not exist`);
      if (hwi['DeletionScheduled']) return;
      const namespace = typeof hwi['ReleaseNamespace'] === 'string' ? hwi['ReleaseNamespace'] : undefined;
      const wanted = externalSecretManifests({ instanceName: String(obj['Name']), instanceId: id, definitionName: String(def['Name']), region, namespace });
      const current = Array.isArray(hwi['AdditionalResources']) ? (hwi['AdditionalResources'] as unknown[]) : [];
      const next = [...current.filter((r) => !isOurs(r, id)), ...wanted];
      if (canonical(next) !== canonical(current)) {
        await ctx.store.patch(HelmWorkloadInstance, hwiId, { AdditionalResources: next, Reconciled: false });
      }
    } else {
      throw new TerminalError(`${what}: set WorkloadInstanceID or HelmWorkloadInstanceID`);
    }
    await ctx.patchSelf({
      Status: `delivered: ExternalSecret ${String(obj['Name'])} reads ${String(def['Name'])} from AWS Secrets Manager (${region}); the cluster needs the external-secrets operator`,
    });
    return;
  }

  return {
    kind: SecretInstance.name,
    controller: SECRET_CONTROLLER_NAME,
    created: reconcile,
    updated: reconcile,
    async deleted(ctx, obj) {
      const id = idOf(obj)!;
      const wiId = idOf(obj, 'WorkloadInstanceID');
      const hwiId = idOf(obj, 'HelmWorkloadInstanceID');
      if (wiId !== undefined) {
        const wi = await getOrUndefined(ctx.store, WorkloadInstance, wiId);
        if (wi) {
          let changed = false;
          for (const w of await workloadResources(ctx.store, wiId)) {
            if (!isOurs(w.def, id) || w.scheduledForDeletion) continue;
            await scheduleWriDeletion(ctx.store, w.id, ctx.clock.now());
            changed = true;
          }
          if (changed && !wi['DeletionScheduled']) await retriggerWorkload(ctx.store, wiId);
        }
        await removeAttached(ctx.store, wiId, SecretInstance.name, id);
      } else if (hwiId !== undefined) {
        const hwi = await getOrUndefined(ctx.store, HelmWorkloadInstance, hwiId);
        if (hwi && !hwi['DeletionScheduled'] && Array.isArray(hwi['AdditionalResources'])) {
          const current = hwi['AdditionalResources'] as unknown[];
          const next = current.filter((r) => !isOurs(r, id));
          if (next.length !== current.length) await ctx.store.patch(HelmWorkloadInstance, hwiId, { AdditionalResources: next, Reconciled: false });
        }
      }
      return;
    },
  };
}

export class SecretController {
  readonly reconcilers: Reconciler[];
  readonly deps: AwsControllerDeps;

  /** Pass the AWS controller's deps to share its provider (one set of clients and call counters). */
  constructor(options: AwsControllerOptions | { deps: AwsControllerDeps } = {}) {
    this.deps = 'deps' in options ? options.deps : controllerDeps(options);
    this.reconcilers = [secretDefinitionReconciler(this.deps), secretInstanceReconciler(this.deps)];
  }
}

