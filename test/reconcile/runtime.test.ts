// The controller runtime against a real PostgreSQL: the reconciler contract,
// retries and backoff (with a controllable clock), terminal errors, custom
// requeues, coalescing, the deletion protocol, events, resync, leases,
// shutdown, secrets and choreography.
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { ControlPlaneDefinition } from '../../src/kinds/control-plane.js';
import { AttachedObjectReference } from '../../src/kinds/events.js';
import { SecretDefinition } from '../../src/kinds/secret.js';
import { WorkloadDefinition } from '../../src/kinds/workload.js';
import type { Kind } from '../../src/kinds/declare.js';
import type { JsonObject } from '../../src/kinds/validate.js';
import { NotFoundError } from '../../src/errors.js';
import { QUEUE_TABLE } from '../../src/store/schema.js';
import { ControllableClock } from '../../src/reconcile/clock.js';
import { LeaseLostError, ReconcileError, ShutdownError, TerminalError } from '../../src/reconcile/errors.js';
import { ReconcileMetrics } from '../../src/reconcile/metrics.js';
import { RetryPolicy } from '../../src/reconcile/retry-policy.js';
import { ReconcileRuntime } from '../../src/reconcile/runtime.js';
import type { ReconcileContext, Reconciler } from '../../src/reconcile/types.js';
import {
  Settlements,
  createObject,
  deferred,
  eventsOf,
  queueRow,
  quietLogger,
  resetData,
  startEnv,
  startRuntime,
  type Env,
} from './helpers.js';

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

const YAML_DOC = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n';

const get = (kind: Kind, id: number) => env.store.getObject(kind, id);

/** Milliseconds from the (clock-shifted) database now() to the row's not_before. */
async function dueIn(kind: string, id: number, clock?: ControllableClock): Promise<number> {
  const res = await env.db.query<{ ms: number }>(
    `SELECT (extract(epoch FROM not_before - now()) * 1000)::float8 AS ms FROM ${QUEUE_TABLE} WHERE kind = $1 AND object_id = $2`,
    [kind, id],
  );
  return res.rows[0]!.ms - (clock?.skewMs ?? 0);
}

/** Lets the runtime poll a few times (for checks that something does NOT happen). */
const settle = (ms = 500) => new Promise((r) => setTimeout(r, ms));

test('a create is reconciled: Reconciled true, a linked SuccessfulCreate event, the item gone; updates count events', async () => {
  const seen: Array<{ op: string; attempt: number; bindings: Record<string, unknown>; payload: unknown; name: unknown }> = [];
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created(ctx, obj) {
      const { kind, id, op, attempt } = ctx.log.bindings();
      seen.push({ op: ctx.operation, attempt: ctx.attempt, bindings: { kind, id, op, attempt }, payload: ctx.payload, name: obj['Name'] });
    },
    async updated(ctx) {
      seen.push({ op: ctx.operation, attempt: ctx.attempt, bindings: {}, payload: null, name: null });
    },
  };
  const s = new Settlements();
  const rt = await startRuntime(env, [reconciler], s);
  try {
    const id = await create(ControlPlaneDefinition, { Name: 'first' });
    await s.until((all) => all.some((x) => x.id === id && x.outcome === 'reconciled'), 'the create to be reconciled');
    assert.equal((await get(ControlPlaneDefinition, id))['Reconciled'], true);
    assert.equal(await queueRow(env.db, 'ControlPlaneDefinition', id), undefined);
    assert.deepEqual(seen[0], {
      op: 'Created',
      attempt: 1,
      bindings: { kind: 'ControlPlaneDefinition', id, op: 'Created', attempt: 1 },
      payload: null,
      name: 'first',
    });
    const [event] = await eventsOf(env.db, 'ControlPlaneDefinition', id);
    assert.equal(event!['Reason'], 'SuccessfulCreate');
    assert.equal(event!['Note'], 'ControlPlaneDefinition successfully reconciled for Created operation');
    assert.equal(event!['Type'], 'Normal');
    assert.equal(event!['Count'], 1);
    assert.equal(event!['ReportingController'], 'ControlPlaneController');
    const ref = await env.db.query(`SELECT id, data FROM v0_attached_object_references WHERE id = $1`, [event!['AttachedObjectReferenceID']]);
    assert.deepEqual(ref.rows[0]!.data, {
      ObjectType: 'v0.ControlPlaneDefinition',
      ObjectID: id,
      AttachedObjectType: 'v0.Event',
      AttachedObjectID: event!['ID'],
    });

    // Two updates: one SuccessfulUpdate event counted twice (spec §1.8).
    for (let i = 1; i <= 2; i++) {
      await env.store.patch(ControlPlaneDefinition, id, { Reconciled: false });
      await s.until((all) => all.filter((x) => x.id === id && x.operation === 'Updated' && x.outcome === 'reconciled').length === i, `update ${i}`);
    }
    const events = await eventsOf(env.db, 'ControlPlaneDefinition', id);
    assert.deepEqual(
      events.map((e) => [e['Reason'], e['Note'], e['Count']]),
      [
        ['SuccessfulCreate', 'ControlPlaneDefinition successfully reconciled for Created operation', 1],
        ['SuccessfulUpdate', 'ControlPlaneDefinition successfully reconciled for Updated operation', 2],
      ],
    );
    assert.notEqual(events[1]!['LastObservedTime'], events[1]!['EventTime']);
  } finally {
    await rt.stop();
  }
});

