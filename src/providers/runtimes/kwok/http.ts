// A tiny HTTPS client for a simulated cluster's own API server (readiness checks and
// fake-node registration while the cluster starts), authenticated by client certificate.
// Dependency-free (node:https), so tests can also use it to check a cluster directly,
// independently of the kube provider under test.
import { request } from 'node:https';

export interface KubeCredentials {
  server: string; // https://127.0.0.1:<port>
  caPem: string;
  clientCertPem: string;
  clientKeyPem: string;
}

export interface KubeResponse {
  status: number;
  body: string;
  /** Parsed JSON body, or undefined when the body is not JSON. */
  json: unknown;
}

export interface KubeRequestOptions {
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Sends one request; resolves with any HTTP status, rejects on connection errors or timeout. */
export function kubeRequest(
  creds: KubeCredentials,
  method: string,
  path: string,
  opts: KubeRequestOptions = {},
): Promise<KubeResponse> {
  const url = new URL(path, creds.server);
  const payload =
    opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca: creds.caPem,
        cert: creds.clientCertPem,
        key: creds.clientKeyPem,
        // One request per connection: no pooled sockets keep the test process (or a stopped server) busy.
        agent: false,
        headers: {
          accept: 'application/json',
          ...(payload === undefined
            ? {}
            : { 'content-type': opts.contentType ?? 'application/json', 'content-length': Buffer.byteLength(payload) }),
        },
        timeout: opts.timeoutMs ?? 10_000,
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = body.length > 0 ? JSON.parse(body) : undefined;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${url.href}`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** Thrown from a poll check to stop polling at once (e.g. the process being waited for died). */
export class FatalPollError extends Error {
  override name = 'FatalPollError';
}

/**
 * Polls `check` every `intervalMs` until it returns a non-undefined value or `timeoutMs` passes.
 * Errors thrown by `check` are retried, except FatalPollError, which is rethrown. An aborted
 * `signal` stops the wait with its reason.
 */
export async function pollUntil<T>(
  what: string,
  check: () => Promise<T | undefined>,
  {
    timeoutMs,
    intervalMs = 250,
    onWait,
    signal,
  }: { timeoutMs: number; intervalMs?: number; onWait?: (elapsedMs: number) => void; signal?: AbortSignal },
): Promise<T> {
  const start = Date.now();
  let lastError: unknown;
  let lastReport = start;
  for (;;) {
    signal?.throwIfAborted();
    try {
      const v = await check();
      if (v !== undefined) return v;
      lastError = undefined;
    } catch (err) {
      if (err instanceof FatalPollError) throw err;
      lastError = err;
    }
    const now = Date.now();
    if (now - start > timeoutMs) {
      const cause = lastError instanceof Error ? `: last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${Math.round((now - start) / 1000)}s waiting for ${what}${cause}`);
    }
    if (onWait && now - lastReport >= 5_000) {
      lastReport = now;
      onWait(now - start);
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, intervalMs);
      function done(): void {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
