// Named leases in PostgreSQL: which controllers replica owns a piece of work that must have one
// owner at a time (a runtime's watches and status writes; singleton timers such as resync).
//
// - A lease row has a holder, an expiry and a fencing token. Taking over an expired lease
//   increments the token; renewing keeps it.
// - Each replica renews what it holds every third of the lease time. A lease the replica could not
//   renew in time counts as lost locally at once (holds() is false), before anyone else can take it.
// - Fencing: writes that only the owner may make call fence(tx, name) in their own transaction. It
//   locks the lease row FOR SHARE and checks holder, token and expiry, so a takeover (an UPDATE of
//   that row) waits for the write to commit, and a replica that lost its lease writes nothing.
// - Every replica also holds `replica:<holder>` while it runs: the count of those is the number of
//   live replicas, over which a lease group (runtimes) is shared, ceil(wanted / replicas) each.
// - A lease carries a small JSON document (a runtime's last Event resourceVersion) for the next owner.
import type { Logger } from 'pino';
import type { Database, Queryable } from './database.js';

export const LEASE_TABLE = 'threeport_leases';
const MEMBER_PREFIX = 'replica:';

export class LeaseLostError extends Error {
  constructor(readonly lease: string) {
    super(`this replica no longer holds lease ${lease}; another replica owns that work now`);
    this.name = 'LeaseLostError';
  }
}

export interface LeaseRow {
  name: string;
  holder: string;
  token: number;
  expiresAt: Date;
  data: Record<string, unknown>;
}

export interface WantedLease {
  /** Leases of one group are shared evenly among the live replicas (e.g. 'runtime'). */
  group?: string;
  /** Take it only when this says so (a simulated runtime: only the process that runs it). */
  eligible?: () => boolean;
  onAcquired?(lease: LeaseRow): void;
  onLost?(): void;
}

interface Held {
  token: number;
  renewedAt: number;
  data: Record<string, unknown>;
}

export interface LeasesOptions {
  db: Database;
  holder: string;
  /** How long a lease lasts without renewal (default 15 s). */
  leaseMs?: number;
  log: Logger;
}

const SQL = {
  acquire: `INSERT INTO ${LEASE_TABLE} AS l (name, holder, token, expires_at, data)
      VALUES ($1, $2, 1, now() + $3::double precision * interval '1 millisecond', '{}'::jsonb)
    ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
      token = CASE WHEN l.holder = EXCLUDED.holder THEN l.token ELSE l.token + 1 END
    WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
    RETURNING name, holder, token, expires_at, data`,
  renew: `UPDATE ${LEASE_TABLE} SET expires_at = now() + $3::double precision * interval '1 millisecond'
    WHERE holder = $1 AND name = ANY($2::text[]) AND expires_at > now() RETURNING name, token`,
  // Released leases keep their row (token and data carry over to the next owner); members go.
  release: `UPDATE ${LEASE_TABLE} SET expires_at = now() - interval '1 millisecond' WHERE holder = $1 AND name = ANY($2::text[])`,
  dropMember: `DELETE FROM ${LEASE_TABLE} WHERE holder = $1 AND name = $2`,
  fence: `SELECT 1 FROM ${LEASE_TABLE} WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > now() FOR SHARE`,
  setData: `UPDATE ${LEASE_TABLE} SET data = data || $4::jsonb WHERE name = $1 AND holder = $2 AND token = $3`,
  members: `SELECT count(*)::int AS n FROM ${LEASE_TABLE} WHERE name LIKE '${MEMBER_PREFIX}%' AND expires_at > now()`,
  list: `SELECT name, holder, token, expires_at, data FROM ${LEASE_TABLE} WHERE expires_at > now() AND name NOT LIKE '${MEMBER_PREFIX}%' ORDER BY name`,
  holderOf: `SELECT holder FROM ${LEASE_TABLE} WHERE name = $1 AND expires_at > now()`,
};

interface Row {
  name: string;
  holder: string;
  token: string | number;
  expires_at: Date;
  data: Record<string, unknown> | null;
}

function rowOf(r: Row): LeaseRow {
  return { name: r.name, holder: r.holder, token: Number(r.token), expiresAt: r.expires_at, data: r.data ?? {} };
}

