#!/usr/bin/env node
// `threeport`: the control plane's own executable.
import { Command, InvalidArgumentError, Option } from 'commander';
import { createLogger } from '../logger.js';
import { ROLES, defaultDataDir, startServer, type Role } from '../server.js';
import { VERSION } from '../version.js';

function port(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number from 0 to 65535');
  return n;
}

/** "250ms", "1.5s", "10m", "1h", or a plain number of milliseconds. */
function duration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError('must be a duration such as 500ms, 1s, 10m or 1h (a plain number is milliseconds)');
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}

/** `8` (every kind) or `WorkloadInstance=2` (one kind); repeatable. */
function concurrency(value: string, previous: { all?: number; byKind: Record<string, number> } = { byKind: {} }) {
  const m = /^(?:([A-Za-z0-9]+)=)?(\d+)$/.exec(value.trim());
  const n = Number(m?.[2]);
  if (!m || !Number.isInteger(n) || n < 1) {
    throw new InvalidArgumentError('must be a whole number of at least 1 (every kind) or Kind=N (one kind), e.g. WorkloadInstance=2');
  }
  return m[1] ? { ...previous, byKind: { ...previous.byKind, [m[1]]: n } } : { ...previous, all: n };
}

const program = new Command('threeport').description('The Threeport control plane').version(VERSION);

program
  .command('server')
  .description('run the API server and/or the controllers')
  .option('--port <port>', 'API port (0 picks a free one)', port, 1323)
  .option('--host <address>', 'address to listen on', '127.0.0.1')
  .addOption(new Option('--role <role>', 'what this process runs').choices(ROLES).default('all'))
  .addOption(
    new Option('--database-url <url>', 'external PostgreSQL (default: an embedded one under --data-dir)').env(
      'THREEPORT_DATABASE_URL',
    ),
  )
  .option('--data-dir <dir>', 'state directory: embedded database, certificates, encryption key', defaultDataDir())
  .option('--tls-dir <dir>', 'CA, server and client certificates (default <data-dir>/pki)')
  .option('--no-auth', 'serve plain HTTP without client certificates (local development only)')
  .option('--log-level <level>', 'trace, debug, info, warn or error', 'info')
  .option('--reconcile-concurrency <n|Kind=n>', 'reconciles of one kind running at once per process (default 8); repeatable', concurrency)
  .option('--reconcile-poll-interval <duration>', 'look for due work at least this often, NOTIFY or not', duration, 1_000)
  .option('--reconcile-lease <duration>', "how long a crashed controller's items stay leased before others take them", duration, 15_000)
  .option('--no-listen', 'do not LISTEN for queue notifications; poll only')
  .option('--retry-initial <duration>', 'delay after the first failed reconcile', duration, 1_000)
  .option('--retry-max <duration>', 'longest delay between retries (exponential backoff with jitter in between)', duration, 30_000)
  .option('--resync-interval <duration>', 'queue every reconciled object again this often to repair drift (0 disables)', duration, 600_000)
  .option('--shutdown-deadline <duration>', 'on SIGTERM, let running reconciles finish this long before aborting them', duration, 10_000)
  .option('--helm-chart-dir <dir>', 'HelmWorkloadDefinition.Repo may name local chart directories under this one only (default: none allowed)')
  .option('--metrics-port <port>', 'serve /metrics, /healthz, /readyz over plain HTTP on this port (0 = off)', port, 0)
  .addOption(new Option('--tofu <path>', 'the OpenTofu executable the Terraform controller runs (default: the build cache, then PATH)').env('THREEPORT_TOFU'))
  .option('--no-tofu-build', 'do not build OpenTofu on first use when it is missing (also THREEPORT_TOFU_BUILD=0)')
  .action(async (opts: Record<string, unknown>) => {
    const logger = createLogger({ level: opts['logLevel'] as string });
    const conc = opts['reconcileConcurrency'] as { all?: number; byKind: Record<string, number> } | undefined;
    const server = await startServer({
      port: opts['port'] as number,
      host: opts['host'] as string,
      role: opts['role'] as Role,
      ...(opts['databaseUrl'] ? { databaseUrl: opts['databaseUrl'] as string } : {}),
      dataDir: opts['dataDir'] as string,
      ...(opts['tlsDir'] ? { tlsDir: opts['tlsDir'] as string } : {}),
      auth: opts['auth'] as boolean,
      ...(process.env['ENCRYPTION_KEY'] ? { encryptionKey: process.env['ENCRYPTION_KEY'] } : {}),
      ...(opts['helmChartDir'] ? { helmChartDir: opts['helmChartDir'] as string } : {}),
      logger,
      metricsPort: opts['metricsPort'] as number,
      ...(opts['tofu'] ? { tofuPath: opts['tofu'] as string } : {}),
      ...(opts['tofuBuild'] === false ? { tofuAutoBuild: false } : {}),
      controllers: {
        ...(conc?.all ? { concurrency: conc.all } : {}),
        ...(conc ? { concurrencyByKind: conc.byKind } : {}),
        pollIntervalMs: opts['reconcilePollInterval'] as number,
        leaseMs: opts['reconcileLease'] as number,
        listen: opts['listen'] as boolean,
        retry: { initialIntervalMs: opts['retryInitial'] as number, maximumIntervalMs: opts['retryMax'] as number },
        resyncIntervalMs: opts['resyncInterval'] as number,
        shutdownDeadlineMs: opts['shutdownDeadline'] as number,
      },
    }).catch((err: unknown) => {
      logger.error((err as Error).message);
      logger.flush();
      process.stderr.write(`threeport server: ${(err as Error).message}\n`);
      process.exit(1);
    });
    if (server.url) process.stdout.write(`${JSON.stringify({ msg: 'listening', url: server.url })}\n`);
    if (server.metricsUrl) process.stdout.write(`${JSON.stringify({ msg: 'metrics', url: server.metricsUrl })}\n`);
    if (server.controllers) {
      process.stdout.write(`${JSON.stringify({ msg: 'controllers started', owner: server.controllers.owner, kinds: server.controllers.kinds })}\n`);
    }
    const shutdown = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      const force = setTimeout(() => process.exit(1), 30_000 + (opts['shutdownDeadline'] as number));
      force.unref();
      server.close().then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });

await program.parseAsync();
