// `tptctl dashboard`: a local proxy on 127.0.0.1 that forwards to a control plane with the user's
// client certificate, the way `kubectl proxy` does, so a browser (which has no client
// certificate) can open the dashboard without the API giving up mutual TLS.
//
// What keeps other web pages out:
//  - DNS rebinding: a request whose Host header is not this proxy's own address is refused, so a
//    hostile name resolved to 127.0.0.1 reaches nothing.
//  - Cross-site writes: every request that is not GET or HEAD must carry the per-session token in
//    `X-Threeport-Session`. The page reads the token from GET /dashboard/session, which the
//    browser lets only same-origin pages read (no CORS headers are ever sent).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

import { SESSION_HEADER } from './api-types.js';

export interface ProxyOptions {
  /** The control plane's base URL: https://host:port (mutual TLS) or http://host:port (--no-auth). */
  upstream: string;
  tls?: { ca: string; cert: string; key: string };
  /** 0 picks a free port. */
  port: number;
  /** Name shown on the page. */
  controlPlane: string;
}

export interface DashboardProxy {
  url: string;
  token: string;
  close(): Promise<void>;
}

// Hop-by-hop headers (RFC 9110 §7.6.1) and what must not travel upstream from the browser.
const DROP_REQUEST = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', SESSION_HEADER, 'cookie']);
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'trailer', 'access-control-allow-origin', 'access-control-allow-credentials']);

function refuse(res: http.ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify({ error: message }));
}

function sameToken(given: string | string[] | undefined, token: string): boolean {
  if (typeof given !== 'string' || given.length !== token.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(token));
}

export async function startDashboardProxy(options: ProxyOptions): Promise<DashboardProxy> {
  const token = randomBytes(24).toString('base64url');
  const upstream = new URL(options.upstream);
  const secure = upstream.protocol === 'https:';
  if (secure && !options.tls) throw new Error(`${options.upstream} needs the CA and a client certificate and key`);
  const agent = secure
    ? new https.Agent({ ca: options.tls!.ca, cert: options.tls!.cert, key: options.tls!.key, keepAlive: true, maxSockets: 64 })
    : new http.Agent({ keepAlive: true, maxSockets: 64 });
  let allowedHosts = new Set<string>();

  const server = http.createServer((req, res) => {
    if (!allowedHosts.has(String(req.headers.host ?? '').toLowerCase())) {
      return refuse(res, 403, `Host ${JSON.stringify(req.headers.host ?? '')} is not this proxy's address; open ${[...allowedHosts][0]}`);
    }
    const path = req.url ?? '/';
    if (path === '/' || path === '') {
      res.writeHead(302, { location: '/dashboard/' });
      return res.end();
    }
    if (path === '/dashboard/session') {
      if (req.method !== 'GET') return refuse(res, 405, 'GET only');
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      return res.end(JSON.stringify({ token, proxied: true, controlPlane: options.controlPlane }));
    }
    if (req.method !== 'GET' && req.method !== 'HEAD' && !sameToken(req.headers[SESSION_HEADER], token)) {
      return refuse(res, 403, `a ${req.method} through the dashboard proxy needs the session token in ${SESSION_HEADER}`);
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) if (!DROP_REQUEST.has(name) && value !== undefined) headers[name] = value;
    headers['host'] = upstream.host;
    const forward = (secure ? https : http).request(
      { protocol: upstream.protocol, hostname: upstream.hostname, port: upstream.port, method: req.method, path, headers, agent },
      (answer) => {
        const out: http.OutgoingHttpHeaders = {};
        for (const [name, value] of Object.entries(answer.headers)) if (!DROP_RESPONSE.has(name) && value !== undefined) out[name] = value;
        res.writeHead(answer.statusCode ?? 502, out);
        // Event streams must reach the browser as they come: no buffering anywhere.
        res.flushHeaders();
        answer.pipe(res);
      },
    );
    forward.on('error', (err) => {
      if (!res.headersSent) refuse(res, 502, `the control plane ${options.controlPlane} at ${options.upstream} is unreachable: ${err.message}`);
      else res.destroy();
    });
    res.on('close', () => forward.destroy());
    req.pipe(forward);
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  allowedHosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
  return {
    url: `http://127.0.0.1:${port}/dashboard/`,
    token,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
