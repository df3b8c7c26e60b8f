// src/system.ts: the one place for loopback ports, process checks and backoff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { Backoff, backoffDelay, freePort, portIsFree, processAlive, reusePort } from '../../src/system.js';

test('backoffDelay doubles from initialMs, caps at maxMs, and takes another factor', () => {
  const shape = { initialMs: 500, maxMs: 4_000 };
  assert.deepEqual([1, 2, 3, 4, 5, 100, 5_000].map((n) => backoffDelay(n, shape)), [500, 1_000, 2_000, 4_000, 4_000, 4_000, 4_000]);
  assert.deepEqual([1, 2, 3].map((n) => backoffDelay(n, { initialMs: 100, maxMs: 10_000, factor: 3 })), [100, 300, 900]);
  assert.equal(backoffDelay(1, { initialMs: 200, maxMs: 50 }), 50, 'a cap below initialMs wins');
});

test('Backoff counts failures, resets on success, and starts over after a quiet period', () => {
  const b = new Backoff({ initialMs: 250, maxMs: 1_000, resetAfterMs: 60_000 });
  assert.deepEqual([b.next(0), b.next(10), b.next(20), b.next(30)], [250, 500, 1_000, 1_000]);
  assert.equal(b.failures, 4);
  assert.equal(b.next(30 + 60_000), 250, 'an exit a minute after the previous one is a first failure again');
  b.reset();
  assert.equal(b.failures, 0);
  assert.equal(b.next(30 + 60_001), 250);
  const noReset = new Backoff({ initialMs: 1, maxMs: 8 });
  assert.deepEqual([noReset.next(0), noReset.next(1e9)], [1, 2], 'without resetAfterMs only reset() starts over');
});

test('freePort never hands out the same port twice; reusePort keeps a free port for its owner only', async () => {
  const ports = await Promise.all(Array.from({ length: 20 }, () => freePort('a')));
  assert.equal(new Set(ports).size, ports.length);
  const mine = await freePort('owner-1');
  assert.equal(await reusePort(mine, 'owner-1'), mine);
  assert.notEqual(await reusePort(mine, 'owner-2'), mine, 'promised to owner-1');
  assert.notEqual(await reusePort(undefined, 'owner-2'), undefined);
});

test('portIsFree is false while something listens on the port', async () => {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const address = srv.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  assert.equal(await portIsFree(port), false);
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  assert.equal(await portIsFree(port), true);
});

test('processAlive: this process yes, an exited child and no pid no', () => {
  assert.equal(processAlive(process.pid), true);
  assert.equal(processAlive(undefined), false);
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  assert.equal(processAlive(Number(child.stdout)), false);
});
