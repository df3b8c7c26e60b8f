// A throwaway PostgreSQL server for integration tests: the machine's
// PostgreSQL 15 (Debian's postgresql package) on a free loopback port, in a
// temporary directory that is removed afterwards.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { freePort } from '../../src/system.js';

export interface TestPostgres {
  url: string;
  version: string;
  stop(): Promise<void>;
}

/** The newest PostgreSQL under /usr/lib/postgresql, or THREEPORT_TEST_PG_BIN. */
export function systemPostgresBinDir(): string {
  const override = process.env['THREEPORT_TEST_PG_BIN'];
  if (override) return override;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error('no PostgreSQL server under /usr/lib/postgresql: run scripts/install-test-deps.sh (apt-get install postgresql)');
  }
  return join(root, versions[0]!, 'bin');
}

export async function startTestPostgres(): Promise<TestPostgres> {
  const bin = systemPostgresBinDir();
  const dir = mkdtempSync(join(tmpdir(), 'threeport-pg-'));
  const server = new EmbeddedPostgres({
    dir,
    binaries: { initdb: join(bin, 'initdb'), postgres: join(bin, 'postgres') },
    tcpPort: await freePort(),
  });
  await server.start();
  return {
    url: server.url!,
    version: bin.split('/').at(-2) ?? 'unknown',
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
