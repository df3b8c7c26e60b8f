// gateway controller (spec §3.4; docs/support-services.md): GatewayDefinition and GatewayInstance,
// with the Kubernetes Gateway API served by traefik instead of upstream's Gloo Edge.
//
// A GatewayInstance, on first use on a runtime, installs the gateway controller there: the Gateway
// API CRDs (v1.4.0), a WorkloadInstance `gateway-controller-<runtime>` holding the GatewayClass
// (recorded as the runtime's GatewayControllerInstanceID, JSON `GatewayWorkloadInstanceID`, as
// upstream records its gloo-edge WorkloadInstance), and on simulated runtimes traefik as a
// supervised host process. It then renders its definition's ports into a Gateway and routes in the
// workload's namespace, and is Healthy once traefik has Programmed the Gateway and Accepted every
// route. Deletion runs in reverse: routes and Gateway, then (for the runtime's last gateway)
// traefik and the controller WorkloadInstance.
//
// Real (EKS, kubeconfig) clusters are refused for now: traefik's Helm chart is not in the traefik
// module (it lives in traefik/traefik-helm-chart) and no registry this build can reach serves it.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { DomainNameDefinition, GatewayDefinition, GatewayHttpPort, GatewayInstance, GatewayTcpPort } from '../../kinds/gateway.js';
import { KubernetesRuntimeDefinition, KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import { WorkloadDefinition, WorkloadInstance, WorkloadResourceInstance } from '../../kinds/workload.js';
import type { Kind } from '../../kinds/declare.js';
import type { JsonObject } from '../../kinds/validate.js';
import { ConflictError, NotFoundError, describeError } from '../../errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import { ReconcileError, TerminalError } from '../../reconcile/errors.js';
import { recordEvent } from '../../reconcile/events.js';
import { requestReconcile } from '../../reconcile/choreography.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import { KubeClients } from '../../providers/kube/clients.js';
import { connectionFromRuntimeInstance } from '../../providers/kube/connection.js';
import type { KubeClusterClient, KubeObject } from '../../providers/kube/client.js';
import { findSupportPeer, installCrds, SupportPeerMissingError } from '../../providers/support-peers/index.js';
import { ensureAttached, removeAttached } from '../aws/common.js';
import {
  GATEWAY_API,
  GATEWAY_API_ALPHA,
  GATEWAY_CLASS,
  LABEL_GATEWAY_INSTANCE,
  TRAEFIK_CONTROLLER_NAME,
  definitionPortsProblem,
  gatewayHealth,
  portsOf,
  renderGateway,
} from './render.js';
import { RuntimeTraefik } from './traefik.js';

export const CONTROLLER_NAME = 'GatewayController';

/** Why real clusters are refused, in words a user can act on. */
export const REAL_CLUSTER_UNAVAILABLE =
  "gateways are only available on simulated (kwok) runtimes for now: on EKS and registered clusters the gateway controller would install traefik's official Helm chart, which is not in the traefik Go module (it lives in traefik/traefik-helm-chart) and which no registry this build uses serves";

export interface GatewayControllerOptions {
  /** The server's data directory: each runtime's traefik lives under `<dataDir>/gateways/`. */
  dataDir: string;
  logger: Logger;
  kube?: KubeClients;
  /** Where a runtime's processes run (several replicas): a simulated runtime only on the server that started it. */
  pinning?: (store: ObjectStore, runtime: JsonObject) => Promise<'here' | 'elsewhere' | undefined>;
}

function label(gi: JsonObject): string {
  return `GatewayInstance ${JSON.stringify(gi['Name'])} (ID ${String(gi['ID'])})`;
}

function dnsLabel(s: string): string {
  return (s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'gateway').slice(0, 50);
}

export function controllerWorkloadName(runtime: JsonObject): string {
  return `gateway-controller-${dnsLabel(String(runtime['Name']))}`;
}

const CONTROLLER_YAML = `apiVersion: ${GATEWAY_API}
kind: GatewayClass
metadata:
  name: ${GATEWAY_CLASS}
spec:
  controllerName: ${TRAEFIK_CONTROLLER_NAME}
`;

/** The controller refuses TLS ports whatever the definition says (the API lets registered ones through). */
function portsProblem(gd: JsonObject): string | undefined {
  return definitionPortsProblem({ ...gd, Reconciled: false });
}

export class GatewayController {
  readonly reconcilers: Reconciler[];
  readonly #log: Logger;
  readonly #options: GatewayControllerOptions;
  #kube: KubeClients | undefined;
  #store: ObjectStore | undefined;
  /** traefik per simulated runtime (by runtime ID). */
  readonly #traefik = new Map<number, RuntimeTraefik>();
  /** Runtimes whose Gateway API CRDs this process installed. */
  readonly #crdsInstalled = new Set<number>();
  /** Per-runtime serialisation of installs and removals. */
  readonly #locks = new Map<number, Promise<unknown>>();

  constructor(options: GatewayControllerOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#kube = options.kube;
    this.reconcilers = [this.#definitionReconciler(), this.#instanceReconciler()];
  }

  /** After a restart: gateways reconcile again, which brings their runtime's traefik back. */
  async start(store: ObjectStore): Promise<void> {
    this.#store = store;
    for (const gi of await store.find(GatewayInstance, {})) {
      if (gi['DeletionScheduled']) continue;
      await requestReconcile(store, GatewayInstance, Number(gi['ID'])).catch(() => undefined);
    }
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#traefik.values()].map((t) => t.stop().catch(() => undefined)));
    this.#traefik.clear();
    this.#kube?.close();
  }

  /** The runtime's traefik, when it runs in this process (tests, benchmarks). */
  traefikOf(runtimeId: number): RuntimeTraefik | undefined {
    return this.#traefik.get(runtimeId);
  }

  /** The runtime is being deleted: its traefik goes with it. */
  async runtimeDeleted(runtimeId: number): Promise<void> {
    const t = this.#traefik.get(runtimeId);
    this.#traefik.delete(runtimeId);
    this.#crdsInstalled.delete(runtimeId);
    await t?.remove();
  }

  #kubeClients(store: ObjectStore): KubeClients {
    this.#kube ??= new KubeClients({ decrypt: (v) => store.decrypt(v) });
    return this.#kube;
  }

  async #locked<T>(runtimeId: number, work: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(runtimeId) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(work);
    this.#locks.set(runtimeId, next);
    try {
      return await next;
    } finally {
      if (this.#locks.get(runtimeId) === next) this.#locks.delete(runtimeId);
    }
  }

  // ---- GatewayDefinition ----------------------------------------------------------------------

  #definitionReconciler(): Reconciler {
    const check = async (ctx: ReconcileContext, gd: JsonObject): Promise<void> => {
      const problem = portsProblem(gd);
      if (problem) throw new TerminalError(problem, { event: { reason: 'InvalidGatewayPorts', note: problem, type: 'Warning' } });
      // Its instances render again (a changed port, path or subdomain).
      if (ctx.operation === 'Updated') {
        for (const gi of await ctx.store.find(GatewayInstance, { GatewayDefinitionID: ctx.id })) {
          if (!gi['DeletionScheduled']) await requestReconcile(ctx.store, GatewayInstance, Number(gi['ID'])).catch(() => undefined);
        }
      }
    };
    return {
      kind: GatewayDefinition.name,
      controller: CONTROLLER_NAME,
      created: check,
      updated: check,
      // Upstream deletes the ports with the definition.
      deleted: async (ctx) => {
        await ctx.store.deleteWhere(GatewayHttpPort, { GatewayDefinitionID: ctx.id });
        await ctx.store.deleteWhere(GatewayTcpPort, { GatewayDefinitionID: ctx.id });
      },
    };
  }

  // ---- GatewayInstance ------------------------------------------------------------------------

  #instanceReconciler(): Reconciler {
    return {
      kind: GatewayInstance.name,
      controller: CONTROLLER_NAME,
      created: (ctx, gi) => this.#converge(ctx, gi),
      updated: (ctx, gi) => this.#converge(ctx, gi),
      deleted: (ctx, gi) => this.#remove(ctx, gi),
    };
  }

  async #get(store: ObjectStore, kind: Kind, id: unknown): Promise<JsonObject | undefined> {
    if (typeof id !== 'number') return undefined;
    try {
      return await store.getObject(kind, id);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async #wait(ctx: ReconcileContext, reason: string, note: string, afterMs?: number): Promise<ReconcileResult> {
    await ctx.recordEvent({ reason, note, type: 'Normal' });
    const waited = ctx.clock.now() - ctx.firstQueuedAt.getTime();
    return { requeueAfterMs: afterMs ?? Math.round(Math.min(5_000, Math.max(500, waited / 10))) };
  }

  async #runtime(ctx: ReconcileContext, gi: JsonObject): Promise<{ runtime: JsonObject; provider: string }> {
    const runtime = await this.#get(ctx.store, KubernetesRuntimeInstance, gi['KubernetesRuntimeInstanceID']);
    if (!runtime) throw new TerminalError(`${label(gi)}: its KubernetesRuntimeInstance ${String(gi['KubernetesRuntimeInstanceID'])} does not exist`);
    const definition = await this.#get(ctx.store, KubernetesRuntimeDefinition, runtime['KubernetesRuntimeDefinitionID']);
    return { runtime, provider: String(definition?.['InfraProvider'] ?? '') };
  }

  /** Every port of every live gateway on the runtime (traefik needs an entry point for each). */
  async #runtimePorts(store: ObjectStore, runtimeId: number, without?: number): Promise<number[]> {
    const ports: number[] = [];
    for (const gi of await store.find(GatewayInstance, { KubernetesRuntimeInstanceID: runtimeId })) {
      if (Number(gi['ID']) === without || gi['DeletionScheduled']) continue;
      const gd = await this.#get(store, GatewayDefinition, gi['GatewayDefinitionID']);
      if (!gd || portsProblem(gd)) continue;
      const { http, tcp } = portsOf(gd);
      ports.push(...http.map((p) => p.Port), ...tcp.map((p) => p.Port));
    }
    return ports;
  }

  #traefikFor(store: ObjectStore, runtime: JsonObject): RuntimeTraefik {
    const id = Number(runtime['ID']);
    let t = this.#traefik.get(id);
    if (!t) {
      const conn = connectionFromRuntimeInstance(runtime, (v) => store.decrypt(v));
      const dir = join(this.#options.dataDir, 'gateways', `runtime-${id}`);
      t = new RuntimeTraefik(dir, conn, (e) => {
        this.#log.info({ runtimeId: id, peer: e.peer, reason: e.reason }, e.message);
        void recordEvent(store.db.pool, KubernetesRuntimeInstance.name, id, { reason: e.reason, note: e.message, type: e.type, reportingController: CONTROLLER_NAME }, new Date()).catch(
          (err: unknown) => this.#log.warn({ err: describeError(err) }, 'cannot record a support peer event'),
        );
      });
      this.#traefik.set(id, t);
    }
    return t;
  }

  /**
   * The gateway controller on the runtime: CRDs, the controller WorkloadInstance (GatewayClass),
   * traefik. Returns a wait note while the WorkloadInstance is not reconciled yet.
   */
  async #ensureController(ctx: ReconcileContext, runtime: JsonObject, ports: number[]): Promise<string | undefined> {
    const store = ctx.store;
    const runtimeId = Number(runtime['ID']);
    return this.#locked(runtimeId, async () => {
      if (!this.#crdsInstalled.has(runtimeId)) {
        let files: string[];
        try {
          files = findSupportPeer('gateway-api', { experimentalCrds: true }).crdFiles;
          findSupportPeer('traefik');
        } catch (err) {
          if (err instanceof SupportPeerMissingError) throw new TerminalError(err.message, { event: { reason: 'GatewayControllerMissing', note: err.message, type: 'Warning' } });
          throw err;
        }
        await installCrds(connectionFromRuntimeInstance(runtime, (v) => store.decrypt(v)), files);
        this.#crdsInstalled.add(runtimeId);
      }
      const wi = await this.#controllerWorkload(store, runtime);
      const state = await this.#traefikFor(store, runtime).ensure(ports);
      if (state !== 'running') {
        await ctx.recordEvent({ reason: state === 'started' ? 'GatewayControllerInstalled' : 'GatewayControllerUpdated', note: `traefik v3.6.12 ${state} for KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])} on ports ${[...new Set(ports)].sort((a, b) => a - b).join(', ')}`, type: 'Normal' });
      }
      if (wi['Reconciled'] !== true) return `waiting for the gateway controller WorkloadInstance ${JSON.stringify(wi['Name'])} (ID ${String(wi['ID'])}) to be reconciled`;
      return undefined;
    });
  }

  /** The runtime's gateway controller WorkloadInstance, created (and recorded on the runtime) when missing. */
  async #controllerWorkload(store: ObjectStore, runtime: JsonObject): Promise<JsonObject> {
    const runtimeId = Number(runtime['ID']);
    const fresh = (await this.#get(store, KubernetesRuntimeInstance, runtimeId)) ?? runtime;
    const recorded = await this.#get(store, WorkloadInstance, fresh['GatewayWorkloadInstanceID']);
    if (recorded && !recorded['DeletionScheduled']) return recorded;
    const name = controllerWorkloadName(runtime);
    let [wd] = await store.find(WorkloadDefinition, { Name: name });
    if (!wd) wd = JSON.parse(await store.create(WorkloadDefinition, { Name: name, YAMLDocument: CONTROLLER_YAML })) as JsonObject;
    let [wi] = (await store.find(WorkloadInstance, { Name: name })).filter((w) => !w['DeletionScheduled']);
    if (!wi) {
      wi = JSON.parse(
        await store.create(WorkloadInstance, { Name: name, WorkloadDefinitionID: Number(wd['ID']), KubernetesRuntimeInstanceID: runtimeId }),
      ) as JsonObject;
    }
    await store.patch(KubernetesRuntimeInstance, runtimeId, { GatewayWorkloadInstanceID: Number(wi['ID']) }, { enqueue: false });
    return wi;
  }

  /** The backend Service: the one named by ServiceName, else the workload's first Service. */
  async #backend(ctx: ReconcileContext, gi: JsonObject, gd: JsonObject, wi: JsonObject): Promise<{ name: string; namespace: string; port: number }> {
    const services = (await ctx.store.find(WorkloadResourceInstance, { WorkloadInstanceID: Number(wi['ID']) }))
      .filter((w) => !w['ScheduledForDeletion'])
      .sort((a, b) => Number(a['ID']) - Number(b['ID']))
      .map((w) => w['JSONDefinition'] as KubeObject)
      .filter((o) => o?.kind === 'Service' && o.apiVersion === 'v1');
    const wanted = typeof gd['ServiceName'] === 'string' && gd['ServiceName'] !== '' ? gd['ServiceName'] : undefined;
    const svc = wanted ? services.find((s) => s.metadata.name === wanted) : services[0];
    if (!svc) {
      const note = wanted
        ? `${label(gi)}: GatewayDefinition ${JSON.stringify(gd['Name'])} names ServiceName ${JSON.stringify(wanted)}, but WorkloadInstance ${JSON.stringify(wi['Name'])} has no Service named ${JSON.stringify(wanted)} (it has: ${services.map((s) => s.metadata.name).join(', ') || 'none'})`
        : `${label(gi)}: WorkloadInstance ${JSON.stringify(wi['Name'])} has no Service for the gateway to route to`;
      throw new TerminalError(note, { event: { reason: 'GatewayServiceNotFound', note, type: 'Warning' } });
    }
    const ports = ((svc['spec'] as Record<string, unknown> | undefined)?.['ports'] ?? []) as Array<Record<string, unknown>>;
    const port = ports[0]?.['port'];
    if (typeof port !== 'number') {
      const note = `${label(gi)}: Service ${JSON.stringify(svc.metadata.name)} declares no port`;
      throw new TerminalError(note, { event: { reason: 'GatewayServiceNotFound', note, type: 'Warning' } });
    }
    return { name: svc.metadata.name, namespace: svc.metadata.namespace ?? 'default', port };
  }

  async #hostname(store: ObjectStore, gd: JsonObject): Promise<string | undefined> {
    const dnd = await this.#get(store, DomainNameDefinition, gd['DomainNameDefinitionID']);
    const domain = typeof dnd?.['Domain'] === 'string' && dnd['Domain'] ? dnd['Domain'] : undefined;
    if (!domain) return undefined;
    const sub = typeof gd['SubDomain'] === 'string' && gd['SubDomain'] ? gd['SubDomain'] : undefined;
    return sub ? `${sub}.${domain}` : domain;
  }

  async #converge(ctx: ReconcileContext, gi: JsonObject): Promise<ReconcileResult> {
    const store = ctx.store;
    this.#store ??= store;
    const gd = await this.#get(store, GatewayDefinition, gi['GatewayDefinitionID']);
    if (!gd) throw new TerminalError(`${label(gi)}: its GatewayDefinition ${String(gi['GatewayDefinitionID'])} does not exist`);
    const problem = portsProblem(gd);
    if (problem) throw new TerminalError(`${label(gi)}: ${problem}`, { event: { reason: 'InvalidGatewayPorts', note: problem, type: 'Warning' } });
    const { http, tcp } = portsOf(gd);
    if (http.length + tcp.length === 0) throw new TerminalError(`${label(gi)}: GatewayDefinition ${JSON.stringify(gd['Name'])} has no HttpPorts or TcpPorts`);
    const wi = await this.#get(store, WorkloadInstance, gi['WorkloadInstanceID']);
    if (!wi || wi['DeletionScheduled']) throw new TerminalError(`${label(gi)}: its WorkloadInstance ${String(gi['WorkloadInstanceID'])} does not exist`);
    await ensureAttached(store, Number(wi['ID']), GatewayInstance.name, ctx.id);
    const { runtime, provider } = await this.#runtime(ctx, gi);
    if (provider !== 'kwok') {
      throw new TerminalError(`${label(gi)}: ${REAL_CLUSTER_UNAVAILABLE}`, { event: { reason: 'GatewayControllerUnavailable', note: REAL_CLUSTER_UNAVAILABLE, type: 'Warning' } });
    }
    // traefik runs beside the simulated cluster's own processes, on the server that started them.
    if ((await this.#options.pinning?.(store, runtime).catch(() => undefined)) === 'elsewhere') {
      return this.#wait(ctx, 'WaitingForRuntimeOwner', `KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])} runs on another controllers replica; its gateway controller runs there`, 2_000);
    }
    if (runtime['Reconciled'] !== true || !runtime['APIEndpoint']) {
      return this.#wait(ctx, 'WaitingForKubernetesRuntimeInstance', `waiting for KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])} to be Reconciled`);
    }
    if (wi['Reconciled'] !== true) {
      return this.#wait(ctx, 'WaitingForWorkloadInstance', `waiting for WorkloadInstance ${JSON.stringify(wi['Name'])} (ID ${String(wi['ID'])}) to be reconciled`);
    }
    const backend = await this.#backend(ctx, gi, gd, wi);
    const ports = await this.#runtimePorts(store, Number(runtime['ID']));
    ports.push(...http.map((p) => p.Port), ...tcp.map((p) => p.Port));
    const waiting = await this.#ensureController(ctx, runtime, ports);
    if (waiting) return this.#wait(ctx, 'WaitingForGatewayController', waiting);

    const client = this.#kubeClients(store).forRuntime(runtime);
    const wanted = renderGateway({
      instanceId: ctx.id,
      name: `gateway-${dnsLabel(String(gi['Name']))}`,
      namespace: backend.namespace,
      hostname: await this.#hostname(store, gd),
      http,
      tcp,
      service: { name: backend.name, port: backend.port },
    });
    for (const o of wanted) await client.apply(o, { signal: ctx.signal });
    await this.#removeStale(client, ctx.id, backend.namespace, wanted, ctx.signal);

    const live = await Promise.all(wanted.map((o) => client.get({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, namespace: backend.namespace }, { signal: ctx.signal })));
    const health = gatewayHealth(live, wanted);
    if (!health.healthy) {
      if (gi['Status'] !== 'Unhealthy') await ctx.patchSelf({ Status: 'Unhealthy' });
      return this.#wait(ctx, 'WaitingForGatewayProgrammed', `${health.waiting ?? 'not programmed yet'}`, 1_000);
    }
    if (gi['Status'] !== 'Healthy') await ctx.patchSelf({ Status: 'Healthy' });
    return undefined;
  }

  /** Routes and Gateways of this instance that the definition no longer declares. */
  async #removeStale(client: KubeClusterClient, id: number, namespace: string | undefined, wanted: readonly KubeObject[], signal: AbortSignal): Promise<number> {
    const keep = new Set(wanted.map((o) => `${o.kind}/${o.metadata.name}`));
    let removed = 0;
    // Routes before the Gateway they attach to.
    for (const [apiVersion, kind] of [[GATEWAY_API_ALPHA, 'TCPRoute'], [GATEWAY_API, 'HTTPRoute'], [GATEWAY_API, 'Gateway']] as const) {
      let items: KubeObject[];
      try {
        items = (await client.list(apiVersion, kind, { ...(namespace ? { namespace } : {}), labelSelector: `${LABEL_GATEWAY_INSTANCE}=${id}`, signal })).items;
      } catch (err) {
        if (/not found|no such|could not find|404/i.test(describeError(err))) continue; // CRDs gone: nothing to remove
        throw err;
      }
      for (const o of items) {
        if (keep.has(`${o.kind}/${o.metadata.name}`)) continue;
        await client.delete({ apiVersion, kind, name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) }, { signal });
        removed++;
      }
    }
    return removed;
  }

  async #remove(ctx: ReconcileContext, gi: JsonObject): Promise<ReconcileResult> {
    const store = ctx.store;
    const runtime = await this.#get(store, KubernetesRuntimeInstance, gi['KubernetesRuntimeInstanceID']);
    const runtimeId = Number(gi['KubernetesRuntimeInstanceID']);
    if (runtime?.['APIEndpoint']) {
      const client = this.#kubeClients(store).forRuntime(runtime);
      try {
        // First the routes and the Gateway; the controller that serves them goes after.
        await this.#removeStale(client, ctx.id, undefined, [], ctx.signal);
      } catch (err) {
        throw new ReconcileError(`${label(gi)}: cannot remove its routes: ${describeError(err)}`, { cause: err });
      }
    }
    await removeAttached(store, undefined, GatewayInstance.name, ctx.id);
    if (!runtime) {
      await this.runtimeDeleted(runtimeId);
      return undefined;
    }
    const others = (await store.find(GatewayInstance, { KubernetesRuntimeInstanceID: runtimeId })).filter(
      (o) => Number(o['ID']) !== ctx.id && !o['DeletionScheduled'],
    );
    if (others.length > 0) {
      // The remaining gateways' ports only.
      const t = this.#traefik.get(runtimeId);
      if (t?.running) await this.#locked(runtimeId, async () => t.ensure(await this.#runtimePorts(store, runtimeId, ctx.id)));
      return undefined;
    }
    // The runtime's last gateway: traefik, then the controller WorkloadInstance and its definition.
    return this.#locked(runtimeId, async () => {
      const t = this.#traefik.get(runtimeId);
      this.#traefik.delete(runtimeId);
      if (t) {
        await t.remove();
        await ctx.recordEvent({ reason: 'GatewayControllerRemoved', note: `traefik stopped on KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])}: its last gateway is gone`, type: 'Normal' });
      }
      const wi = await this.#get(store, WorkloadInstance, runtime['GatewayWorkloadInstanceID']);
      if (wi) {
        if (!wi['DeletionScheduled']) {
          await store.delete(WorkloadInstance, Number(wi['ID'])).catch((err: unknown) => {
            if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
          });
        }
        return { requeueAfterMs: 500 };
      }
      const [wd] = await store.find(WorkloadDefinition, { Name: controllerWorkloadName(runtime) });
      if (wd) {
        const users = await store.find(WorkloadInstance, { WorkloadDefinitionID: Number(wd['ID']) });
        if (users.length > 0) return { requeueAfterMs: 500 };
        if (!wd['DeletionScheduled']) {
          await store.delete(WorkloadDefinition, Number(wd['ID'])).catch((err: unknown) => {
            if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
          });
        }
      }
      if (runtime['GatewayWorkloadInstanceID'] != null) {
        await store.patch(KubernetesRuntimeInstance, runtimeId, { GatewayWorkloadInstanceID: null }, { enqueue: false }).catch(() => undefined);
      }
      return undefined;
    });
  }
}
