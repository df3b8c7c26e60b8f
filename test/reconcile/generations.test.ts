// Generations and conditions over the real API and a real PostgreSQL: a client's spec PATCH
// raises Generation and is queued in the same statement, the engine catches ObservedGeneration
// up and writes Ready/Synced; controllers' status writes never raise Generation; clients cannot
// write the server-managed fields. Assertions are on state (rows, fields), never on time.
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { WorkloadDefinition } from '../../src/kinds/workload.js';
import type { JsonObject } from '../../src/kinds/validate.js';
import { ReconcileRuntime } from '../../src/reconcile/runtime.js';
import type { Reconciler } from '../../src/reconcile/types.js';
import type { Condition } from '../../src/reconcile/conditions.js';
import { describeLines } from '../../src/cli/render.js';
import { QUEUE_TABLE } from '../../src/store/schema.js';
import { call, startTestApi, type TestApi } from '../harness/api-server.js';
import { Settlements, eventually, quietLogger } from './helpers.js';

const manifest = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n`;

let api: TestApi;
before(async () => {
  api = await startTestApi('postgres');
});
after(async () => api?.stop());
beforeEach(async () => {
  await api.server.db.query(`DELETE FROM ${QUEUE_TABLE}`);
});

/** What the test reconciler does with each object; set per test. */
let behaviour: (obj: JsonObject, rt: { patchSelf(c: JsonObject): Promise<JsonObject> }) => Promise<void> = async () => {};
const seen: string[] = [];
const reconciler: Reconciler = {
  kind: 'WorkloadDefinition',
  async created(ctx, obj) {
    seen.push(String(obj['YAMLDocument']));
    await behaviour(obj, ctx);
  },
  async updated(ctx, obj) {
    seen.push(String(obj['YAMLDocument']));
    await behaviour(obj, ctx);
  },
};

async function withRuntime(work: (s: Settlements) => Promise<void>): Promise<void> {
  const s = new Settlements();
  // Resync off: whatever runs, runs because a write queued it.
  const rt = await ReconcileRuntime.start({
    store: api.server.store,
    reconcilers: [reconciler],
    logger: quietLogger(),
    onSettled: s.push,
    pollIntervalMs: 200,
    resyncIntervalMs: 0,
    retry: { initialIntervalMs: 50, maximumIntervalMs: 200 },
  });
  try {
    await work(s);
  } finally {
    await rt.stop();
  }
}

async function object(id: number): Promise<JsonObject> {
  const got = await call(api, 'GET', `/v0/workload-definitions/${id}`);
  assert.equal(got.status, 200, got.text);
  return got.body.Data![0]! as JsonObject;
}

const conditionsOf = (o: JsonObject) => Object.fromEntries(((o['Conditions'] ?? []) as unknown as Condition[]).map((c) => [c.Type, c]));

async function createDef(name: string): Promise<number> {
  const res = await call(api, 'POST', '/v0/workload-definitions', { Name: name, YAMLDocument: manifest(`${name}-1`) });
  assert.equal(res.status, 201, res.text);
  return res.body.Data![0]!['ID'] as number;
}

test('a spec PATCH raises Generation, is queued in the same statement and is reconciled at once; ObservedGeneration catches up', async () => {
  behaviour = async () => {};
  await withRuntime(async () => {
    const id = await createDef('gen-patch');
    const first = await eventually(async () => {
      const o = await object(id);
      return o['ObservedGeneration'] === 1 ? o : undefined;
    }, 'the first reconcile');
    assert.equal(first['Generation'], 1);
    assert.equal(first['Reconciled'], true);
    assert.equal(conditionsOf(first)['Ready']?.Status, 'True');
    assert.equal(conditionsOf(first)['Synced']?.Status, 'True');
    assert.equal(conditionsOf(first)['Synced']?.Reason, 'ReconcileSuccess');

    // No Reconciled: false in the request: changing a desired field is enough.
    const patched = await call(api, 'PATCH', `/v0/workload-definitions/${id}`, { YAMLDocument: manifest('gen-patch-2') });
    assert.equal(patched.status, 200, patched.text);
    const body = patched.body.Data![0]!;
    assert.equal(body['Generation'], 2);
    assert.equal(body['ObservedGeneration'], 1, 'the response shows the status is stale');
    assert.equal(body['Reconciled'], false);
    assert.match(describeLines(WorkloadDefinition, body as never, () => undefined), /Generation:\s+2 \(observed 1; status is stale/);

    const caught = await eventually(async () => {
      const o = await object(id);
      return o['ObservedGeneration'] === 2 ? o : undefined;
    }, 'ObservedGeneration to catch up');
    assert.equal(caught['Generation'], 2);
    assert.equal(caught['Reconciled'], true);
    assert.ok(seen.includes(manifest('gen-patch-2')), 'the reconciler saw the new spec');
    assert.doesNotMatch(describeLines(WorkloadDefinition, caught as never, () => undefined), /stale/);
    // The first transition time is kept while the status stays True.
    assert.equal(conditionsOf(caught)['Ready']?.LastTransitionTime, conditionsOf(first)['Ready']?.LastTransitionTime);
  });
});

test('status writes (controllers, or a client writing only reconciliation fields) leave Generation alone and queue nothing new', async () => {
  behaviour = async (_obj, ctx) => {
    await ctx.patchSelf({ CreationAcknowledged: new Date().toISOString() });
  };
  await withRuntime(async () => {
    const id = await createDef('gen-status');
    await eventually(async () => ((await object(id))['ObservedGeneration'] === 1 ? true : undefined), 'the first reconcile');
    // A controller writing a desired field through the store (not a client) does not raise it either.
    await api.server.store.patch(WorkloadDefinition, id, { YAMLDocument: manifest('by-a-controller') }, { enqueue: false });
    const reconciled = await call(api, 'PATCH', `/v0/workload-definitions/${id}`, { Reconciled: true });
    assert.equal(reconciled.status, 200);
    const o = await object(id);
    assert.equal(o['Generation'], 1);
    assert.equal(o['ObservedGeneration'], 1);
    const queued = await api.server.db.query(`SELECT 1 FROM ${QUEUE_TABLE} WHERE object_id = $1`, [id]);
    assert.equal(queued.rows.length, 0, 'nothing queued');
    // The same value again is no change.
    const same = await call(api, 'PATCH', `/v0/workload-definitions/${id}`, { YAMLDocument: manifest('by-a-controller') });
    assert.equal(same.body.Data![0]!['Generation'], 1);
  });
});

test('clients cannot write Generation, ObservedGeneration or Conditions (400, nothing written), as with other server-set fields', async () => {
  const id = await createDef('gen-refused');
  for (const body of [{ Generation: 7 }, { ObservedGeneration: 7 }, { Conditions: [] }]) {
    const res = await call(api, 'PATCH', `/v0/workload-definitions/${id}`, body);
    assert.equal(res.status, 400, res.text);
    assert.match(res.body.Status.error, /set by the server and cannot be written/);
  }
  const post = await call(api, 'POST', '/v0/workload-definitions', { Name: 'gen-post', YAMLDocument: manifest('x'), Generation: 3 });
  assert.equal(post.status, 400);
  assert.equal((await object(id))['Generation'], 1);
  // No runtime is running here: the queue row is the PATCH's own doing.
  await api.server.db.query(`DELETE FROM ${QUEUE_TABLE} WHERE object_id = $1`, [id]);
  const spec = await call(api, 'PATCH', `/v0/workload-definitions/${id}`, { YAMLDocument: manifest('queued') });
  assert.equal(spec.body.Data![0]!['Generation'], 2);
  const row = await api.server.db.query(`SELECT operation FROM ${QUEUE_TABLE} WHERE kind = 'WorkloadDefinition' AND object_id = $1`, [id]);
  assert.deepEqual(row.rows, [{ operation: 'Updated' }], 'the PATCH queued its reconcile');
  // PUT replaces the object but keeps the server-managed generation, raising it for a new spec.
  const put = await call(api, 'PUT', `/v0/workload-definitions/${id}`, { Name: 'gen-refused', YAMLDocument: manifest('put') });
  assert.equal(put.status, 200, put.text);
  assert.equal(put.body.Data![0]!['Generation'], 3);
});

test('a failing reconcile sets Synced False with the reason and message; success sets it True again', async () => {
  let fail = true;
  behaviour = async () => {
    if (fail) throw new Error('the cluster said no');
  };
  await withRuntime(async (s) => {
    const id = await createDef('gen-fail');
    const failed = await eventually(async () => {
      const o = await object(id);
      return conditionsOf(o)['Synced']?.Status === 'False' ? o : undefined;
    }, 'Synced False');
    const synced = conditionsOf(failed)['Synced']!;
    assert.equal(synced.Reason, 'ReconcileError');
    assert.equal(synced.Message, 'the cluster said no');
    assert.equal(conditionsOf(failed)['Ready']?.Status, 'Unknown');
    assert.equal(failed['ObservedGeneration'], undefined, 'no successful reconcile yet');
    fail = false;
    const ok = await eventually(async () => {
      const o = await object(id);
      return conditionsOf(o)['Synced']?.Status === 'True' ? o : undefined;
    }, 'Synced True after the retry');
    assert.equal(conditionsOf(ok)['Ready']?.Status, 'True');
    assert.equal(ok['ObservedGeneration'], 1);
    assert.ok(s.of(id).some((x) => x.outcome === 'failed'));
  });
});
