// cert-manager v1.21.2 for the TLS ports of gateways on one simulated (kwok) runtime: its
// controllers as a supervised host process pointed at the runtime's API server (out of cluster:
// --kubeconfig, --cluster-resource-namespace; no webhook, no cainjector), started by the first
// TLS port on the runtime and removed with the last one, as traefik is for the runtime's ports.
//
// Two issuers (docs/support-services.md, "TLS"):
//   - the CA issuer, the default: a SelfSigned ClusterIssuer signs a CA Certificate per runtime,
//     and the CA ClusterIssuer `threeport-ca` signs the gateways' certificates; for clusters with
//     no public DNS;
//   - ACME DNS-01 through Route 53 (as upstream did with Let's Encrypt), one ClusterIssuer per
//     DomainNameDefinition (its AdminEmail is the ACME account's), when the server has an ACME
//     directory (THREEPORT_ACME_DIRECTORY_URL) and the domain's Zone is `Public`.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { KubeClusterClient, KubeObject } from '../../providers/kube/client.js';
import { KubeError } from '../../providers/kube/errors.js';
import type { KubeConnection } from '../../providers/kube/connection.js';
import { certManagerLaunch, findSupportPeer, type AwsTarget, type PeerEvent } from '../../providers/support-peers/index.js';
import { CERT_MANAGER_API } from './render.js';
import { RuntimePeer } from './runtime-peer.js';

export const CERT_MANAGER_PEER = 'cert-manager';
/** Where cert-manager keeps the Secrets of ClusterIssuers (the CA key pair, ACME account keys). */
export const CLUSTER_RESOURCE_NAMESPACE = 'threeport-cert-manager';
export const CA_ISSUER = 'threeport-ca';
const SELF_SIGNED_ISSUER = 'threeport-selfsigned';
const CA_SECRET = 'threeport-ca';
/** Marks what this module applies, so that removal finds all of it. */
const LABEL_ISSUER = 'control-plane.threeport.io/certificate-issuer';

/** The cert-manager version the build script pins (its cache entry's directory name). */
export function certManagerVersion(): string {
  try {
    return basename(findSupportPeer('cert-manager').dir);
  } catch {
    return 'unknown';
  }
}

/** The server's ACME settings; without a directory URL every certificate comes from the CA issuer. */
export interface AcmeSettings {
  /** e.g. https://acme-v02.api.letsencrypt.org/directory, or a pebble directory in tests. */
  directoryUrl: string;
  /** PEM of the CA that signs the ACME server's HTTPS certificate (a private ACME server such as pebble). */
  caBundlePem?: string;
  /** host:port resolvers for cert-manager's DNS-01 self check, and only them (--dns01-recursive-nameservers-only). */
  dns01Nameservers?: string[];
  /** Wait between DNS-01 propagation checks (cert-manager's default is 10 s). */
  dns01CheckRetryPeriod?: string;
}

export interface CertificateSettings {
  acme?: AcmeSettings;
  /** How often a Healthy TLS gateway looks at its Certificate again (expiry, renewal). */
  checkIntervalMs: number;
}