test('a remembered event that was deleted meanwhile is recorded afresh, not lost', async () => {
  const s = new Settlements();
  const rt = await startRuntime(env, [{ kind: 'ControlPlaneDefinition', async created() {}, async updated() {} }], s);
  try {
    const id = await create(ControlPlaneDefinition, { Name: 'pruned' });
    await s.until((all) => all.length === 1, 'the create'); // a patch before it would coalesce into it
    for (let i = 1; i <= 2; i++) {
      await env.store.patch(ControlPlaneDefinition, id, { Reconciled: false });
      await s.until((all) => all.filter((x) => x.operation === 'Updated').length === i, `update ${i}`);
    }
    const update = (await eventsOf(env.db, 'ControlPlaneDefinition', id)).find((e) => e['Reason'] === 'SuccessfulUpdate')!;
    assert.equal(update['Count'], 2);
    await env.db.query(`UPDATE v0_events SET deleted_at = now() WHERE id = $1`, [update['ID']]);
    await env.store.patch(ControlPlaneDefinition, id, { Reconciled: false });
    await s.until((all) => all.filter((x) => x.operation === 'Updated').length === 3, 'update 3');
    const events = await eventsOf(env.db, 'ControlPlaneDefinition', id);
    assert.deepEqual(
      events.map((e) => [e['Reason'], e['Count']]),
      [
        ['SuccessfulCreate', 1],
        ['SuccessfulUpdate', 1],
      ],
    );
    assert.notEqual(events[1]!['ID'], update['ID']);
    assert.equal((await get(ControlPlaneDefinition, id))['Reconciled'], true);
  } finally {
    await rt.stop();
  }
});

test('failures back off exponentially (controllable clock), record one counted Warning event, then succeed', async () => {
  const clock = new ControllableClock();
  let calls = 0;
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created() {
      calls++;
      if (calls <= 3) throw new Error('the cloud said no');
    },
  };
  const s = new Settlements();
  // Default policy (1 s, ×2, 30 s cap); jitter pinned so the delays are exact.
  const rt = await startRuntime(env, [reconciler], s, { clock, retry: new RetryPolicy({}, () => 0) });
  try {
    const id = await create(ControlPlaneDefinition, { Name: 'flaky' });
    for (const [attempt, delay] of [
      [1, 1_000],
      [2, 2_000],
      [3, 4_000],
    ] as const) {
      await s.until((all) => all.filter((x) => x.outcome === 'failed').length === attempt, `failure ${attempt}`);
      const failure = s.all.filter((x) => x.outcome === 'failed')[attempt - 1]!;
      assert.equal(failure.attempt, attempt);
      assert.equal(failure.delayMs, delay);
      assert.equal(failure.error, 'the cloud said no');
      const row = (await queueRow(env.db, 'ControlPlaneDefinition', id))!;
      assert.equal(row['attempts'], attempt);
      assert.equal(row['last_error'], 'the cloud said no');
      assert.equal(row['lease_owner'], null);
      const due = await dueIn('ControlPlaneDefinition', id, clock);
      assert.ok(due > delay - 500 && due <= delay + 50, `due in ${due} ms, expected about ${delay}`);
      assert.equal(calls, attempt, 'no retry before the delay has passed');
      clock.advance(delay);
    }
    await s.until((all) => all.some((x) => x.outcome === 'reconciled'), 'the fourth attempt to succeed');
    assert.equal(s.all.at(-1)!.attempt, 4);
    const events = await eventsOf(env.db, 'ControlPlaneDefinition', id);
    assert.deepEqual(
      events.map((e) => [e['Reason'], e['Type'], e['Note'], e['Count']]),
      [
        ['FailedCreate', 'Warning', 'the cloud said no', 3],
        ['SuccessfulCreate', 'Normal', 'ControlPlaneDefinition successfully reconciled for Created operation', 1],
      ],
    );
    assert.equal(await queueRow(env.db, 'ControlPlaneDefinition', id), undefined);
  } finally {
    await rt.stop();
  }
});

