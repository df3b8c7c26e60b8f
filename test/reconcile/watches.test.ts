// Watches and owners in the engine, against a real PostgreSQL: a reconciler waiting for
// another Threeport object is woken by that object's write (heard on the change feed), not by
// a poll; an owner's children are deleted before the owner's own `deleted` runs.
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { KubernetesRuntimeDefinition, KubernetesRuntimeInstance } from '../../src/kinds/kubernetes-runtime.js';
import { WorkloadDefinition, WorkloadInstance, WorkloadResourceDefinition } from '../../src/kinds/workload.js';
import type { Kind } from '../../src/kinds/declare.js';
import type { JsonObject } from '../../src/kinds/validate.js';
import { QUEUE_TABLE } from '../../src/store/schema.js';
import { ReconcileQueue } from '../../src/store/reconcile-queue.js';
import { edgesOf } from '../../src/controllers/graph.js';
import { untilWoken } from '../../src/reconcile/wait-for.js';
import { WATCH_BACKSTOP_MS } from '../../src/reconcile/watches.js';
import type { ReconcileContext, Reconciler } from '../../src/reconcile/types.js';
import { Settlements, createObject, eventually, queueRow, resetData, startEnv, startRuntime, type Env } from './helpers.js';

let env: Env;
before(async () => {
  env = await startEnv();
});
after(async () => {
  await env?.close();
});
beforeEach(async () => {
  await resetData(env.db);
});

const create = (kind: Kind, fields: JsonObject): Promise<number> => createObject(env.store, kind, fields);

async function dueInMs(kind: string, id: number): Promise<number> {
  const res = await env.db.query<{ ms: number }>(
    `SELECT (extract(epoch FROM not_before - now()) * 1000)::float8 AS ms FROM ${QUEUE_TABLE} WHERE kind = $1 AND object_id = $2`,
    [kind, id],
  );
  return res.rows[0]!.ms;
}

const YAML_DOC = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n';

test('a WorkloadInstance waiting for its runtime is woken by the runtime becoming ready, with no poll', async () => {
  const krd = await create(KubernetesRuntimeDefinition, { Name: 'kwok', InfraProvider: 'kwok' });
  const kri = await create(KubernetesRuntimeInstance, { Name: 'rt', Location: 'Local', KubernetesRuntimeDefinitionID: krd });
  const wd = await create(WorkloadDefinition, { Name: 'app', YAMLDocument: YAML_DOC });
  await env.store.patch(WorkloadDefinition, wd, { Reconciled: true }, { enqueue: false });
  const wi = await create(WorkloadInstance, { Name: 'app-1', WorkloadDefinitionID: wd, KubernetesRuntimeInstanceID: kri });

  // A stand-in WorkloadInstance reconciler with the real declared edges: it waits, as the real
  // one does, until its runtime is Reconciled with an API endpoint.
  let watching: boolean | undefined;
  const converge = async (ctx: ReconcileContext, obj: JsonObject) => {
    watching = ctx.watching;
    const runtime = await ctx.store.getObject(KubernetesRuntimeInstance, Number(obj['KubernetesRuntimeInstanceID']));
    if (runtime['Reconciled'] !== true || !runtime['APIEndpoint']) return untilWoken(ctx, 1_000);
    return undefined;
  };
  const reconciler: Reconciler = { kind: WorkloadInstance.name, ...edgesOf(WorkloadInstance.name), created: converge, updated: converge };
  const s = new Settlements();
  const runtime = await startRuntime(env, [reconciler], s, { pollIntervalMs: 100 });
  try {
    await s.until((all) => all.some((x) => x.id === wi && x.outcome === 'requeued'), 'the instance to wait');
    assert.equal(watching, true, 'the engine hears the change feed');
    const waiting = await queueRow(env.db, WorkloadInstance.name, wi);
    assert.equal(waiting?.['attempts'], 0);
    // The wait is a backstop, not a poll: nothing runs it again for minutes.
    assert.ok((await dueInMs(WorkloadInstance.name, wi)) > WATCH_BACKSTOP_MS / 2, 'the waiting item is due only at the backstop');

    // A write that does not make the runtime ready wakes nobody.
    await env.store.patch(KubernetesRuntimeInstance, kri, { APIEndpoint: 'https://127.0.0.1:1' }, { enqueue: false });
    await runtime.watchesSettled();
    assert.ok((await dueInMs(WorkloadInstance.name, wi)) > WATCH_BACKSTOP_MS / 2, 'an unready runtime does not wake the instance');

    const readyAt = Date.now();
    await env.store.patch(KubernetesRuntimeInstance, kri, { Reconciled: true }, { enqueue: false });
    await s.until((all) => all.some((x) => x.id === wi && x.outcome === 'reconciled'), 'the instance to be woken and reconciled');
    console.log(`# woken ${Date.now() - readyAt} ms after the runtime became ready`);
    assert.deepEqual(
      s.of(wi).map((x) => x.outcome),
      ['requeued', 'reconciled'],
      'exactly one wait and one wake-up: no poll in between',
    );
    assert.equal(await queueRow(env.db, WorkloadInstance.name, wi), undefined, 'the item is done');
    assert.equal((await env.store.getObject(WorkloadInstance, wi))['Reconciled'], true);
  } finally {
    await runtime.stop();
  }
});

