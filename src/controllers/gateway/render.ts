// What a GatewayInstance puts on its runtime (spec §3.4, with the Kubernetes Gateway API in place
// of Gloo Edge's VirtualServices; docs/support-services.md): one Gateway in the workload's
// namespace with a listener per port, an HTTPRoute per HTTP port and a TCPRoute per TCP port, all
// pointing at one Service of the workload.
import type { KubeObject } from '../../providers/kube/client.js';
export { definitionPortsProblem, portProblem, TLS_UNAVAILABLE } from '../../kinds/gateway-ports.js';

export const GATEWAY_API = 'gateway.networking.k8s.io/v1';
/** TCPRoute is only in the experimental channel. */
export const GATEWAY_API_ALPHA = 'gateway.networking.k8s.io/v1alpha2';
/** The GatewayClass the gateway controller installs on a runtime, and the controller that serves it. */
export const GATEWAY_CLASS = 'threeport-traefik';
export const TRAEFIK_CONTROLLER_NAME = 'traefik.io/gateway-controller';
export const LABEL_GATEWAY_INSTANCE = 'control-plane.threeport.io/gateway-instance';
/** external-dns v0.23's hostname annotation (its prefix is `external-dns.kubernetes.io/`). */
export const EXTERNAL_DNS_HOSTNAME = 'external-dns.kubernetes.io/hostname';

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
}

function meta(input: RenderInput, name: string): KubeObject['metadata'] {
  return {
    name,
    namespace: input.namespace,
    labels: { [LABEL_GATEWAY_INSTANCE]: String(input.instanceId), 'app.kubernetes.io/managed-by': 'threeport' },
  };
}

/** The Gateway first, then the routes (deletion removes them in reverse). */
export function renderGateway(input: RenderInput): KubeObject[] {
  const listeners = [
    ...input.http.map((p) => ({
      name: `http-${p.Port}`,
      protocol: 'HTTP',
      port: p.Port,
      ...(input.hostname ? { hostname: input.hostname } : {}),
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
  const routes: KubeObject[] = input.http.map((p) => {
    const path = p.Path && p.Path.startsWith('/') ? p.Path : `/${p.Path ?? ''}`;
    const matches = [{ path: { type: 'PathPrefix', value: path } }];
    const rule = p.HTTPSRedirect
      ? { matches, filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', statusCode: 301 } }] }
      : { matches, backendRefs };
    return {
      apiVersion: GATEWAY_API,
      kind: 'HTTPRoute',
      metadata: meta(input, `${input.name}-${p.Port}`),
      spec: {
        parentRefs: [{ name: input.name, sectionName: `http-${p.Port}` }],
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
  return [gateway, ...routes];
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

/** Healthy when the Gateway is Programmed and every route Accepted; otherwise what is missing. */
export function gatewayHealth(live: readonly (KubeObject | undefined)[], wanted: readonly KubeObject[]): { healthy: boolean; waiting?: string } {
  for (const [i, w] of wanted.entries()) {
    const obj = live[i];
    const what = `${w.kind} ${w.metadata.namespace}/${w.metadata.name}`;
    if (!obj) return { healthy: false, waiting: `${what} is missing` };
    const type = w.kind === 'Gateway' ? 'Programmed' : 'Accepted';
    const c = condition(obj, w.kind === 'Gateway' ? 'gateway' : 'route', type);
    if (c?.status !== 'True') {
      const detail = c ? `${c.status}${c.reason ? ` (${c.reason}${c.message ? `: ${c.message}` : ''})` : ''}` : 'not reported yet';
      return { healthy: false, waiting: `${what} ${type} is ${detail}` };
    }
    if (w.kind !== 'Gateway') {
      const resolved = condition(obj, 'route', 'ResolvedRefs');
      if (resolved && resolved.status !== 'True') return { healthy: false, waiting: `${what} ResolvedRefs is ${resolved.status} (${resolved.reason ?? ''}: ${resolved.message ?? ''})` };
    }
  }
  return { healthy: true };
}
