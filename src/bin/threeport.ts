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
  .action(async (opts: Record<string, unknown>) => {
    const logger = createLogger({ level: opts['logLevel'] as string });
    const server = await startServer({
      port: opts['port'] as number,
      host: opts['host'] as string,
      role: opts['role'] as Role,
      ...(opts['databaseUrl'] ? { databaseUrl: opts['databaseUrl'] as string } : {}),
      dataDir: opts['dataDir'] as string,
      ...(opts['tlsDir'] ? { tlsDir: opts['tlsDir'] as string } : {}),
      auth: opts['auth'] as boolean,
      ...(process.env['ENCRYPTION_KEY'] ? { encryptionKey: process.env['ENCRYPTION_KEY'] } : {}),
      logger,
    }).catch((err: unknown) => {
      logger.error((err as Error).message);
      logger.flush();
      process.stderr.write(`threeport server: ${(err as Error).message}\n`);
      process.exit(1);
    });
    if (server.url) process.stdout.write(`${JSON.stringify({ msg: 'listening', url: server.url })}\n`);
    const shutdown = (signal: string) => {
      logger.info({ signal }, 'shutting down');
      const force = setTimeout(() => process.exit(1), 30_000);
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
