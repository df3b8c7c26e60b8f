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
// TLS ports (cert-manager.ts): the first TLS port on a runtime starts cert-manager there and its
// issuers; the gateway's Certificate is for `<SubDomain>.<Domain>`; the instance is Healthy once
// the Certificate is Ready too, and its issuance and renewals are events. Deletion removes the
// routes, the Gateway, then the Certificate and its Secret, and with the runtime's last TLS port
// cert-manager and its issuers.
//
// Real (EKS, kubeconfig) clusters are refused for now: traefik's Helm chart is not in the traefik
// module (it lives in traefik/traefik-helm-chart) and no registry this build can reach serves it.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { AwsAccount } from '../../kinds/aws.js';
import { DomainNameDefinition, GatewayDefinition, GatewayHttpPort, GatewayInstance, GatewayTcpPort } from '../../kinds/gateway.js';
import { KubernetesRuntimeDefinition, KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import { WorkloadDefinition, WorkloadInstance, WorkloadResourceInstance } from '../../kinds/workload.js';
import type { Kind } from '../../kinds/declare.js';
import type { JsonObject } from '../../kinds/validate.js';
import { ConflictError, NotFoundError, describeError, ignoreNotFound } from '../../errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import { ReconcileError, TerminalError } from '../../reconcile/errors.js';
import { recordEvent } from '../../reconcile/events.js';
import { edgesOf } from '../graph.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import { KubeClients } from '../../providers/kube/clients.js';
import { connectionFromRuntimeInstance } from '../../providers/kube/connection.js';
import type { KubeClusterClient, KubeObject } from '../../providers/kube/client.js';
import { KubeError } from '../../providers/kube/errors.js';
import { AWS_ENDPOINT_ENV } from '../../providers/aws/provider.js';
import { findSupportPeer, installCrds, SupportPeerMissingError, type AwsTarget, type PeerEvent } from '../../providers/support-peers/index.js';
import { ensureAttached, removeAttached } from '../aws/common.js';
import {
  CERT_MANAGER_API,
  GATEWAY_API,
  GATEWAY_API_ALPHA,
  GATEWAY_CLASS,
  LABEL_GATEWAY_INSTANCE,
  TRAEFIK_CONTROLLER_NAME,
  TLS_NEEDS_DOMAIN,
  definitionPortsProblem,
  gatewayHealth,
  portsOf,
  renderGateway,
} from './render.js';
import { RuntimeTraefik } from './traefik.js';
import { PerRuntimeLock } from './support-workload.js';
import {
  CA_ISSUER,
  RuntimeCertManager,
  acmeIssuerName,
  acmeIssuerObject,
  caIssuerObjects,
  certManagerVersion,
  certificateSettingsFromEnv,
  certificateState,
  challengeNote,
  pruneAcmeIssuers,
  removeIssuers,
  usesAcme,
  type CertificateSettings,
  type DomainForIssuer,
} from './cert-manager.js';

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
  /** ACME and certificate checks; default from the environment (certificateSettingsFromEnv). */
  certificates?: CertificateSettings;
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

/** The controller applies the API's rules whatever the definition says (a registered one, Reconciled: true, skips the TLS rules at the API). */
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
  readonly #locks = new PerRuntimeLock();
  /** cert-manager per simulated runtime with TLS ports (by runtime ID). */
  readonly #certManagers = new Map<number, RuntimeCertManager>();
  /** Issuer objects applied per runtime by this process (name and content), so each is applied once. */
  readonly #issuers = new Map<number, Set<string>>();
  readonly #certificates: CertificateSettings;

  constructor(options: GatewayControllerOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#kube = options.kube;
    this.#certificates = options.certificates ?? certificateSettingsFromEnv();
    this.reconcilers = [this.#definitionReconciler(), this.#instanceReconciler()];
  }

  async start(store: ObjectStore): Promise<void> {
    this.#store = store;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#traefik.values(), ...this.#certManagers.values()].map((t) => t.stop().catch(() => undefined)));
    this.#traefik.clear();
    this.#certManagers.clear();
    this.#issuers.clear();
    this.#kube?.close();
  }

  /** The runtime's traefik, when it runs in this process (tests, benchmarks). */
  traefikOf(runtimeId: number): RuntimeTraefik | undefined {
    return this.#traefik.get(runtimeId);
  }

  /** The runtime's cert-manager, when it runs in this process (tests, benchmarks). */
  certManagerOf(runtimeId: number): RuntimeCertManager | undefined {
    return this.#certManagers.get(runtimeId);
  }

  /** The runtime is being deleted: its traefik and cert-manager go with it. */
  async runtimeDeleted(runtimeId: number): Promise<void> {
    const t = this.#traefik.get(runtimeId);
    const c = this.#certManagers.get(runtimeId);
    this.#traefik.delete(runtimeId);
    this.#certManagers.delete(runtimeId);
    this.#crdsInstalled.delete(runtimeId);
    this.#issuers.delete(runtimeId);
    await Promise.all([t?.remove(), c?.remove()]);
  }

  #kubeClients(store: ObjectStore): KubeClients {
    this.#kube ??= new KubeClients({ decrypt: (v) => store.decrypt(v) });
    return this.#kube;
  }


  // ---- GatewayDefinition ----------------------------------------------------------------------

  #definitionReconciler(): Reconciler {
    const check = async (ctx: ReconcileContext, gd: JsonObject): Promise<void> => {
      const problem = portsProblem(gd);
      if (problem) throw new TerminalError(problem, { event: { reason: 'InvalidGatewayPorts', note: problem, type: 'Warning' } });
    };
    return {
      kind: GatewayDefinition.name,
      controller: CONTROLLER_NAME,
      // Its instances render again once a change (a port, path or subdomain) is reconciled: the
      // definition owns them (src/controllers/graph.ts).
      ...edgesOf(GatewayDefinition.name),
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
      // After a restart every gateway reconciles again, which brings its runtime's traefik back.
      resume: async (store) => (await store.find(GatewayInstance, {})).filter((gi) => !gi['DeletionScheduled']).map((gi) => Number(gi['ID'])),
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
      t = new RuntimeTraefik(dir, conn, this.#peerEvents(store, id));
      this.#traefik.set(id, t);
    }
    return t;
  }

  /** A support peer's starts, exits and restarts become events on its KubernetesRuntimeInstance. */
  #peerEvents(store: ObjectStore, runtimeId: number): (e: PeerEvent) => void {
    return (e) => {
      this.#log.info({ runtimeId, peer: e.peer, reason: e.reason }, e.message);
      void recordEvent(store.db.pool, KubernetesRuntimeInstance.name, runtimeId, { reason: e.reason, note: e.message, type: e.type, reportingController: CONTROLLER_NAME }, new Date()).catch(
        (err: unknown) => this.#log.warn({ err: describeError(err) }, 'cannot record a support peer event'),
      );
    };
  }

  /**
   * The gateway controller on the runtime: CRDs, the controller WorkloadInstance (GatewayClass),
   * traefik. Returns a wait note while the WorkloadInstance is not reconciled yet.
   */
  async #ensureController(ctx: ReconcileContext, runtime: JsonObject, ports: number[]): Promise<string | undefined> {
    const store = ctx.store;
    const runtimeId = Number(runtime['ID']);
    return this.#locks.run(runtimeId, async () => {
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
    const name = `gateway-${dnsLabel(String(gi['Name']))}`;
    const hostname = await this.#hostname(store, gd);
    const issuer = http.some((p) => p.TLSEnabled) ? await this.#ensureCertManager(ctx, runtime, gi, gd) : undefined;
    const wanted = renderGateway({
      instanceId: ctx.id,
      name,
      namespace: backend.namespace,
      hostname,
      http,
      tcp,
      service: { name: backend.name, port: backend.port },
      ...(issuer ? { tls: { secretName: `${name}-tls`, issuer } } : {}),
    });
    for (const o of wanted) await client.apply(o, { signal: ctx.signal });
    await this.#removeStale(client, ctx.id, backend.namespace, wanted, ctx.signal);
    // A definition that dropped its TLS ports may have been the runtime's last TLS user.
    if (!issuer) await this.#releaseCertManager(ctx, runtime, ctx.id, { onlyIfRunning: true });

    const live = await Promise.all(wanted.map((o) => client.get({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, namespace: backend.namespace }, { signal: ctx.signal })));
    const health = gatewayHealth(live, wanted);
    if (!health.healthy) {
      if (gi['Status'] !== 'Unhealthy') await ctx.patchSelf({ Status: 'Unhealthy' });
      if (health.waitingFor === 'Certificate') {
        const cert = certificateState(live[0]);
        const challenge = issuer && issuer !== CA_ISSUER && hostname ? await challengeNote(client, backend.namespace, hostname, ctx.signal) : undefined;
        if (cert.reason === 'Expired') {
          await ctx.recordEvent({ reason: 'CertificateExpired', note: `Certificate ${backend.namespace}/${name}-tls for ${String(hostname)} expired at ${String(cert.notAfter)} and is not renewed yet: ${cert.message ?? ''}`, type: 'Warning' });
        }
        const note = `waiting for the certificate: ${health.waiting ?? ''} (host ${String(hostname)}, ClusterIssuer ${String(issuer)})${challenge ? `; ${challenge}` : ''}`;
        return this.#wait(ctx, 'WaitingForCertificate', note, 2_000);
      }
      return this.#wait(ctx, 'WaitingForGatewayProgrammed', `${health.waiting ?? 'not programmed yet'}`, 1_000);
    }
    if (gi['Status'] !== 'Healthy') await ctx.patchSelf({ Status: 'Healthy' });
    if (!issuer) return undefined;
    return this.#certificateObserved(ctx, gi, live[0], `${backend.namespace}/${name}-tls`, String(hostname), issuer);
  }

  /**
   * A Ready certificate: its issuance (revision 1) or renewal (revision n) is an event with its
   * validity and next renewal, recorded once per revision (events de-duplicate on their note). The
   * instance is Reconciled and looks again at the renewal time, or after the check interval.
   */
  async #certificateObserved(ctx: ReconcileContext, gi: JsonObject, cert: KubeObject | undefined, where: string, host: string, issuer: string): Promise<ReconcileResult> {
    const st = certificateState(cert);
    const revision = st.revision ?? 1;
    const note = `Certificate ${where} for ${host} from ClusterIssuer ${issuer} is Ready (revision ${revision}): valid until ${st.notAfter ?? '?'}, renewal at ${st.renewalTime ?? '?'}`;
    await ctx.recordEvent({ reason: revision > 1 ? 'CertificateRenewed' : 'CertificateIssued', note, type: 'Normal' });
    if (gi['Reconciled'] !== true) await ctx.patchSelf({ Reconciled: true });
    const untilRenewal = st.renewalTime ? Date.parse(st.renewalTime) - ctx.clock.now() + 1_000 : Number.POSITIVE_INFINITY;
    return { requeueAfterMs: Math.max(1_000, Math.min(this.#certificates.checkIntervalMs, untilRenewal)) };
  }

  /** The DomainNameDefinition fields that choose the issuer. */
  async #domainForIssuer(store: ObjectStore, gi: JsonObject, gd: JsonObject): Promise<DomainForIssuer> {
    const dnd = await this.#get(store, DomainNameDefinition, gd['DomainNameDefinitionID']);
    if (!dnd || typeof dnd['Domain'] !== 'string' || dnd['Domain'] === '') {
      const note = `${label(gi)}: GatewayDefinition ${JSON.stringify(gd['Name'])} has TLS ports but its DomainNameDefinition ${String(gd['DomainNameDefinitionID'])} does not exist; ${TLS_NEEDS_DOMAIN}`;
      throw new TerminalError(note, { event: { reason: 'InvalidGatewayPorts', note, type: 'Warning' } });
    }
    return { id: Number(dnd['ID']), domain: dnd['Domain'], zone: String(dnd['Zone'] ?? ''), adminEmail: String(dnd['AdminEmail'] ?? '') };
  }

  /** Route 53 for the ACME DNS-01 solver: the default AwsAccount's keys, region and the server's AWS endpoint. */
  async #route53(store: ObjectStore): Promise<AwsTarget | undefined> {
    const [account] = await store.find(AwsAccount, { DefaultAccount: true });
    const key = account?.['AccessKeyID'];
    const secret = account?.['SecretAccessKey'];
    if (typeof key !== 'string' || typeof secret !== 'string' || !key || !secret) return undefined;
    const endpoint = process.env[AWS_ENDPOINT_ENV];
    return {
      ...(endpoint ? { endpoint } : {}),
      region: String(account!['DefaultRegion']),
      accessKeyId: store.decrypt(key),
      secretAccessKey: store.decrypt(secret),
    };
  }

  /**
   * cert-manager and the issuers on the runtime, for a gateway with TLS ports; returns the name
   * of the ClusterIssuer for this gateway's certificate.
   */
  async #ensureCertManager(ctx: ReconcileContext, runtime: JsonObject, gi: JsonObject, gd: JsonObject): Promise<string> {
    const store = ctx.store;
    const runtimeId = Number(runtime['ID']);
    const domain = await this.#domainForIssuer(store, gi, gd);
    const acme = usesAcme(this.#certificates, domain) ? this.#certificates.acme : undefined;
    // Whenever the server has an ACME directory, cert-manager starts with the Route 53 credentials
    // (when there are some), so that its command line does not depend on which gateway came first.
    const route53 = this.#certificates.acme ? await this.#route53(store) : undefined;
    if (acme && !route53) {
      const note = `${label(gi)}: the certificate for ${domain.domain} would come from ACME (${acme.directoryUrl}) through a Route 53 DNS-01 challenge, which needs the default AwsAccount (DefaultAccount: true) with static keys (AccessKeyID, SecretAccessKey) for Route 53`;
      throw new TerminalError(note, { event: { reason: 'CertificateIssuerUnavailable', note, type: 'Warning' } });
    }
    return this.#locks.run(runtimeId, async () => {
      const issuers = this.#issuers.get(runtimeId) ?? new Set<string>();
      this.#issuers.set(runtimeId, issuers);
      if (!issuers.has('crds')) {
        let files: string[];
        try {
          files = findSupportPeer('cert-manager').crdFiles;
        } catch (err) {
          if (err instanceof SupportPeerMissingError) throw new TerminalError(err.message, { event: { reason: 'CertificateControllerMissing', note: err.message, type: 'Warning' } });
          throw err;
        }
        await installCrds(connectionFromRuntimeInstance(runtime, (v) => store.decrypt(v)), files);
        issuers.add('crds');
      }
      const state = await this.#certManagerFor(store, runtime).ensure({ ...(this.#certificates.acme ? { acme: this.#certificates.acme } : {}), ...(route53 ? { route53 } : {}) });
      if (state !== 'running') {
        const via = this.#certificates.acme ? `; ACME ${this.#certificates.acme.directoryUrl} for Public zones, Route 53 ${route53 ? `in ${route53.region}` : 'not configured (no default AwsAccount with keys)'}` : '';
        await ctx.recordEvent({
          reason: state === 'started' ? 'CertificateControllerInstalled' : 'CertificateControllerUpdated',
          note: `cert-manager ${certManagerVersion()} ${state} for KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])}: CA issuer ${CA_ISSUER}${via}`,
          type: 'Normal',
        });
      }
      const client = this.#kubeClients(store).forRuntime(runtime);
      const objects = [...caIssuerObjects(String(runtime['Name'])), ...(acme && route53 ? [acmeIssuerObject(acme, domain, route53.region)] : [])];
      for (const o of objects) {
        const key = `${o.kind}/${o.metadata.name}/${JSON.stringify(o['spec'] ?? {})}`;
        if (issuers.has(key)) continue;
        await client.apply(o, { signal: ctx.signal });
        issuers.add(key);
      }
      return acme ? acmeIssuerName(domain) : CA_ISSUER;
    });
  }

  #certManagerFor(store: ObjectStore, runtime: JsonObject): RuntimeCertManager {
    const id = Number(runtime['ID']);
    let c = this.#certManagers.get(id);
    if (!c) {
      const conn = connectionFromRuntimeInstance(runtime, (v) => store.decrypt(v));
      c = new RuntimeCertManager(join(this.#options.dataDir, 'certificates', `runtime-${id}`), conn, this.#peerEvents(store, id));
      this.#certManagers.set(id, c);
    }
    return c;
  }

  /** The live gateways on the runtime with TLS ports (other than `without`), and the issuers they use. */
  async #tlsUsers(store: ObjectStore, runtimeId: number, without: number): Promise<{ count: number; acmeIssuers: Set<string> }> {
    const acmeIssuers = new Set<string>();
    let count = 0;
    for (const gi of await store.find(GatewayInstance, { KubernetesRuntimeInstanceID: runtimeId })) {
      if (Number(gi['ID']) === without || gi['DeletionScheduled']) continue;
      const gd = await this.#get(store, GatewayDefinition, gi['GatewayDefinitionID']);
      if (!gd || portsProblem(gd) || !portsOf(gd).http.some((p) => p.TLSEnabled)) continue;
      count++;
      const dnd = await this.#get(store, DomainNameDefinition, gd['DomainNameDefinitionID']);
      if (dnd && usesAcme(this.#certificates, { id: Number(dnd['ID']), domain: String(dnd['Domain']), zone: String(dnd['Zone'] ?? ''), adminEmail: '' })) {
        acmeIssuers.add(acmeIssuerName({ id: Number(dnd['ID']), domain: '', zone: '', adminEmail: '' }));
      }
    }
    return { count, acmeIssuers };
  }

  /**
   * After a gateway stopped using TLS (deleted, or its definition dropped its TLS ports): with no
   * other TLS gateway on the runtime, its issuers and cert-manager go; otherwise only the ACME
   * issuers nobody uses.
   */
  async #releaseCertManager(ctx: ReconcileContext, runtime: JsonObject, without: number, opts: { onlyIfRunning?: boolean } = {}): Promise<void> {
    const store = ctx.store;
    const runtimeId = Number(runtime['ID']);
    if (opts.onlyIfRunning && !this.#certManagers.has(runtimeId)) return;
    const users = await this.#tlsUsers(store, runtimeId, without);
    const client = this.#kubeClients(store).forRuntime(runtime);
    await this.#locks.run(runtimeId, async () => {
      if (users.count > 0) {
        if (this.#certificates.acme && (await pruneAcmeIssuers(client, users.acmeIssuers, ctx.signal)).length > 0) this.#issuers.delete(runtimeId);
        return;
      }
      await removeIssuers(client, ctx.signal);
      this.#issuers.delete(runtimeId);
      const c = this.#certManagers.get(runtimeId);
      this.#certManagers.delete(runtimeId);
      if (c) {
        await c.remove();
        await ctx.recordEvent({ reason: 'CertificateControllerRemoved', note: `cert-manager stopped on KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])} and its issuers removed: its last TLS gateway port is gone`, type: 'Normal' });
      }
    });
  }

  /** Routes, Gateways, Certificates and their Secrets of this instance that the definition no longer declares. */
  async #removeStale(client: KubeClusterClient, id: number, namespace: string | undefined, wanted: readonly KubeObject[], signal: AbortSignal): Promise<number> {
    const keep = new Set(wanted.map((o) => `${o.kind}/${o.metadata.name}`));
    // A Certificate's Secret stays with it.
    for (const o of wanted) if (o.kind === 'Certificate') keep.add(`Secret/${String((o['spec'] as Record<string, unknown>)['secretName'])}`);
    let removed = 0;
    // Routes before the Gateway they attach to, the Gateway before the certificate it serves.
    const kinds = [[GATEWAY_API_ALPHA, 'TCPRoute'], [GATEWAY_API, 'HTTPRoute'], [GATEWAY_API, 'Gateway'], [CERT_MANAGER_API, 'Certificate'], ['v1', 'Secret']] as const;
    for (const [apiVersion, kind] of kinds) {
      let items: KubeObject[];
      try {
        items = (await client.list(apiVersion, kind, { ...(namespace ? { namespace } : {}), labelSelector: `${LABEL_GATEWAY_INSTANCE}=${id}`, signal })).items;
      } catch (err) {
        // CRDs gone (or cert-manager's never installed): nothing of that kind to remove.
        if ((err instanceof KubeError && err.failure === 'UnknownKind') || /not found|no such|could not find|404/i.test(describeError(err))) continue;
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
        // First the routes, the Gateway, the Certificate and its Secret; the controllers that serve them go after.
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
    if (runtime['APIEndpoint']) {
      try {
        await this.#releaseCertManager(ctx, runtime, ctx.id);
      } catch (err) {
        throw new ReconcileError(`${label(gi)}: cannot remove cert-manager's issuers: ${describeError(err)}`, { cause: err });
      }
    }
    const others = (await store.find(GatewayInstance, { KubernetesRuntimeInstanceID: runtimeId })).filter(
      (o) => Number(o['ID']) !== ctx.id && !o['DeletionScheduled'],
    );
    if (others.length > 0) {
      // The remaining gateways' ports only.
      const t = this.#traefik.get(runtimeId);
      if (t?.running) await this.#locks.run(runtimeId, async () => t.ensure(await this.#runtimePorts(store, runtimeId, ctx.id)));
      return undefined;
    }
    // The runtime's last gateway: traefik, then the controller WorkloadInstance and its definition.
    return this.#locks.run(runtimeId, async () => {
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
        await store.patch(KubernetesRuntimeInstance, runtimeId, { GatewayWorkloadInstanceID: null }, { enqueue: false }).catch(ignoreNotFound);
      }
      return undefined;
    });
  }
}
