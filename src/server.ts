// The composition root of `threeport server`: reads its configuration, opens
// the database, applies migrations, and starts the API and/or the controllers
// depending on the role.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { KINDS } from './kinds/index.js';
import { Database } from './store/database.js';
import { migrate } from './store/migrate.js';
import { ObjectStore } from './store/object-store.js';
import { Leases } from './store/leases.js';
import { FieldCipher } from './crypto/field-encryption.js';
import { serverTls } from './crypto/pki.js';
import { buildApiServer } from './api/http-server.js';
import { registerDashboardRoutes } from './dashboard/routes.js';
import type { Controller } from './controllers/index.js';
import { testReconcilerKinds } from './reconcile/test-reconcilers.js';
import type { ReconcileMetrics } from './reconcile/metrics.js';
import { startMetricsServer, type MetricsServer } from './reconcile/metrics-server.js';
import { ReconcileRuntime, type ReconcileRuntimeSettings } from './reconcile/runtime.js';
import type { Reconciler } from './reconcile/types.js';

export type Role = 'all' | 'api' | 'controllers';
export const ROLES: readonly Role[] = ['all', 'api', 'controllers'];

export interface ServerConfig {
  port: number;
  host: string;
  role: Role;
  /** External PostgreSQL; embedded under `dataDir` when absent. */
  databaseUrl?: string;
  dataDir: string;
  auth: boolean;
  /** Where the CA, server and client certificates live (default `<dataDir>/pki`). */
  tlsDir?: string;
  /** Base64 AES-256 key; from ENCRYPTION_KEY, or generated into the data dir in embedded mode. */
  encryptionKey?: string;
  bodyLimitBytes?: number;
  /** HelmWorkloadDefinition.Repo may name local chart directories only under this one. */
  helmChartDir?: string;
  logger: Logger;
  /** Role controllers|all: the reconcilers to run (default: the built-in controllers). */
  reconcilers?: readonly Reconciler[];
  /** Role controllers|all: concurrency, retry policy, polling, leases, resync. */
  controllers?: ReconcileRuntimeSettings;
  /** Serve /metrics, /healthz and /readyz over plain HTTP on this port (0 = off; the API serves /metrics anyway). */
  metricsPort?: number;
  /** Role controllers|all: the OpenTofu executable and whether to build it on first use (Terraform controller). */
  tofuPath?: string;
  tofuAutoBuild?: boolean;
}

export interface RunningServer {
  /** The API's base URL, when this process serves the API. */
  url?: string;
  db: Database;
  store: ObjectStore;
  app?: FastifyInstance;
  /** The controller runtime, when this process runs controllers. */
  controllers?: ReconcileRuntime;
  /** This replica's named leases (runtimes it watches, singleton work), when it runs controllers. */
  leases?: Leases;
  /** The process's metrics; an API replica builds them on the first scrape (prom-client is not loaded before). */
  metrics(): Promise<ReconcileMetrics>;
  /** The plain-HTTP metrics listener's base URL, when --metrics-port is set. */
  metricsUrl?: string;
  close(): Promise<void>;
}

export function defaultDataDir(): string {
  return join(homedir(), '.threeport', 'server');
}

