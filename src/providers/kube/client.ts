// The kube provider: one narrow interface (`KubeClusterClient`) that controllers
// use to talk to a cluster, and its implementation on @kubernetes/client-node.
//
//  - apply: server-side apply with field manager `threeport` (force: threeport owns
//    the fields it declares);
//  - discovery tells namespaced kinds from cluster-scoped ones (cached per client,
//    refreshed when a kind is not found, e.g. after a CRD is installed);
//  - delete tolerates NotFound; get returns undefined for NotFound;
//  - watch resumes from the last resourceVersion and relists on 410 Gone (watch.ts);
//  - every failure is a KubeError whose `retryable` says whether to try again.
import { Agent as HttpsAgent } from 'node:https';
import { AsyncLocalStorage } from 'node:async_hooks';
import {
  HttpMethod,
  KubernetesObjectApi,
  PatchStrategy,
  ServerConfiguration,
  createConfiguration,
  type KubeConfig,
  type KubernetesObject,
  type RequestContext,
  type ResponseContext,
  type Configuration,
} from '@kubernetes/client-node';
import { KubeError, classifyKubeError, kubeHttpError, type RequestDescription } from './errors.js';
import { kubeConfigFor, type KubeConnection } from './connection.js';
import { ResumingWatch, type KubeWatch, type WatchOptions } from './watch.js';

export const FIELD_MANAGER = 'threeport';

export interface KubeObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

/** Any Kubernetes object, as plain JSON. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: KubeObjectMeta;
  [key: string]: unknown;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  /** Ignored for cluster-scoped kinds; `default` when omitted for namespaced ones. */
  namespace?: string;
}

/** What discovery knows about one kind. */
export interface ResourceInfo {
  apiVersion: string;
  kind: string;
  /** The URL segment, e.g. "deployments". */
  plural: string;
  namespaced: boolean;
  verbs: readonly string[];
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface ApplyOptions extends CallOptions {
  /** Take over fields owned by other managers (default true). */
  force?: boolean;
  /** Server-side apply field manager (default `threeport`); another manager's fields survive `threeport`'s applies. */
  fieldManager?: string;
}

export interface ListOptions extends CallOptions {
  /** Namespaced kinds only; all namespaces when omitted. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface KubeList {
  items: KubeObject[];
  /** The list's resourceVersion: where a watch that follows it starts. */
  resourceVersion: string;
}

export interface DeleteOptions extends CallOptions {
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
}

/** The cluster operations controllers use. Unit tests of error paths fake this interface. */
export interface KubeClusterClient {
  /** e.g. `KubernetesRuntimeInstance "dev" (ID 4)`. */
  readonly label: string;
  readonly endpoint: string;
  /** Discovery for one kind; a KubeError with failure 'UnknownKind' when the server does not serve it. */
  discover(apiVersion: string, kind: string, opts?: CallOptions): Promise<ResourceInfo>;
  /** Server-side apply (field manager `threeport`); creates or updates; returns the object as stored. */
  apply(object: KubeObject, opts?: ApplyOptions): Promise<KubeObject>;
  /** The object, or undefined when it does not exist. */
  get(ref: ObjectRef, opts?: CallOptions): Promise<KubeObject | undefined>;
  list(apiVersion: string, kind: string, opts?: ListOptions): Promise<KubeList>;
  /** Deletes; resolves false when the object did not exist. */
  delete(ref: ObjectRef, opts?: DeleteOptions): Promise<boolean>;
  /** Streams changes of one kind until stopped; see WatchOptions. */
  watch(apiVersion: string, kind: string, opts: WatchOptions): KubeWatch;
  /** GET /version: a cheap reachability check that needs no RBAC beyond authentication. */
  version(opts?: CallOptions): Promise<{ gitVersion: string; [key: string]: unknown }>;
  /** Stops watches and drops pooled connections. */
  close(): void;
}

export interface KubeClientOptions {
  /** Per-request timeout (default 20 s). */
  requestTimeoutMs?: number;
}

// The caller's AbortSignal for the request being made, read where client-node builds the request.
const requestSignal = new AsyncLocalStorage<AbortSignal>();

class HttpAnswer extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`HTTP ${status}`);
  }
}

/** client-node's generic object API, returning plain JSON and honouring per-call abort signals. */
class ObjectApi extends KubernetesObjectApi {
  discovery(apiVersion: string, kind: string): Promise<{ name: string; namespaced: boolean; verbs: string[] } | undefined> {
    return this.resource(apiVersion, kind);
  }

  forgetDiscovery(apiVersion: string): void {
    delete this.apiVersionResourceCache[apiVersion];
  }

