// A typed client of the Threeport v0 REST API. One generic implementation
// serves every kind: paths, query keys and object types all come from the
// kind declarations, so a new kind needs no client code.
//
// Mutual TLS uses node:https with the CA, client certificate and key from the
// threeport config (Node 20's global fetch cannot present client certificates
// without undici's Agent).
import http from 'node:http';
import https from 'node:https';
import type { Kind } from '../kinds/declare.js';
import { ApiConnectionError, ApiError, ObjectConflictError, ObjectNotFoundError } from './errors.js';
import type { AnyObject, FieldsOf, FilterOf, ObjectOf, ReconciliationFields } from './types.js';

export interface TlsCredentials {
  /** PEM of the CA that signed the API's server certificate. */
  ca: string;
  /** PEM client certificate and key. */
  cert: string;
  key: string;
}

export interface ClientOptions {
  /** `https://host:port` (mTLS) or `http://host:port` (auth disabled). */
  baseUrl: string;
  tls?: TlsCredentials;
  /** Per request; default 30 s. */
  timeoutMs?: number;
}

export interface Envelope {
  Meta: { Page: number; Size: number; TotalCount: number };
  Type: string;
  Data: unknown[] | null;
  Status: { code: number; message: string; error: string };
}

export interface Page<T> {
  items: T[];
  total: number;
}

