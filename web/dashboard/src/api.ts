// Talking to the control plane, through the dashboard proxy or directly: JSON reads, writes that
// carry the proxy's session token, and whether the control plane answers at all.
import { SESSION_HEADER, type SessionAnswer } from '../../../src/dashboard/api-types.js';

export class NotFound extends Error {}

/** The control plane (or the proxy in front of it) did not answer. */
export class Unreachable extends Error {}

let session: SessionAnswer | undefined;
const listeners = new Set<(problem: string | undefined) => void>();
let problem: string | undefined;

/** Subscribes to reachability changes: a message while the control plane is unreachable, undefined once it answers. */
export function onReachability(fn: (problem: string | undefined) => void): () => void {
  listeners.add(fn);
  fn(problem);
  return () => listeners.delete(fn);
}

export function reportReachability(next: string | undefined): void {
  if (next === problem) return;
  problem = next;
  for (const fn of listeners) fn(problem);
}

async function send(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = {};
  if (method !== 'GET' && method !== 'HEAD') {
    session ??= await getSession();
    if (session.token) headers[SESSION_HEADER] = session.token;
  }
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), cache: 'no-store' });
  } catch (err) {
    const message = 'The dashboard cannot reach the control plane (no answer).';
    reportReachability(message);
    throw new Unreachable(message);
  }
  if (res.status === 502 || res.status === 503 || res.status === 504) {
    const text = await res.text();
    let message = `The control plane is unreachable (HTTP ${res.status}).`;
    try {
      const parsed = JSON.parse(text) as { error?: string; Status?: { error?: string } };
      message = parsed.error ?? parsed.Status?.error ?? message;
    } catch {
      /* not JSON */
    }
    reportReachability(message);
    throw new Unreachable(message);
  }
  reportReachability(undefined);
  return res;
}

async function errorText(res: Response): Promise<string> {
  const text = await res.text();
  try {
    const parsed = JSON.parse(text) as { error?: string; Status?: { error?: string } };
    return parsed.Status?.error ?? parsed.error ?? text;
  } catch {
    return text;
  }
}

export async function getJson<T>(path: string): Promise<T> {
  const res = await send('GET', path);
  if (res.status === 404) throw new NotFound(await errorText(res));
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}: ${await errorText(res)}`);
  return (await res.json()) as T;
}

/** DELETE /v0/<plural>/<id>; a 404 means it is already gone. */
export async function deleteObject(plural: string, id: number): Promise<'deleting' | 'gone'> {
  const res = await send('DELETE', `/v0/${plural}/${id}`);
  if (res.status === 404) return 'gone';
  // A second DELETE while the controller is still cleaning up is a 409 "already being deleted".
  if (res.status === 409 && /already being deleted/.test(await errorText(res.clone()))) return 'deleting';
  if (!res.ok) throw new Error(`DELETE ${plural} ${id}: ${await errorText(res)}`);
  return 'deleting';
}

export async function exists(plural: string, id: number): Promise<boolean> {
  const res = await send('GET', `/v0/${plural}/${id}`);
  return res.status !== 404;
}

export async function getSession(): Promise<SessionAnswer> {
  const res = await fetch('/dashboard/session', { cache: 'no-store' });
  if (!res.ok) throw new Unreachable(`GET /dashboard/session: HTTP ${res.status}`);
  session = (await res.json()) as SessionAnswer;
  return session;
}