  /** A raw GET that returns parsed JSON (e.g. /version). */
  async getJson(path: string): Promise<unknown> {
    const ctx = this.configuration.baseServer.makeRequestContext(path, HttpMethod.GET);
    ctx.setHeaderParam('Accept', 'application/json');
    return this.requestPromise(ctx, 'any');
  }

  protected override async requestPromise<T extends KubernetesObject | KubernetesObject>(
    requestContext: RequestContext,
    type?: string,
    options?: Configuration,
  ): Promise<T> {
    const signal = requestSignal.getStore();
    if (signal) requestContext.setSignal(signal);
    return super.requestPromise<T>(requestContext, type, options);
  }

  protected override async processResponse<T extends KubernetesObject | KubernetesObject>(
    response: ResponseContext,
    _type?: string,
  ): Promise<T> {
    const text = await response.body.text();
    let body: unknown;
    try {
      body = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      body = { message: text.slice(0, 500) };
    }
    if (response.httpStatusCode >= 200 && response.httpStatusCode <= 299) return body as T;
    throw new HttpAnswer(response.httpStatusCode, body);
  }
}

function describeRef(ref: { apiVersion: string; kind: string; name?: string; namespace?: string }): string {
  return `${ref.apiVersion} ${ref.kind}${ref.name ? ` ${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}` : ''}`;
}

/** A KubeClusterClient for one connection, on @kubernetes/client-node. */
export class ClientNodeCluster implements KubeClusterClient {
  readonly label: string;
  readonly endpoint: string;
  readonly #kc: KubeConfig;
  readonly #api: ObjectApi;
  readonly #agent: HttpsAgent;
  readonly #timeoutMs: number;
  readonly #watches = new Set<ResumingWatch>();

