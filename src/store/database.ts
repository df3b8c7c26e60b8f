// The connection to PostgreSQL: an external server named by URL, or the
// embedded one. Everything above this module speaks plain SQL through `pg`,
// so both run the same statements.
import type pg from 'pg';
import pgRuntime from './pg.js';
import { EmbeddedPostgres } from './embedded-postgres.js';
import { UnavailableError } from '../errors.js';

// BIGINT ids come back as strings by default; our ids stay below 2^53, so parse them as numbers.
pgRuntime.types.setTypeParser(20, (v: string) => Number(v));

export interface DatabaseOptions {
  /** postgres://… of an external server. Without it, an embedded server runs under `embeddedDir`. */
  url?: string;
  embeddedDir?: string;
  poolSize?: number;
  log?: (line: string) => void;
  /** Where the pool reports an idle connection's failure (default: a line on stderr). */
  onPoolError?: (err: Error) => void;
}

/** A pool or a transaction's client: what store operations run their statements on. */
export interface Queryable {
  query(config: pg.QueryConfig | string, values?: unknown[]): Promise<pg.QueryResult>;
}

export class Database {
  readonly pool: pg.Pool;
  readonly embedded: EmbeddedPostgres | undefined;
  readonly #connection: pg.PoolConfig;

  private constructor(config: pg.PoolConfig, embedded?: EmbeddedPostgres, onPoolError?: (err: Error) => void) {
    this.#connection = config;
    this.pool = new pgRuntime.Pool(config);
    // An idle client's error (e.g. the server restarted) must not crash the process, nor go
    // unseen: it is often the first sign of a database outage.
    this.pool.on('error', onPoolError ?? ((err) => process.stderr.write(`threeport: idle PostgreSQL connection failed: ${err.message}\n`)));
    this.embedded = embedded;
  }

  static async open(options: DatabaseOptions): Promise<Database> {
    const common: pg.PoolConfig = {
      max: options.poolSize ?? 20,
      options: '-c timezone=UTC',
      connectionTimeoutMillis: 10_000,
      application_name: 'threeport',
    };
    if (options.url) {
      const db = new Database({ ...common, connectionString: options.url }, undefined, options.onPoolError);
      await db.#ping();
      return db;
    }
    if (!options.embeddedDir) throw new Error('either a database URL or a directory for the embedded database is required');
    const embedded = new EmbeddedPostgres({ dir: options.embeddedDir, ...(options.log ? { log: options.log } : {}) });
    await embedded.start();
    const db = new Database({ ...common, ...embedded.connection }, embedded, options.onPoolError);
    await db.#ping();
    return db;
  }

  async #ping(): Promise<void> {
    try {
      await this.pool.query('SELECT 1');
    } catch (err) {
      await this.pool.end().catch(() => {});
      throw new UnavailableError(`cannot connect to PostgreSQL: ${(err as Error).message}`, { cause: err });
    }
  }

  /** A dedicated connection outside the pool (for LISTEN). */
  newClient(): pg.Client {
    return new pgRuntime.Client(this.#connection as pg.ClientConfig);
  }

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string | pg.QueryConfig,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    return typeof text === 'string' ? this.pool.query<R>(text, values) : this.pool.query<R>(text);
  }

  /** Runs `work` in one transaction; rolls back when it throws. */
  async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => {});
    await this.embedded?.stop();
  }
}
