// DNS records for gateways (spec §3.4 DomainNameInstance; issue 11 item 4;
// docs/support-services.md): a DomainNameInstance on a runtime makes external-dns publish the host
// names of its workload's gateways (`<SubDomain>.<Domain>` or the Domain) in the Route 53 zone that
// serves the domain, pointing at the gateway's address.
//
// The first DomainNameInstance on a runtime installs the DNS controller there: a WorkloadInstance
// `external-dns-<runtime>` (a ConfigMap that says how the runtime's records are published),
// recorded as the runtime's DnsControllerInstanceID (JSON `DnsControllerInstanceId`) as upstream
// records its external-dns WorkloadInstance, and on simulated runtimes external-dns v0.23.0 as a
// supervised host process with the AWS provider and the credentials of the runtime's AwsAccount.
// The instance is Healthy once every host name is in the zone with the gateway's address, owned
// (TXT registry) by the runtime's external-dns.
//
// Deletion runs in reverse: external-dns stops publishing the instance's gateways and removes their
// records (the control plane waits until Route 53 no longer has them), and only then, for the
// runtime's last DomainNameInstance, external-dns and the controller WorkloadInstance go.
//
// A domain that no hosted zone of the account serves is a terminal Warning event and Status Error:
// nothing is started for it, and the instance runs again when it is changed.
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { ResourceRecordSet } from '@aws-sdk/client-route-53';
import { DomainNameDefinition, DomainNameInstance, GatewayDefinition, GatewayInstance } from '../../kinds/gateway.js';
import { KubernetesRuntimeDefinition, KubernetesRuntimeInstance } from '../../kinds/kubernetes-runtime.js';
import { AwsAccount } from '../../kinds/aws.js';
import { WorkloadInstance } from '../../kinds/workload.js';
import type { Kind } from '../../kinds/declare.js';
import type { JsonObject } from '../../kinds/validate.js';
import { NotFoundError, describeError } from '../../errors.js';
import type { ObjectStore } from '../../store/object-store.js';
import { ReconcileError, TerminalError } from '../../reconcile/errors.js';
import { untilWoken } from '../../reconcile/wait-for.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import { KubeClients } from '../../providers/kube/clients.js';
import { connectionFromRuntimeInstance } from '../../providers/kube/connection.js';
import type { KubeObject } from '../../providers/kube/client.js';
import type { AwsProvider, AwsSession } from '../../providers/aws/provider.js';
import type { AwsAccountRecord } from '../../providers/aws/credentials.js';
import { aRecordValues, findHostedZone, isWithin, listRecordSets, ownedHosts, type HostedZone } from '../../providers/aws/route53.js';
import { findSupportPeer, installCrds, SupportPeerMissingError } from '../../providers/support-peers/index.js';
import { ensureAttached, removeAttached } from '../aws/common.js';
import { edgesOf } from '../graph.js';
import { GATEWAY_API, LABEL_GATEWAY_INSTANCE } from './render.js';
import { EXTERNAL_DNS_VERSION, RuntimeExternalDns, type ExternalDnsConfig } from './external-dns.js';
import { PerRuntimeLock, dnsLabel, ensureSupportWorkload, peerEventsOnRuntime, removeSupportWorkload, type SupportWorkload } from './support-workload.js';

export const DNS_CONTROLLER_NAME = 'DnsController';

/** Why real clusters are refused, in words a user can act on. */
export const DNS_REAL_CLUSTER_UNAVAILABLE =
  'DNS records are only published on simulated (kwok) runtimes for now, where external-dns runs as a host process; on EKS and registered clusters it would be installed from its Helm chart with an IRSA role, which is not built yet (and gateways, whose host names it publishes, are not available there either)';

/** How long handed-out credentials must stay valid: external-dns is restarted with new ones before that. */
const CREDENTIAL_VALIDITY_MS = 30 * 60_000;