test('without the change feed (polling only) a wait polls as before', async () => {
  const krd = await create(KubernetesRuntimeDefinition, { Name: 'kwok', InfraProvider: 'kwok' });
  const kri = await create(KubernetesRuntimeInstance, { Name: 'rt', Location: 'Local', KubernetesRuntimeDefinitionID: krd });
  const wd = await create(WorkloadDefinition, { Name: 'app', YAMLDocument: YAML_DOC });
  const wi = await create(WorkloadInstance, { Name: 'app-1', WorkloadDefinitionID: wd, KubernetesRuntimeInstanceID: kri });
  const reconciler: Reconciler = {
    kind: WorkloadInstance.name,
    ...edgesOf(WorkloadInstance.name),
    created: async (ctx) => untilWoken(ctx, 1_000),
  };
  const s = new Settlements();
  const runtime = await startRuntime(env, [reconciler], s, { listen: false });
  try {
    await s.until((all) => all.some((x) => x.id === wi && x.outcome === 'requeued'), 'the instance to wait');
    const due = await dueInMs(WorkloadInstance.name, wi);
    assert.ok(due <= 1_000, `polls after its own interval (due in ${due} ms)`);
  } finally {
    await runtime.stop();
  }
});

test('an owner reconciles its children after reconciling a requested change, not after a resync', async () => {
  // The real declaration: a WorkloadDefinition owns its WorkloadInstances.
  const krd = await create(KubernetesRuntimeDefinition, { Name: 'kwok', InfraProvider: 'kwok' });
  const kri = await create(KubernetesRuntimeInstance, { Name: 'rt', Location: 'Local', KubernetesRuntimeDefinitionID: krd });
  const wd = await create(WorkloadDefinition, { Name: 'owner', YAMLDocument: YAML_DOC });
  const wi = await create(WorkloadInstance, { Name: 'child', WorkloadDefinitionID: wd, KubernetesRuntimeInstanceID: kri });
  const noop = async (): Promise<undefined> => undefined;
  const owner: Reconciler = { kind: WorkloadDefinition.name, ...edgesOf(WorkloadDefinition.name), created: noop, updated: noop };
  const child: Reconciler = { kind: WorkloadInstance.name, created: noop, updated: noop };
  // A probe watch that sees every write of the definition routed (and wakes nothing).
  let routed = 0;
  const probe: Reconciler = {
    kind: KubernetesRuntimeInstance.name,
    watches: [{ kind: WorkloadDefinition.name, via: 'test probe', map: async () => (routed++, []) }],
  };
  const s = new Settlements();
  const runtime = await startRuntime(env, [owner, child, probe], s);
  const childRuns = (): number => s.of(wi).filter((x) => x.outcome === 'reconciled').length;
  /** Writes the definition without changing it and waits until that write, and all before it, are routed. */
  const routedSoFar = async (): Promise<void> => {
    const seen = routed;
    await env.store.patch(WorkloadDefinition, wd, {}, { enqueue: false });
    await eventually(async () => (routed > seen ? true : undefined), 'the marker write routed', 5_000);
    await runtime.watchesSettled();
    await eventually(async () => ((await queueRow(env.db, WorkloadInstance.name, wi)) === undefined ? true : undefined), 'the child idle');
  };
  try {
    await s.until(() => childRuns() >= 1 && s.of(wd).some((x) => x.outcome === 'reconciled'), 'owner and child created');
    await routedSoFar();
    const before = childRuns();

    // A resync of the owner (queued as the resync queues it: the object stays Reconciled): the children stay put.
    await new ReconcileQueue(env.db).wake(WorkloadDefinition, [wd]);
    await s.until(() => s.of(wd).some((x) => x.operation === 'Updated' && x.outcome === 'reconciled'), 'the owner to reconcile again');
    await routedSoFar();
    assert.equal(childRuns(), before, 'the child did not reconcile');

    // A client's changed spec: once the owner has reconciled it, the child reconciles.
    await env.store.patch(WorkloadDefinition, wd, { YAMLDocument: YAML_DOC.replace('demo', 'demo-2') }, { client: true });
    await s.until(() => childRuns() > before, 'the child to reconcile the change');
    const stored = await env.store.getObject(WorkloadDefinition, wd);
    assert.equal(stored['ObservedGeneration'], stored['Generation']);
    await routedSoFar();
    assert.equal(childRuns(), before + 1, 'the child reconciled once');

    // An update left unreconciled by an in-process write (no new Generation): the child reconciles too.
    await env.store.patch(WorkloadDefinition, wd, { YAMLDocument: YAML_DOC.replace('demo', 'demo-3'), Reconciled: false });
    await s.until(() => childRuns() > before + 1, 'the child to reconcile the update');
    await routedSoFar();
    assert.equal(childRuns(), before + 2, 'the child reconciled once more');
  } finally {
    await runtime.stop();
  }
});

