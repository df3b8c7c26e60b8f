// The simulated clusters a control plane owns: one KwokCluster per runtime, its state under
// `<dataDir>/runtimes/<name>/`, its processes children of the server. After a restart of the
// server, ensure() brings a runtime back on the same certificates, ports (when free) and etcd
// data, killing whatever an earlier server process left running.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { findKubeBinaries, type KubeBinaries } from './binaries.js';
import { KwokCluster, type Component, type KwokClusterCredentials } from './cluster.js';
import { killStaleGroups, registerRoot, releaseRoot } from './processes.js';

export interface KwokRuntimesOptions {
  /** The server's data directory; clusters live under `<dataDir>/runtimes/`. */
  dataDir: string;
  /** Default: findKubeBinaries() (throws KubeBinariesMissingError with instructions). */
  binaries?: () => KubeBinaries;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Budget for bringing a cluster up (default 180 s). */
  startTimeoutMs?: number;
  /** A component of a running cluster ended by itself. */
  onUnexpectedExit?: (runtime: string, component: Component, info: string) => void;
}

export interface EnsureResult {
  cluster: KwokCluster;
  credentials: KwokClusterCredentials;
  /** Components this call (re)started; empty when everything was already running. */
  started: Component[];
  /** Milliseconds the call took. */
  ms: number;
}

/** A runtime name as a DNS label (the cluster's name and directory). Names that need changing get a hash suffix. */
export function clusterNameFor(runtimeName: string): string {
  const cleaned = runtimeName
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 50)
    .replace(/-+$/, '');
  if (cleaned === runtimeName && cleaned.length > 0) return cleaned;
  const hash = createHash('sha256').update(runtimeName).digest('hex').slice(0, 8);
  return `${cleaned || 'runtime'}-${hash}`;
}

export class KwokRuntimes {
  readonly root: string;
  readonly #clusters = new Map<string, KwokCluster>();
  readonly #locks = new Map<string, Promise<unknown>>();
  readonly #options: KwokRuntimesOptions;
  readonly #removeListeners: ((runtimeName: string, dir: string) => Promise<void>)[] = [];
  #binaries: KubeBinaries | undefined;

  constructor(options: KwokRuntimesOptions) {
    this.#options = options;
    this.root = join(options.dataDir, 'runtimes');
  }

  dirFor(runtimeName: string): string {
    return join(this.root, clusterNameFor(runtimeName));
  }

  /** The running (or last started) cluster of a runtime in this process. */
  get(runtimeName: string): KwokCluster | undefined {
    return this.#clusters.get(clusterNameFor(runtimeName));
  }

  /** Runtime directories on disk (cluster names), running or not. */
  onDisk(): string[] {
    return existsSync(this.root) ? readdirSync(this.root, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name) : [];
  }

  /** Runs `work` for one cluster name at a time. */
  async #serial<T>(name: string, work: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(name) ?? Promise.resolve();
    const next = prev.then(work, work);
    const settled = next.catch(() => undefined);
    this.#locks.set(name, settled);
    try {
      return await next;
    } finally {
      if (this.#locks.get(name) === settled) this.#locks.delete(name);
    }
  }

  #bins(): KubeBinaries {
    this.#binaries ??= (this.#options.binaries ?? findKubeBinaries)();
    return this.#binaries;
  }

  /**
   * Makes the runtime's cluster run and serve: starts it (or only its dead components) and waits
   * for readiness. Idempotent and safe to repeat; repeated calls for one runtime run one at a time.
   */
  ensure(runtimeName: string, opts: { nodes?: number; signal?: AbortSignal } = {}): Promise<EnsureResult> {
    const name = clusterNameFor(runtimeName);
    return this.#serial(name, async () => {
      const t0 = Date.now();
      let cluster = this.#clusters.get(name);
      if (!cluster) {
        const bins = this.#bins();
        const dir = join(this.root, name);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        registerRoot(dir, { removeOnExit: false });
        cluster = new KwokCluster({
          name,
          dir,
          bins,
          root: dir,
          nodes: opts.nodes ?? 1,
          ...(this.#options.log ? { log: this.#options.log } : {}),
          onUnexpectedExit: (component, info) => this.#options.onUnexpectedExit?.(runtimeName, component, info),
        });
        this.#clusters.set(name, cluster);
      }
      try {
        const started = await cluster.start({
          timeoutMs: this.#options.startTimeoutMs ?? 180_000,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        return { cluster, credentials: cluster.credentials, started, ms: Date.now() - t0 };
      } catch (err) {
        // A half-started cluster is stopped, so the next attempt starts from a clean slate.
        this.#clusters.delete(name);
        await cluster.stop().catch(() => undefined);
        releaseRoot(cluster.dir, { remove: false });
        throw err;
      }
    });
  }

  /** Stops a runtime's processes; its directory (certificates, etcd data) stays. */
  stop(runtimeName: string): Promise<void> {
    const name = clusterNameFor(runtimeName);
    return this.#serial(name, async () => {
      const cluster = this.#clusters.get(name);
      this.#clusters.delete(name);
      if (!cluster) return;
      await cluster.stop();
      releaseRoot(cluster.dir, { remove: false });
    });
  }

  /**
   * Work to do before a runtime's directory goes: what else runs from it (child control planes)
   * must stop first.
   */
  onRemove(listener: (runtimeName: string, dir: string) => Promise<void>): void {
    this.#removeListeners.push(listener);
  }

  /** Stops a runtime and deletes its directory. Idempotent. */
  remove(runtimeName: string): Promise<void> {
    const name = clusterNameFor(runtimeName);
    return this.#serial(name, async () => {
      const cluster = this.#clusters.get(name);
      this.#clusters.delete(name);
      const dir = join(this.root, name);
      for (const listener of this.#removeListeners) await listener(runtimeName, dir);
      if (cluster) {
        await cluster.stop();
      } else if (existsSync(dir)) {
        // Not started by this process: a previous server may have left processes running.
        await killLeftovers(dir);
      }
      releaseRoot(dir, { remove: true });
      rmSync(dir, { recursive: true, force: true });
    });
  }

  /** Stops every running cluster (the server is shutting down). */
  async stopAll(): Promise<void> {
    await Promise.all([...this.#clusters.values()].map((c) => this.stop(c.name)));
  }
}

async function killLeftovers(dir: string): Promise<void> {
  try {
    const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { pids?: Record<string, number> };
    await killStaleGroups(Object.values(state.pids ?? {}), dir);
  } catch {
    // no state: nothing ran
  }
}
