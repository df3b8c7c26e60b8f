// The AWS provider against moto and the fault-injecting proxy: retries with
// backoff on throttling and 5xx, no retry on client errors, role assumption,
// EKS tokens, and no credential in any error or log line.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { CreateVpcCommand, DescribeVpcsCommand, DeleteVpcCommand } from '@aws-sdk/client-ec2';
import { ListClustersCommand } from '@aws-sdk/client-eks';
import { CreateRoleCommand } from '@aws-sdk/client-iam';
import { ListSecretsCommand } from '@aws-sdk/client-secrets-manager';
import { GetCallerIdentityCommand } from '@aws-sdk/client-sts';
import { startFaultProxy, startMoto, SKIP_AWS, type FaultProxy, type MotoServer } from '../harness/moto.js';
import { AwsCallError, isNotFound } from '../../src/providers/aws/errors.js';
import { AwsRetryPolicy, type AwsRetryEvent } from '../../src/providers/aws/retry.js';
import { AwsProvider } from '../../src/providers/aws/provider.js';
import { decodeEksToken } from '../../src/providers/aws/eks-token.js';
import { EksConnectionResolver, tokenNeedsRefresh } from '../../src/providers/aws/connection.js';
import { deleteEks, provisionEks } from '../../src/providers/aws/eks.js';
import type { ResourceInventory } from '../../src/providers/aws/inventory.js';
import {
  added,
  capturingLogger,
  census,
  drive,
  testAccount,
  testCipher,
  testProvider,
  TEST_ACCESS_KEY_ID,
  TEST_SECRET_ACCESS_KEY,
} from './helpers.js';

const skip = SKIP_AWS;