test('a terminal error is recorded and not retried until the object changes; CreationFailed marks it', async () => {
  const clock = new ControllableClock();
  let calls = 0;
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created(_ctx, obj) {
      calls++;
      if (obj['AuthEnabled'] !== false) throw new TerminalError('AuthEnabled must be false in this test');
    },
  };
  const s = new Settlements();
  const rt = await startRuntime(env, [reconciler], s, { clock });
  try {
    const id = await create(ControlPlaneDefinition, { Name: 'doomed' });
    await s.until((all) => all.some((x) => x.outcome === 'terminal'), 'the terminal failure');
    const row = (await queueRow(env.db, 'ControlPlaneDefinition', id))!;
    assert.equal(row['last_error'], 'AuthEnabled must be false in this test');
    assert.equal(String(row['not_before']), 'Infinity');
    assert.equal(row['lease_owner'], null);
    const obj = await get(ControlPlaneDefinition, id);
    assert.equal(obj['CreationFailed'], true);
    assert.equal(obj['Reconciled'], false);
    assert.deepEqual(
      (await eventsOf(env.db, 'ControlPlaneDefinition', id)).map((e) => [e['Reason'], e['Type'], e['Note']]),
      [['FailedCreate', 'Warning', 'AuthEnabled must be false in this test']],
    );
    clock.advance(24 * 3_600_000);
    await settle();
    assert.equal(calls, 1, 'a terminal failure is not retried, however long we wait');

    // The user fixes the object: its create runs again and succeeds.
    await env.store.patch(ControlPlaneDefinition, id, { AuthEnabled: false, Reconciled: false });
    await s.until((all) => all.some((x) => x.outcome === 'reconciled'), 'the fixed object to be reconciled');
    assert.equal(s.all.at(-1)!.operation, 'Created');
    const fixed = await get(ControlPlaneDefinition, id);
    assert.equal(fixed['Reconciled'], true);
    assert.equal(fixed['CreationFailed'], false);
  } finally {
    await rt.stop();
  }
});

test('retryable: false on any error is terminal, and maximumAttempts gives up', async () => {
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created(_ctx, obj) {
      if (obj['Name'] === 'data') throw Object.assign(new Error('quota exhausted for good'), { retryable: false });
      throw new ReconcileError('still broken');
    },
  };
  const s = new Settlements();
  const rt = await startRuntime(env, [reconciler], s, { retry: { initialIntervalMs: 10, maximumIntervalMs: 20, maximumAttempts: 3 } });
  try {
    const a = await create(ControlPlaneDefinition, { Name: 'data' });
    const b = await create(ControlPlaneDefinition, { Name: 'tries' });
    await s.until((all) => all.filter((x) => x.outcome === 'terminal').length === 2, 'both to fail terminally');
    assert.deepEqual(s.of(a).map((x) => x.outcome), ['terminal']);
    assert.deepEqual(s.of(b).map((x) => x.outcome), ['failed', 'failed', 'terminal']);
    assert.equal(s.of(b).at(-1)!.error, 'gave up after 3 attempts: still broken');
  } finally {
    await rt.stop();
  }
});

test('requeueAfterMs runs the object again after that delay, as no failure and without an event', async () => {
  const clock = new ControllableClock();
  let calls = 0;
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created() {
      calls++;
      return calls === 1 ? { requeueAfterMs: 90_000 } : undefined;
    },
  };
  const s = new Settlements();
  const rt = await startRuntime(env, [reconciler], s, { clock });
  try {
    const id = await create(ControlPlaneDefinition, { Name: 'polling' });
    await s.until((all) => all.some((x) => x.outcome === 'requeued'), 'the requeue');
    assert.equal(s.all[0]!.delayMs, 90_000);
    const row = (await queueRow(env.db, 'ControlPlaneDefinition', id))!;
    assert.equal(row['attempts'], 0);
    assert.equal(row['last_error'], null);
    assert.equal(row['operation'], 'Created');
    const due = await dueIn('ControlPlaneDefinition', id, clock);
    assert.ok(due > 89_000 && due <= 90_050, `due in ${due} ms`);
    assert.equal((await get(ControlPlaneDefinition, id))['Reconciled'], false);
    assert.deepEqual(await eventsOf(env.db, 'ControlPlaneDefinition', id), []);
    await settle(300);
    assert.equal(calls, 1);
    clock.advance(90_000);
    await s.until((all) => all.some((x) => x.outcome === 'reconciled'), 'the second run');
    assert.equal(s.all.at(-1)!.attempt, 1);
    assert.equal((await get(ControlPlaneDefinition, id))['Reconciled'], true);
  } finally {
    await rt.stop();
  }
});

