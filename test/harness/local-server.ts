// A control plane in this process, as the integration tests and benchmarks start it: API and
// controllers (role all), no authentication, a free loopback port, and engine timings short enough
// for tests. Callers pass what their test is about (a database URL, reconcilers, a log file).
import { createLogger } from '../../src/logger.js';
import { startServer, type RunningServer, type ServerConfig } from '../../src/server.js';

/** The engine's timings in tests: a fast poll, no periodic resync, retries from 250 ms to 2 s. */
export const TEST_CONTROLLER_SETTINGS = {
  pollIntervalMs: 200,
  resyncIntervalMs: 0,
  retry: { initialIntervalMs: 250, maximumIntervalMs: 2_000 },
} as const;

export interface LocalServerOptions extends Partial<Omit<ServerConfig, 'dataDir' | 'logger'>> {
  /** The server log goes here (THREEPORT_TEST_LOG_LEVEL, default info); without it, to stdout if THREEPORT_TEST_LOG_LEVEL is set. */
  logPath?: string;
  logLevel?: string;
}

export function startLocalServer(dataDir: string, options: LocalServerOptions = {}): Promise<RunningServer> {
  const { logPath, logLevel, ...overrides } = options;
  const level = logLevel ?? process.env['THREEPORT_TEST_LOG_LEVEL'] ?? (logPath ? 'info' : 'silent');
  return startServer({
    port: 0,
    host: '127.0.0.1',
    role: 'all',
    auth: false,
    controllers: TEST_CONTROLLER_SETTINGS,
    ...overrides,
    dataDir,
    logger: createLogger({ level, ...(logPath ? { destination: logPath } : {}) }),
  });
}
