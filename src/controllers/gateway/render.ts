// What a GatewayInstance puts on its runtime (spec §3.4, with the Kubernetes Gateway API in place
// of Gloo Edge's VirtualServices; docs/support-services.md): one Gateway in the workload's
// namespace with a listener per port, an HTTPRoute per HTTP port and a TCPRoute per TCP port, all
// pointing at one Service of the workload. A TLSEnabled HTTP port is an HTTPS listener that
// terminates TLS with the Secret of a cert-manager Certificate for the gateway's host name.
import type { KubeObject } from '../../providers/kube/client.js';
export { definitionPortsProblem, portProblem, TLS_NEEDS_DOMAIN } from '../../kinds/gateway-ports.js';

export const GATEWAY_API = 'gateway.networking.k8s.io/v1';
/** TCPRoute is only in the experimental channel. */
export const GATEWAY_API_ALPHA = 'gateway.networking.k8s.io/v1alpha2';
/** The GatewayClass the gateway controller installs on a runtime, and the controller that serves it. */
export const GATEWAY_CLASS = 'threeport-traefik';
export const TRAEFIK_CONTROLLER_NAME = 'traefik.io/gateway-controller';
export const LABEL_GATEWAY_INSTANCE = 'control-plane.threeport.io/gateway-instance';
/** external-dns v0.23's hostname annotation (its prefix is `external-dns.kubernetes.io/`). */
export const EXTERNAL_DNS_HOSTNAME = 'external-dns.kubernetes.io/hostname';
export const CERT_MANAGER_API = 'cert-manager.io/v1';

export interface HttpPort {
  Port: number;
  Path?: string;
  TLSEnabled?: boolean;
  HTTPSRedirect?: boolean;
}
export interface TcpPort {
  Port: number;
  TLSEnabled?: boolean;
}

/** The ports of a GatewayDefinition, as the store returns them nested. */
export function portsOf(gd: Readonly<Record<string, unknown>>): { http: HttpPort[]; tcp: TcpPort[] } {
  const arr = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? (v as Record<string, unknown>[]) : []);
  return {
    http: arr(gd['HttpPorts']).map((p) => ({
      Port: p['Port'] as number,
      Path: typeof p['Path'] === 'string' ? p['Path'] : '/',
      TLSEnabled: p['TLSEnabled'] === true,
      HTTPSRedirect: p['HTTPSRedirect'] === true,
    })),
    tcp: arr(gd['TcpPorts']).map((p) => ({ Port: p['Port'] as number, TLSEnabled: p['TLSEnabled'] === true })),
  };
}

export interface RenderInput {
  instanceId: number;
  /** Object names on the runtime: `<name>-<port>` per route. */
  name: string;
  namespace: string;
  /** `<SubDomain>.<Domain>`, the Domain, or undefined (any host). */
  hostname: string | undefined;
  http: HttpPort[];
  tcp: TcpPort[];
  service: { name: string; port: number };
  /** For TLS ports: the Certificate (and Secret) name and the ClusterIssuer that signs it. */
  tls?: { secretName: string; issuer: string };
}

/** The listener of a port: `https-<port>` for a TLS HTTP port, `http-<port>` otherwise. */
export function listenerName(p: HttpPort): string {
  return `${p.TLSEnabled ? 'https' : 'http'}-${p.Port}`;
}

/** The cert-manager Certificate of a gateway's TLS ports: one host, one Secret. */
function renderCertificate(input: RenderInput, tls: NonNullable<RenderInput['tls']>): KubeObject {
  if (!input.hostname) throw new Error(`gateway ${input.name}: a TLS port needs a host name`);
  return {
    apiVersion: CERT_MANAGER_API,
    kind: 'Certificate',
    metadata: meta(input, tls.secretName),
    spec: {
      secretName: tls.secretName,
      dnsNames: [input.hostname],
      issuerRef: { group: 'cert-manager.io', kind: 'ClusterIssuer', name: tls.issuer },
      privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
      // The Secret carries the instance label too, so that removal finds it.
      secretTemplate: { labels: meta(input, tls.secretName).labels },
    },
  };
}

function meta(input: RenderInput, name: string): KubeObject['metadata'] {
  return {
    name,
    namespace: input.namespace,
    labels: { [LABEL_GATEWAY_INSTANCE]: String(input.instanceId), 'app.kubernetes.io/managed-by': 'threeport' },
  };
}