test('changes during a running reconcile coalesce into one more run, and a finished create continues as an update', async () => {
  const gate = deferred();
  const started = deferred();
  const runs: Array<{ op: string; authEnabled: unknown }> = [];
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created(ctx, obj) {
      runs.push({ op: ctx.operation, authEnabled: obj['AuthEnabled'] });
      started.resolve();
      await gate.promise;
    },
    async updated(ctx, obj) {
      runs.push({ op: ctx.operation, authEnabled: obj['AuthEnabled'] });
    },
  };
  const s = new Settlements();
  const rt = await startRuntime(env, [reconciler], s);
  try {
    const id = await create(ControlPlaneDefinition, { Name: 'busy' });
    await started.promise;
    await env.store.patch(ControlPlaneDefinition, id, { AuthEnabled: false, Reconciled: false });
    await env.store.patch(ControlPlaneDefinition, id, { OnboardParent: false, Reconciled: false });
    await env.store.patch(ControlPlaneDefinition, id, { AuthEnabled: true, Reconciled: false });
    const row = (await queueRow(env.db, 'ControlPlaneDefinition', id))!;
    assert.equal(row['generation'], 4);
    assert.equal(row['operation'], 'Created');
    assert.equal(row['lease_owner'], rt.owner, 'a leased row stays leased while changes pile up');
    gate.resolve();
    await s.until((all) => all.length === 2, 'the coalesced second run');
    await settle(300);
    assert.deepEqual(runs, [
      { op: 'Created', authEnabled: true },
      { op: 'Updated', authEnabled: true },
    ]);
    assert.deepEqual(s.all.map((x) => [x.operation, x.outcome, x.again ?? false]), [
      ['Created', 'reconciled', true],
      ['Updated', 'reconciled', false],
    ]);
    assert.equal(await queueRow(env.db, 'ControlPlaneDefinition', id), undefined);
    assert.equal((await get(ControlPlaneDefinition, id))['Reconciled'], true);
  } finally {
    gate.resolve();
    await rt.stop();
  }
});

test('a create is skipped while deletion is scheduled', async () => {
  const calls: string[] = [];
  const id = await create(ControlPlaneDefinition, { Name: 'gone-soon' });
  await env.store.patch(ControlPlaneDefinition, id, { DeletionScheduled: new Date().toISOString() }, { enqueue: false });
  const s = new Settlements();
  const rt = await startRuntime(env, [{ kind: 'ControlPlaneDefinition', created: async () => void calls.push('created') }], s);
  try {
    await s.until((all) => all.length === 1, 'the skipped create');
    assert.equal(s.all[0]!.outcome, 'skipped');
    assert.deepEqual(calls, []);
    assert.equal(await queueRow(env.db, 'ControlPlaneDefinition', id), undefined);
  } finally {
    await rt.stop();
  }
});

test('deletion protocol: cleanup (retried on failure), then acknowledged, confirmed, reconciled and soft-deleted at once', async () => {
  let deleteCalls = 0;
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created() {},
    async deleted(ctx, obj) {
      deleteCalls++;
      assert.ok(obj['DeletionScheduled'], 'the object the reconciler sees has DeletionScheduled set');
      assert.equal(ctx.operation, 'Deleted');
      if (deleteCalls === 1) throw new Error('cloud resource still in use');
    },
  };
  const s = new Settlements();
  const rt = await startRuntime(env, [reconciler], s);
  try {
    const id = await create(ControlPlaneDefinition, { Name: 'doomed-name' });
    await s.until((all) => all.some((x) => x.outcome === 'reconciled'), 'the create');
    await env.store.delete(ControlPlaneDefinition, id);
    await s.until((all) => all.some((x) => x.operation === 'Deleted' && x.outcome === 'reconciled'), 'the deletion');
    assert.equal(deleteCalls, 2);
    await assert.rejects(get(ControlPlaneDefinition, id), NotFoundError);
    const raw = await env.db.query(`SELECT deleted_at, data FROM ${ControlPlaneDefinition.table} WHERE id = $1`, [id]);
    const data = raw.rows[0]!.data as JsonObject;
    assert.ok(raw.rows[0]!.deleted_at instanceof Date);
    assert.equal(data['Reconciled'], true);
    assert.ok(data['DeletionScheduled'] && data['DeletionAcknowledged'] && data['DeletionConfirmed']);
    assert.equal(await queueRow(env.db, 'ControlPlaneDefinition', id), undefined);
    assert.deepEqual(
      (await eventsOf(env.db, 'ControlPlaneDefinition', id)).map((e) => [e['Reason'], e['Count']]),
      [
        ['SuccessfulCreate', 1],
        ['FailedDelete', 1],
        ['SuccessfulDelete', 1],
      ],
    );
    // The name is free again.
    await create(ControlPlaneDefinition, { Name: 'doomed-name' });
  } finally {
    await rt.stop();
  }
});

