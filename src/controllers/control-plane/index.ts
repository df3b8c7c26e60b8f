// control-plane controller (spec §3.9): ControlPlaneDefinition (nothing to do) and
// ControlPlaneInstance, which installs a child control plane on a runtime, in its namespace.
//
// On a simulated (kwok) runtime, where pods do not run, the child is a `threeport server`
// process of this build, supervised by this (the parent) control plane like the cluster's own
// processes: own data directory under the runtime's directory, own embedded PostgreSQL, own port
// and certificates; restarted, with an event, when it dies; removed with the instance (and before
// its runtime's directory goes). The namespace is created in the cluster and labelled, so the
// child's place on the runtime is visible there, and deleted with the instance.
//
// Then, as upstream: the instance gets the child's ApiServerEndpoint and client credentials and
// `ParentControlPlaneInstanceID` = this control plane's own (IsSelf) instance, and with
// `OnboardParent` the parent's objects are copied into the child (onboard.ts).
//
// Other runtimes (kubeconfig, eks, kind) would get the chart deploy/helm/threeport; that path is
// not built yet and is refused with a terminal error naming the runtime, before anything is done.
//
// Registered instances (IsSelf or Genesis: the genesis control plane that tptctl up records, and
// the copies onboarding makes in a child) describe control planes that run elsewhere: they are
// never installed or removed here.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ThreeportClient } from '../../client/api-client.js';
import { controlPlane, kubernetesRuntime, type Kind } from '../../kinds/index.js';
import type { JsonObject } from '../../kinds/validate.js';
import { NotFoundError, describeError, ignoreNotFound } from '../../errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import { ReconcileError, TerminalError } from '../../reconcile/errors.js';
import { requestReconcile } from '../../reconcile/choreography.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import type { Leases } from '../../store/leases.js';
import { runtimeLease } from '../workload/index.js';
import { KubeClients } from '../../providers/kube/clients.js';
import { ChildServers, type ChildServerConnection } from '../../providers/control-planes/child-servers.js';
import type { KwokRuntimes } from '../../providers/runtimes/kwok/runtimes.js';
import { onboardParent } from './onboard.js';
import { Backoff } from '../../system.js';

const { ControlPlaneDefinition: CPD, ControlPlaneInstance: CPI } = controlPlane;
const { KubernetesRuntimeDefinition: KRD, KubernetesRuntimeInstance: KRI } = kubernetesRuntime;

export const CONTROLLER_NAME = 'ControlPlaneController';
/** Event reason when a child's server had died and was started again. */
export const CHILD_RESTARTED_REASON = 'ChildControlPlaneRestarted';
/** Label on the namespace a child is installed into: the ControlPlaneInstance's ID. */
export const INSTANCE_LABEL = 'control-plane.threeport.io/control-plane-instance';

export interface ControlPlaneControllerOptions {
  /** The server's data directory (children of runtimes this process does not run live under `<dataDir>/control-planes/`). */
  dataDir: string;
  logger: Logger;
  /** The simulated runtimes of this control plane (the kubernetes-runtime controller's). */
  kwok: KwokRuntimes;
  /** Replace the child supervisor (tests). */
  children?: ChildServers;
}

function b64(pem: string): string {
  return Buffer.from(pem, 'utf8').toString('base64');
}

function label(kind: string, o: JsonObject): string {
  return `${kind} ${JSON.stringify(o['Name'])}`;
}

/** Registered rows describe control planes that run elsewhere (see the module comment). */
function registered(instance: JsonObject): boolean {
  return instance['IsSelf'] === true || instance['Genesis'] === true;
}

export class ControlPlaneController {
  readonly reconcilers: Reconciler[];
  readonly children: ChildServers;
  #store: ObjectStore | undefined;
  #leases: Leases | undefined;
  #kube: KubeClients | undefined;
  #stopped = false;
  readonly #options: ControlPlaneControllerOptions;
  readonly #log: Logger;
  /** Debounce of exit-triggered reconciles per child: pending timer and current delay. */
  readonly #exitBackoff = new Map<number, { backoff: Backoff; timer?: NodeJS.Timeout }>();

