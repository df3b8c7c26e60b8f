// The lease module (src/store/leases.ts) on a real PostgreSQL: one holder at a time, takeover
// after expiry with a new fencing token, a fenced write of the old holder fails, a takeover waits
// for a fenced write in flight, groups are shared among live replicas, release hands over at once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { LEASE_TABLE, LeaseLostError, Leases } from '../../src/store/leases.js';
import { eventually, quietLogger, startEnv, type Env } from './helpers.js';

let env: Env;
before(async () => {
  env = await startEnv();
});
after(async () => {
  await env?.close();
});

function replica(holder: string, leaseMs = 600): Leases {
  return new Leases({ db: env.db, holder, leaseMs, log: quietLogger() });
}

test('one holder at a time; an expired lease is taken over with a new token and the old holder is fenced', async () => {
  const a = replica('a');
  const b = replica('b');
  try {
    assert.equal(await a.acquire('runtime:1'), true);
    assert.equal(await b.acquire('runtime:1'), false, 'held by a');
    assert.equal(await b.holderOf('runtime:1'), 'a');
    const tokenA = Number((await env.db.query(`SELECT token FROM ${LEASE_TABLE} WHERE name = 'runtime:1'`)).rows[0]?.token);
    await a.setData('runtime:1', { eventsResourceVersion: '42' });

    // a stops renewing (no start()): after the lease time it no longer holds it, locally first.
    await eventually(async () => (!a.holds('runtime:1') ? true : undefined), 'a gives the lease up locally');
    await eventually(async () => ((await b.acquire('runtime:1')) ? true : undefined), 'b takes the expired lease');
    assert.equal(b.data('runtime:1')?.['eventsResourceVersion'], '42', 'the lease document carries over');
    const tokenB = Number((await env.db.query(`SELECT token FROM ${LEASE_TABLE} WHERE name = 'runtime:1'`)).rows[0]?.token);
    assert.equal(tokenB, tokenA + 1);

    await assert.rejects(env.db.transaction((tx) => a.fence(tx, 'runtime:1')), LeaseLostError);
    await env.db.transaction((tx) => b.fence(tx, 'runtime:1'));
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('a takeover waits for the holder\'s fenced write to commit', async () => {
  const a = replica('fa', 1_500);
  const b = replica('fb', 1_500);
  try {
    assert.equal(await a.acquire('runtime:2'), true);
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const write = env.db.transaction(async (tx) => {
      await a.fence(tx, 'runtime:2');
      order.push('fenced');
      await gate;
      order.push('write committed');
    });
    await eventually(async () => (order.includes('fenced') ? true : undefined), 'a holds the fence');
    // Expire the lease by hand (as if a's renewals stopped), then let b try.
    const takeover = (async () => {
      await new Promise((r) => setTimeout(r, 1_600)); // a's lease has expired by then
      const got = await b.acquire('runtime:2');
      order.push(`takeover ${got}`);
    })();
    await new Promise((r) => setTimeout(r, 2_500));
    assert.deepEqual(order, ['fenced'], 'the takeover waits on the locked lease row');
    release();
    await write;
    await takeover;
    assert.deepEqual(order, ['fenced', 'write committed', 'takeover true']);
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('a group is shared among live replicas; stop() releases so another takes over at once', async () => {
  const names = ['runtime:10', 'runtime:11', 'runtime:12', 'runtime:13'];
  const x = replica('gx', 900);
  const y = replica('gy', 900);
  try {
    await x.start();
    for (const n of names) x.want(n, { group: 'runtime' });
    await eventually(async () => (x.held().length === 4 ? true : undefined), 'x alone takes all four');
    await y.start();
    for (const n of names) y.want(n, { group: 'runtime' });
    await eventually(async () => (x.held().length === 2 && y.held().length === 2 ? true : undefined), 'two each', 20_000);
    assert.deepEqual([...x.held(), ...y.held()].sort(), names, 'each held once');
    await x.stop();
    await eventually(async () => (y.held().length === 4 ? true : undefined), 'y takes the released ones', 20_000);
  } finally {
    await x.stop();
    await y.stop();
  }
});