test('a reconciler without a deleted handler still completes the deletion', async () => {
  const s = new Settlements();
  const rt = await startRuntime(env, [{ kind: 'ControlPlaneDefinition', async created() {} }], s);
  try {
    const id = await create(ControlPlaneDefinition, { Name: 'plain' });
    await s.until((all) => all.length === 1, 'the create');
    await env.store.delete(ControlPlaneDefinition, id);
    await s.until((all) => all.length === 2, 'the delete');
    await assert.rejects(get(ControlPlaneDefinition, id), NotFoundError);
  } finally {
    await rt.stop();
  }
});

test('an item whose object is gone is dropped without calling the reconciler', async () => {
  let calls = 0;
  await env.db.query(`INSERT INTO ${QUEUE_TABLE} (kind, object_id, operation) VALUES ('ControlPlaneDefinition', 987654321, 'Updated')`);
  const s = new Settlements();
  const rt = await startRuntime(env, [{ kind: 'ControlPlaneDefinition', updated: async () => void calls++ }], s);
  try {
    await s.until((all) => all.length === 1, 'the drop');
    assert.equal(s.all[0]!.outcome, 'dropped');
    assert.equal(calls, 0);
    assert.equal(await queueRow(env.db, 'ControlPlaneDefinition', 987654321), undefined);
  } finally {
    await rt.stop();
  }
});

test('items of a kind without a reconciler stay queued until its controller runs', async () => {
  const waiting = await create(WorkloadDefinition, { Name: 'w', YAMLDocument: YAML_DOC });
  const s = new Settlements();
  const a = await startRuntime(env, [{ kind: 'ControlPlaneDefinition', async created() {} }], s);
  let b: ReconcileRuntime | undefined;
  try {
    const other = await create(ControlPlaneDefinition, { Name: 'c' });
    await s.until((all) => all.some((x) => x.id === other), 'the other kind to be reconciled');
    await settle(300);
    const row = (await queueRow(env.db, 'WorkloadDefinition', waiting))!;
    assert.equal(row['lease_owner'], null, 'never leased by a process without its reconciler');
    b = await startRuntime(env, [{ kind: 'WorkloadDefinition', async created() {} }], s);
    await s.until((all) => all.some((x) => x.id === waiting && x.outcome === 'reconciled'), 'the waiting item once its controller runs');
  } finally {
    await a.stop();
    await b?.stop();
  }
});

