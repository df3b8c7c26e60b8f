// A small plain-HTTP listener for processes that serve no API
// (`threeport server --role controllers --metrics-port N`):
// GET /metrics (Prometheus text), GET /healthz and GET /readyz.
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import type { ReconcileMetrics } from './metrics.js';

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

export async function startMetricsServer(options: {
  /** Built on the first scrape where the caller defers it (an API replica does). */
  metrics: () => Promise<ReconcileMetrics>;
  host: string;
  port: number;
  ready: () => boolean;
  /** GET /readyz?verbose adds this (which replica, what it owns). */
  readyDetail?: () => string;
  log: Logger;
}): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' }).end('method not allowed\n');
      return;
    }
    if (path === '/metrics') {
      options.metrics().then(
        async (metrics) => res.writeHead(200, { 'content-type': metrics.contentType }).end(await metrics.text()),
        (err: unknown) => {
          options.log.error({ err: (err as Error).message }, 'metrics collection failed');
          res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
        },
      );
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('OK');
      return;
    }
    if (path === '/readyz') {
      const ready = options.ready();
      const verbose = new URL(req.url ?? '/', 'http://x').searchParams.has('verbose') && options.readyDetail;
      const body = (ready ? 'OK' : 'not ready') + (verbose ? `\n${options.readyDetail!()}\n` : '');
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(body);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end(`no route for ${req.method} ${path}; try /metrics, /healthz or /readyz\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host === '0.0.0.0' || options.host === '::' ? '127.0.0.1' : options.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
