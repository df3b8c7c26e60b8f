// `startServer` wiring: role all runs the API and the controllers with the
// reconcilers passed in; /metrics is served by the API and by the plain-HTTP
// metrics listener; close() stops the controllers gracefully.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startServer } from '../../src/server.js';
import { QUEUE_TABLE } from '../../src/store/schema.js';
import type { Reconciler } from '../../src/reconcile/types.js';
import { freePort } from '../../src/system.js';
import { Settlements, eventually, quietLogger, startEnv, type Env } from './helpers.js';

let env: Env;
let dir: string;
before(async () => {
  env = await startEnv();
  dir = mkdtempSync(join(tmpdir(), 'threeport-server-'));
});
after(async () => {
  await env?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('role all: an object created through the API is reconciled; /metrics on the API and on --metrics-port', async () => {
  const seen: number[] = [];
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created(ctx) {
      seen.push(ctx.id);
    },
  };
  const s = new Settlements();
  const server = await startServer({
    port: 0,
    host: '127.0.0.1',
    role: 'all',
    databaseUrl: env.pg.url,
    dataDir: dir,
    auth: false,
    encryptionKey: env.key,
    logger: quietLogger(),
    reconcilers: [reconciler],
    controllers: { onSettled: s.push, pollIntervalMs: 200 },
    metricsPort: await freePort(),
  });
  try {
    assert.deepEqual(server.controllers?.kinds, ['ControlPlaneDefinition']);
    const res = await fetch(`${server.url}/v0/control-plane-definitions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ Name: 'via-api' }),
    });
    assert.equal(res.status, 201);
    const id = ((await res.json()) as { Data: Array<{ ID: number }> }).Data[0]!.ID;
    await s.until((all) => all.some((x) => x.id === id && x.outcome === 'reconciled'), 'the reconcile');
    const got = (await (await fetch(`${server.url}/v0/control-plane-definitions/${id}`)).json()) as { Data: Array<{ Reconciled: boolean }> };
    assert.equal(got.Data[0]!.Reconciled, true);
    assert.deepEqual(seen, [id]);

    // A waiting item of another kind shows up in the queue depth on both endpoints.
    await env.db.query(`INSERT INTO ${QUEUE_TABLE} (kind, object_id, operation) VALUES ('WorkloadInstance', 42, 'Created')`);
    for (const base of [server.url!, server.metricsUrl!]) {
      const metrics = await fetch(`${base}/metrics`);
      assert.equal(metrics.status, 200);
      assert.match(metrics.headers.get('content-type') ?? '', /^text\/plain/);
      const text = await metrics.text();
      assert.match(text, /threeport_reconcile_queue_depth\{kind="WorkloadInstance",operation="Created",state="ready"\} 1/);
      assert.match(text, /threeport_reconciles_total\{kind="ControlPlaneDefinition",operation="Created",outcome="reconciled"\} 1/);
      assert.match(text, /threeport_process_cpu_seconds_total/);
    }
    assert.equal((await fetch(`${server.metricsUrl}/readyz`)).status, 200);
    assert.equal((await fetch(`${server.metricsUrl}/nope`)).status, 404);
  } finally {
    await server.close();
  }
  // The waiting item was never leased by a process without its controller.
  const row = await eventually(async () => (await env.db.query(`SELECT lease_owner FROM ${QUEUE_TABLE} WHERE object_id = 42`)).rows[0], 'the row');
  assert.equal(row['lease_owner'], null);
});

test('role api runs no controllers but still serves the queue depth', async () => {
  const server = await startServer({
    port: 0,
    host: '127.0.0.1',
    role: 'api',
    databaseUrl: env.pg.url,
    dataDir: dir,
    auth: false,
    encryptionKey: env.key,
    logger: quietLogger(),
  });
  try {
    assert.equal(server.controllers, undefined);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(text, /# TYPE threeport_reconcile_queue_depth gauge/);
  } finally {
    await server.close();
  }
});
