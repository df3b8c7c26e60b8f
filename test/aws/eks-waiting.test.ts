// Waiting without waiting: EKS takes minutes to create a cluster and a node group; moto answers
// ACTIVE at once. A response-rewriting middleware (the provider's `instrument` seam) makes moto's
// cluster CREATING for 10 minutes and its node group for 5 by the test's clock, and the reconcile
// runtime's controllable clock makes each 30 s requeue pass at once. The connection token is
// signed at clock time and refreshed when it nears expiry.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { InitializeHandler, MetadataBearer } from '@smithy/types';
import { startMoto, SKIP_AWS, type MotoServer } from '../harness/moto.js';
import { Settlements, eventually, startEnv, startRuntime, type Env } from '../reconcile/helpers.js';
import { ControllableClock } from '../../src/reconcile/clock.js';
import type { ReconcileRuntime } from '../../src/reconcile/runtime.js';
import { AwsAccount, AwsEksKubernetesRuntimeDefinition, AwsEksKubernetesRuntimeInstance } from '../../src/kinds/aws.js';
import { KubernetesRuntimeDefinition, KubernetesRuntimeInstance } from '../../src/kinds/kubernetes-runtime.js';
import type { JsonObject } from '../../src/kinds/validate.js';
import { AwsController } from '../../src/controllers/aws/index.js';
import { decodeEksToken } from '../../src/providers/aws/eks-token.js';
import { parseInventory } from '../../src/providers/aws/inventory.js';
import { MOTO_ACCOUNT_ID, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from './helpers.js';

const skip = SKIP_AWS;
const CLUSTER_CREATE_MS = 10 * 60_000;
const NODEGROUP_CREATE_MS = 5 * 60_000;

describe('EKS waits are requeues on a controllable clock', { skip }, () => {
  let moto: MotoServer;
  let env: Env;
  let runtime: ReconcileRuntime;
  const clock = new ControllableClock();
  const settlements = new Settlements();
  const firstSeen = new Map<string, number>();
  let aws: AwsController;

  before(async () => {
    moto = await startMoto();
    env = await startEnv();
    aws = new AwsController({
      provider: {
        endpoint: moto.url,
        retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
        now: () => clock.now(),
        // EKS as it really behaves: CREATING for a while after the create call.
        instrument: (client, service) => {
          if (service !== 'eks') return;
          client.middlewareStack.add(
            (next: InitializeHandler<any, MetadataBearer>, context: any) => async (args: any) => {
              const out = await next(args);
              const o = out.output as { cluster?: { name?: string; status?: string }; nodegroup?: { nodegroupName?: string; status?: string } };
              const rewrite = (key: string, thing: { status?: string } | undefined, takes: number): void => {
                if (!thing || thing.status !== 'ACTIVE') return;
                if (!firstSeen.has(key)) firstSeen.set(key, clock.now());
                if (clock.now() - firstSeen.get(key)! < takes) thing.status = 'CREATING';
              };
              if (/Cluster/.test(context.commandName)) rewrite(`cluster/${o.cluster?.name}`, o.cluster, CLUSTER_CREATE_MS);
              if (/Nodegroup/.test(context.commandName)) rewrite(`nodegroup/${o.nodegroup?.nodegroupName}`, o.nodegroup, NODEGROUP_CREATE_MS);
              return out;
            },
            { step: 'initialize', name: 'testEksCreating' },
          );
        },
      },
      lazyProvisioning: false,
    });
    runtime = await startRuntime(env, aws.reconcilers, settlements, { clock });
  });
  after(async () => {
    await runtime?.stop();
    await env?.close();
    await moto?.stop();
  });

  test('the cluster and node group are polled every 30 s of clock time until ACTIVE; the token is signed at clock time', async () => {
    const store = env.store;
    const create = async (kind: Parameters<typeof store.create>[0], fields: JsonObject) => JSON.parse(await store.create(kind, fields)) as JsonObject;
    const account = await create(AwsAccount, {
      Name: 'acct',
      AccountID: MOTO_ACCOUNT_ID,
      DefaultRegion: 'us-east-1',
      AccessKeyID: TEST_ACCESS_KEY_ID,
      SecretAccessKey: TEST_SECRET_ACCESS_KEY,
    });
    const krd = await create(KubernetesRuntimeDefinition, { Name: 'rt', InfraProvider: 'eks', Reconciled: true });
    const kri = await create(KubernetesRuntimeInstance, { Name: 'rt', Location: 'NorthAmerica:Chicago', KubernetesRuntimeDefinitionID: krd['ID'], Reconciled: true });
    const def = await create(AwsEksKubernetesRuntimeDefinition, {
      Name: 'rt',
      AWSAccountID: account['ID'],
      ZoneCount: 3,
      DefaultNodeGroupInstanceType: 'm7i.large',
      DefaultNodeGroupInitialSize: 2,
      DefaultNodeGroupMinimumSize: 0,
      DefaultNodeGroupMaximumSize: 250,
      KubernetesRuntimeDefinitionID: krd['ID'],
    });
    const eks = await create(AwsEksKubernetesRuntimeInstance, {
      Name: 'rt',
      AwsEksKubernetesRuntimeDefinitionID: def['ID'],
      KubernetesRuntimeInstanceID: kri['ID'],
    });
    const id = eks['ID'] as number;

    const requeues = (): number => settlements.of(id).filter((s) => s.outcome === 'requeued').length;
    await settlements.until(() => requeues() === 1, 'the first requeue');
    const waiting = await store.getObject(AwsEksKubernetesRuntimeInstance, id);
    assert.match(String(waiting['Status']), /^creating: waiting for EKS cluster tp-rt-\d+ to become ACTIVE \(CREATING\)$/);
    assert.equal(settlements.of(id).at(-1)!.delayMs, 30_000);
    assert.equal(parseInventory(waiting['ResourceInventory'])!.region, 'us-east-2', 'Region from the runtime Location (Chicago)');

    // Move the clock 30 s at a time; each step makes one requeue due (bounded loop).
    for (let i = 0; i < 40; i++) {
      const o = await store.getObject(AwsEksKubernetesRuntimeInstance, id);
      if (o['Reconciled'] === true) break;
      const before = settlements.of(id).length;
      clock.advance(30_000);
      await settlements.until(() => settlements.of(id).length > before, `reconcile after advance ${i + 1}`);
    }
    const done = await store.getObject(AwsEksKubernetesRuntimeInstance, id);
    assert.equal(done['Reconciled'], true);
    // 10 minutes of cluster creation and 5 of node group creation, at 30 s per look.
    assert.equal(requeues(), 20 + 10);
    const created = Date.parse(String(done['CreationConfirmed']));
    assert.ok(created - Date.now() >= 14 * 60_000, 'confirmed at clock time, 15 minutes ahead of the wall clock');

    // The connection on the runtime: moto's endpoint and a token signed at clock time.
    const runtimeObj = await store.getObject(KubernetesRuntimeInstance, kri['ID'] as number);
    assert.match(String(runtimeObj['APIEndpoint']), /^https:\/\/.+\.eks\.amazonaws\.com$/);
    assert.equal(runtimeObj['Reconciled'], false, 'PATCHed Reconciled:false so the runtime controller reconciles it');
    const token = store.decrypt(String(runtimeObj['ConnectionToken']));
    assert.match(token, /^k8s-aws-v1\./);
    const signedAt = decodeEksToken(token).searchParams.get('X-Amz-Date')!;
    const expiry = Date.parse(String(runtimeObj['ConnectionTokenExpiration']));
    const signedMs = Date.parse(signedAt.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
    // X-Amz-Date has whole seconds.
    assert.equal(Math.floor((expiry - signedMs) / 1000), 14 * 60);

    // 12 minutes later the token is within 3 minutes of expiry: the next reconcile (a resync) refreshes it.
    clock.advance(12 * 60_000);
    await store.patch(AwsEksKubernetesRuntimeInstance, id, { Reconciled: false });
    await eventually(async () => {
      const r = await store.getObject(KubernetesRuntimeInstance, kri['ID'] as number);
      return Date.parse(String(r['ConnectionTokenExpiration'])) > expiry ? r : undefined;
    }, 'a refreshed token');
    assert.equal(aws.provider!.stats.byOperation.get('eks:CreateCluster'), 1, 'one cluster, however many looks');

    // Between resyncs, the controller's token check renews tokens that would expire before its next look.
    const current = await store.getObject(KubernetesRuntimeInstance, kri['ID'] as number);
    const currentExpiry = Date.parse(String(current['ConnectionTokenExpiration']));
    assert.equal(await aws.refreshDueTokens(store, currentExpiry - 10 * 60_000), 0, 'not due 10 minutes before expiry');
    assert.equal(await aws.refreshDueTokens(store, currentExpiry - 3 * 60_000), 1, 'due within the margin plus one check interval');
    const renewed = await store.getObject(KubernetesRuntimeInstance, kri['ID'] as number);
    assert.ok(Date.parse(String(renewed['ConnectionTokenExpiration'])) > currentExpiry);
  });
});
