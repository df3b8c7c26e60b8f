// The retry policy: exponential growth, the cap, jitter bounds and validation.
import assert from 'node:assert/strict';
import test from 'node:test';
import { RetryPolicy, DEFAULT_RETRY } from '../../src/reconcile/retry-policy.js';

test('defaults: 1 s doubling to a 30 s cap', () => {
  const p = new RetryPolicy();
  assert.deepEqual(p.toJSON(), DEFAULT_RETRY);
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6, 7, 50, 10_000].map((n) => p.baseDelay(n)),
    [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000],
  );
});

test('jitter takes at most the jitter fraction off the base delay, never adds to it', () => {
  for (const r of [0, 0.25, 0.5, 0.999999]) {
    const p = new RetryPolicy({ jitter: 0.2 }, () => r);
    for (const n of [1, 2, 3, 5, 6, 20]) {
      const base = p.baseDelay(n);
      const d = p.delay(n);
      assert.ok(d <= base && d >= Math.floor(base * 0.8), `attempt ${n}, random ${r}: ${d} not in [${base * 0.8}, ${base}]`);
    }
  }
  assert.equal(new RetryPolicy({}, () => 0).delay(1), 1_000);
  assert.equal(new RetryPolicy({}, () => 0.5).delay(1), 900);
  assert.equal(new RetryPolicy({}, () => 0.5).delay(9), 27_000);
  assert.equal(new RetryPolicy({ jitter: 0 }, () => 0.7).delay(3), 4_000);
});

test('jitter spreads real random delays over the whole band', () => {
  const p = new RetryPolicy({ initialIntervalMs: 10_000, maximumIntervalMs: 10_000, jitter: 0.5 });
  const seen = Array.from({ length: 2_000 }, () => p.delay(1));
  assert.ok(Math.min(...seen) >= 5_000 && Math.max(...seen) <= 10_000);
  assert.ok(Math.min(...seen) < 5_500 && Math.max(...seen) > 9_500, 'delays should cover the band');
});

test('maximumAttempts makes the policy give up', () => {
  const p = new RetryPolicy({ maximumAttempts: 3 });
  assert.deepEqual([1, 2, 3, 4].map((n) => p.exhausted(n)), [false, false, true, true]);
  assert.equal(new RetryPolicy().exhausted(1_000_000), false);
});

test('bad settings fail with the field, the value and what is allowed', () => {
  assert.throws(() => new RetryPolicy({ initialIntervalMs: 0 }), {
    message: 'retry policy: initialIntervalMs must be a number of milliseconds above 0, got 0',
  });
  assert.throws(() => new RetryPolicy({ backoffCoefficient: 0.5 }), {
    message: 'retry policy: backoffCoefficient must be a number of at least 1, got 0.5',
  });
  assert.throws(() => new RetryPolicy({ initialIntervalMs: 5_000, maximumIntervalMs: 1_000 }), {
    message: 'retry policy: maximumIntervalMs must be a number of milliseconds of at least initialIntervalMs (5000), got 1000',
  });
  assert.throws(() => new RetryPolicy({ jitter: 1.5 }), { message: 'retry policy: jitter must be a fraction from 0 to 1, got 1.5' });
  assert.throws(() => new RetryPolicy({ maximumAttempts: 2.5 }), {
    message: 'retry policy: maximumAttempts must be a whole number of at least 0 (0 = retry forever), got 2.5',
  });
  assert.throws(() => new RetryPolicy({ initialIntervalMs: Number.NaN }), /initialIntervalMs must be/);
  assert.throws(() => new RetryPolicy().baseDelay(0), /failures must be a whole number of at least 1, got 0/);
});
