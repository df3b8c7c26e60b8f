// Command lines, environments and configuration files for each support-service peer run as a
// host process against a runtime's API server (simulated runtimes; real clusters get the official
// Helm charts instead). Each function returns a PeerLaunch for SupportPeerSet.start().
//
// Every peer binds loopback only, on ports the caller allocates, and gets an environment built
// here from nothing: PATH, a HOME of its own, the kubeconfig, and for AWS clients explicit
// loopback endpoints with metadata lookups disabled, so nothing reaches real AWS.
import { join } from 'node:path';
import { findSupportPeer, type SupportPeerFiles } from './binaries.js';
import type { PeerLaunch } from './supervisor.js';

/** An AWS API endpoint and the (test or scoped) credentials for it. */
export interface AwsTarget {
  /** e.g. http://127.0.0.1:5000 (moto). Undefined means the SDK's default (real AWS) endpoints. */
  endpoint?: string;
  region: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** With assumed-role credentials. */
  sessionToken?: string;
}

/** Where the peer set keeps the kubeconfig and the peers' directories (SupportPeerSet). */
export interface PeerContext {
  kubeconfigPath: string;
  /** The peer set's directory; a peer's own directory is <dir>/<name>. */
  dir: string;
}

function baseEnv(ctx: PeerContext, name: string): Record<string, string> {
  return {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: join(ctx.dir, name),
    KUBECONFIG: ctx.kubeconfigPath,
  };
}

/**
 * The AWS SDK environment. `serviceEndpoints` are the per-service variables each peer's SDK reads
 * (AWS_ENDPOINT_URL_ROUTE_53, AWS_SECRETSMANAGER_ENDPOINT, ...) on top of AWS_ENDPOINT_URL.
 */
export function awsEnv(aws: AwsTarget, serviceEndpoints: readonly string[] = []): Record<string, string> {
  const env: Record<string, string> = {
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_REGION: aws.region,
    AWS_DEFAULT_REGION: aws.region,
  };
  if (aws.accessKeyId && aws.secretAccessKey) {
    env['AWS_ACCESS_KEY_ID'] = aws.accessKeyId;
    env['AWS_SECRET_ACCESS_KEY'] = aws.secretAccessKey;
    if (aws.sessionToken) env['AWS_SESSION_TOKEN'] = aws.sessionToken;
  }
  if (aws.endpoint) {
    env['AWS_ENDPOINT_URL'] = aws.endpoint;
    for (const v of serviceEndpoints) env[v] = aws.endpoint;
  }
  return env;
}

function bin(files: SupportPeerFiles): string {
  if (!files.bin) throw new Error(`support peer ${files.peer} has no binary`);
  return files.bin;
}

export interface CertManagerOptions {
  /** Namespace for the Secrets of ClusterIssuers (--cluster-resource-namespace). */
  clusterResourceNamespace: string;
  /** host:port resolvers for the DNS-01 self check; with `recursiveOnly`, the only ones asked. */
  dns01Nameservers?: string[];
  recursiveOnly?: boolean;
  /** Wait between DNS-01 propagation checks (default 10 s upstream). */
  dns01CheckRetryPeriod?: string;
  /** First retry after a failed issuance (upstream default 1h). */
  minimumBackoff?: string;
  /** Route 53 (DNS-01) endpoint and ambient credentials for ClusterIssuers. */
  aws?: AwsTarget;
  name?: string;
}