/** `APIServer` of the threeport config is host:port without a scheme; the scheme follows AuthEnabled. */
export function apiBaseUrl(apiServer: string, authEnabled: boolean): string {
  const trimmed = apiServer.trim().replace(/\/+$/, '');
  if (/^https?:\/\//.test(trimmed)) return trimmed;
  return `${authEnabled ? 'https' : 'http'}://${trimmed}`;
}

function isEnvelope(value: unknown): value is Envelope {
  return typeof value === 'object' && value !== null && 'Status' in value && 'Data' in value;
}

function connectionMessage(url: string, err: NodeJS.ErrnoException): string {
  const code = err.code ?? '';
  if (code === 'ECONNREFUSED') return `cannot reach the Threeport API at ${url}: connection refused (is the control plane running?)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `cannot reach the Threeport API at ${url}: host not found`;
  if (code === 'ETIMEDOUT' || code === 'ESOCKETTIMEDOUT') return `the Threeport API at ${url} did not answer in time`;
  if (code === 'ECONNRESET' || code === 'EPIPE') {
    return `the Threeport API at ${url} closed the connection (${code}); if it requires client certificates, check the Credentials of this control plane in the threeport config`;
  }
  if (/CERT|SSL|TLS|self.signed|signature/i.test(`${code} ${err.message}`)) {
    return `TLS handshake with the Threeport API at ${url} failed (${err.message}): the CA or client certificate in the threeport config does not belong to this control plane`;
  }
  return `request to the Threeport API at ${url} failed: ${err.message}`;
}

export class ThreeportClient {
  readonly baseUrl: string;
  readonly #agent: http.Agent;
  readonly #timeoutMs: number;
  readonly #https: boolean;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#https = this.baseUrl.startsWith('https:');
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    if (this.#https) {
      if (!options.tls) throw new Error(`an https API (${this.baseUrl}) needs the CA certificate and a client certificate and key`);
      this.#agent = new https.Agent({
        keepAlive: true,
        maxSockets: 8,
        ca: options.tls.ca,
        cert: options.tls.cert,
        key: options.tls.key,
        minVersion: 'TLSv1.2',
      });
    } else {
      this.#agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    }
  }

  /** Releases kept-alive connections so the process can exit. */
  close(): void {
    this.#agent.destroy();
  }

  /** One HTTP exchange; resolves with the status and the parsed JSON body (or the text when it is not JSON). */
  async request(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const url = `${this.baseUrl}${path}`;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const transport = this.#https ? https : http;
    return new Promise((resolve, reject) => {
      const req = transport.request(
        url,
        {
          method,
          agent: this.#agent,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => reject(new ApiConnectionError(connectionMessage(this.baseUrl, err), url, { cause: err })));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text === '' ? undefined : JSON.parse(text);
            } catch {
              // not JSON: keep the text
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.setTimeout(this.#timeoutMs, () => {
        req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' }));
      });
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(new ApiConnectionError(connectionMessage(this.baseUrl, err), url, { cause: err })),
      );
      if (payload) req.write(payload);
      req.end();
    });
  }

  /** A v0 call: returns the envelope, or throws the error the envelope describes. */
  async call(method: string, path: string, body?: unknown): Promise<Envelope> {
    const res = await this.request(method, path, body);
    if (res.status >= 200 && res.status < 300 && isEnvelope(res.body)) return res.body;
    const envelope = isEnvelope(res.body) ? res.body : undefined;
    const message =
      envelope?.Status.error ||
      envelope?.Status.message ||
      (typeof res.body === 'string' && res.body.trim() !== '' ? res.body.trim().slice(0, 300) : `HTTP ${res.status}`);
    const type = envelope?.Type ?? '';
    if (res.status === 404) throw new ObjectNotFoundError(message, 404, type);
    if (res.status === 409) throw new ObjectConflictError(message, 409, type);
    if (res.status >= 200 && res.status < 300) {
      throw new ApiError(`unexpected response from ${method} ${path}: not a v0 envelope`, res.status, type);
    }
    throw new ApiError(message, res.status, type);
  }

  /** `GET /version` → e.g. "v0.1.0". */
  async version(): Promise<string> {
    const res = await this.request('GET', '/version');
    const v = (res.body as { Version?: unknown } | undefined)?.Version;
    if (res.status !== 200 || typeof v !== 'string') throw new ApiError(`GET /version answered HTTP ${res.status}`, res.status);
    return v;
  }

  #query<K extends Kind>(kind: K, filter: FilterOf<K> | undefined, extra: Record<string, string | number> = {}): string {
    const params = new URLSearchParams();
    const keyOf = new Map([...kind.queryKeys].map(([key, field]) => [field, key]));
    for (const [field, value] of Object.entries(filter ?? {})) {
      if (value === undefined) continue;
      const key = keyOf.get(field);
      if (!key) throw new Error(`${kind.name}.${field} cannot be used as a filter: it has no query key`);
      params.set(key, String(value));
    }
    for (const [k, v] of Object.entries(extra)) params.set(k, String(v));
    const text = params.toString();
    return text ? `?${text}` : '';
  }

  #one<T>(kind: Kind, envelope: Envelope): T {
    const item = envelope.Data?.[0];
    if (item === undefined) throw new ApiError(`the API returned no ${kind.name} object`, envelope.Status.code, kind.name);
    return item as T;
  }

  /** Upstream clients create what already exists (a genesis control plane) with `Reconciled: true`, so no controller acts on it. */
  async create<K extends Kind>(kind: K, fields: Partial<FieldsOf<K> & ReconciliationFields>): Promise<ObjectOf<K>> {
    return this.#one(kind, await this.call('POST', `/v0/${kind.plural}`, fields));
  }

  async get<K extends Kind>(kind: K, id: number): Promise<ObjectOf<K>> {
    return this.#one(kind, await this.call('GET', `/v0/${kind.plural}/${id}`));
  }

  async list<K extends Kind>(kind: K, filter?: FilterOf<K>, page: { page?: number; size?: number } = {}): Promise<Page<ObjectOf<K>>> {
    const extra: Record<string, number> = {};
    if (page.page !== undefined) extra['page'] = page.page;
    if (page.size !== undefined) extra['size'] = page.size;
    const env = await this.call('GET', `/v0/${kind.plural}${this.#query(kind, filter, extra)}`);
    return { items: (env.Data ?? []) as ObjectOf<K>[], total: env.Meta.TotalCount };
  }

  /** Every matching object, in ID order (`size=-1`). */
  async listAll<K extends Kind>(kind: K, filter?: FilterOf<K>): Promise<ObjectOf<K>[]> {
    return (await this.list(kind, filter, { size: -1 })).items;
  }

  /** The object with this name, or undefined when there is none. More than one is an error. */
  async findByName<K extends Kind>(kind: K, name: string): Promise<ObjectOf<K> | undefined> {
    const items = await this.listAll(kind, { Name: name } as FilterOf<K>);
    if (items.length > 1) {
      throw new ApiError(`${items.length} ${kind.name} objects are named ${JSON.stringify(name)}; expected one`, 409, kind.name);
    }
    return items[0];
  }

  /** The object with this name: exactly one must exist (the upstream client's `Get<Kind>ByName`). */
  async getByName<K extends Kind>(kind: K, name: string): Promise<ObjectOf<K>> {
    const found = await this.findByName(kind, name);
    if (!found) throw new ObjectNotFoundError(`no ${kind.name} named ${JSON.stringify(name)}`, 404, kind.name);
    return found;
  }

  async patch<K extends Kind>(kind: K, id: number, changes: Partial<FieldsOf<K> & AnyObject>): Promise<ObjectOf<K>> {
    return this.#one(kind, await this.call('PATCH', `/v0/${kind.plural}/${id}`, changes));
  }

  async put<K extends Kind>(kind: K, id: number, fields: Partial<FieldsOf<K>>): Promise<ObjectOf<K>> {
    return this.#one(kind, await this.call('PUT', `/v0/${kind.plural}/${id}`, fields));
  }

  /** Deletes the object. Reconciled kinds are only scheduled for deletion (`DeletionScheduled` is set); their controller finishes it. */
  async delete<K extends Kind>(kind: K, id: number): Promise<ObjectOf<K>> {
    return this.#one(kind, await this.call('DELETE', `/v0/${kind.plural}/${id}`));
  }
}
