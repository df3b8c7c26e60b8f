// One error taxonomy (issue 10.3) against a real PostgreSQL: the ThreeportError classes carry
// `retryable` and `reason`; inside a reconciler InputError and ConflictError park the item with a
// Warning event (and Synced False naming the reason) instead of retrying forever, Unavailable is
// retried; provider errors carry retryability as data (AwsCallError, as KubeError does) and an
// event reason (RuntimeProviderError) that the engine records without an adapter.
import assert from 'node:assert/strict';
import { after, before, beforeEach, test } from 'node:test';
import { ControlPlaneDefinition } from '../../src/kinds/control-plane.js';
import { validatePayload } from '../../src/kinds/validate.js';
import { ConflictError, InputError, NotFoundError, UnavailableError, ignoreNotFound } from '../../src/errors.js';
import { AwsCallError } from '../../src/providers/aws/errors.js';
import { RuntimeProviderError } from '../../src/providers/runtimes/types.js';
import type { Condition } from '../../src/reconcile/conditions.js';
import type { Reconciler } from '../../src/reconcile/types.js';
import { Settlements, eventsOf, queueRow, resetData, startEnv, startRuntime, type Env } from './helpers.js';

let env: Env;
before(async () => {
  env = await startEnv();
});
after(async () => env?.close());
beforeEach(async () => resetData(env.db));

async function create(name: string): Promise<number> {
  return (JSON.parse(await env.store.create(ControlPlaneDefinition, validatePayload(ControlPlaneDefinition, { Name: name }, 'create'))) as { ID: number }).ID;
}

const synced = async (id: number) =>
  ((await env.store.getObject(ControlPlaneDefinition, id))['Conditions'] as unknown as Condition[] | undefined)?.find((c) => c.Type === 'Synced');

test('the classes carry retryable and reason', () => {
  assert.deepEqual(
    [new InputError('x'), new ConflictError('x'), new NotFoundError('x'), new UnavailableError('x')].map((e) => [e.name, e.retryable, e.reason]),
    [
      ['InputError', false, 'InvalidInput'],
      ['ConflictError', false, 'Conflict'],
      ['NotFoundError', true, 'NotFound'],
      ['UnavailableError', true, 'Unavailable'],
    ],
  );
  assert.equal(ignoreNotFound(new NotFoundError('gone')), undefined);
  const outage = new Error('connect ECONNREFUSED');
  assert.throws(() => ignoreNotFound(outage), (e) => e === outage, 'anything but NotFound is thrown on');
});

test('AwsCallError carries retryability as data', () => {
  const sdk = (name: string, httpStatusCode: number) => Object.assign(new Error(`${name} happened`), { name, $metadata: { httpStatusCode } });
  assert.equal(new AwsCallError('CreateBucket', sdk('AccessDenied', 403)).retryable, false);
  assert.equal(new AwsCallError('CreateDBInstance', sdk('InvalidParameterCombination', 400)).retryable, false);
  assert.equal(new AwsCallError('CreateBucket', sdk('ThrottlingException', 429)).retryable, true);
  assert.equal(new AwsCallError('CreateBucket', sdk('InternalError', 500)).retryable, true);
  assert.equal(new AwsCallError('CreateBucket', sdk('AccessDenied', 500)).retryable, true, 'a 5xx is retried whatever its code');
});

test('an InputError or ConflictError thrown by a reconciler parks the item with a Warning event; Synced names the reason', async () => {
  const calls = new Map<string, number>();
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created(_ctx, obj) {
      const name = String(obj['Name']);
      calls.set(name, (calls.get(name) ?? 0) + 1);
      if (name === 'bad-input') throw new InputError('the manifest names no namespace');
      throw new ConflictError('a runtime with that name already exists');
    },
  };
  const s = new Settlements();
  const rt = await startRuntime(env, [reconciler], s);
  try {
    const bad = await create('bad-input');
    const conflict = await create('conflict');
    await s.until((all) => all.filter((x) => x.outcome === 'terminal').length === 2, 'both to be parked');
    for (const [id, message, reason] of [
      [bad, 'the manifest names no namespace', 'InvalidInput'],
      [conflict, 'a runtime with that name already exists', 'Conflict'],
    ] as const) {
      const row = (await queueRow(env.db, 'ControlPlaneDefinition', id))!;
      assert.equal(String(row['not_before']), 'Infinity', 'parked until the object changes');
      assert.equal(row['last_error'], message);
      const warning = (await eventsOf(env.db, 'ControlPlaneDefinition', id)).filter((e) => e['Type'] === 'Warning');
      assert.deepEqual(
        warning.map((e) => [e['Reason'], e['Note']]),
        [['FailedCreate', message]],
      );
      const obj = await env.store.getObject(ControlPlaneDefinition, id);
      assert.equal(obj['CreationFailed'], true);
      assert.deepEqual(await synced(id).then((c) => c && [c.Status, c.Reason, c.Message]), ['False', reason, message]);
    }
    assert.deepEqual([calls.get('bad-input'), calls.get('conflict')], [1, 1], 'neither was retried');
  } finally {
    await rt.stop();
  }
});

test('an UnavailableError is retried until it succeeds; a provider error names its event reason without an adapter', async () => {
  let unavailable = 2;
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    async created(_ctx, obj) {
      if (obj['Name'] === 'provider') throw new RuntimeProviderError('the cloud has no capacity', { retryable: false, reason: 'NoCapacity' });
      if (unavailable-- > 0) throw new UnavailableError('the database is restarting');
    },
  };
  const s = new Settlements();
  const rt = await startRuntime(env, [reconciler], s);
  try {
    const id = await create('flaky');
    const provider = await create('provider');
    await s.until((all) => all.some((x) => x.id === id && x.outcome === 'reconciled'), 'the retried create to succeed');
    assert.deepEqual(s.of(id).map((x) => x.outcome), ['failed', 'failed', 'reconciled']);
    assert.deepEqual(await synced(id).then((c) => c && [c.Status, c.Reason]), ['True', 'ReconcileSuccess']);
    await s.until((all) => all.some((x) => x.id === provider && x.outcome === 'terminal'), 'the provider failure to park');
    const events = await eventsOf(env.db, 'ControlPlaneDefinition', provider);
    assert.deepEqual(events.map((e) => [e['Reason'], e['Type'], e['Note']]), [['NoCapacity', 'Warning', 'the cloud has no capacity']]);
  } finally {
    await rt.stop();
  }
});