function loadEncryptionKey(config: ServerConfig): string {
  if (config.encryptionKey) return config.encryptionKey;
  if (config.databaseUrl) {
    throw new Error(
      'ENCRYPTION_KEY is required with an external database: every replica must share it (generate one with `openssl rand -base64 32`)',
    );
  }
  const path = join(config.dataDir, 'encryption.key');
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const key = FieldCipher.generateKey();
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  return key;
}

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const log = config.logger;
  const started = Date.now();
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const cipher = new FieldCipher(loadEncryptionKey(config));
  const db = await Database.open({
    ...(config.databaseUrl ? { url: config.databaseUrl } : { embeddedDir: join(config.dataDir, 'db') }),
    log: (line) => log.info(line),
    onPoolError: (err) => log.warn({ err: err.message }, 'an idle PostgreSQL connection failed'),
  });
  let app: FastifyInstance | undefined;
  let controllers: ReconcileRuntime | undefined;
  let metricsServer: MetricsServer | undefined;
  let leases: Leases | undefined;
  let domainControllers: Controller[] = [];
  try {
    await migrate(db, KINDS);
    // Explicit (in-process test) and THREEPORT_TEST_RECONCILERS reconcilers may serve kinds that
    // the built-in controllers do not; the store and the API must treat those as served.
    const served = new Set([...(config.reconcilers ?? []).map((r) => r.kind), ...(await testReconcilerKinds())]);
    const store = new ObjectStore(db, cipher, served);
    // prom-client (with its OpenTelemetry and default-metrics machinery) is 60-70 ms and ~13 MB of
    // start-up that an API replica needs only when scraped; the controllers need it at once.
    let loadingMetrics: Promise<ReconcileMetrics> | undefined;
    const metrics = (): Promise<ReconcileMetrics> =>
      (loadingMetrics ??= import('./reconcile/metrics.js').then(({ ReconcileMetrics }) => new ReconcileMetrics(db, { log })));
    let url: string | undefined;
    let closing = false;
    // /readyz?verbose: which replica this is and what it owns.
    const readyDetail = (): string =>
      leases ? [`holder ${leases.holder}`, ...leases.held().map((n) => `owns ${n}`)].join('\n') : `role ${config.role}`;

    if (config.role === 'all' || config.role === 'api') {
      const tls = config.auth ? await serverTls(config.tlsDir ?? join(config.dataDir, 'pki')) : undefined;
      app = await buildApiServer({
        store,
        logger: log,
        ...(tls ? { tls } : {}),
        ...(config.bodyLimitBytes ? { bodyLimitBytes: config.bodyLimitBytes } : {}),
        ...(config.helmChartDir ? { helmChartDir: config.helmChartDir } : {}),
        ready: () => !closing,
        readyDetail,
        extend: (api) => {
          api.get('/metrics', async (_req, reply) => {
            const m = await metrics();
            return reply.type(m.contentType).send(await m.text());
          });
          registerDashboardRoutes(api, store, log);
        },
      });
      await app.listen({ port: config.port, host: config.host });
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : config.port;
      const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
      url = `${config.auth ? 'https' : 'http'}://${host}:${port}`;
    }
    if (config.role === 'all' || config.role === 'controllers') {
      // Imported here, not at the top: the controllers pull in the AWS SDK and the Kubernetes
      // client, which an API replica never uses (see docs/operator-guide.md, lean replicas).
      const { loadReconcilers } = await import('./controllers/index.js');
      const loaded = await loadReconcilers(config.reconcilers, {
        dataDir: config.dataDir,
        logger: log,
        ...(config.tofuPath ? { tofuPath: config.tofuPath } : {}),
        ...(config.tofuAutoBuild !== undefined ? { tofuAutoBuild: config.tofuAutoBuild } : {}),
        // Plain HTTP only: the metrics port, or the API itself when it runs without TLS.
        selfMetricsUrl: () => (metricsServer ? `${metricsServer.url}/metrics` : !config.auth && url ? `${url}/metrics` : undefined),
      });
      domainControllers = loaded.controllers;
      leases = new Leases({
        db,
        holder: `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`,
        ...(config.controllers?.leaseMs ? { leaseMs: config.controllers.leaseMs } : {}),
        log: log.child({ component: 'leases' }),
      });
      await leases.start();
      const ownLeases = leases;
      const processMetrics = await metrics();
      processMetrics.trackOwnership(ownLeases.holder, () => ownLeases.held());
      const hooks = [config.controllers?.onSettled, loaded.onSettled].filter((h) => h !== undefined);
      controllers = await ReconcileRuntime.start({
        ...config.controllers,
        ...(hooks.length > 0 ? { onSettled: (s) => hooks.forEach((h) => h(s)) } : {}),
        store,
        reconcilers: loaded.reconcilers,
        logger: log.child({ component: 'controllers' }),
        metrics: processMetrics,
        leases,
      });
      for (const c of domainControllers) await c.start?.(store, { leases });
      // What the last process ran in itself (peers, simulated clusters) comes back (`resume`).
      await controllers.resume();
    }
    if (config.metricsPort) {
      metricsServer = await startMetricsServer({ metrics, host: config.host, port: config.metricsPort, ready: () => !closing, readyDetail, log });
    }
    log.info(
      { url, metricsUrl: metricsServer?.url, role: config.role, auth: config.auth, ms: Date.now() - started },
      'threeport server started',
    );

    return {
      ...(url ? { url } : {}),
      ...(app ? { app } : {}),
      ...(controllers ? { controllers } : {}),
      ...(leases ? { leases } : {}),
      ...(metricsServer ? { metricsUrl: metricsServer.url } : {}),
      db,
      store,
      metrics,
      async close() {
        if (closing) return;
        closing = true;
        // Stop accepting, let in-flight requests and reconciles finish, then release the database.
        await app?.close();
        await controllers?.stop();
        for (const c of domainControllers) await c.stop?.().catch((err: unknown) => log.warn({ err: String(err) }, 'controller stop failed'));
        // Released, not left to expire: another replica takes the runtimes at once.
        await leases?.stop();
        await metricsServer?.close();
        await db.close();
        log.info('threeport server stopped');
        log.flush();
      },
    };
  } catch (err) {
    await controllers?.stop(0);
    for (const c of domainControllers) await c.stop?.().catch(() => {});
    await leases?.stop();
    await metricsServer?.close();
    await app?.close();
    await db.close();
    throw err;
  }
}