test('resync queues each reconciled object once per interval across runtimes, and never flips Reconciled', async () => {
  const clock = new ControllableClock();
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created(_ctx, obj) {
      if (obj['Name'] === 'broken') throw new TerminalError('broken on purpose');
    },
    async updated() {},
  };
  const s = new Settlements();
  const options = { clock, resyncIntervalMs: 600_000, resyncJitter: 0, resyncBatchSize: 2 };
  const a = await startRuntime(env, [reconciler], s, options);
  const b = await startRuntime(env, [reconciler], s, options);
  try {
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await create(ControlPlaneDefinition, { Name: `r${i}` }));
    const broken = await create(ControlPlaneDefinition, { Name: 'broken' });
    await s.until((all) => all.length === 6, 'the creates');
    assert.deepEqual(await Promise.all([a.resync(), b.resync()]), [0, 0], 'the first resync only records the time');
    clock.advance(600_001);
    const counts = await Promise.all([a.resync(), b.resync()]);
    assert.deepEqual(counts.sort(), [0, 5], 'exactly one runtime resyncs, the five reconciled objects only');
    for (const id of ids) assert.equal((await get(ControlPlaneDefinition, id))['Reconciled'], true);
    assert.equal(String((await queueRow(env.db, 'ControlPlaneDefinition', broken))!['not_before']), 'Infinity');
    await s.until((all) => all.filter((x) => x.operation === 'Updated' && x.outcome === 'reconciled').length === 5, 'the resync updates');
    assert.deepEqual(new Set(s.all.filter((x) => x.operation === 'Updated').map((x) => x.id)), new Set(ids));
    for (const id of ids) assert.equal((await get(ControlPlaneDefinition, id))['Reconciled'], true);
    assert.deepEqual(await Promise.all([a.resync(), b.resync()]), [0, 0], 'not again within the interval');
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('resync spreads items over the jitter window', async () => {
  const clock = new ControllableClock();
  const s = new Settlements();
  const rt = await startRuntime(env, [{ kind: 'ControlPlaneDefinition', async created() {}, async updated() {} }], s, {
    clock,
    resyncIntervalMs: 600_000,
    resyncJitter: 0.5,
  });
  try {
    for (let i = 0; i < 20; i++) await create(ControlPlaneDefinition, { Name: `j${i}` });
    await s.until((all) => all.length === 20, 'the creates');
    await rt.resync();
    clock.advance(600_000);
    assert.equal(await rt.resync(), 20);
    const res = await env.db.query<{ ms: number }>(
      `SELECT (extract(epoch FROM not_before - now()) * 1000)::float8 AS ms FROM ${QUEUE_TABLE} WHERE kind = 'ControlPlaneDefinition'`,
    );
    const due = res.rows.map((r) => r.ms - clock.skewMs);
    assert.equal(due.length, 20);
    assert.ok(due.every((ms) => ms >= -5_000 && ms <= 300_000), `all due within 5 min: ${due}`);
    assert.ok(new Set(due.map((ms) => Math.round(ms / 1000))).size > 5, 'spread out, not all at once');
  } finally {
    await rt.stop();
  }
});

test('polling alone finds work when LISTEN is off', async () => {
  const s = new Settlements();
  const rt = await startRuntime(env, [{ kind: 'ControlPlaneDefinition', async created() {} }], s, { listen: false, pollIntervalMs: 100 });
  try {
    for (let i = 0; i < 3; i++) await create(ControlPlaneDefinition, { Name: `p${i}` });
    await s.until((all) => all.filter((x) => x.outcome === 'reconciled').length === 3, 'three polled reconciles');
  } finally {
    await rt.stop();
  }
});

test("a crashed worker's expired lease is taken over; a live lease is left alone", async () => {
  const clock = new ControllableClock();
  const id = await create(ControlPlaneDefinition, { Name: 'orphan' });
  await env.db.query(`UPDATE ${QUEUE_TABLE} SET lease_owner = 'crashed', lease_expires_at = now() + interval '30 seconds' WHERE object_id = $1`, [id]);
  const s = new Settlements();
  const rt = await startRuntime(env, [{ kind: 'ControlPlaneDefinition', async created() {} }], s, { clock });
  try {
    await settle();
    assert.equal(s.all.length, 0, 'not taken while the lease is live');
    clock.advance(30_001);
    await s.until((all) => all.some((x) => x.outcome === 'reconciled'), 'the takeover');
  } finally {
    await rt.stop();
  }
});

test('a lost lease aborts the reconcile and nothing is written', async () => {
  const started = deferred();
  let reason: unknown;
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created(ctx) {
      started.resolve();
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      reason = ctx.signal.reason;
      throw ctx.signal.reason;
    },
  };
  const s = new Settlements();
  const rt = await startRuntime(env, [reconciler], s, { leaseMs: 600 });
  try {
    const id = await create(ControlPlaneDefinition, { Name: 'contested' });
    await started.promise;
    await env.db.query(`UPDATE ${QUEUE_TABLE} SET lease_owner = 'thief', lease_expires_at = now() + interval '1 hour' WHERE object_id = $1`, [id]);
    await s.until((all) => all.length === 1, 'the lost lease to be noticed');
    assert.equal(s.all[0]!.outcome, 'lease-lost');
    assert.ok(reason instanceof LeaseLostError);
    assert.equal((await queueRow(env.db, 'ControlPlaneDefinition', id))!['lease_owner'], 'thief');
    assert.equal((await get(ControlPlaneDefinition, id))['Reconciled'], false);
    assert.deepEqual(await eventsOf(env.db, 'ControlPlaneDefinition', id), []);
  } finally {
    await rt.stop();
  }
});