/** The Certificate (for TLS ports), the Gateway, then the routes (deletion removes them in reverse). */
export function renderGateway(input: RenderInput): KubeObject[] {
  const tlsPorts = input.http.filter((p) => p.TLSEnabled);
  const tls = tlsPorts.length > 0 ? input.tls : undefined;
  if (tlsPorts.length > 0 && !tls) throw new Error(`gateway ${input.name}: TLS ports need a certificate`);
  const listeners = [
    ...input.http.map((p) => ({
      name: listenerName(p),
      protocol: p.TLSEnabled ? 'HTTPS' : 'HTTP',
      port: p.Port,
      ...(input.hostname ? { hostname: input.hostname } : {}),
      ...(p.TLSEnabled && tls ? { tls: { mode: 'Terminate', certificateRefs: [{ group: '', kind: 'Secret', name: tls.secretName }] } } : {}),
      allowedRoutes: { namespaces: { from: 'Same' } },
    })),
    ...input.tcp.map((p) => ({ name: `tcp-${p.Port}`, protocol: 'TCP', port: p.Port, allowedRoutes: { namespaces: { from: 'Same' } } })),
  ];
  const gateway: KubeObject = {
    apiVersion: GATEWAY_API,
    kind: 'Gateway',
    metadata: meta(input, input.name),
    spec: { gatewayClassName: GATEWAY_CLASS, listeners },
  };
  const backendRefs = [{ name: input.service.name, port: input.service.port }];
  // A redirect goes to the first TLS port (https implies 443 when the port is left out).
  const redirectPort = tlsPorts[0]?.Port;
  const routes: KubeObject[] = input.http.map((p) => {
    const path = p.Path && p.Path.startsWith('/') ? p.Path : `/${p.Path ?? ''}`;
    const matches = [{ path: { type: 'PathPrefix', value: path } }];
    const redirect = { scheme: 'https', statusCode: 301, ...(redirectPort !== undefined && redirectPort !== 443 ? { port: redirectPort } : {}) };
    const rule = p.HTTPSRedirect && !p.TLSEnabled ? { matches, filters: [{ type: 'RequestRedirect', requestRedirect: redirect }] } : { matches, backendRefs };
    return {
      apiVersion: GATEWAY_API,
      kind: 'HTTPRoute',
      metadata: meta(input, `${input.name}-${p.Port}`),
      spec: {
        parentRefs: [{ name: input.name, sectionName: listenerName(p) }],
        ...(input.hostname ? { hostnames: [input.hostname] } : {}),
        rules: [rule],
      },
    };
  });
  for (const p of input.tcp) {
    // A TCPRoute has no hostnames: external-dns (DomainNameInstance) reads its host from this annotation.
    const annotations = input.hostname ? { annotations: { [EXTERNAL_DNS_HOSTNAME]: input.hostname } } : {};
    routes.push({
      apiVersion: GATEWAY_API_ALPHA,
      kind: 'TCPRoute',
      metadata: { ...meta(input, `${input.name}-${p.Port}`), ...annotations },
      spec: { parentRefs: [{ name: input.name, sectionName: `tcp-${p.Port}` }], rules: [{ backendRefs }] },
    });
  }
  return [...(tls ? [renderCertificate(input, tls)] : []), gateway, ...routes];
}

function condition(obj: KubeObject | undefined, path: 'gateway' | 'route', type: string): { status: string; reason?: string; message?: string } | undefined {
  const status = obj?.['status'] as Record<string, unknown> | undefined;
  const lists: unknown[] =
    path === 'gateway'
      ? [status?.['conditions']]
      : Array.isArray(status?.['parents'])
        ? (status['parents'] as Record<string, unknown>[]).map((p) => p['conditions'])
        : [];
  for (const list of lists) {
    if (!Array.isArray(list)) continue;
    const c = (list as Record<string, unknown>[]).find((x) => x['type'] === type);
    if (c) return { status: String(c['status']), ...(c['reason'] ? { reason: String(c['reason']) } : {}), ...(c['message'] ? { message: String(c['message']) } : {}) };
  }
  return undefined;
}

/**
 * Healthy when the Certificate (TLS ports) is Ready, the Gateway Programmed and every route
 * Accepted; otherwise what is missing, and of which kind.
 */
export function gatewayHealth(live: readonly (KubeObject | undefined)[], wanted: readonly KubeObject[]): { healthy: boolean; waiting?: string; waitingFor?: string } {
  for (const [i, w] of wanted.entries()) {
    const obj = live[i];
    const what = `${w.kind} ${w.metadata.namespace}/${w.metadata.name}`;
    if (!obj) return { healthy: false, waiting: `${what} is missing`, waitingFor: w.kind };
    const route = w.kind !== 'Gateway' && w.kind !== 'Certificate';
    const type = w.kind === 'Gateway' ? 'Programmed' : w.kind === 'Certificate' ? 'Ready' : 'Accepted';
    const c = condition(obj, route ? 'route' : 'gateway', type);
    if (c?.status !== 'True') {
      const detail = c ? `${c.status}${c.reason ? ` (${c.reason}${c.message ? `: ${c.message}` : ''})` : ''}` : 'not reported yet';
      return { healthy: false, waiting: `${what} ${type} is ${detail}`, waitingFor: w.kind };
    }
    if (route) {
      const resolved = condition(obj, 'route', 'ResolvedRefs');
      if (resolved && resolved.status !== 'True') return { healthy: false, waiting: `${what} ResolvedRefs is ${resolved.status} (${resolved.reason ?? ''}: ${resolved.message ?? ''})`, waitingFor: w.kind };
    }
  }
  return { healthy: true };
}