  constructor(conn: KubeConnection, options: KubeClientOptions = {}) {
    this.label = conn.label;
    this.endpoint = conn.server;
    this.#timeoutMs = options.requestTimeoutMs ?? 20_000;
    this.#kc = kubeConfigFor(conn);
    // One pooled agent per cluster: client-node would build a new agent (and TLS session) per request.
    this.#agent = new HttpsAgent({
      keepAlive: true,
      // No maxSockets: a request queued for a socket of this agent fails with "Premature close"
      // (node-fetch with keep-alive on Node 20); with a limit of 16, a 17th concurrent request
      // made nearly every later request fail. Callers bound their own concurrency.
      ...(conn.caPem ? { ca: conn.caPem } : {}),
      ...(conn.clientCertPem ? { cert: conn.clientCertPem } : {}),
      ...(conn.clientKeyPem ? { key: conn.clientKeyPem } : {}),
    });
    const agent = this.#agent;
    const token = conn.token;
    const auth = {
      getName: () => 'threeport runtime credentials',
      applySecurityAuthentication: async (ctx: RequestContext): Promise<void> => {
        ctx.setAgent(agent);
        if (token) ctx.setHeaderParam('Authorization', `Bearer ${token}`);
      },
    };
    const config = createConfiguration({
      baseServer: new ServerConfiguration(conn.server, {}),
      authMethods: { default: auth as never },
    });
    this.#api = new ObjectApi(config);
  }

  async #call<T>(action: string, opts: CallOptions | undefined, fn: () => Promise<T>): Promise<T> {
    const req: RequestDescription = { cluster: this.label, endpoint: this.endpoint, action };
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = opts?.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    try {
      return await requestSignal.run(signal, fn);
    } catch (err) {
      if (err instanceof HttpAnswer) throw kubeHttpError(req, err.status, err.body);
      throw classifyKubeError(req, err, { aborted: opts?.signal?.aborted === true, timeoutMs: this.#timeoutMs });
    }
  }

  async discover(apiVersion: string, kind: string, opts?: CallOptions): Promise<ResourceInfo> {
    const found = await this.#call(`discovery of ${apiVersion} ${kind}`, opts, async () => {
      try {
        return await this.#api.discovery(apiVersion, kind);
      } catch (err) {
        // A group/version the server does not serve answers 404: the kind is unknown, not the object.
        if (err instanceof HttpAnswer && err.status === 404) return undefined;
        throw err;
      }
    });
    if (!found) {
      this.#api.forgetDiscovery(apiVersion);
      throw new KubeError(
        `${this.label}: the Kubernetes API server at ${this.endpoint} does not serve ${apiVersion} ${kind} (is its CustomResourceDefinition installed?)`,
        { failure: 'UnknownKind', cluster: this.label, endpoint: this.endpoint },
      );
    }
    return { apiVersion, kind, plural: found.name, namespaced: found.namespaced, verbs: found.verbs };
  }

  /** The object with its namespace fixed: dropped for cluster-scoped kinds, `default` when missing for namespaced ones. */
  async #scoped<T extends { apiVersion: string; kind: string; namespace?: string | undefined }>(
    ref: T,
    opts?: CallOptions,
  ): Promise<{ info: ResourceInfo; namespace: string | undefined }> {
    const info = await this.discover(ref.apiVersion, ref.kind, opts);
    return { info, namespace: info.namespaced ? ref.namespace || 'default' : undefined };
  }

  async apply(object: KubeObject, opts?: ApplyOptions): Promise<KubeObject> {
    if (!object.metadata?.name) throw new Error(`cannot apply ${object.apiVersion} ${object.kind} without metadata.name`);
    const { namespace } = await this.#scoped({ ...object, namespace: object.metadata.namespace }, opts);
    const metadata: KubeObjectMeta = { ...object.metadata };
    // Server-side apply rejects managedFields and a stale resourceVersion would make it conditional.
    delete metadata['managedFields'];
    delete metadata.resourceVersion;
    if (namespace === undefined) delete metadata.namespace;
    else metadata.namespace = namespace;
    const body: KubeObject = { ...object, metadata };
    delete body['status'];
    return this.#call(`apply ${describeRef({ ...object, name: object.metadata.name, ...(namespace ? { namespace } : {}) })}`, opts, () =>
      this.#api.patch(body as KubernetesObject, undefined, undefined, opts?.fieldManager ?? FIELD_MANAGER, opts?.force ?? true, PatchStrategy.ServerSideApply),
    ) as Promise<KubeObject>;
  }

  async get(ref: ObjectRef, opts?: CallOptions): Promise<KubeObject | undefined> {
    const { namespace } = await this.#scoped(ref, opts);
    try {
      return (await this.#call(`get ${describeRef({ ...ref, ...(namespace ? { namespace } : {}) })}`, opts, () =>
        this.#api.read({
          apiVersion: ref.apiVersion,
          kind: ref.kind,
          metadata: { name: ref.name, ...(namespace ? { namespace } : {}) },
        }),
      )) as KubeObject;
    } catch (err) {
      if (err instanceof KubeError && err.failure === 'NotFound') return undefined;
      throw err;
    }
  }

  async list(apiVersion: string, kind: string, opts: ListOptions = {}): Promise<KubeList> {
    const info = await this.discover(apiVersion, kind, opts);
    const namespace = info.namespaced ? opts.namespace : undefined;
    const items: KubeObject[] = [];
    let resourceVersion = '';
    let continueToken: string | undefined;
    do {
      const page = (await this.#call(`list ${apiVersion} ${kind}${namespace ? ` -n ${namespace}` : ''}`, opts, () =>
        this.#api.list(apiVersion, kind, namespace, undefined, undefined, undefined, opts.fieldSelector, opts.labelSelector, 500, continueToken),
      )) as unknown as { items?: KubeObject[]; metadata?: { resourceVersion?: string; continue?: string } };
      // Items of a list carry no apiVersion/kind; fill them in so they can be applied or deleted as they are.
      for (const item of page.items ?? []) items.push({ ...item, apiVersion, kind });
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      continueToken = page.metadata?.continue || undefined;
    } while (continueToken);
    return { items, resourceVersion };
  }

  async delete(ref: ObjectRef, opts?: DeleteOptions): Promise<boolean> {
    const { namespace } = await this.#scoped(ref, opts);
    try {
      await this.#call(`delete ${describeRef({ ...ref, ...(namespace ? { namespace } : {}) })}`, opts, () =>
        this.#api.delete(
          { apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, ...(namespace ? { namespace } : {}) } },
          undefined,
          undefined,
          undefined,
          undefined,
          opts?.propagationPolicy ?? 'Background',
        ),
      );
      return true;
    } catch (err) {
      if (err instanceof KubeError && err.failure === 'NotFound') return false;
      throw err;
    }
  }

  watch(apiVersion: string, kind: string, opts: WatchOptions): KubeWatch {
    const w = new ResumingWatch(
      {
        label: this.label,
        endpoint: this.endpoint,
        kubeConfig: this.#kc,
        discover: (signal) => this.discover(apiVersion, kind, { signal }),
        list: (signal) => this.list(apiVersion, kind, { ...opts, signal }),
        onStopped: () => this.#watches.delete(w),
      },
      apiVersion,
      kind,
      opts,
    );
    this.#watches.add(w);
    w.start();
    return w;
  }

  async version(opts?: CallOptions): Promise<{ gitVersion: string; [key: string]: unknown }> {
    return (await this.#call('GET /version', opts, () => this.#api.getJson('/version'))) as { gitVersion: string };
  }

  close(): void {
    for (const w of this.#watches) void w.stop();
    this.#watches.clear();
    this.#agent.destroy();
  }
}

/** A client for one connection. */
export function kubeClusterClient(conn: KubeConnection, options?: KubeClientOptions): KubeClusterClient {
  return new ClientNodeCluster(conn, options);
}