/** DDL of the lease table (part of the schema). */
export function leaseDdl(): string {
  return `CREATE TABLE IF NOT EXISTS ${LEASE_TABLE} (
       name text PRIMARY KEY,
       holder text NOT NULL,
       token bigint NOT NULL,
       expires_at timestamptz NOT NULL,
       data jsonb NOT NULL DEFAULT '{}'::jsonb
     )`;
}

export class Leases {
  readonly holder: string;
  readonly leaseMs: number;
  readonly #db: Database;
  readonly #log: Logger;
  readonly #wanted = new Map<string, WantedLease>();
  readonly #held = new Map<string, Held>();
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  #members = 1;
  #stopped = false;

  constructor(options: LeasesOptions) {
    this.#db = options.db;
    this.holder = options.holder;
    this.leaseMs = options.leaseMs ?? 15_000;
    this.#log = options.log;
  }

  get memberLease(): string {
    return `${MEMBER_PREFIX}${this.holder}`;
  }

  /** Takes the member lease and starts renewing (every third of the lease time). */
  async start(): Promise<void> {
    this.#wanted.set(this.memberLease, {});
    await this.tick();
    this.#timer = setInterval(() => void this.tick(), Math.max(100, Math.floor(this.leaseMs / 3)));
    this.#timer.unref();
  }