/** A seeded generator, so "30% of requests fail" is the same every run. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('AwsRetryPolicy', () => {
  test('doubles the delay from the base up to the cap, without jitter', () => {
    const p = new AwsRetryPolicy({ baseDelayMs: 100, maxDelayMs: 1_000, jitter: 'none' });
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => p.delay(n)), [100, 200, 400, 800, 1_000, 1_000]);
  });
  test('full jitter stays within the backoff', () => {
    const p = new AwsRetryPolicy({ baseDelayMs: 100, maxDelayMs: 1_000 });
    assert.equal(p.delay(3, () => 0.5), 200);
    assert.equal(p.delay(3, () => 0), 0);
  });
  test('rejects nonsense with a precise message', () => {
    assert.throws(() => new AwsRetryPolicy({ maxAttempts: 0 }), /maxAttempts must be a whole number of at least 1, got 0/);
    assert.throws(() => new AwsRetryPolicy({ baseDelayMs: 500, maxDelayMs: 100 }), /maxDelayMs \(100\) must not be less than baseDelayMs \(500\)/);
  });
});

describe('AWS provider against moto', { skip }, () => {
  let moto: MotoServer;
  let proxy: FaultProxy;
  const cipher = testCipher();

  before(async () => {
    moto = await startMoto();
    proxy = await startFaultProxy(moto.url, undefined, seeded(7));
  });
  after(async () => {
    await proxy?.close();
    await moto?.stop();
  });
  beforeEach(async () => {
    proxy.setRule(undefined);
    await moto.reset();
  });

  test('throttling and 5xx answers are retried with backoff, each retry counted and logged', async () => {
    const { log, lines } = capturingLogger();
    const events: AwsRetryEvent[] = [];
    const provider = testProvider(proxy.url, cipher, { log, onRetry: (e) => events.push(e) });
    const session = provider.session(testAccount(cipher));
    proxy.setRule({ match: (op) => op === 'CreateVpc', sequence: ['throttle', 'unavailable', 'internal'] });
    const out = await session.ec2.send(new CreateVpcCommand({ CidrBlock: '10.9.0.0/16' }));
    assert.match(out.Vpc?.VpcId ?? '', /^vpc-/);
    assert.equal(out.$metadata.attempts, 4);
    assert.deepEqual(
      events.map((e) => [e.operation, e.attempt, e.reason, e.httpStatus, e.delayMs]),
      [
        ['ec2:CreateVpc', 1, 'throttling', 429, 5],
        ['ec2:CreateVpc', 2, 'server-error', 503, 10],
        ['ec2:CreateVpc', 3, 'server-error', 500, 20],
      ],
    );
    assert.equal(provider.stats.retries, 3);
    assert.equal(provider.stats.byOperation.get('ec2:CreateVpc'), 4);
    const retryLines = lines.filter((l) => l.includes('AWS call failed; retrying'));
    assert.equal(retryLines.length, 3);
    assert.match(retryLines[0]!, /"aws":"ec2:CreateVpc"/);
    assert.match(retryLines[0]!, /"code":"ThrottlingException"/);
  });

  test('JSON-protocol services (EKS, Secrets Manager) are retried too', async () => {
    const events: AwsRetryEvent[] = [];
    const provider = testProvider(proxy.url, cipher, { onRetry: (e) => events.push(e) });
    const session = provider.session(testAccount(cipher));
    proxy.setRule({ sequence: ['throttle', 'unavailable'] });
    await session.eks.send(new ListClustersCommand({}));
    proxy.setRule({ sequence: ['throttle'] });
    await session.secretsManager.send(new ListSecretsCommand({}));
    assert.deepEqual(
      events.map((e) => [e.operation, e.reason]),
      [
        ['eks:ListClusters', 'throttling'],
        ['eks:ListClusters', 'server-error'],
        ['secretsmanager:ListSecrets', 'throttling'],
      ],
    );
  });

  test('after maxAttempts the call fails with a readable error; client errors are not retried', async () => {
    const provider = testProvider(proxy.url, cipher, { retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 1 } });
    const session = provider.session(testAccount(cipher));
    proxy.setRule({ match: (op) => op === 'DescribeVpcs', fraction: 1, fault: 'throttle', maxFaults: 10 });
    const err = await session.ec2.send(new DescribeVpcsCommand({})).catch((e: unknown) => e);
    assert.ok(err instanceof AwsCallError);
    assert.equal(err.message, 'ec2:DescribeVpcs failed: ThrottlingException (HTTP 429): Rate exceeded');
    assert.equal(provider.stats.byOperation.get('ec2:DescribeVpcs'), 3);

    proxy.setRule(undefined);
    const before = provider.stats.calls;
    const notFound = await session.ec2.send(new DeleteVpcCommand({ VpcId: 'vpc-0000000000000000a' })).catch((e: unknown) => e);
    assert.ok(isNotFound(notFound), String(notFound));
    assert.equal(provider.stats.calls - before, 1, 'a 4xx is not retried');
  });

  test('a whole EKS build and delete goes through 30% injected throttling and 5xx', async () => {
    const provider = testProvider(proxy.url, cipher, { retry: { maxAttempts: 10, baseDelayMs: 1, maxDelayMs: 8, jitter: 'none' } });
    const session = provider.session(testAccount(cipher));
    const baseline = await census(session);
    const injectedBefore = proxy.stats.injected.throttle + proxy.stats.injected.unavailable + proxy.stats.injected.internal;
    let n = 0;
    proxy.setRule({ fraction: 0.3, fault: 'throttle', maxFaults: 400 });
    // Alternate fault kinds deterministically by swapping the rule's fault every few requests.
    const faults = ['throttle', 'unavailable', 'internal'] as const;
    const swap = setInterval(() => proxy.setRule({ fraction: 0.3, fault: faults[n++ % 3]!, maxFaults: 400 }), 5);
    const stack = 'tp-flaky-9';
    const spec = { zoneCount: 2, instanceType: 't3.small', initialSize: 1, minSize: 0, maxSize: 3 };
    let inv: ResourceInventory | undefined;
    const save = async (i: ResourceInventory): Promise<void> => {
      inv = structuredClone(i);
    };
    try {
      await drive(() => provisionEks({ session, stack, spec, inventory: inv, save }));
      assert.equal(inv?.phase, 'created');
      await drive(() => deleteEks({ session, stack, spec, inventory: inv, save }));
    } finally {
      clearInterval(swap);
      proxy.setRule(undefined);
    }
    assert.ok(provider.stats.retries > 0, 'some requests were retried');
    const injected = proxy.stats.injected.throttle + proxy.stats.injected.unavailable + proxy.stats.injected.internal - injectedBefore;
    assert.equal(provider.stats.retries, injected, `every injected fault was retried (failures: ${provider.stats.failures})`);
    assert.deepEqual(added(baseline, await census(session)), {});
  });

  test('an account with RoleArn assumes the role with its ExternalId, once, and uses the session credentials', async () => {
    const provider = testProvider(proxy.url, cipher);
    const admin = provider.session(testAccount(cipher));
    const role = await admin.iam.send(new CreateRoleCommand({ RoleName: 'threeport-manager', AssumeRolePolicyDocument: '{}' }));
    const account = testAccount(cipher, {
      ID: 2,
      AccessKeyID: null,
      SecretAccessKey: null,
      RoleArn: role.Role!.Arn!,
      ExternalId: '6f2d0a4e-1c3b-4f9e-9d7a-0c1b2a3d4e5f',
    });
    const session = provider.session(account);
    proxy.stats.seen.length = 0;
    const me = await session.sts.send(new GetCallerIdentityCommand({}));
    await session.ec2.send(new DescribeVpcsCommand({}));
    await session.ec2.send(new DescribeVpcsCommand({}));
    assert.match(me.Arn ?? '', /assumed-role\/threeport-manager\/threeport-2$/);
    const assumes = proxy.stats.seen.filter((r) => r.operation === 'AssumeRole');
    assert.equal(assumes.length, 1, 'assumed once, then cached');
    const form = new URLSearchParams(assumes[0]!.body);
    assert.equal(form.get('RoleArn'), role.Role!.Arn);
    assert.equal(form.get('ExternalId'), '6f2d0a4e-1c3b-4f9e-9d7a-0c1b2a3d4e5f');
    assert.equal(form.get('RoleSessionName'), 'threeport-2');
    assert.match(assumes[0]!.authorization, /Credential=base-testing-key\//, 'AssumeRole is signed with the base credentials');
    const later = proxy.stats.seen.filter((r) => r.operation === 'DescribeVpcs');
    assert.equal(later.length, 2);
    for (const r of later) assert.doesNotMatch(r.authorization, /base-testing-key|AKIAIOSFODNN7EXAMPLE/, 'later calls use the role session');
  });

  test('an EKS token is a presigned GetCallerIdentity URL that names the cluster, refreshed before expiry', async () => {
    const now = Date.parse('2026-11-27T10:00:00Z');
    const provider = testProvider(moto.url, cipher, { now: () => now });
    const session = provider.session(testAccount(cipher));
    const token = await new EksConnectionResolver().token({ session, clusterName: 'tp-demo-1', now });
    assert.match(token.token, /^k8s-aws-v1\.[A-Za-z0-9_-]+$/);
    const url = decodeEksToken(token.token);
    assert.equal(url.origin, moto.url);
    assert.equal(url.searchParams.get('Action'), 'GetCallerIdentity');
    assert.equal(url.searchParams.get('X-Amz-Expires'), '60');
    assert.equal(url.searchParams.get('X-Amz-Date'), '20261127T100000Z');
    assert.match(url.searchParams.get('X-Amz-SignedHeaders') ?? '', /(^|;)x-k8s-aws-id(;|$)/);
    assert.match(url.searchParams.get('X-Amz-Credential') ?? '', /^AKIAIOSFODNN7EXAMPLE\/20261127\/us-east-1\/sts\/aws4_request$/);
    assert.equal(token.expiresAt.toISOString(), '2026-11-27T10:14:00.000Z');
    // (The authenticator replays this URL to STS; moto routes a bare GET / to S3, so it is not replayed here.)
    assert.equal(tokenNeedsRefresh(token.expiresAt, now), false);
    assert.equal(tokenNeedsRefresh(token.expiresAt, now + 11 * 60_000 + 1), true, 'within 3 minutes of expiry');
    assert.equal(tokenNeedsRefresh(undefined, now), true);
  });

  test('no credential appears in errors or logs, even when AWS echoes the signed request', async () => {
    const { log, lines } = capturingLogger();
    const provider = testProvider(proxy.url, cipher, { log, retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1 } });
    const session = provider.session(testAccount(cipher));
    proxy.setRule({ sequence: ['throttle', 'signature'] });
    const err = await session.ec2.send(new DescribeVpcsCommand({})).catch((e: unknown) => e);
    assert.ok(err instanceof AwsCallError);
    assert.match(err.message, /^ec2:DescribeVpcs failed: SignatureDoesNotMatch \(HTTP 403\): The request signature we calculated/);
    const token = await new EksConnectionResolver().token({ session, clusterName: 'c', now: Date.now() });
    const texts = [err.message, err.stack ?? '', inspect(err, { depth: 10 }), JSON.stringify(err), ...lines, provider.scrub(token.token)];
    for (const text of texts) {
      assert.ok(!text.includes(TEST_ACCESS_KEY_ID), `access key ID leaked: ${text}`);
      assert.ok(!text.includes(TEST_SECRET_ACCESS_KEY), `secret key leaked: ${text}`);
      assert.ok(!text.includes(token.token.slice(11, 60)), 'token leaked');
    }
    assert.ok(lines.length > 0, 'the retry was logged');
  });

  test('the endpoint override comes from THREEPORT_AWS_ENDPOINT_URL, and a malformed one is refused', () => {
    const saved = process.env['THREEPORT_AWS_ENDPOINT_URL'];
    try {
      process.env['THREEPORT_AWS_ENDPOINT_URL'] = moto.url;
      assert.equal(new AwsProvider({ decrypt: (c) => c }).endpoint, moto.url);
      process.env['THREEPORT_AWS_ENDPOINT_URL'] = 'moto:5000';
      assert.throws(() => new AwsProvider({ decrypt: (c) => c }), /AWS endpoint override must be a URL such as http:\/\/127\.0\.0\.1:5000, got "moto:5000"/);
    } finally {
      if (saved === undefined) delete process.env['THREEPORT_AWS_ENDPOINT_URL'];
      else process.env['THREEPORT_AWS_ENDPOINT_URL'] = saved;
    }
  });
});