/** THREEPORT_ACME_DIRECTORY_URL, THREEPORT_ACME_CA_BUNDLE (a PEM file), THREEPORT_DNS01_NAMESERVERS, ... */
export function certificateSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): CertificateSettings {
  const directoryUrl = env['THREEPORT_ACME_DIRECTORY_URL'];
  const bundle = env['THREEPORT_ACME_CA_BUNDLE'];
  const nameservers = (env['THREEPORT_DNS01_NAMESERVERS'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const retry = env['THREEPORT_DNS01_CHECK_RETRY_PERIOD'];
  const interval = Number(env['THREEPORT_CERTIFICATE_CHECK_INTERVAL_MS'] ?? '');
  return {
    ...(directoryUrl
      ? {
          acme: {
            directoryUrl,
            ...(bundle ? { caBundlePem: readFileSync(bundle, 'utf8') } : {}),
            ...(nameservers.length ? { dns01Nameservers: nameservers } : {}),
            ...(retry ? { dns01CheckRetryPeriod: retry } : {}),
          },
        }
      : {}),
    checkIntervalMs: Number.isFinite(interval) && interval > 0 ? interval : 5 * 60_000,
  };
}

/** What a gateway's certificate needs from its DomainNameDefinition to choose its issuer. */
export interface DomainForIssuer {
  id: number;
  domain: string;
  zone: string;
  adminEmail: string;
}

/** The rule: ACME when the server has an ACME directory and the domain's zone is Public; else the CA issuer. */
export function usesAcme(settings: CertificateSettings, domain: DomainForIssuer): boolean {
  return settings.acme !== undefined && domain.zone.toLowerCase() === 'public';
}

export function acmeIssuerName(domain: DomainForIssuer): string {
  return `threeport-acme-${domain.id}`;
}

function managed(name: string, namespace?: string): KubeObject['metadata'] {
  return {
    name,
    ...(namespace ? { namespace } : {}),
    labels: { [LABEL_ISSUER]: 'true', 'app.kubernetes.io/managed-by': 'threeport' },
  };
}

/** The CA chain: SelfSigned ClusterIssuer → CA Certificate (per runtime) → CA ClusterIssuer. */
export function caIssuerObjects(runtimeName: string): KubeObject[] {
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: managed(CLUSTER_RESOURCE_NAMESPACE) },
    { apiVersion: CERT_MANAGER_API, kind: 'ClusterIssuer', metadata: managed(SELF_SIGNED_ISSUER), spec: { selfSigned: {} } },
    {
      apiVersion: CERT_MANAGER_API,
      kind: 'Certificate',
      metadata: managed(CA_SECRET, CLUSTER_RESOURCE_NAMESPACE),
      spec: {
        isCA: true,
        commonName: `Threeport CA for runtime ${runtimeName}`.slice(0, 64),
        secretName: CA_SECRET,
        duration: '87600h',
        privateKey: { algorithm: 'ECDSA', size: 256 },
        issuerRef: { group: 'cert-manager.io', kind: 'ClusterIssuer', name: SELF_SIGNED_ISSUER },
      },
    },
    { apiVersion: CERT_MANAGER_API, kind: 'ClusterIssuer', metadata: managed(CA_ISSUER), spec: { ca: { secretName: CA_SECRET } } },
  ];
}

/** An ACME ClusterIssuer with the Route 53 DNS-01 solver (ambient credentials from cert-manager's environment). */
export function acmeIssuerObject(acme: AcmeSettings, domain: DomainForIssuer, region: string): KubeObject {
  const name = acmeIssuerName(domain);
  return {
    apiVersion: CERT_MANAGER_API,
    kind: 'ClusterIssuer',
    metadata: managed(name),
    spec: {
      acme: {
        server: acme.directoryUrl,
        email: domain.adminEmail,
        ...(acme.caBundlePem ? { caBundle: Buffer.from(acme.caBundlePem).toString('base64') } : {}),
        privateKeySecretRef: { name: `${name}-account` },
        solvers: [{ selector: { dnsZones: [domain.domain] }, dns01: { route53: { region } } }],
      },
    },
  };
}

function unknownKind(err: unknown): boolean {
  return err instanceof KubeError && err.failure === 'UnknownKind';
}

async function listIssuerObjects(client: KubeClusterClient, kind: 'ClusterIssuer' | 'Certificate', signal?: AbortSignal): Promise<KubeObject[]> {
  try {
    return (await client.list(CERT_MANAGER_API, kind, { labelSelector: `${LABEL_ISSUER}=true`, ...(signal ? { signal } : {}) })).items;
  } catch (err) {
    if (unknownKind(err)) return []; // cert-manager's CRDs were never installed: nothing to remove
    throw err;
  }
}

/** Deletes every issuer object this module applied: the ClusterIssuers, the CA Certificate, and the namespace with their Secrets. */
export async function removeIssuers(client: KubeClusterClient, signal?: AbortSignal): Promise<void> {
  const opts = signal ? { signal } : {};
  for (const kind of ['ClusterIssuer', 'Certificate'] as const) {
    for (const o of await listIssuerObjects(client, kind, signal)) {
      await client.delete({ apiVersion: CERT_MANAGER_API, kind, name: o.metadata.name, ...(o.metadata.namespace ? { namespace: o.metadata.namespace } : {}) }, opts);
    }
  }
  // The namespace takes the CA key pair and the ACME account keys with it.
  await client.delete({ apiVersion: 'v1', kind: 'Namespace', name: CLUSTER_RESOURCE_NAMESPACE }, opts);
}

