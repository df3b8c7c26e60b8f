// helm-workload controller (spec §3.5): reconcilers for HelmWorkloadDefinition and
// HelmWorkloadInstance, through the helm provider (the `helm` CLI).
//
// Instance Created/Updated: `helm upgrade --install <inst>-release` into ReleaseNamespace (or a
// generated `<inst>-<10 lowercase letters>`, written back first so retries reuse it), with
// `--create-namespace --dependency-update`, `--version` when set, `-f definition-values.yaml
// -f instance-values.yaml` (instance wins) and a post-renderer that adds the threeport labels to
// every object and appends the definition's and the instance's AdditionalResources. When there
// was no release before a failed attempt, the partial release is uninstalled. helm does not wait
// for readiness.
// Instance Deleted: uninstall (not-found ok), delete the generated namespace unless another
// HelmWorkloadInstance on the runtime uses it, delete the instance's WorkloadEvents.
//
// Differences from upstream, on purpose (docs/helm-workloads.md):
// - Created and Updated both run `upgrade --install`, so a retried create is idempotent;
// - an Updated whose desired state (chart, version, values, additional resources, labels,
//   namespace, local chart files) equals the deployed release's is a no-op: the fingerprint is
//   kept as the release description, so resyncs do not pile up revisions;
// - a changed definition (PATCHed with Reconciled: false) re-reconciles its instances;
// - no ThreeportWorkload custom resource is created: there is no in-cluster agent.
import { createHash, randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { parse, parseAllDocuments } from 'yaml';
import { HelmWorkloadDefinition, HelmWorkloadInstance } from '../../kinds/helm-workload.js';
import { KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import { WorkloadEvent } from '../../kinds/workload.js';
import type { Kind } from '../../kinds/declare.js';
import type { JsonObject } from '../../kinds/validate.js';
import { NotFoundError, describeError, ignoreNotFound } from '../../errors.js';
import { ReconcileError, TerminalError, isTerminal } from '../../reconcile/errors.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import { KubeClients } from '../../providers/kube/clients.js';
import { connectionFromRuntimeInstance, runtimeLabel, type KubeConnection } from '../../providers/kube/connection.js';
import { chartSource, type ChartSource } from '../../providers/helm/chart-source.js';
import { threeportLabels, type PostRenderConfig } from '../../providers/helm/post-render.js';
import { HelmReleases, localChartDigest } from '../../providers/helm/releases.js';
import type { ObjectStore } from '../../store/object-store.js';
import type { ControllerContext } from '../index.js';
import { HelmStatusMonitor } from './status.js';
import { edgesOf } from '../graph.js';
import { untilWoken } from '../../reconcile/wait-for.js';

export const CONTROLLER_NAME = 'HelmWorkloadController';
/** A CA bundle (PEM file) trusted for https chart repositories and OCI registries. */
export const HELM_CA_FILE_ENV = 'THREEPORT_HELM_CA_FILE';
const DESCRIPTION_PREFIX = 'threeport ';
/** How long to wait for a runtime instance that has no API endpoint yet. */
const RUNTIME_NOT_READY_RETRY_MS = 5_000;

export interface HelmWorkloadControllerOptions {
  logger: Logger;
  /** The helm provider (default: the real one, helm found by findHelm()). */
  helm?: HelmReleases;
  /** Default: $THREEPORT_HELM_CA_FILE. */
  caFile?: string;
  /** Where helm workspaces are created (default: <tmpdir>/threeport-helm). */
  workRoot?: string;
  /** Anchor of relative local chart directories (default: the server's working directory). */
  chartBaseDir?: string;
  /** Per-request timeout of the kube provider (default 20 s). */
  kubeRequestTimeoutMs?: number;
  /** Time between status passes (default 10 s; sooner after deploys and while starting). */
  statusIntervalMs?: number;
}

type Obj = JsonObject;

function describe(kind: string, obj: Obj): string {
  return `${kind} ${JSON.stringify(obj['Name'] ?? '?')} (ID ${String(obj['ID'] ?? '?')})`;
}

/** Helm's own rule for release names (DNS-1123 subdomain, at most 53 characters). */
const RELEASE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAMESPACE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function releaseNameOf(instanceName: string): string {
  return `${instanceName}-release`;
}

/** `<inst>-<10 random lowercase letters>`. */
export function generateNamespace(instanceName: string): string {
  let suffix = '';
  for (let i = 0; i < 10; i++) suffix += String.fromCharCode(97 + randomInt(26));
  return `${instanceName}-${suffix}`;
}

/** Whether `namespace` has the shape this controller generates for `instanceName`. */
export function isGeneratedNamespace(instanceName: string, namespace: string): boolean {
  return namespace.length === instanceName.length + 11 && namespace.startsWith(`${instanceName}-`) && /^[a-z]{10}$/.test(namespace.slice(-10));
}

/** A values document: empty, or a YAML mapping. Throws TerminalError naming the field otherwise. */
export function checkValues(text: unknown, what: string): string {
  if (text === undefined || text === null || text === '') return '';
  if (typeof text !== 'string') throw new TerminalError(`${what} ValuesDocument must be a YAML string`);
  let value: unknown;
  try {
    value = parse(text, { prettyErrors: true });
  } catch (err) {
    throw new TerminalError(`${what} ValuesDocument is not valid YAML: ${describeError(err).split('\n')[0]}`);
  }
  if (value !== null && value !== undefined && (typeof value !== 'object' || Array.isArray(value))) {
    throw new TerminalError(`${what} ValuesDocument must be a YAML mapping of chart values, got ${Array.isArray(value) ? 'a list' : typeof value}`);
  }
  return text;
}

/**
 * AdditionalResources as Kubernetes objects. Accepted: a JSON array of objects (upstream's
 * form), one object, or a string holding JSON or multi-document YAML. Throws TerminalError
 * naming the offending item.
 */
export function additionalResources(value: unknown, what: string): Array<Record<string, unknown>> {
  if (value === undefined || value === null || value === '') return [];
  let items: unknown[];
  if (typeof value === 'string') {
    items = [];
    let i = 0;
    for (const doc of parseAllDocuments(value)) {
      i++;
      if (doc.errors.length > 0) {
        throw new TerminalError(`${what} AdditionalResources document ${i} is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
      }
      const v: unknown = doc.toJS();
      if (Array.isArray(v)) items.push(...(v as unknown[]));
      else if (v !== null && v !== undefined) items.push(v);
    }
  } else {
    items = Array.isArray(value) ? value : [value];
  }
  return items.map((item, idx) => {
    const where = `${what} AdditionalResources item ${idx + 1}`;
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw new TerminalError(`${where} is not a Kubernetes object: expected a mapping with apiVersion, kind and metadata`);
    }
    const o = item as Record<string, unknown>;
    const missing = ['apiVersion', 'kind'].filter((k) => typeof o[k] !== 'string' || o[k] === '');
    if (missing.length > 0) throw new TerminalError(`${where} is not a Kubernetes object: ${missing.join(' and ')} missing`);
    const meta = o['metadata'] as Record<string, unknown> | undefined;
    if (typeof meta !== 'object' || meta === null || typeof meta['name'] !== 'string' || meta['name'] === '') {
      throw new TerminalError(`${where} (${String(o['kind'])}) has no metadata.name`);
    }
    return o;
  });
}

async function getOr(ctx: ReconcileContext, kind: Kind, id: number, missing: () => Error): Promise<Obj> {
  try {
    return await ctx.store.getObject(kind, id);
  } catch (err) {
    if (err instanceof NotFoundError) throw missing();
    throw err;
  }
}

export class HelmWorkloadController {
  readonly reconcilers: Reconciler[];
  readonly helm: HelmReleases;
  readonly status: HelmStatusMonitor;
  readonly #options: HelmWorkloadControllerOptions;
  #kube: KubeClients | undefined;

  constructor(options: HelmWorkloadControllerOptions) {
    this.#options = options;
    const caFile = options.caFile ?? process.env[HELM_CA_FILE_ENV];
    this.helm =
      options.helm ??
      new HelmReleases({ ...(caFile ? { caFile } : {}), ...(options.workRoot ? { workRoot: options.workRoot } : {}) });
    this.reconcilers = [this.#definitionReconciler(), this.#instanceReconciler()];
    this.status = new HelmStatusMonitor({
      log: options.logger,
      kube: (runtime) => {
        if (!this.#kube) throw new Error('the helm-workload controller has not started');
        return this.#kube.forRuntime(runtime);
      },
      ...(options.statusIntervalMs ? { intervalMs: options.statusIntervalMs } : {}),
    });
  }

  /** After the reconcile runtime has started: status passes begin. */
  async start(store: ObjectStore, context: ControllerContext = {}): Promise<void> {
    this.#kubeClients(store);
    this.status.start(store, context.leases);
  }

  #kubeClients(store: ObjectStore): KubeClients {
    this.#kube ??= new KubeClients({
      decrypt: (v) => store.decrypt(v),
      ...(this.#options.kubeRequestTimeoutMs ? { requestTimeoutMs: this.#options.kubeRequestTimeoutMs } : {}),
    });
    return this.#kube;
  }

  #definitionReconciler(): Reconciler {
    return {
      kind: HelmWorkloadDefinition.name,
      controller: CONTROLLER_NAME,
      // Upstream: a no-op. Here a changed definition rolls out to its instances: it owns them
      // (src/controllers/graph.ts), so the engine reconciles them once it has reconciled the change.
      ...edgesOf(HelmWorkloadDefinition.name),
    };
  }

  #instanceReconciler(): Reconciler {
    return {
      kind: HelmWorkloadInstance.name,
      controller: CONTROLLER_NAME,
      // helm is CPU-hungry; two at a time per process.
      concurrency: 2,
      // A runtime getting its API endpoint wakes the instances waiting for it.
      ...edgesOf(HelmWorkloadInstance.name),
      created: (ctx, instance) => this.#deployAndLook(ctx, instance),
      updated: (ctx, instance) => this.#deployAndLook(ctx, instance),
      deleted: (ctx, instance) => this.#remove(ctx, instance),
    };
  }

  /** The runtime instance and its connection; undefined while it has no API endpoint. */
  async #runtimeOf(ctx: ReconcileContext, instance: Obj, what: string): Promise<{ runtime: Obj; conn: KubeConnection } | undefined> {
    const runtimeId = Number(instance['KubernetesRuntimeInstanceID']);
    const runtime = await getOr(
      ctx,
      KubernetesRuntimeInstance,
      runtimeId,
      () => new TerminalError(`${what}: its KubernetesRuntimeInstance ${runtimeId} does not exist`),
    );
    if (!runtime['APIEndpoint']) return undefined;
    try {
      return { runtime, conn: connectionFromRuntimeInstance(runtime, (v) => ctx.store.decrypt(v)) };
    } catch (err) {
      throw new ReconcileError(`${what}: ${describeError(err)}`, { cause: err });
    }
  }

  /** Deploys; then the status monitor looks soon, whatever the outcome (Reconciling, then Healthy or Error). */
  async #deployAndLook(ctx: ReconcileContext, instance: Obj): Promise<ReconcileResult> {
    try {
      return await this.#deploy(ctx, instance);
    } catch (err) {
      // A failure that waits for a change to the object shows as Error until then (a create's
      // also sets CreationFailed); retryable failures leave the status as it is.
      if (isTerminal(err)) await ctx.patchSelf({ Status: 'Error' }).catch(ignoreNotFound);
      throw err;
    } finally {
      this.status.poke();
    }
  }

  async #deploy(ctx: ReconcileContext, instance: Obj): Promise<ReconcileResult> {
    const what = describe('HelmWorkloadInstance', instance);
    const name = String(instance['Name']);
    const id = Number(instance['ID']);
    const release = releaseNameOf(name);
    if (release.length > 53 || !RELEASE_NAME.test(release)) {
      throw new TerminalError(
        `${what}: the release name ${JSON.stringify(release)} is not valid for helm: use an instance name of lowercase letters,` +
          ` digits and '-', starting and ending with a letter or digit, at most 45 characters`,
      );
    }
    const defId = Number(instance['HelmWorkloadDefinitionID']);
    const definition = await getOr(
      ctx,
      HelmWorkloadDefinition,
      defId,
      () => new TerminalError(`${what}: its HelmWorkloadDefinition ${defId} does not exist`),
    );
    const defWhat = describe('HelmWorkloadDefinition', definition);

    // Everything that can be checked without a cluster, first.
    let source: ChartSource;
    source = chartSource(
      { Repo: String(definition['Repo'] ?? ''), Chart: String(definition['Chart'] ?? ''), ChartVersion: definition['ChartVersion'] as string | undefined },
      defWhat,
      this.#options.chartBaseDir,
    );
    const values = [
      { name: 'definition-values.yaml', yaml: checkValues(definition['ValuesDocument'], defWhat) },
      { name: 'instance-values.yaml', yaml: checkValues(instance['ValuesDocument'], what) },
    ];
    const labels = threeportLabels(String(definition['Name']), name, id);
    const postRender: PostRenderConfig = {
      ...labels,
      additionalResources: [
        ...additionalResources(definition['AdditionalResources'], defWhat),
        ...additionalResources(instance['AdditionalResources'], what),
      ],
    };

    let namespace = typeof instance['ReleaseNamespace'] === 'string' ? instance['ReleaseNamespace'] : '';
    if (namespace && !NAMESPACE_NAME.test(namespace)) {
      throw new TerminalError(`${what}: ReleaseNamespace ${JSON.stringify(namespace)} is not a valid Kubernetes namespace name`);
    }
    const connected = await this.#runtimeOf(ctx, instance, what);
    if (!connected) {
      // A runtime still being provisioned (e.g. EKS): wait without counting failures.
      ctx.log.info({ runtimeId: instance['KubernetesRuntimeInstanceID'] }, 'the runtime has no API endpoint yet; waiting for it');
      return untilWoken(ctx, RUNTIME_NOT_READY_RETRY_MS);
    }
    const { runtime, conn } = connected;
    if (!namespace) {
      namespace = generateNamespace(name);
      if (!NAMESPACE_NAME.test(namespace) || namespace.length > 63) {
        throw new TerminalError(`${what}: cannot generate a namespace from the instance name; set ReleaseNamespace`);
      }
      // Written back before anything is installed, so that a retry uses the same namespace.
      await ctx.patchSelf({ ReleaseNamespace: namespace });
    }

    const fingerprint = createHash('sha256')
      .update(
        JSON.stringify({
          source,
          local: source.type === 'local' ? localChartDigest(source.path) : undefined,
          values,
          postRender,
          namespace,
        }),
      )
      .digest('hex')
      .slice(0, 32);
    const description = `${DESCRIPTION_PREFIX}${fingerprint}`;

    const signal = ctx.signal;
    const before = await this.helm.status(conn, release, namespace, { signal });
    if (before && before.status === 'deployed' && before.description === description) {
      ctx.log.debug({ release, namespace, revision: before.revision }, 'helm release already matches; nothing to do');
      return;
    }
    if (isGeneratedNamespace(name, namespace)) {
      // The generated namespace carries the instance's labels, so it is found and removed with it.
      await this.#kubeClients(ctx.store)
        .forRuntime(runtime)
        .apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: labels.labels } }, { signal });
    }
    try {
      const deployed = await this.helm.deploy(conn, { release, namespace, source, values, postRender, description }, { signal });
      ctx.log.info({ release, namespace, revision: deployed.revision }, 'helm release deployed');
      await ctx.recordEvent({
        reason: before ? 'HelmReleaseUpgraded' : 'HelmReleaseInstalled',
        note:
          `release ${JSON.stringify(release)} revision ${deployed.revision} ${before ? 'upgraded' : 'installed'} in namespace` +
          ` ${JSON.stringify(namespace)} on ${runtimeLabel(runtime)}` +
          (deployed.chart ? ` (chart ${deployed.chart}${deployed.chartVersion ? ` ${deployed.chartVersion}` : ''})` : ''),
      });
    } catch (err) {
      if (!before && !signal.aborted) {
        // Upstream: a failed install is uninstalled, so that nothing half-made stays behind.
        await this.helm.uninstall(conn, release, namespace, { signal }).catch((cleanupErr: unknown) => {
          ctx.log.warn({ release, namespace, err: describeError(cleanupErr) }, 'cannot uninstall the failed release; the next attempt replaces it');
        });
      }
      throw err;
    }
  }

  async #remove(ctx: ReconcileContext, instance: Obj): Promise<ReconcileResult> {
    const what = describe('HelmWorkloadInstance', instance);
    const name = String(instance['Name']);
    const id = Number(instance['ID']);
    const namespace = typeof instance['ReleaseNamespace'] === 'string' ? instance['ReleaseNamespace'] : '';
    let runtimeGone = false;
    try {
      await ctx.store.getObject(KubernetesRuntimeInstance, Number(instance['KubernetesRuntimeInstanceID']));
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      runtimeGone = true;
    }
    if (namespace && !runtimeGone) {
      const connected = await this.#runtimeOf(ctx, instance, what);
      if (!connected) throw new ReconcileError(`${what}: its KubernetesRuntimeInstance has no API endpoint; cannot uninstall yet`);
      const { runtime, conn } = connected;
      const release = releaseNameOf(name);
      const existed = await this.helm.uninstall(conn, release, namespace, { signal: ctx.signal });
      ctx.log.info({ release, namespace, existed }, 'helm release uninstalled');
      if (isGeneratedNamespace(name, namespace)) {
        const others = (
          await ctx.store.find(HelmWorkloadInstance, { KubernetesRuntimeInstanceID: Number(runtime['ID']), ReleaseNamespace: namespace })
        ).filter((o) => Number(o['ID']) !== id && !o['DeletionScheduled']);
        if (others.length === 0) {
          await this.#kubeClients(ctx.store)
            .forRuntime(runtime)
            .delete({ apiVersion: 'v1', kind: 'Namespace', name: namespace }, { signal: ctx.signal });
        } else {
          ctx.log.info({ namespace, usedBy: others.map((o) => o['ID']) }, 'namespace kept: another HelmWorkloadInstance uses it');
        }
      }
    }
    const removed = await ctx.store.deleteWhere(WorkloadEvent, { HelmWorkloadInstanceID: id });
    if (removed > 0) ctx.log.debug({ removed }, 'workload events deleted');
  }

  /** Stops status passes and closes kube connections (after the reconcile runtime has stopped). */
  async stop(): Promise<void> {
    this.status.stop();
    await this.status.settled();
    this.#kube?.close();
    this.#kube = undefined;
  }
}