  /** This replica wants `name`: it is taken when free (and within the group's share), on each tick. */
  want(name: string, wanted: WantedLease = {}): void {
    if (this.#stopped) return;
    const had = this.#wanted.has(name);
    this.#wanted.set(name, wanted);
    if (!had) void this.tick();
  }

  /** No longer wanted: released when held. */
  async unwant(name: string): Promise<void> {
    const wanted = this.#wanted.get(name);
    this.#wanted.delete(name);
    if (this.#held.delete(name)) {
      wanted?.onLost?.();
      await this.#db.query(SQL.release, [this.holder, [name]]).catch(() => {});
    }
  }

  wants(name: string): boolean {
    return this.#wanted.has(name);
  }

  /** Held, and renewed recently enough that no other replica can have taken it. */
  holds(name: string): boolean {
    const h = this.#held.get(name);
    return h !== undefined && Date.now() - h.renewedAt < this.leaseMs * 0.9;
  }

  /** What this replica holds now (names), for metrics and /readyz. */
  held(): string[] {
    return [...this.#held.keys()].filter((n) => n !== this.memberLease && this.holds(n)).sort();
  }

  /** The data the lease carried when it was taken (and what was stored since). */
  data(name: string): Record<string, unknown> | undefined {
    return this.#held.get(name)?.data;
  }

  /** Tries to take `name` now (outside the group share); true when this replica holds it. */
  async acquire(name: string): Promise<boolean> {
    if (this.holds(name)) return true;
    if (this.#stopped) return false;
    const res = await this.#db.query<Row>(SQL.acquire, [name, this.holder, this.leaseMs]);
    const row = res.rows[0];
    if (!row) return false;
    this.#gained(rowOf(row));
    return true;
  }

  /**
   * Singleton work (a timer every replica runs): true when this replica is the one to do it now.
   * Wants the lease and takes it when free; the holder keeps it while it runs.
   */
  async claim(name: string): Promise<boolean> {
    if (!this.#wanted.has(name)) this.#wanted.set(name, {});
    if (this.holds(name)) return true;
    return this.acquire(name).catch(() => false);
  }

  /** Who holds `name` now (any replica), when anyone does. */
  async holderOf(name: string): Promise<string | undefined> {
    const res = await this.#db.query<{ holder: string }>(SQL.holderOf, [name]);
    return res.rows[0]?.holder;
  }

  /** Throws LeaseLostError unless this replica holds `name`; locks it until `tx` ends (fencing). */
  async fence(tx: Queryable, name: string): Promise<void> {
    const h = this.#held.get(name);
    if (!h || !this.holds(name)) throw new LeaseLostError(name);
    const res = await tx.query(SQL.fence, [name, this.holder, h.token]);
    if (res.rowCount === 0) throw new LeaseLostError(name);
  }

  /** Merges `data` into the lease's document (only while held, with its token). */
  async setData(name: string, data: Record<string, unknown>, client: Queryable = this.#db.pool): Promise<void> {
    const h = this.#held.get(name);
    if (!h) return;
    Object.assign(h.data, data);
    await client.query(SQL.setData, [name, this.holder, h.token, JSON.stringify(data)]);
  }

  /** Every live lease (all replicas), for /readyz?verbose and tests. */
  async list(): Promise<LeaseRow[]> {
    return (await this.#db.query<Row>(SQL.list)).rows.map(rowOf);
  }

  #gained(row: LeaseRow): void {
    const had = this.#held.has(row.name);
    this.#held.set(row.name, { token: row.token, renewedAt: Date.now(), data: { ...row.data } });
    if (!had) {
      this.#log.info({ lease: row.name, token: row.token }, 'lease acquired');
      try {
        this.#wanted.get(row.name)?.onAcquired?.(row);
      } catch (err) {
        this.#log.warn({ lease: row.name, err: String(err) }, 'lease acquired hook failed');
      }
    }
  }

  #lost(name: string): void {
    if (!this.#held.delete(name)) return;
    this.#log.warn({ lease: name }, 'lease lost');
    try {
      this.#wanted.get(name)?.onLost?.();
    } catch (err) {
      this.#log.warn({ lease: name, err: String(err) }, 'lease lost hook failed');
    }
  }

  /** Renews what is held, gives up a group's surplus, takes what is wanted and free. */
  tick(): Promise<void> {
    if (this.#ticking) return this.#ticking;
    this.#ticking = this.#tick()
      .catch((err: unknown) => this.#log.warn({ err: String(err) }, 'cannot renew or take leases'))
      .finally(() => (this.#ticking = undefined));
    return this.#ticking;
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    const started = Date.now();
    // Renew.
    const names = [...this.#held.keys()];
    if (names.length > 0) {
      try {
        const res = await this.#db.query<{ name: string; token: string }>(SQL.renew, [this.holder, names, this.leaseMs]);
        const alive = new Set(res.rows.map((r) => r.name));
        for (const n of names) {
          const h = this.#held.get(n);
          if (!h) continue;
          if (alive.has(n)) h.renewedAt = started;
          else this.#lost(n);
        }
      } catch (err) {
        // The database is unreachable: leases not renewed in time are lost locally.
        for (const n of names) if (!this.holds(n)) this.#lost(n);
        throw err;
      }
    }
    this.#members = Math.max(1, (await this.#db.query<{ n: number }>(SQL.members)).rows[0]?.n ?? 1);
    // Share each group: ceil(wanted / replicas); give up one surplus lease per tick.
    const groups = new Map<string, string[]>();
    for (const [name, w] of this.#wanted) if (w.group) (groups.get(w.group) ?? groups.set(w.group, []).get(w.group)!).push(name);
    const share = new Map<string, number>();
    for (const [group, members] of groups) {
      const limit = Math.ceil(members.length / this.#members);
      share.set(group, limit);
      const mine = members.filter((n) => this.#held.has(n)).sort();
      if (mine.length > limit) {
        const surplus = mine[mine.length - 1]!;
        this.#lost(surplus);
        await this.#db.query(SQL.release, [this.holder, [surplus]]);
      }
    }
    // Take.
    for (const [name, w] of this.#wanted) {
      if (this.#stopped) return;
      if (this.#held.has(name) || (w.eligible && !w.eligible())) continue;
      if (w.group) {
        const mine = (groups.get(w.group) ?? []).filter((n) => this.#held.has(n)).length;
        if (mine >= (share.get(w.group) ?? 1)) continue;
      }
      const res = await this.#db.query<Row>(SQL.acquire, [name, this.holder, this.leaseMs]);
      if (res.rows[0]) this.#gained(rowOf(res.rows[0]));
    }
  }

  /** Stops renewing and releases every lease (the next owner need not wait for expiry). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#ticking;
    const names = [...this.#held.keys()].filter((n) => n !== this.memberLease);
    for (const n of names) this.#lost(n);
    this.#held.clear();
    await this.#db.query(SQL.release, [this.holder, names]).catch(() => {});
    await this.#db.query(SQL.dropMember, [this.holder, this.memberLease]).catch(() => {});
  }
}
