// Shared by test/integration/gateway.test.ts and bench/support-services.ts: a backend a simulated
// runtime's gateway can reach (the host's own non-loopback address, since the API server refuses
// 127.0.0.0/8 in EndpointSlices), the workload that points a Service at it, the peers' processes,
// and HTTPS requests through the gateway with curl.
import { execFile } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import { networkInterfaces } from 'node:os';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { findSupportPeer } from '../../src/providers/support-peers/index.js';
import { until } from '../harness/until.js';

/** Why the gateway peers cannot run here, or false. */
export function gatewayPeersMissing(): string | false {
  try {
    findSupportPeer('traefik');
    findSupportPeer('gateway-api', { experimentalCrds: true });
    return false;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Why the gateway and DNS peers (traefik, external-dns) cannot run here, or false. */
export function dnsPeersMissing(): string | false {
  const gateway = gatewayPeersMissing();
  if (gateway) return gateway;
  try {
    findSupportPeer('external-dns');
    return false;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Why the TLS peers (cert-manager; with `acme`, pebble and CoreDNS too) cannot run here, or false. */
export function tlsPeersMissing(acme = false): string | false {
  const gateway = gatewayPeersMissing();
  if (gateway) return gateway;
  try {
    findSupportPeer('cert-manager');
    if (acme) {
      findSupportPeer('pebble');
      findSupportPeer('coredns');
    }
    return false;
  } catch (err) {
    return (err as Error).message;
  }
}

export function hostAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

export const HOST_IP = hostAddress();

/** cert-manager processes started under this control plane's data directory. */
export function certManagerPids(dataDir: string): number[] {
  return peerPids(dataDir, 'cert-manager-controller');
}

/** Processes of the support peer `bin` (traefik, external-dns, ...) started under this control plane's data directory. */
export function peerPids(dataDir: string, bin: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      // The peer runs in its own directory under the data directory (its kubeconfig comes by environment).
      if (cmd[0]?.endsWith(`/${bin}`) && readlinkSync(`/proc/${p}/cwd`).startsWith(dataDir)) pids.push(Number(p));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** traefik processes started under this control plane's data directory. */
export function traefikPids(dataDir: string): number[] {
  return peerPids(dataDir, 'traefik');
}

/** The test's HTTP backend on the host's own address: it answers `backend saw <Host> <path>`. */
export async function startBackend(): Promise<{ server: Server; port: number; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`backend saw ${req.headers.host ?? ''} ${req.url ?? ''}`);
  });
  await new Promise<void>((r) => server.listen(0, HOST_IP, r));
  return { server, port: (server.address() as { port: number }).port, close: () => new Promise<void>((r) => server.close(() => r())) };
}

export function httpGet(address: string, port: number, host: string, path = '/'): Promise<{ status: number; body: string; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port, path, headers: { Host: host }, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ...(res.headers.location ? { location: res.headers.location } : {}) }));
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end();
  });
}

/**
 * `curl` over HTTPS to `https://<host>:<port><path>`, with the host resolved to the gateway's
 * address (so SNI and the Host header are the host) and the certificate checked against `caFile`.
 */
export function curlHttps(address: string, port: number, host: string, caFile: string, path = '/'): Promise<{ status: number; body: string; stderr: string }> {
  // Asynchronous on purpose: the backend answering through the gateway runs in this process, and
  // a synchronous spawn would block its event loop until curl gives up.
  return new Promise((resolve) => {
    execFile(
      'curl',
      ['--silent', '--show-error', '--max-time', '10', '--cacert', caFile, '--resolve', `${host}:${port}:${address}`, '--write-out', '\n%{http_code}', `https://${host}:${port}${path}`],
      { encoding: 'utf8' },
      (_err, stdout, stderr) => {
        const out = stdout ?? '';
        const cut = out.lastIndexOf('\n');
        resolve({ status: Number(out.slice(cut + 1)) || 0, body: out.slice(0, Math.max(cut, 0)), stderr: (stderr ?? '').trim() });
      },
    );
  });
}

/** Waits until curlHttps answers 200, and returns that answer. */
export function untilHttps(address: string, port: number, host: string, caFile: string, path = '/'): Promise<{ status: number; body: string }> {
  return until(`HTTPS to ${host}:${port} through the gateway`, async () => {
    const got = await curlHttps(address, port, host, caFile, path);
    if (got.status !== 200) throw new Error(`curl: HTTP ${got.status} ${got.stderr}`);
    return got;
  }, 60_000);
}

export function workloadYaml(ns: string, backendPort: number): string {
  return `apiVersion: v1
kind: Namespace
metadata:
  name: ${ns}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: ${ns}
spec:
  ports:
    - name: http
      port: 80
      targetPort: ${backendPort}
---
apiVersion: v1
kind: Service
metadata:
  name: admin
  namespace: ${ns}
spec:
  ports:
    - name: http
      port: 8081
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-host
  namespace: ${ns}
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
  - name: http
    port: ${backendPort}
    protocol: TCP
endpoints:
  - addresses: ["${HOST_IP ?? ''}"]
    conditions:
      ready: true
`;
}