  constructor(options: ControlPlaneControllerOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.children = options.children ?? new ChildServers({ onUnexpectedExit: (id, info) => this.#childExited(id, info) });
    // A runtime's directory holds its children's: they stop before it is removed.
    options.kwok.onRemove(async (_runtime, dir) => {
      for (const id of this.children.idsUnder(dir)) await this.children.stop(id);
    });
    this.reconcilers = [
      {
        kind: CPD.name,
        controller: CONTROLLER_NAME,
        // Upstream's definition reconciler is a no-op: an instance reads its definition when it is installed.
        created: async () => undefined,
        updated: async () => undefined,
        deleted: async () => undefined,
      },
      {
        kind: CPI.name,
        controller: CONTROLLER_NAME,
        resume: (store) => this.#toResume(store),
        created: (ctx, instance) => this.#ensure(ctx, instance),
        updated: (ctx, instance) => this.#ensure(ctx, instance),
        deleted: (ctx, instance) => this.#remove(ctx, instance),
      },
    ];
  }

  #kubeClients(store: ObjectStore): KubeClients {
    this.#kube ??= new KubeClients({ decrypt: (v) => store.decrypt(v) });
    return this.#kube;
  }

  async #get(ctx: ReconcileContext, kind: Kind, id: number, field: string, of: JsonObject): Promise<JsonObject> {
    try {
      return await ctx.store.getObject(kind, id);
    } catch (err) {
      if (err instanceof NotFoundError) throw new TerminalError(`${label(CPI.name, of)}: its ${kind.name} ${id} (${field}) does not exist`);
      throw err;
    }
  }

  /** Where a child lives: under its runtime's directory when this process runs that cluster. */
  #dirFor(instance: JsonObject, runtime: JsonObject): string {
    const runtimeDir = this.#options.kwok.dirFor(String(runtime['Name']));
    const base = existsSync(runtimeDir) ? runtimeDir : join(this.#options.dataDir, 'control-planes');
    return join(base, `cp-${String(instance['ID'])}`);
  }