/** cert-manager's controllers (our wrapper over pkg/controller): no webhook, no cainjector. */
export function certManagerLaunch(ctx: PeerContext, opts: CertManagerOptions): PeerLaunch {
  const name = opts.name ?? 'cert-manager';
  const args = [`--kubeconfig=${ctx.kubeconfigPath}`, `--cluster-resource-namespace=${opts.clusterResourceNamespace}`, '-v=2'];
  if (opts.dns01Nameservers?.length) args.push(`--dns01-recursive-nameservers=${opts.dns01Nameservers.join(',')}`);
  if (opts.recursiveOnly) args.push('--dns01-recursive-nameservers-only');
  if (opts.dns01CheckRetryPeriod) args.push(`--dns01-check-retry-period=${opts.dns01CheckRetryPeriod}`);
  if (opts.minimumBackoff) args.push(`--certificate-request-minimum-backoff-duration=${opts.minimumBackoff}`);
  return {
    name,
    bin: bin(findSupportPeer('cert-manager')),
    args,
    env: { ...baseEnv(ctx, name), ...(opts.aws ? awsEnv(opts.aws, ['AWS_ENDPOINT_URL_ROUTE_53', 'AWS_ENDPOINT_URL_STS']) : {}) },
    // The wrapper logs this once every controller and informer has been started.
    ready: { kind: 'log', pattern: /cert-manager controllers started/ },
  };
}

export interface TraefikOptions {
  /** Plain HTTP entry point `web` on 127.0.0.1. Gateway listeners must use this same port. */
  webPort?: number;
  /** More entry points: name -> address (host:port); a Gateway listener binds the one with its port. */
  entryPoints?: Readonly<Record<string, string>>;
  /** TLS entry point `websecure` on 127.0.0.1. */
  websecurePort?: number;
  /** Ping (health) entry point. */
  pingPort: number;
  /** Kubernetes Ingress provider (with ExternalName Services allowed). Default true. */
  ingress?: boolean;
  /** Kubernetes Gateway API provider. Default true. */
  gateway?: boolean;
  /** Serve TLSRoute/TCPRoute too (needs the experimental CRDs). */
  experimentalChannel?: boolean;
  /** The address written into Ingress and Gateway status (what external-dns publishes). Default 127.0.0.1. */
  statusIp?: string;
  /** Dynamic configuration for the file provider (YAML text), e.g. loopback services for HTTPRoute backends. */
  fileConfig?: string;
  name?: string;
}

/** traefik as the Gateway API (and Ingress) implementation. */
export function traefikLaunch(ctx: PeerContext, opts: TraefikOptions): PeerLaunch {
  const name = opts.name ?? 'traefik';
  const statusIp = opts.statusIp ?? '127.0.0.1';
  const args = [
    ...(opts.webPort !== undefined ? [`--entryPoints.web.address=127.0.0.1:${opts.webPort}`] : []),
    ...Object.entries(opts.entryPoints ?? {}).map(([ep, address]) => `--entryPoints.${ep}.address=${address}`),
    `--entryPoints.traefik.address=127.0.0.1:${opts.pingPort}`,
    '--ping=true',
    '--ping.entryPoint=traefik',
    '--global.checkNewVersion=false',
    '--global.sendAnonymousUsage=false',
    '--log.level=INFO',
  ];
  if (opts.websecurePort !== undefined) args.push(`--entryPoints.websecure.address=127.0.0.1:${opts.websecurePort}`);
  if (opts.ingress ?? true) {
    args.push(
      '--providers.kubernetesingress=true',
      // The API server refuses loopback Endpoints, so loopback backends are ExternalName Services.
      '--providers.kubernetesingress.allowExternalNameServices=true',
      `--providers.kubernetesingress.ingressEndpoint.ip=${statusIp}`,
    );
  }
  if (opts.gateway ?? true) {
    args.push('--providers.kubernetesgateway=true', `--providers.kubernetesgateway.statusAddress.ip=${statusIp}`);
    if (opts.experimentalChannel) args.push('--providers.kubernetesgateway.experimentalChannel=true');
  }
  const files: Record<string, string> = {};
  if (opts.fileConfig !== undefined) {
    files['dynamic.yaml'] = opts.fileConfig;
    args.push(`--providers.file.filename=${join(ctx.dir, name, 'dynamic.yaml')}`, '--providers.file.watch=true');
  }
  return {
    name,
    bin: bin(findSupportPeer('traefik')),
    args,
    env: baseEnv(ctx, name),
    files,
    ready: { kind: 'http', url: `http://127.0.0.1:${opts.pingPort}/ping` },
  };
}

