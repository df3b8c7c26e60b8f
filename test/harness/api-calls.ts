// Plain-HTTP calls to a running `threeport server` that integration suites make
// to drive the control plane through its API, as users do.
import assert from 'node:assert/strict';
import type { RunningServer } from '../../src/server.js';

export type Obj = Record<string, unknown>;

export async function api(server: RunningServer, method: string, path: string, body?: unknown): Promise<{ status: number; data: Obj[]; text: string }> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  const parsed = JSON.parse(text) as { Data: Obj[] | null };
  return { status: res.status, data: parsed.Data ?? [], text };
}

/** The call must succeed (2xx); returns the first object of the envelope. */
export async function must(server: RunningServer, method: string, path: string, body?: unknown): Promise<Obj> {
  const r = await api(server, method, path, body);
  assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: HTTP ${r.status} ${r.text}`);
  return r.data[0]!;
}

export async function get(server: RunningServer, plural: string, id: unknown): Promise<Obj | undefined> {
  const r = await api(server, 'GET', `/v0/${plural}/${String(id)}`);
  return r.status === 200 ? r.data[0] : undefined;
}