export interface DomainNameControllerOptions {
  /** The server's data directory: each runtime's external-dns lives under `<dataDir>/dns/`. */
  dataDir: string;
  logger: Logger;
  /** The AWS provider shared with the AWS controllers (clients, credentials, endpoint override). */
  aws: { provider(store: ObjectStore): AwsProvider };
  kube?: KubeClients;
  /** Where a runtime's processes run (several replicas): a simulated runtime only on the server that started it. */
  pinning?: (store: ObjectStore, runtime: JsonObject) => Promise<'here' | 'elsewhere' | undefined>;
}

function label(kind: string, o: JsonObject): string {
  return `${kind} ${JSON.stringify(o['Name'])} (ID ${String(o['ID'])})`;
}

const live = (o: JsonObject): boolean => !o['DeletionScheduled'] && !o['DeletedAt'];

/** The runtime's TXT registry owner: one per runtime, stable across restarts. */
export function dnsOwnerId(runtime: JsonObject): string {
  return `threeport-${dnsLabel(String(runtime['Name']), 'runtime')}-${String(runtime['ID'])}`;
}

export function dnsControllerWorkload(runtime: JsonObject): SupportWorkload {
  const name = `external-dns-${dnsLabel(String(runtime['Name']), 'runtime')}`;
  return {
    name,
    runtimeField: 'DnsControllerInstanceId',
    // What runs is a host process (simulated runtimes); this records on the cluster what publishes its records.
    yaml: `apiVersion: v1
kind: ConfigMap
metadata:
  name: threeport-external-dns
  namespace: kube-system
data:
  implementation: external-dns ${EXTERNAL_DNS_VERSION}
  provider: aws (Route 53)
  txtOwnerId: ${dnsOwnerId(runtime)}
  sources: gateway-httproute, gateway-tcproute
`,
  };
}

/** `Zone: Public` or `Private` narrows the hosted zone; other values (upstream's test uses `testZone`) take either. */
function zoneType(dnd: JsonObject): 'public' | 'private' | undefined {
  const z = String(dnd['Zone'] ?? '').toLowerCase();
  return z === 'public' || z === 'private' ? z : undefined;
}

/** The host name a gateway serves for its domain: `<SubDomain>.<Domain>`, or the Domain. */
export function gatewayHost(gd: JsonObject, domain: string): string {
  const sub = typeof gd['SubDomain'] === 'string' && gd['SubDomain'] ? gd['SubDomain'] : undefined;
  return (sub ? `${sub}.${domain}` : domain).toLowerCase();
}

interface HostOf {
  gatewayInstance: JsonObject;
  host: string;
}

export class DomainNameController {
  readonly reconcilers: Reconciler[];
  readonly #log: Logger;
  readonly #options: DomainNameControllerOptions;
  #kube: KubeClients | undefined;
  /** external-dns per simulated runtime (by runtime ID). */
  readonly #dns = new Map<number, RuntimeExternalDns>();
  /** Per-runtime serialisation of configuration changes. */
  readonly #locks = new PerRuntimeLock();
  /** Runtimes whose Gateway API CRDs this process made sure of (external-dns watches those kinds). */
  readonly #crdsInstalled = new Set<number>();

  constructor(options: DomainNameControllerOptions) {
    this.#options = options;
    this.#log = options.logger;
    this.#kube = options.kube;
    this.reconcilers = [
      {
        kind: DomainNameInstance.name,
        controller: DNS_CONTROLLER_NAME,
        ...edgesOf(DomainNameInstance.name),
        // After a restart the instances reconcile again, which brings their runtime's external-dns back.
        resume: async (store) => (await store.find(DomainNameInstance, {})).filter((d) => !d['DeletionScheduled']).map((d) => Number(d['ID'])),
        created: (ctx, dni) => this.#converge(ctx, dni),
        updated: (ctx, dni) => this.#converge(ctx, dni),
        deleted: (ctx, dni) => this.#remove(ctx, dni),
      },
    ];
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#dns.values()].map((d) => d.stop().catch(() => undefined)));
    this.#dns.clear();
    this.#kube?.close();
  }

  /** The runtime's external-dns, when it runs in this process (tests, benchmarks). */
  externalDnsOf(runtimeId: number): RuntimeExternalDns | undefined {
    return this.#dns.get(runtimeId);
  }