test('a reconcile that succeeds after its lease was taken over writes nothing', async () => {
  const started = deferred();
  const gate = deferred();
  const s = new Settlements();
  const rt = await startRuntime(
    env,
    [
      {
        kind: 'ControlPlaneDefinition',
        async created() {
          started.resolve();
          await gate.promise; // ignores its AbortSignal
        },
      },
    ],
    s,
    { leaseMs: 60_000 },
  );
  try {
    const id = await create(ControlPlaneDefinition, { Name: 'stolen' });
    await started.promise;
    await env.db.query(`UPDATE ${QUEUE_TABLE} SET lease_owner = 'other' WHERE object_id = $1`, [id]);
    gate.resolve();
    await s.until((all) => all.length === 1, 'the outcome');
    assert.equal(s.all[0]!.outcome, 'lease-lost');
    assert.equal((await get(ControlPlaneDefinition, id))['Reconciled'], false);
    assert.deepEqual(await eventsOf(env.db, 'ControlPlaneDefinition', id), []);
    assert.equal((await queueRow(env.db, 'ControlPlaneDefinition', id))!['lease_owner'], 'other');
  } finally {
    gate.resolve();
    await rt.stop();
  }
});

test('shutdown lets running reconciles finish, and aborts and releases those still running at the deadline', async () => {
  const started = deferred();
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created(ctx, obj) {
      if (obj['Name'] === 'quick') {
        await new Promise((r) => setTimeout(r, 50));
        return;
      }
      started.resolve();
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      throw ctx.signal.reason;
    },
  };
  const s = new Settlements();
  const rt = await startRuntime(env, [reconciler], s);
  const stuck = await create(ControlPlaneDefinition, { Name: 'stuck' });
  await started.promise;
  const quick = await create(ControlPlaneDefinition, { Name: 'quick' });
  await s.until((all) => all.some((x) => x.id === quick), 'the quick one');
  await rt.stop(200);
  assert.deepEqual(s.of(stuck).map((x) => x.outcome), ['released']);
  const row = (await queueRow(env.db, 'ControlPlaneDefinition', stuck))!;
  assert.equal(row['lease_owner'], null);
  assert.equal(row['attempts'], 0);
  assert.deepEqual(await eventsOf(env.db, 'ControlPlaneDefinition', stuck), []);
  assert.ok(new ShutdownError().message.includes('shutting down'));
});

test('the payload carries transient SecretDefinition.Data; secrets never reach events or last_error', async () => {
  let plain: string | undefined;
  const reconciler: Reconciler = {
    kind: 'SecretDefinition',
    async created(ctx) {
      const data = (ctx.payload as { Data: Record<string, string> }).Data;
      plain = ctx.store.decrypt(data['password']!);
      throw new TerminalError(`login failed for password ${plain} (ciphertext ${data['password']})`);
    },
  };
  const s = new Settlements();
  const rt = await startRuntime(env, [reconciler], s);
  try {
    const id = await create(SecretDefinition, { Name: 's', Data: { password: 'hunter2-very-secret' } });
    await s.until((all) => all.length === 1, 'the failure');
    assert.equal(plain, 'hunter2-very-secret');
    const [event] = await eventsOf(env.db, 'SecretDefinition', id);
    assert.equal(event!['Note'], 'login failed for password [redacted] (ciphertext [redacted])');
    assert.equal((await queueRow(env.db, 'SecretDefinition', id))!['last_error'], event!['Note']);
    assert.equal(s.all[0]!.error, event!['Note']);
  } finally {
    await rt.stop();
  }
});