  /**
   * Several controllers replicas: a child on a simulated runtime is supervised by the replica that
   * runs that cluster (the holder of the runtime's lease, see src/store/leases.ts), so the work
   * is handed there. Undefined: do it here.
   */
  async #handoff(runtime: JsonObject, runtimeDef: JsonObject): Promise<ReconcileResult | undefined> {
    const leases = this.#leases;
    if (!leases || runtimeDef['InfraProvider'] !== 'kwok' || existsSync(this.#options.kwok.dirFor(String(runtime['Name'])))) return undefined;
    const holder = await leases.holderOf(runtimeLease(Number(runtime['ID'])));
    return holder && holder !== leases.holder ? { requeueAfterMs: 0, handoffTo: holder } : undefined;
  }

  async #ensure(ctx: ReconcileContext, instance: JsonObject): Promise<ReconcileResult> {
    this.#store ??= ctx.store;
    if (registered(instance)) return;
    const definition = await this.#get(ctx, CPD, Number(instance['ControlPlaneDefinitionID']), 'ControlPlaneDefinitionID', instance);
    if (definition['Reconciled'] !== true) {
      throw new ReconcileError(`${label(CPI.name, instance)}: waiting for ${label(CPD.name, definition)} to be reconciled`);
    }
    const runtime = await this.#get(ctx, KRI, Number(instance['KubernetesRuntimeInstanceID']), 'KubernetesRuntimeInstanceID', instance);
    const runtimeDef = await this.#get(ctx, KRD, Number(runtime['KubernetesRuntimeDefinitionID']), 'KubernetesRuntimeDefinitionID', runtime);
    const provider = String(runtimeDef['InfraProvider']);
    if (provider !== 'kwok') {
      throw new TerminalError(
        `${label(CPI.name, instance)}: child control planes are installed on simulated (kwok) runtimes only so far; ${label(KRI.name, runtime)} is InfraProvider ${JSON.stringify(provider)}, for which installing the Helm chart deploy/helm/threeport is not built yet (install it with helm yourself, see docs/operator-guide.md)`,
        { event: { reason: 'ControlPlaneRuntimeNotSupported', note: `InfraProvider ${provider} runtimes cannot host child control planes yet`, type: 'Warning' } },
      );
    }
    if (runtime['Reconciled'] !== true || !runtime['APIEndpoint']) {
      throw new ReconcileError(`${label(CPI.name, instance)}: waiting for ${label(KRI.name, runtime)} to be reconciled`);
    }
    const elsewhere = await this.#handoff(runtime, runtimeDef);
    if (elsewhere) return elsewhere;

    // The namespace on the runtime, labelled with this instance.
    const namespace = String(instance['Namespace']);
    const kube = this.#kubeClients(ctx.store).forRuntime(runtime);
    try {
      await kube.apply(
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace, labels: { [INSTANCE_LABEL]: String(instance['ID']), 'app.kubernetes.io/managed-by': 'threeport' } } },
        { signal: ctx.signal },
      );
    } catch (err) {
      throw new ReconcileError(`${label(CPI.name, instance)}: cannot create namespace ${namespace} on ${label(KRI.name, runtime)}: ${describeError(err)}`, { cause: err });
    }

    // The child's server.
    const dir = this.#dirFor(instance, runtime);
    let result;
    try {
      result = await this.children.ensure(
        { id: Number(instance['ID']), name: String(instance['Name']), dir, auth: definition['AuthEnabled'] !== false },
        { signal: ctx.signal },
      );
    } catch (err) {
      if (ctx.signal.aborted) throw err;
      throw new ReconcileError(`${label(CPI.name, instance)}: ${describeError(err)}`, {
        cause: err,
        event: { reason: 'ChildControlPlaneStartFailed', note: `the child control plane's server did not start: ${describeError(err).split('\n')[0]}`, type: 'Warning' },
      });
    }
    if (result.previousExit) {
      await ctx.recordEvent({
        reason: CHILD_RESTARTED_REASON,
        type: 'Warning',
        note: `the threeport server of child control plane ${JSON.stringify(instance['Name'])} ${result.previousExit}; restarted it (pid ${String(this.children.pid(Number(instance['ID'])))})`,
      });
    }
    ctx.log.info({ controlPlane: instance['Name'], endpoint: result.connection.endpoint, started: result.started, ms: result.ms }, 'child control plane running');

    // Registration with the parent, and onboarding.
    const connection = this.#connectionFields(result.connection);
    const [self] = await ctx.store.find(CPI, { IsSelf: true });
    const changes: JsonObject = {};
    for (const [k, v] of Object.entries(connection)) {
      const stored = k === 'ClientKey' && typeof instance[k] === 'string' ? ctx.store.decrypt(String(instance[k])) : instance[k];
      if (stored !== v) changes[k] = v;
    }
    if (self && Number(self['ID']) !== Number(instance['ID']) && instance['ParentControlPlaneInstanceID'] !== self['ID']) {
      changes['ParentControlPlaneInstanceID'] = self['ID'];
    }
    if (Object.keys(changes).length > 0) await ctx.patchSelf(changes);
    if (definition['OnboardParent'] === false) return;
    const client = new ThreeportClient({ baseUrl: result.connection.url, ...(result.connection.tls ? { tls: result.connection.tls } : {}), timeoutMs: 15_000 });
    try {
      const onboarded = await onboardParent({
        store: ctx.store,
        child: client,
        // The connection (with the plain ClientKey) comes separately; the stored key is ciphertext.
        instance: { ...instance, ...changes, ClientKey: null },
        definition,
        runtimeInstance: runtime,
        runtimeDefinition: runtimeDef,
        connection,
      });
      if (result.started) ctx.log.info({ controlPlane: instance['Name'], copied: onboarded.copied }, 'child control plane onboarded');
    } catch (err) {
      throw new ReconcileError(`${label(CPI.name, instance)}: onboarding the child control plane failed: ${describeError(err)}`, { cause: err });
    } finally {
      client.close();
    }
  }

  /** ApiServerEndpoint and, with auth, the child's CA and client credentials (base64 PEM, as upstream). */
  #connectionFields(conn: ChildServerConnection): JsonObject {
    return {
      ApiServerEndpoint: conn.endpoint,
      ...(conn.tls ? { CACert: b64(conn.tls.ca), ClientCert: b64(conn.tls.cert), ClientKey: b64(conn.tls.key) } : {}),
    };
  }

  async #remove(ctx: ReconcileContext, instance: JsonObject): Promise<ReconcileResult> {
    if (registered(instance)) return;
    const id = Number(instance['ID']);
    const runtime = await ctx.store.getObject(KRI, Number(instance['KubernetesRuntimeInstanceID'])).catch((err: unknown) => {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    });
    if (runtime) {
      const runtimeDef = await ctx.store.getObject(KRD, Number(runtime['KubernetesRuntimeDefinitionID'])).catch(ignoreNotFound);
      const elsewhere = runtimeDef ? await this.#handoff(runtime, runtimeDef) : undefined;
      if (elsewhere) return elsewhere;
    }
    // The child first: its server and everything in its directory (database, keys, certificates).
    const dir = runtime ? this.#dirFor(instance, runtime) : undefined;
    if (dir) await this.children.remove(id, dir);
    else await this.children.stop(id);
    // Then the namespace it was installed into, if it is still the one this instance labelled.
    if (!runtime || !runtime['APIEndpoint']) return;
    const kube = this.#kubeClients(ctx.store).forRuntime(runtime);
    const ref = { apiVersion: 'v1', kind: 'Namespace', name: String(instance['Namespace']) };
    try {
      const ns = await kube.get(ref, { signal: ctx.signal });
      const labels = (ns?.metadata.labels ?? {}) as Record<string, string>;
      if (ns && labels[INSTANCE_LABEL] === String(id)) await kube.delete(ref, { signal: ctx.signal });
    } catch (err) {
      throw new ReconcileError(`${label(CPI.name, instance)}: cannot delete namespace ${ref.name} on ${label(KRI.name, runtime)}: ${describeError(err)}`, { cause: err });
    }
  }

  /** A child's server died: ask for a reconcile of its instance (debounced per child), which restarts it. */
  #childExited(id: number, info: string): void {
    if (this.#stopped) return;
    this.#log.warn({ controlPlaneInstance: id, info }, 'child control plane exited; requesting a reconcile');
    // An exit a minute or more after the previous one starts again from the shortest delay.
    const b = this.#exitBackoff.get(id) ?? { backoff: new Backoff({ initialMs: 250, maxMs: 60_000, resetAfterMs: 60_000 }) };
    if (b.timer) return;
    b.timer = setTimeout(() => {
      b.timer = undefined;
      void this.#requestReconcile(id);
    }, b.backoff.next());
    b.timer.unref();
    this.#exitBackoff.set(id, b);
  }

  async #requestReconcile(id: number): Promise<void> {
    const store = this.#store;
    if (!store || this.#stopped) return;
    try {
      const instance = await store.getObject(CPI, id);
      if (!instance['DeletionScheduled']) await requestReconcile(store, CPI, id);
    } catch (err) {
      if (!(err instanceof NotFoundError)) this.#log.warn({ controlPlaneInstance: id, err: describeError(err) }, 'cannot request a reconcile of the control plane instance');
    }
  }

  async start(store: ObjectStore, context: { leases?: Leases } = {}): Promise<void> {
    this.#store = store;
    this.#leases = context.leases;
  }

  /** After a restart (the instance reconciler's `resume`): the children this control plane ran before. */
  async #toResume(store: ObjectStore): Promise<number[]> {
    const ids: number[] = [];
    for (const instance of await store.find(CPI, {})) {
      if (registered(instance) || instance['DeletionScheduled'] || instance['Reconciled'] !== true || !instance['ApiServerEndpoint']) continue;
      const runtime = await store.getObject(KRI, Number(instance['KubernetesRuntimeInstanceID'])).catch(ignoreNotFound);
      if (runtime && existsSync(this.#dirFor(instance, runtime))) ids.push(Number(instance['ID']));
    }
    return ids;
  }

  /** Stops the children (they are processes of this server) and closes kube connections. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const b of this.#exitBackoff.values()) if (b.timer) clearTimeout(b.timer);
    await this.children.stopAll();
    this.#kube?.close();
  }
}