export interface ExternalDnsOptions {
  /** external-dns sources, e.g. ['ingress', 'gateway-httproute', 'service']. */
  sources: string[];
  domainFilters: string[];
  /** --zone-id-filter: only these hosted zones (IDs without the /hostedzone/ prefix). */
  zoneIdFilters?: string[];
  /** --label-filter: a label selector over the source objects (routes, Services, Ingresses). */
  labelFilter?: string;
  /** The TXT registry owner: one per runtime, so two runtimes never delete each other's records. */
  txtOwnerId: string;
  aws: AwsTarget;
  metricsPort: number;
  /** Full resync interval (default 1m upstream); changes are also picked up by events. */
  interval?: string;
  /** Wait after a source event before syncing, batching bursts (default 5s upstream). */
  minEventSyncInterval?: string;
  /** 'sync' (default; deletes records whose source is gone) or 'upsert-only'. */
  policy?: 'sync' | 'upsert-only';
  name?: string;
}

/** external-dns with the AWS (Route 53) provider. */
export function externalDnsLaunch(ctx: PeerContext, opts: ExternalDnsOptions): PeerLaunch {
  const name = opts.name ?? 'external-dns';
  const args = [
    `--kubeconfig=${ctx.kubeconfigPath}`,
    '--provider=aws',
    '--registry=txt',
    `--txt-owner-id=${opts.txtOwnerId}`,
    `--policy=${opts.policy ?? 'sync'}`,
    `--interval=${opts.interval ?? '1m'}`,
    '--events',
    ...(opts.minEventSyncInterval ? [`--min-event-sync-interval=${opts.minEventSyncInterval}`] : []),
    `--metrics-address=127.0.0.1:${opts.metricsPort}`,
    ...opts.sources.map((s) => `--source=${s}`),
    ...opts.domainFilters.map((d) => `--domain-filter=${d}`),
    ...(opts.zoneIdFilters ?? []).map((z) => `--zone-id-filter=${z}`),
    ...(opts.labelFilter ? [`--label-filter=${opts.labelFilter}`] : []),
  ];
  return {
    name,
    bin: bin(findSupportPeer('external-dns')),
    args,
    env: { ...baseEnv(ctx, name), ...awsEnv(opts.aws, ['AWS_ENDPOINT_URL_ROUTE_53', 'AWS_ENDPOINT_URL_STS']) },
    ready: { kind: 'http', url: `http://127.0.0.1:${opts.metricsPort}/healthz` },
  };
}

export interface ExternalSecretsOptions {
  aws: AwsTarget;
  metricsPort: number;
  name?: string;
}

/** external-secrets' controller (no webhook, no cert controller). */
export function externalSecretsLaunch(ctx: PeerContext, opts: ExternalSecretsOptions): PeerLaunch {
  const name = opts.name ?? 'external-secrets';
  return {
    name,
    bin: bin(findSupportPeer('external-secrets')),
    args: [`--metrics-addr=127.0.0.1:${opts.metricsPort}`, '--enable-leader-election=false', '--loglevel=info', '--zap-time-encoding=iso8601'],
    env: {
      ...baseEnv(ctx, name),
      ...awsEnv(opts.aws, ['AWS_SECRETSMANAGER_ENDPOINT', 'AWS_STS_ENDPOINT', 'AWS_ENDPOINT_URL_SECRETS_MANAGER']),
    },
    ready: { kind: 'http', url: `http://127.0.0.1:${opts.metricsPort}/metrics` },
  };
}

export interface PebbleOptions {
  /** ACME directory at https://127.0.0.1:<port>/dir. */
  port: number;
  managementPort: number;
  /** Validation ports pebble would use for HTTP-01 / TLS-ALPN-01 (unused by DNS-01, but bound). */
  httpPort: number;
  tlsPort: number;
  /** host:port of the DNS server pebble resolves challenges with (CoreDNS over the Route 53 zone). */
  dnsServer: string;
  name?: string;
}