test('choreography: derived objects and re-reconcile requests commit atomically with the reconcile', async () => {
  const cpRuns: Array<[string, string]> = [];
  let attempts = 0;
  const other = await create(ControlPlaneDefinition, { Name: 'other' });
  const workload: Reconciler = {
    kind: 'WorkloadDefinition',
    async created(ctx: ReconcileContext) {
      attempts++;
      await ctx.transaction(async (tx) => {
        const derived = await tx.create(ControlPlaneDefinition, { Name: `derived-of-${ctx.id}` });
        await tx.attach({ kind: 'WorkloadDefinition', id: ctx.id }, { kind: ControlPlaneDefinition, id: derived['ID'] as number });
        await tx.requestReconcile(ControlPlaneDefinition, other);
        if (attempts === 1) throw new Error('failed after the writes: they must roll back');
      });
    },
  };
  const cp: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created(ctx, obj) {
      cpRuns.push([ctx.operation, obj['Name'] as string]);
    },
    async updated(ctx, obj) {
      cpRuns.push([ctx.operation, obj['Name'] as string]);
    },
  };
  const s = new Settlements();
  const rt = await startRuntime(env, [workload, cp], s);
  try {
    await s.until((all) => all.some((x) => x.id === other && x.outcome === 'reconciled'), 'the other object');
    const wd = await create(WorkloadDefinition, { Name: 'app', YAMLDocument: YAML_DOC });
    await s.until((all) => all.some((x) => x.id === wd && x.outcome === 'reconciled'), 'the workload');
    await s.until((all) => all.filter((x) => x.kind === 'ControlPlaneDefinition' && x.outcome === 'reconciled').length === 3, 'the choreography');
    assert.equal(attempts, 2);
    assert.deepEqual(cpRuns.sort(), [
      ['Created', 'derived-of-' + wd],
      ['Created', 'other'],
      ['Updated', 'other'],
    ].sort());
    assert.equal((await env.store.find(ControlPlaneDefinition, { Name: `derived-of-${wd}` })).length, 1, 'the failed attempt left nothing');
    const refs = await env.store.find(AttachedObjectReference, { ObjectType: 'v0.WorkloadDefinition', AttachedObjectType: 'v0.ControlPlaneDefinition' });
    assert.equal(refs.length, 1);
  } finally {
    await rt.stop();
  }
});

test('/metrics text: queue depth, durations, errors and leases per kind', async () => {
  const metrics = new ReconcileMetrics(env.db, { processMetrics: false });
  const gate = deferred();
  // The slow item is leased and running (so counted as leased and held) once its handler has begun.
  const slowRunning = deferred();
  const s = new Settlements();
  const rt = await startRuntime(
    env,
    [
      {
        kind: 'ControlPlaneDefinition',
        async created(_ctx, obj) {
          if (obj['Name'] === 'bad') throw new TerminalError('bad');
          if (obj['Name'] === 'slow') {
            slowRunning.resolve();
            await gate.promise;
          }
        },
      },
    ],
    s,
    { metrics },
  );
  try {
    await create(ControlPlaneDefinition, { Name: 'ok' });
    await create(ControlPlaneDefinition, { Name: 'bad' });
    await create(ControlPlaneDefinition, { Name: 'slow' });
    await create(WorkloadDefinition, { Name: 'nobody', YAMLDocument: YAML_DOC });
    await s.until((all) => all.length === 2, 'two outcomes');
    await slowRunning.promise;
    const text = await metrics.text();
    assert.match(text, /threeport_reconcile_queue_depth\{kind="ControlPlaneDefinition",operation="Created",state="failed"\} 1/);
    assert.match(text, /threeport_reconcile_queue_depth\{kind="ControlPlaneDefinition",operation="Created",state="leased"\} 1/);
    assert.match(text, /threeport_reconcile_queue_depth\{kind="WorkloadDefinition",operation="Created",state="ready"\} 1/);
    assert.match(text, /threeport_reconcile_leases_held\{kind="ControlPlaneDefinition"\} 1/);
    assert.match(text, /threeport_reconcile_errors_total\{kind="ControlPlaneDefinition",operation="Created",terminal="true"\} 1/);
    assert.match(text, /threeport_reconciles_total\{kind="ControlPlaneDefinition",operation="Created",outcome="reconciled"\} 1/);
    assert.match(text, /threeport_reconcile_duration_seconds_count\{kind="ControlPlaneDefinition",operation="Created",outcome="reconciled"\} 1/);
    assert.match(text, /# TYPE threeport_reconcile_duration_seconds histogram/);
  } finally {
    gate.resolve();
    await rt.stop();
  }
});

test('registration errors say what is wrong', async () => {
  const base = { store: env.store, logger: quietLogger() };
  await assert.rejects(ReconcileRuntime.start({ ...base, reconcilers: [{ kind: 'Event' }] }), {
    message: 'cannot register a reconciler for Event: it is not a reconciled kind, so nothing is ever queued for it',
  });
  await assert.rejects(ReconcileRuntime.start({ ...base, reconcilers: [{ kind: 'WorkloadDefinition' }, { kind: 'WorkloadDefinition' }] }), {
    message: 'two reconcilers are registered for WorkloadDefinition; register one per kind',
  });
  await assert.rejects(ReconcileRuntime.start({ ...base, reconcilers: [{ kind: 'Nope' }] }), { message: 'unknown object kind "Nope"' });
  await assert.rejects(ReconcileRuntime.start({ ...base, reconcilers: [], concurrency: 0 }), {
    message: 'reconcile runtime: concurrency must be a whole number of at least 1, got 0',
  });
});