test('deleting an owner deletes its children first, then runs the owner\'s deleted', async () => {
  const wd = await create(WorkloadDefinition, { Name: 'owner', YAMLDocument: YAML_DOC });
  const other = await create(WorkloadDefinition, { Name: 'other', YAMLDocument: YAML_DOC });
  const children = [
    await create(WorkloadResourceDefinition, { JSONDefinition: { kind: 'ConfigMap', metadata: { name: 'a' } }, WorkloadDefinitionID: wd }),
    await create(WorkloadResourceDefinition, { JSONDefinition: { kind: 'ConfigMap', metadata: { name: 'b' } }, WorkloadDefinitionID: wd }),
  ];
  const unrelated = await create(WorkloadResourceDefinition, { JSONDefinition: { kind: 'ConfigMap', metadata: { name: 'c' } }, WorkloadDefinitionID: other });
  const seenAtDelete: number[] = [];
  const reconciler: Reconciler = {
    kind: WorkloadDefinition.name,
    owns: [{ kind: WorkloadResourceDefinition.name, by: 'WorkloadDefinitionID' }],
    deleted: async (ctx) => {
      seenAtDelete.push((await ctx.store.find(WorkloadResourceDefinition, { WorkloadDefinitionID: ctx.id })).length);
    },
  };
  const s = new Settlements();
  const runtime = await startRuntime(env, [reconciler], s);
  try {
    await s.until((all) => all.filter((x) => x.outcome === 'reconciled').length >= 2, 'both definitions created');
    await env.store.delete(WorkloadDefinition, wd);
    await s.until((all) => all.some((x) => x.id === wd && x.operation === 'Deleted' && x.outcome === 'reconciled'), 'the owner deleted');
    assert.deepEqual(seenAtDelete, [0], "the owner's deleted ran once, after its children were gone");
    for (const c of children) {
      await assert.rejects(env.store.getObject(WorkloadResourceDefinition, c), /not found/, `child ${c} is deleted`);
    }
    await assert.rejects(env.store.getObject(WorkloadDefinition, wd), /not found/);
    assert.equal((await env.store.getObject(WorkloadResourceDefinition, unrelated))['WorkloadDefinitionID'], other, "another owner's child stays");
  } finally {
    await runtime.stop();
  }
});

