// A watch that survives: it resumes from the last resourceVersion it saw when
// the stream ends (server timeout, API server restart, network failure, with
// backoff), and when the server says that resourceVersion is too old (410
// Gone) it lists again and reports the difference as ordinary events, so the
// consumer sees every change at least once and every deletion.
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import { KubeError, classifyKubeError } from './errors.js';
import type { KubeList, KubeObject, ResourceInfo } from './client.js';
import { Backoff } from '../../system.js';

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent {
  type: WatchEventType;
  object: KubeObject;
}

export interface WatchOptions {
  /** Namespaced kinds only; all namespaces when omitted. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /**
   * Start after this resourceVersion (resume). Without it the watch first lists and reports
   * every existing object as ADDED.
   */
  resourceVersion?: string;
  onEvent(event: WatchEvent): void;
  /** Failures the watch retries by itself (cluster unreachable, ...): for logs. */
  onError?(err: KubeError): void;
  /** Called after each (re)list, e.g. to count relists after 410 Gone. */
  onRelist?(list: KubeList): void;
  /** Server-side timeout of each watch request, in seconds (default 240–300, randomised). */
  timeoutSeconds?: number;
  /** Longest pause between reconnect attempts (default 10 s). */
  maxBackoffMs?: number;
}

export interface KubeWatch {
  /** The last resourceVersion delivered (or listed); pass it as `resourceVersion` to resume later. */
  readonly resourceVersion: string | undefined;
  /** How often the watch had to list again because its resourceVersion was gone (410). */
  readonly relists: number;
  /** Resolves once the first watch request is established (after the initial list). */
  readonly ready: Promise<void>;
  /** Stops the watch; resolves once no request is in flight. */
  stop(): Promise<void>;
}

export interface WatchSource {
  label: string;
  endpoint: string;
  kubeConfig: KubeConfig;
  discover(signal: AbortSignal): Promise<ResourceInfo>;
  list(signal: AbortSignal): Promise<KubeList>;
  onStopped(): void;
}

function key(o: KubeObject): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

type StreamEnd = 'closed' | 'gone';

export class ResumingWatch implements KubeWatch {
  #rv: string | undefined;
  #relists = 0;
  /** Set once a list or watch has succeeded: any later list is a relist. */
  #synced = false;
  readonly #known = new Map<string, KubeObject>();
  readonly #stop = new AbortController();
  #current: AbortController | undefined;
  #loop: Promise<void> = Promise.resolve();
  #resolveReady!: () => void;
  readonly ready: Promise<void>;

  constructor(
    private readonly source: WatchSource,
    private readonly apiVersion: string,
    private readonly kind: string,
    private readonly opts: WatchOptions,
  ) {
    this.#rv = opts.resourceVersion || undefined;
    this.ready = new Promise((r) => (this.#resolveReady = r));
  }

  get resourceVersion(): string | undefined {
    return this.#rv;
  }

  get relists(): number {
    return this.#relists;
  }

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    this.#current?.abort();
    await this.#loop;
  }

  #emit(type: WatchEventType, object: KubeObject): void {
    try {
      this.opts.onEvent({ type, object });
    } catch {
      // A consumer's bug must not kill the watch.
    }
  }

  async #relist(): Promise<void> {
    const list = await this.source.list(this.#stop.signal);
    const seen = new Set<string>();
    for (const item of list.items) {
      const k = key(item);
      seen.add(k);
      const before = this.#known.get(k);
      this.#known.set(k, item);
      if (!before) this.#emit('ADDED', item);
      else if (before.metadata.resourceVersion !== item.metadata.resourceVersion) this.#emit('MODIFIED', item);
    }
    for (const [k, obj] of this.#known) {
      if (!seen.has(k)) {
        this.#known.delete(k);
        this.#emit('DELETED', obj);
      }
    }
    this.#rv = list.resourceVersion;
    this.opts.onRelist?.(list);
  }