/** Deletes the ACME ClusterIssuers (and account keys) that no TLS gateway on the runtime uses any more. */
export async function pruneAcmeIssuers(client: KubeClusterClient, inUse: ReadonlySet<string>, signal?: AbortSignal): Promise<string[]> {
  const opts = signal ? { signal } : {};
  const removed: string[] = [];
  for (const o of await listIssuerObjects(client, 'ClusterIssuer', signal)) {
    const name = o.metadata.name;
    if (!name.startsWith('threeport-acme-') || inUse.has(name)) continue;
    await client.delete({ apiVersion: CERT_MANAGER_API, kind: 'ClusterIssuer', name }, opts);
    await client.delete({ apiVersion: 'v1', kind: 'Secret', name: `${name}-account`, namespace: CLUSTER_RESOURCE_NAMESPACE }, opts);
    removed.push(name);
  }
  return removed;
}

/** What cert-manager's process is started with; a change restarts it. */
export interface CertManagerLaunchSettings {
  acme?: AcmeSettings;
  /** Route 53 for the ACME DNS-01 solver: endpoint, region and the default AwsAccount's keys. */
  route53?: AwsTarget;
}

function launchKey(s: CertManagerLaunchSettings): string {
  return createHash('sha256').update(JSON.stringify([s.acme?.dns01Nameservers, s.acme?.dns01CheckRetryPeriod, s.route53])).digest('hex');
}

export class RuntimeCertManager extends RuntimePeer {
  constructor(dir: string, kube: KubeConnection, onEvent: (e: PeerEvent) => void) {
    super(dir, CERT_MANAGER_PEER, kube, onEvent);
  }

  /** Runs cert-manager with these settings; restarts it when they changed or it gave up. */
  async ensure(settings: CertManagerLaunchSettings): Promise<'started' | 'restarted' | 'running'> {
    const ns = settings.acme?.dns01Nameservers;
    return this.ensureKey(launchKey(settings), (ctx) =>
      certManagerLaunch(ctx, {
        clusterResourceNamespace: CLUSTER_RESOURCE_NAMESPACE,
        ...(ns?.length ? { dns01Nameservers: ns, recursiveOnly: true } : {}),
        ...(settings.acme?.dns01CheckRetryPeriod ? { dns01CheckRetryPeriod: settings.acme.dns01CheckRetryPeriod } : {}),
        // A failed issuance is tried again after a minute, not upstream's hour: a gateway waits on it.
        minimumBackoff: '1m',
        ...(settings.route53 ? { aws: settings.route53 } : {}),
      }),
    );
  }
}

/** What a Certificate's status says: Ready, validity, the next renewal, the revision (1 = first issuance). */
export interface CertificateState {
  ready: boolean;
  reason?: string;
  message?: string;
  notAfter?: string;
  renewalTime?: string;
  revision?: number;
}

export function certificateState(cert: KubeObject | undefined): CertificateState {
  const status = (cert?.['status'] ?? {}) as Record<string, unknown>;
  const conditions = (Array.isArray(status['conditions']) ? status['conditions'] : []) as Record<string, unknown>[];
  const ready = conditions.find((c) => c['type'] === 'Ready');
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const reason = str(ready?.['reason']);
  const message = str(ready?.['message']);
  const notAfter = str(status['notAfter']);
  const renewalTime = str(status['renewalTime']);
  return {
    ready: ready?.['status'] === 'True',
    ...(reason ? { reason } : {}),
    ...(message ? { message } : {}),
    ...(notAfter ? { notAfter } : {}),
    ...(renewalTime ? { renewalTime } : {}),
    ...(typeof status['revision'] === 'number' ? { revision: status['revision'] } : {}),
  };
}

/** The newest ACME Challenge's state for a host, to say what an ACME certificate waits for. */
export async function challengeNote(client: KubeClusterClient, namespace: string, host: string, signal?: AbortSignal): Promise<string | undefined> {
  let items: KubeObject[];
  try {
    items = (await client.list('acme.cert-manager.io/v1', 'Challenge', { namespace, ...(signal ? { signal } : {}) })).items;
  } catch (err) {
    if (unknownKind(err)) return undefined;
    throw err;
  }
  const mine = items.filter((c) => (c['spec'] as Record<string, unknown> | undefined)?.['dnsName'] === host);
  const last = mine.sort((a, b) => String(a.metadata['creationTimestamp'] ?? '').localeCompare(String(b.metadata['creationTimestamp'] ?? ''))).at(-1);
  if (!last) return undefined;
  const st = (last['status'] ?? {}) as Record<string, unknown>;
  return `ACME ${String((last['spec'] as Record<string, unknown>)['type'] ?? 'DNS-01')} challenge ${last.metadata.name}: ${String(st['state'] ?? 'pending')}${st['reason'] ? ` (${String(st['reason'])})` : ''}`;
}