test('an owner whose reconciled child is still being deleted waits for it, woken by its removal', async () => {
  // WorkloadInstance owns nothing in the real graph; here a WorkloadDefinition owns the
  // (reconciled) WorkloadInstances of it for the test, whose deletion takes its own reconcile.
  const krd = await create(KubernetesRuntimeDefinition, { Name: 'kwok', InfraProvider: 'kwok' });
  const kri = await create(KubernetesRuntimeInstance, { Name: 'rt', Location: 'Local', KubernetesRuntimeDefinitionID: krd });
  const wd = await create(WorkloadDefinition, { Name: 'owner', YAMLDocument: YAML_DOC });
  const wi = await create(WorkloadInstance, { Name: 'child', WorkloadDefinitionID: wd, KubernetesRuntimeInstanceID: kri });
  const order: string[] = [];
  let releaseChild!: () => void;
  const childMayGo = new Promise<void>((r) => (releaseChild = r));
  const owner: Reconciler = {
    kind: KubernetesRuntimeInstance.name,
    owns: [{ kind: WorkloadInstance.name, by: 'KubernetesRuntimeInstanceID' }],
    deleted: async () => void order.push('owner'),
  };
  const child: Reconciler = {
    kind: WorkloadInstance.name,
    deleted: async () => {
      await childMayGo;
      order.push('child');
    },
  };
  const s = new Settlements();
  const runtime = await startRuntime(env, [owner, child], s, { pollIntervalMs: 100 });
  try {
    await s.until((all) => all.some((x) => x.id === wi && x.outcome === 'reconciled'), 'the child created');
    await s.until((all) => all.some((x) => x.id === kri && x.outcome === 'reconciled'), 'the owner created');
    // The child references the owner with blocksDelete, so it is scheduled by the engine, not the API:
    // schedule the owner's deletion the way the store does once nothing blocks it.
    await env.db.query(`DELETE FROM ${QUEUE_TABLE} WHERE kind = $1 AND object_id = $2`, [KubernetesRuntimeInstance.name, kri]);
    await env.db.query(
      `UPDATE ${KubernetesRuntimeInstance.table} SET data = data || jsonb_build_object('DeletionScheduled', to_jsonb(now()), 'Reconciled', false) WHERE id = $1`,
      [kri],
    );
    await env.db.query(`INSERT INTO ${QUEUE_TABLE} (kind, object_id, operation) VALUES ($1, $2, 'Deleted')`, [KubernetesRuntimeInstance.name, kri]);
    await env.db.query(`SELECT pg_notify('threeport_reconcile', $1)`, [KubernetesRuntimeInstance.name]);
    await s.until((all) => all.some((x) => x.id === kri && x.outcome === 'requeued'), 'the owner to wait for its child');
    assert.ok((await dueInMs(KubernetesRuntimeInstance.name, kri)) > WATCH_BACKSTOP_MS / 2, 'the owner waits for a wake, not a poll');
    assert.ok((await env.store.getObject(WorkloadInstance, wi))['DeletionScheduled'], "the child's deletion was asked for");
    releaseChild();
    await s.until((all) => all.some((x) => x.id === kri && x.operation === 'Deleted' && x.outcome === 'reconciled'), 'the owner deleted');
    assert.deepEqual(order, ['child', 'owner']);
    const ownerRuns = s.of(kri).filter((x) => x.operation === 'Deleted').map((x) => x.outcome);
    assert.deepEqual(ownerRuns, ['requeued', 'reconciled'], 'one wait, one wake-up');
    await eventually(async () => ((await queueRow(env.db, KubernetesRuntimeInstance.name, kri)) ? undefined : true), 'the queue row gone');
  } finally {
    await runtime.stop();
  }
});