  async #run(): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: this.opts.maxBackoffMs ?? 10_000 });
    const stopped = (): boolean => this.#stop.signal.aborted;
    while (!stopped()) {
      try {
        if (this.#rv === undefined) {
          if (this.#synced) this.#relists++;
          await this.#relist();
        }
        this.#synced = true;
        const end = await this.#watchOnce();
        if (end === 'gone') this.#rv = undefined;
        backoff.reset();
      } catch (err) {
        if (stopped()) break;
        const e = classifyKubeError(
          { cluster: this.source.label, endpoint: this.source.endpoint, action: `watch ${this.apiVersion} ${this.kind}` },
          err,
        );
        if (e.failure === 'Gone') {
          this.#rv = undefined;
          continue;
        }
        this.opts.onError?.(e);
        const delay = backoff.next();
        await sleep(delay + Math.random() * delay * 0.2, this.#stop.signal);
      }
    }
    this.#resolveReady();
    this.source.onStopped();
  }

  async #watchOnce(): Promise<StreamEnd> {
    const info = await this.source.discover(this.#stop.signal);
    const ns = info.namespaced && this.opts.namespace ? `/namespaces/${encodeURIComponent(this.opts.namespace)}` : '';
    const base = this.apiVersion.includes('/') ? `/apis/${this.apiVersion}` : `/api/${this.apiVersion}`;
    const path = `${base}${ns}/${info.plural}`;
    const timeoutSeconds = this.opts.timeoutSeconds ?? 240 + Math.floor(Math.random() * 60);
    let gone = false;
    let failure: unknown;
    const ended = new Promise<void>((resolve) => {
      const done = (err: unknown): void => {
        if (err && !gone && failure === undefined) failure = err;
        resolve();
      };
      void new Watch(this.source.kubeConfig)
        .watch(
          path,
          {
            resourceVersion: this.#rv,
            allowWatchBookmarks: true,
            timeoutSeconds,
            labelSelector: this.opts.labelSelector,
            fieldSelector: this.opts.fieldSelector,
          },
          (type: string, obj: unknown) => {
            if (type === 'ERROR') {
              const status = obj as { code?: number; message?: string; reason?: string };
              if (status?.code === 410) gone = true;
              else failure = new KubeError(`${this.source.label}: watch ${this.apiVersion} ${this.kind}: ${status?.message ?? 'error event'}`, {
                failure: 'ServerError',
                cluster: this.source.label,
                endpoint: this.source.endpoint,
                ...(status?.code ? { status: status.code } : {}),
              });
              this.#current?.abort();
              return;
            }
            const object = obj as KubeObject;
            const rv = object?.metadata?.resourceVersion;
            if (type === 'BOOKMARK') {
              if (rv) this.#rv = rv;
              return;
            }
            if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return;
            const full = { ...object, apiVersion: object.apiVersion ?? this.apiVersion, kind: object.kind ?? this.kind };
            if (type === 'DELETED') this.#known.delete(key(full));
            else this.#known.set(key(full), full);
            if (rv) this.#rv = rv;
            this.#emit(type, full);
          },
          done,
        )
        .then((controller) => {
          this.#current = controller;
          if (this.#stop.signal.aborted) controller.abort();
          else if (failure === undefined) this.#resolveReady();
        }, done);
    });
    await ended;
    this.#current = undefined;
    if (gone) return 'gone';
    if (failure && !this.#stop.signal.aborted) {
      const code = (failure as { statusCode?: number }).statusCode;
      if (code === 410) return 'gone';
      if (typeof code === 'number') {
        throw new KubeError(`${this.source.label}: watch ${this.apiVersion} ${this.kind} failed: HTTP ${code}`, {
          failure: code >= 500 ? 'ServerError' : code === 401 ? 'Unauthorized' : code === 403 ? 'Forbidden' : 'Invalid',
          status: code,
          cluster: this.source.label,
          endpoint: this.source.endpoint,
        });
      }
      throw failure;
    }
    return 'closed';
  }
}