/** The pebble ACME directory URL and the CA that signs pebble's own HTTPS certificate. */
export function pebbleEndpoints(opts: { port: number; managementPort: number }): { directory: string; rootsUrl: string } {
  return { directory: `https://127.0.0.1:${opts.port}/dir`, rootsUrl: `https://127.0.0.1:${opts.managementPort}/roots/0` };
}

/** Path of the CA (pebble's minica) that signs pebble's HTTPS listener: the ACME issuer's caBundle. */
export function pebbleServingCaPath(): string {
  return join(findSupportPeer('pebble').dir, 'certs', 'pebble.minica.pem');
}

/** pebble, a small ACME server (tests only: it stands in for Let's Encrypt). */
export function pebbleLaunch(ctx: PeerContext, opts: PebbleOptions): PeerLaunch {
  const name = opts.name ?? 'pebble';
  const files = findSupportPeer('pebble');
  const certs = join(files.dir, 'certs');
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${opts.port}`,
      managementListenAddress: `127.0.0.1:${opts.managementPort}`,
      certificate: join(certs, 'cert.pem'),
      privateKey: join(certs, 'key.pem'),
      httpPort: opts.httpPort,
      tlsPort: opts.tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false,
      retryAfter: { authz: 1, order: 1 },
    },
  };
  return {
    name,
    bin: bin(files),
    args: ['-config', join(ctx.dir, name, 'pebble-config.json'), '-dnsserver', opts.dnsServer, '-strict=false'],
    env: {
      ...baseEnv(ctx, name),
      // No random sleeps before validation and no random nonce rejections: a test wants the real
      // protocol, not pebble's client-robustness drills.
      PEBBLE_VA_NOSLEEP: '1',
      PEBBLE_WFE_NONCEREJECT: '0',
    },
    files: { 'pebble-config.json': JSON.stringify(config, null, 2) },
    ready: { kind: 'tcp', host: '127.0.0.1', port: opts.port },
  };
}

export interface CoreDnsOptions {
  /** UDP/TCP port on 127.0.0.1. */
  port: number;
  healthPort: number;
  /** Route 53 zones to serve: zone name (with or without the trailing dot) and hosted zone id. */
  zones: { name: string; hostedZoneId: string }[];
  aws: AwsTarget;
  /** How often CoreDNS re-reads the zones from Route 53 (default 1s, so fresh DNS-01 records show at once). */
  refresh?: string;
  name?: string;
}

/** CoreDNS serving Route 53 zones over real DNS (for ACME DNS-01 in tests: pebble and cert-manager's self check). */
export function coreDnsLaunch(ctx: PeerContext, opts: CoreDnsOptions): PeerLaunch {
  const name = opts.name ?? 'coredns';
  const zones = opts.zones.map((z) => `${z.name.replace(/\.?$/, '.')}:${z.hostedZoneId.replace(/^\/hostedzone\//, '')}`);
  const corefile = [
    `.:${opts.port} {`,
    '    bind 127.0.0.1',
    `    health 127.0.0.1:${opts.healthPort}`,
    '    errors',
    '    log',
    `    route53 ${zones.join(' ')} {`,
    `        refresh ${opts.refresh ?? '1s'}`,
    '    }',
    '}',
    '',
  ].join('\n');
  return {
    name,
    bin: bin(findSupportPeer('coredns')),
    args: ['-conf', join(ctx.dir, name, 'Corefile')],
    // CoreDNS's own aws_endpoint option does not work; the SDK's AWS_ENDPOINT_URL does.
    env: { ...baseEnv(ctx, name), ...awsEnv(opts.aws, ['AWS_ENDPOINT_URL_ROUTE_53']) },
    files: { Corefile: corefile },
    ready: { kind: 'http', url: `http://127.0.0.1:${opts.healthPort}/health` },
  };
}
