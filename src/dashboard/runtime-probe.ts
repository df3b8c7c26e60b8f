// Whether each Kubernetes runtime answers right now. Nothing in the store changes when a cluster
// stops out of band (the apps keep their last observed status), so the dashboard asks the
// clusters itself: GET /version on every runtime every few seconds, while at least one browser
// is watching. Changes of reachability are pushed to the browsers as `runtime` notices.
import type { Logger } from 'pino';
import { kindNamed } from '../kinds/index.js';
import type { JsonObject } from '../kinds/validate.js';
import type { ObjectStore } from '../store/object-store.js';
import type { KubeClients } from '../providers/kube/clients.js';
import type { ChangeFeed } from './change-feed.js';
import type { Reachability } from './api-types.js';

const KRI = kindNamed('KubernetesRuntimeInstance');

export class RuntimeProbe {
  readonly #store: ObjectStore;
  readonly #feed: ChangeFeed;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #state = new Map<number, Reachability>();
  #clients: KubeClients | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(store: ObjectStore, feed: ChangeFeed, log: Logger, intervalMs = 2_000) {
    this.#store = store;
    this.#feed = feed;
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  /** The last known reachability of every runtime probed so far. */
  snapshot(): Reachability[] {
    return [...this.#state.values()];
  }

  get(id: number): Reachability | undefined {
    return this.#state.get(id);
  }

  /** Probes while someone watches: `watching(true)` starts, `watching(false)` stops. */
  watching(on: boolean): void {
    if (on && !this.#timer) {
      void this.#round();
      this.#timer = setInterval(() => void this.#round(), this.#intervalMs);
      this.#timer.unref();
    } else if (!on && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  async #round(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    try {
      if (!this.#clients) {
        // Lazy: the kube client library is large, and only a watched dashboard needs it here.
        const { KubeClients } = await import('../providers/kube/clients.js');
        this.#clients = new KubeClients({ decrypt: (c) => this.#store.decrypt(c), requestTimeoutMs: Math.max(1_000, this.#intervalMs - 500) });
      }
      const runtimes = await this.#store.find(KRI, {});
      const live = new Set(runtimes.map((r) => Number(r['ID'])));
      for (const id of [...this.#state.keys()]) if (!live.has(id)) this.#state.delete(id);
      await Promise.all(runtimes.map((r) => this.#probe(r)));
    } catch (err) {
      this.#log.warn({ err: String(err) }, 'dashboard runtime probe failed');
    } finally {
      this.#running = false;
    }
  }

  async #probe(runtime: JsonObject): Promise<void> {
    const id = Number(runtime['ID']);
    if (!runtime['APIEndpoint']) {
      // Not provisioned yet: nothing to ask, and its status already says where it stands.
      this.#state.delete(id);
      return;
    }
    let next: Reachability;
    try {
      await this.#clients!.forRuntime(runtime).version();
      next = { id, reachable: true, checkedAt: new Date().toISOString() };
    } catch (err) {
      next = { id, reachable: false, error: err instanceof Error ? err.message : String(err), checkedAt: new Date().toISOString() };
    }
    const before = this.#state.get(id);
    this.#state.set(id, next);
    if (before?.reachable !== next.reachable) this.#feed.notify({ event: 'runtime', data: next });
  }

  close(): void {
    this.watching(false);
    this.#clients?.close();
  }
}
