// external-dns v0.23.0 as the DNS controller of one simulated (kwok) runtime: a supervised host
// process pointed at the runtime's API server (src/providers/support-peers), restarted with an
// event when it dies, removed with the runtime's last DomainNameInstance or with the runtime.
//
// It reads the HTTPRoutes and TCPRoutes the gateway controller renders (and their Gateways, whose
// status carries traefik's address) and publishes their host names in Route 53 with the AWS
// provider, a TXT ownership registry per runtime and `--policy=sync`, so a route that goes takes
// its records with it. Which routes it publishes is a label selector over the gateway instances
// that have a DomainNameInstance; a changed selector, domain set or credential restarts it (it is
// ready in under a second and resyncs on start).
import { mkdirSync, rmSync } from 'node:fs';
import type { KubeConnection } from '../../providers/kube/connection.js';
import { SupportPeerSet, externalDnsLaunch, type AwsTarget, type PeerEvent } from '../../providers/support-peers/index.js';
import { freePort } from '../../system.js';
import { LABEL_GATEWAY_INSTANCE } from './render.js';

export const EXTERNAL_DNS_PEER = 'external-dns';
export const EXTERNAL_DNS_VERSION = 'v0.23.0';

/** What one runtime's external-dns publishes, and with which account. */
export interface ExternalDnsConfig {
  /** --txt-owner-id: one per runtime, so two runtimes never delete each other's records. */
  ownerId: string;
  /** --domain-filter (and --zone-id-filter): the domains of the runtime's DomainNameInstances. */
  domains: readonly string[];
  zoneIds: readonly string[];
  /** GatewayInstances whose routes are published (their routes carry LABEL_GATEWAY_INSTANCE). */
  gatewayInstanceIds: readonly number[];
  /** Credentials reach the process only through its environment (never its command line, which /proc shows to anyone). */
  aws: AwsTarget;
  /** Identifies the credentials without holding them (account, its version, expiry), so new ones restart the process. */
  credentialsKey: string;
}

/**
 * The label selector of the published routes. With no gateway yet it matches nothing (label values
 * are instance IDs, never `none`): external-dns still runs for the domains and, under the sync
 * policy, removes records it owns that no route asks for any more.
 */
export function routeSelector(gatewayInstanceIds: readonly number[]): string {
  const ids = [...new Set(gatewayInstanceIds)].sort((a, b) => a - b);
  return `${LABEL_GATEWAY_INSTANCE} in (${ids.length ? ids.join(',') : 'none'})`;
}

/** Everything that decides the command line and environment, minus secret values. */
function configKey(c: ExternalDnsConfig): string {
  return JSON.stringify([c.ownerId, [...c.domains].sort(), [...c.zoneIds].sort(), routeSelector(c.gatewayInstanceIds), c.aws.endpoint ?? '', c.aws.region, c.credentialsKey]);
}

export class RuntimeExternalDns {
  readonly #set: SupportPeerSet;
  #key = '';
  #metricsPort: number | undefined;

  constructor(readonly dir: string, kube: KubeConnection, onEvent: (e: PeerEvent) => void) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.#set = new SupportPeerSet({ dir, kube, onEvent });
  }

  get peer() {
    return this.#set.get(EXTERNAL_DNS_PEER);
  }

  get running(): boolean {
    return this.peer?.running === true;
  }

  rssBytes(): number | undefined {
    return this.peer?.rssBytes();
  }

  /** Runs external-dns with `config`; restarts it when the configuration changed or it gave up. */
  async ensure(config: ExternalDnsConfig): Promise<'started' | 'restarted' | 'running'> {
    const key = configKey(config);
    const peer = this.peer;
    if (peer?.running && key === this.#key) return 'running';
    const restart = peer !== undefined;
    if (peer) await this.#set.stopPeer(EXTERNAL_DNS_PEER);
    this.#metricsPort ??= await freePort('external-dns-metrics');
    const launch = externalDnsLaunch(
      { kubeconfigPath: this.#set.kubeconfigPath, dir: this.#set.dir },
      {
        sources: ['gateway-httproute', 'gateway-tcproute'],
        domainFilters: [...config.domains].sort(),
        zoneIdFilters: [...config.zoneIds].sort(),
        labelFilter: routeSelector(config.gatewayInstanceIds),
        txtOwnerId: config.ownerId,
        aws: config.aws,
        metricsPort: this.#metricsPort,
        // Source events trigger a sync; the full resync repairs drift in Route 53.
        interval: '1m',
        minEventSyncInterval: '1s',
      },
    );
    await this.#set.start(launch, { timeoutMs: 60_000 });
    this.#key = key;
    return restart ? 'restarted' : 'started';
  }

  /** Stops the process but keeps the set (no domain to publish for now; ensure() starts it again). */
  async pause(): Promise<void> {
    await this.#set.stopPeer(EXTERNAL_DNS_PEER);
    this.#key = '';
  }

  /** Stops external-dns and removes the runtime's DNS directory. */
  async remove(): Promise<void> {
    await this.#set.stopAll();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async stop(): Promise<void> {
    await this.#set.stopAll();
  }
}