  /** The runtime is being deleted: its external-dns goes with it. */
  async runtimeDeleted(runtimeId: number): Promise<void> {
    const d = this.#dns.get(runtimeId);
    this.#dns.delete(runtimeId);
    this.#crdsInstalled.delete(runtimeId);
    await d?.remove();
  }

  #kubeClients(store: ObjectStore): KubeClients {
    this.#kube ??= new KubeClients({ decrypt: (v) => store.decrypt(v) });
    return this.#kube;
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

  async #wait(ctx: ReconcileContext, reason: string, note: string, maxMs = 5_000): Promise<ReconcileResult> {
    await ctx.recordEvent({ reason, note, type: 'Normal' });
    const waited = ctx.clock.now() - ctx.firstQueuedAt.getTime();
    return { requeueAfterMs: Math.round(Math.min(maxMs, Math.max(500, waited / 10))) };
  }

  /** Status Error and a terminal Warning event: retrying cannot help until the object changes. */
  async #fail(ctx: ReconcileContext, dni: JsonObject, reason: string, note: string): Promise<never> {
    if (dni['Status'] !== 'Error') await ctx.patchSelf({ Status: 'Error' });
    throw new TerminalError(`${label(DomainNameInstance.name, dni)}: ${note}`, { event: { reason, note, type: 'Warning' } });
  }

  async #runtimeOf(store: ObjectStore, dni: JsonObject): Promise<{ runtime: JsonObject | undefined; provider: string }> {
    const runtime = await this.#get(store, KubernetesRuntimeInstance, dni['KubernetesRuntimeInstanceID']);
    const definition = runtime ? await this.#get(store, KubernetesRuntimeDefinition, runtime['KubernetesRuntimeDefinitionID']) : undefined;
    return { runtime, provider: String(definition?.['InfraProvider'] ?? '') };
  }

  /** The AwsAccount whose Route 53 the runtime's records go to: the runtime definition's InfraProviderAccountName, else the default account. */
  async #account(store: ObjectStore, runtime: JsonObject): Promise<AwsAccountRecord | string> {
    const definition = await this.#get(store, KubernetesRuntimeDefinition, runtime['KubernetesRuntimeDefinitionID']);
    const named = typeof definition?.['InfraProviderAccountName'] === 'string' && definition['InfraProviderAccountName'] ? String(definition['InfraProviderAccountName']) : undefined;
    const [account] = named ? await store.find(AwsAccount, { Name: named }) : await store.find(AwsAccount, { DefaultAccount: true });
    if (account) return account as AwsAccountRecord;
    return named
      ? `KubernetesRuntimeDefinition ${JSON.stringify(definition?.['Name'])} names InfraProviderAccountName ${JSON.stringify(named)}, but no AwsAccount has that name`
      : 'no AwsAccount is the default (DefaultAccount: true) to publish DNS records with; create one (tptctl create aws-account) or name one in the runtime definition (InfraProviderAccountName)';
  }

  /** The gateways of the instance's workload that use its domain, and their host names. */
  async #hostsOf(store: ObjectStore, dni: JsonObject, domain: string): Promise<HostOf[]> {
    const out: HostOf[] = [];
    const gateways = await store.find(GatewayInstance, { WorkloadInstanceID: Number(dni['WorkloadInstanceID']) });
    for (const gi of gateways.filter(live)) {
      if (Number(gi['KubernetesRuntimeInstanceID']) !== Number(dni['KubernetesRuntimeInstanceID'])) continue;
      const gd = await this.#get(store, GatewayDefinition, gi['GatewayDefinitionID']);
      if (!gd || Number(gd['DomainNameDefinitionID']) !== Number(dni['DomainNameDefinitionID'])) continue;
      out.push({ gatewayInstance: gi, host: gatewayHost(gd, domain) });
    }
    return out;
  }

  /**
   * What the runtime's external-dns publishes: the domains and zones of its DomainNameInstances
   * (but `without`), and the gateways of the live ones. An instance being deleted keeps its domain
   * in the filters without its gateways, so that external-dns removes their records.
   */
  async #runtimeConfig(
    store: ObjectStore,
    runtime: JsonObject,
    session: AwsSession,
    opts: { without?: number } = {},
  ): Promise<{ config: ExternalDnsConfig; hosts: Set<string>; expiresAt: number | undefined }> {
    const zones = new Map<string, HostedZone | undefined>();
    const domains = new Set<string>();
    const zoneIds = new Set<string>();
    const gatewayIds = new Set<number>();
    const hosts = new Set<string>();
    for (const dni of await store.find(DomainNameInstance, { KubernetesRuntimeInstanceID: Number(runtime['ID']) })) {
      if (Number(dni['ID']) === opts.without || dni['DeletedAt']) continue;
      const dnd = await this.#get(store, DomainNameDefinition, dni['DomainNameDefinitionID']);
      const domain = typeof dnd?.['Domain'] === 'string' ? dnd['Domain'].toLowerCase() : '';
      if (!dnd || !domain) continue;
      const key = `${domain}|${zoneType(dnd) ?? ''}`;
      if (!zones.has(key)) zones.set(key, await findHostedZone(session.route53, domain, zoneType(dnd)));
      const zone = zones.get(key);
      if (!zone) continue; // that instance fails on its own, with an event naming the domain
      domains.add(domain);
      zoneIds.add(zone.id);
      if (!live(dni)) continue; // draining
      for (const h of await this.#hostsOf(store, dni, domain)) {
        gatewayIds.add(Number(h.gatewayInstance['ID']));
        hosts.add(h.host);
      }
    }
    const creds = await session.credentials({ minValidityMs: CREDENTIAL_VALIDITY_MS });
    const account = session.account;
    const expiresAt = creds.expiration?.getTime();
    const endpoint = this.#options.aws.provider(store).endpoint;
    return {
      config: {
        ownerId: dnsOwnerId(runtime),
        domains: [...domains],
        zoneIds: [...zoneIds],
        gatewayInstanceIds: [...gatewayIds],
        aws: {
          region: session.region,
          ...(endpoint ? { endpoint } : {}),
          accessKeyId: creds.accessKeyId,
          secretAccessKey: creds.secretAccessKey,
          ...(creds.sessionToken ? { sessionToken: creds.sessionToken } : {}),
        },
        credentialsKey: `${String(account.ID)}:${account.UpdatedAt ?? ''}:${expiresAt ?? ''}`,
      },
      hosts,
      expiresAt,
    };
  }

  #externalDnsFor(store: ObjectStore, runtime: JsonObject): RuntimeExternalDns {
    const id = Number(runtime['ID']);
    let d = this.#dns.get(id);
    if (!d) {
      const conn = connectionFromRuntimeInstance(runtime, (v) => store.decrypt(v));
      d = new RuntimeExternalDns(join(this.#options.dataDir, 'dns', `runtime-${id}`), conn, peerEventsOnRuntime(store, this.#log, id, DNS_CONTROLLER_NAME));
      this.#dns.set(id, d);
    }
    return d;
  }

  /** Runs (or reconfigures, or with no domain left pauses) the runtime's external-dns. */
  async #apply(ctx: ReconcileContext, runtime: JsonObject, config: ExternalDnsConfig): Promise<void> {
    const runtimeId = Number(runtime['ID']);
    await this.#locks.run(runtimeId, async () => {
      const d = this.#externalDnsFor(ctx.store, runtime);
      if (config.domains.length === 0) {
        await d.pause();
        return;
      }
      // Its gateway sources wait for the route kinds to exist: a DomainNameInstance may come before
      // the first gateway (upstream's own order), so the same CRDs the gateway controller installs go first.
      if (!this.#crdsInstalled.has(runtimeId)) {
        await installCrds(connectionFromRuntimeInstance(runtime, (v) => ctx.store.decrypt(v)), findSupportPeer('gateway-api', { experimentalCrds: true }).crdFiles);
        this.#crdsInstalled.add(runtimeId);
      }
      let state: Awaited<ReturnType<RuntimeExternalDns['ensure']>>;
      try {
        state = await d.ensure(config);
      } catch (err) {
        throw new ReconcileError(`external-dns did not start for KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])}: ${describeError(err)}`, { cause: err });
      }
      if (state !== 'running') {
        await ctx.recordEvent({
          reason: state === 'started' ? 'DnsControllerInstalled' : 'DnsControllerUpdated',
          note: `external-dns ${EXTERNAL_DNS_VERSION} ${state} for KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])}: domains ${config.domains.join(', ')}, ${config.gatewayInstanceIds.length} gateway(s), TXT owner ${config.ownerId}`,
          type: 'Normal',
        });
      }
    });
  }

  /** The address each gateway's Gateway reports (traefik writes it into status.addresses). */
  async #gatewayAddress(ctx: ReconcileContext, runtime: JsonObject, gi: JsonObject): Promise<string | undefined> {
    const client = this.#kubeClients(ctx.store).forRuntime(runtime);
    const list = await client.list(GATEWAY_API, 'Gateway', { labelSelector: `${LABEL_GATEWAY_INSTANCE}=${String(gi['ID'])}`, signal: ctx.signal });
    const gateway: KubeObject | undefined = list.items[0];
    const addresses = ((gateway?.['status'] as Record<string, unknown> | undefined)?.['addresses'] ?? []) as Array<{ value?: string }>;
    return addresses.find((a) => a.value)?.value;
  }

  async #converge(ctx: ReconcileContext, dni: JsonObject): Promise<ReconcileResult> {
    const store = ctx.store;
    const dnd = await this.#get(store, DomainNameDefinition, dni['DomainNameDefinitionID']);
    if (!dnd) return this.#fail(ctx, dni, 'DomainNameDefinitionNotFound', `its DomainNameDefinition ${String(dni['DomainNameDefinitionID'])} does not exist`);
    const domain = String(dnd['Domain'] ?? '').toLowerCase();
    if (!domain) return this.#fail(ctx, dni, 'InvalidDomainName', `DomainNameDefinition ${JSON.stringify(dnd['Name'])} has no Domain`);
    const wi = await this.#get(store, WorkloadInstance, dni['WorkloadInstanceID']);
    if (!wi || wi['DeletionScheduled']) return this.#fail(ctx, dni, 'WorkloadInstanceNotFound', `its WorkloadInstance ${String(dni['WorkloadInstanceID'])} does not exist`);
    // Attached to its workload, which deletes it (and waits for it) when it goes.
    await ensureAttached(store, Number(wi['ID']), DomainNameInstance.name, ctx.id);
    const { runtime, provider } = await this.#runtimeOf(store, dni);
    if (!runtime) return this.#fail(ctx, dni, 'KubernetesRuntimeInstanceNotFound', `its KubernetesRuntimeInstance ${String(dni['KubernetesRuntimeInstanceID'])} does not exist`);
    if (provider !== 'kwok') return this.#fail(ctx, dni, 'DnsControllerUnavailable', DNS_REAL_CLUSTER_UNAVAILABLE);
    if ((await this.#options.pinning?.(store, runtime).catch(() => undefined)) === 'elsewhere') {
      return this.#wait(ctx, 'WaitingForRuntimeOwner', `KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])} runs on another controllers replica; its DNS controller runs there`, 2_000);
    }
    if (runtime['Reconciled'] !== true || !runtime['APIEndpoint']) {
      await ctx.recordEvent({ reason: 'WaitingForKubernetesRuntimeInstance', note: `waiting for KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])} to be Reconciled`, type: 'Normal' });
      return untilWoken(ctx, 1_000);
    }
    const account = await this.#account(store, runtime);
    if (typeof account === 'string') return this.#fail(ctx, dni, 'AwsAccountNotFound', account);
    const session = this.#options.aws.provider(store).session(account);
    const zone = await findHostedZone(session.route53, domain, zoneType(dnd));
    if (!zone) {
      const kind = zoneType(dnd) ? `${zoneType(dnd)} ` : '';
      return this.#fail(
        ctx,
        dni,
        'HostedZoneNotFound',
        `no ${kind}Route 53 hosted zone in AwsAccount ${JSON.stringify(account.Name)} serves ${domain} (DomainNameDefinition ${JSON.stringify(dnd['Name'])}); create the zone, then update the DomainNameInstance`,
      );
    }

    // Bad input first (above); then what the control plane's machine lacks.
    try {
      findSupportPeer('external-dns');
      findSupportPeer('gateway-api', { experimentalCrds: true });
    } catch (err) {
      if (err instanceof SupportPeerMissingError) return this.#fail(ctx, dni, 'DnsControllerMissing', err.message);
      throw err;
    }

    const { config, expiresAt } = await this.#runtimeConfig(store, runtime, session);
    // Under the runtime's lock: two instances arriving together create one controller workload.
    const controller = await this.#locks.run(Number(runtime['ID']), () => ensureSupportWorkload(store, runtime, dnsControllerWorkload(runtime)));
    await this.#apply(ctx, runtime, config);
    if (controller['Reconciled'] !== true) {
      return this.#wait(ctx, 'WaitingForDnsController', `waiting for the DNS controller WorkloadInstance ${JSON.stringify(controller['Name'])} (ID ${String(controller['ID'])}) to be reconciled`);
    }

    // Published: every host name of the workload's gateways on this domain, at its gateway's address.
    const hosts = await this.#hostsOf(store, dni, domain);
    const records = await listRecordSets(session.route53, zone.id);
    const owned = ownedHosts(records, config.ownerId);
    const published: string[] = [];
    for (const { gatewayInstance: gi, host } of hosts) {
      const address = gi['Status'] === 'Healthy' ? await this.#gatewayAddress(ctx, runtime, gi) : undefined;
      if (!address) {
        // The GatewayInstance watch wakes this instance when the gateway is Healthy.
        await this.#unpublished(ctx, dni, `waiting for ${label(GatewayInstance.name, gi)} to be Healthy with an address before ${host} is published`);
        return untilWoken(ctx, 2_000);
      }
      const values = aRecordValues(records, host);
      if (!owned.has(host) || !values.includes(address)) {
        // Route 53 has no change feed: look again soon.
        await this.#unpublished(ctx, dni, `waiting for external-dns to publish ${host} → ${address} in Route 53 zone ${zone.name} (${zone.id})${values.length ? `; it has ${values.join(', ')}` : ''}`);
        const waited = ctx.clock.now() - ctx.firstQueuedAt.getTime();
        return { requeueAfterMs: Math.round(Math.min(2_000, Math.max(250, waited / 10))) };
      }
      published.push(`${host} → ${address}`);
    }
    if (dni['Status'] !== 'Healthy') {
      await ctx.recordEvent({
        reason: 'DnsRecordsPublished',
        note: published.length
          ? `published in Route 53 zone ${zone.name} (${zone.id}): ${published.join(', ')}`
          : `external-dns serves ${domain} (zone ${zone.id}) on KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])}; WorkloadInstance ${JSON.stringify(wi['Name'])} has no gateway on this domain yet`,
        type: 'Normal',
      });
      await ctx.patchSelf({ Status: 'Healthy' });
    }
    // Assumed-role credentials expire: run again before, to restart external-dns with new ones
    // (Reconciled meanwhile, as a SecretInstance is between refreshes).
    if (expiresAt !== undefined) {
      if (dni['Reconciled'] !== true) await ctx.patchSelf({ Reconciled: true });
      return { requeueAfterMs: Math.max(60_000, expiresAt - ctx.clock.now() - CREDENTIAL_VALIDITY_MS + 1_000) };
    }
    return undefined;
  }

  async #unpublished(ctx: ReconcileContext, dni: JsonObject, note: string): Promise<void> {
    if (dni['Status'] !== 'Unhealthy') await ctx.patchSelf({ Status: 'Unhealthy' });
    await ctx.recordEvent({ reason: 'WaitingForDnsRecord', note, type: 'Normal' });
  }

  async #remove(ctx: ReconcileContext, dni: JsonObject): Promise<ReconcileResult> {
    const store = ctx.store;
    const { runtime, provider } = await this.#runtimeOf(store, dni);
    const runtimeId = Number(dni['KubernetesRuntimeInstanceID']);
    if (!runtime) {
      await this.runtimeDeleted(runtimeId);
      await removeAttached(store, undefined, DomainNameInstance.name, ctx.id);
      return undefined;
    }
    if (provider === 'kwok') {
      if ((await this.#options.pinning?.(store, runtime).catch(() => undefined)) === 'elsewhere') {
        return this.#wait(ctx, 'WaitingForRuntimeOwner', `KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])} runs on another controllers replica; its DNS controller runs there`, 2_000);
      }
      const waiting = await this.#removeRecords(ctx, dni, runtime);
      if (waiting) return waiting;
    }
    await removeAttached(store, undefined, DomainNameInstance.name, ctx.id);
    const others = (await store.find(DomainNameInstance, { KubernetesRuntimeInstanceID: runtimeId })).filter((o) => Number(o['ID']) !== ctx.id && live(o));
    if (others.length > 0) return undefined;
    // The runtime's last DomainNameInstance: external-dns, then the controller WorkloadInstance.
    const d = this.#dns.get(runtimeId);
    if (d) {
      await this.#locks.run(runtimeId, async () => {
        this.#dns.delete(runtimeId);
        await d.remove();
      });
      await ctx.recordEvent({ reason: 'DnsControllerRemoved', note: `external-dns stopped on KubernetesRuntimeInstance ${JSON.stringify(runtime['Name'])}: its last DomainNameInstance is gone`, type: 'Normal' });
    }
    return (await removeSupportWorkload(store, runtime, dnsControllerWorkload(runtime))) ? undefined : { requeueAfterMs: 500 };
  }

  /**
   * Has external-dns remove the records this instance asked for (those it owns under the domain
   * that no remaining instance wants), and waits until Route 53 no longer has them. Resolves to a
   * requeue while they are there, undefined once they are gone (or nothing was ever published).
   */
  async #removeRecords(ctx: ReconcileContext, dni: JsonObject, runtime: JsonObject): Promise<ReconcileResult> {
    const store = ctx.store;
    if (!runtime['APIEndpoint']) return undefined;
    const dnd = await this.#get(store, DomainNameDefinition, dni['DomainNameDefinitionID']);
    const domain = String(dnd?.['Domain'] ?? '').toLowerCase();
    const account = await this.#account(store, runtime);
    if (!dnd || !domain || typeof account === 'string') return undefined; // nothing could have been published
    const session = this.#options.aws.provider(store).session(account);
    const zone = await findHostedZone(session.route53, domain, zoneType(dnd));
    if (!zone) return undefined;
    const remaining = await this.#runtimeConfig(store, runtime, session, { without: ctx.id });
    const left = (records: readonly ResourceRecordSet[]): string[] =>
      [...ownedHosts(records, remaining.config.ownerId)].filter((h) => isWithin(h, domain) && !remaining.hosts.has(h)).sort();
    const before = left(await listRecordSets(session.route53, zone.id));
    if (before.length === 0) {
      // Gone: external-dns goes on with the remaining instances only.
      if (this.#dns.get(Number(runtime['ID']))?.running) await this.#apply(ctx, runtime, remaining.config);
      if (dni['Status'] === 'Healthy' || dni['Status'] === 'Unhealthy') {
        await ctx.recordEvent({ reason: 'DnsRecordsRemoved', note: `no record of ${domain} that it published is left in Route 53 zone ${zone.name} (${zone.id})`, type: 'Normal' });
      }
      return undefined;
    }
    // This instance's domain stays in external-dns's filters, without its gateways: the sync policy deletes their records.
    const { config } = await this.#runtimeConfig(store, runtime, session);
    await this.#apply(ctx, runtime, config);
    return this.#wait(ctx, 'WaitingForDnsRecordRemoval', `waiting for external-dns to remove ${before.join(', ')} from Route 53 zone ${zone.name} (${zone.id})`, 2_000);
  }
}
