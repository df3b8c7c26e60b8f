// The AWS and secret controllers against real peers: PostgreSQL (store and reconcile queue), moto
// (every AWS call, through the real SDK), a local Kubernetes test cluster standing in for the EKS
// cluster (moto's endpoint is fake) and a local PostgreSQL standing in for RDS.
//
// One workload with an RDS database, an S3 bucket and a secret, on an EKS runtime in a fresh
// account: the runtime waits for its first workload (lazy provisioning), the cluster and the
// managed services are provisioned, the workload's resources land in the cluster (applied by a
// stand-in for the workload controller), the generated database credentials work, and deleting it
// all leaves nothing behind in moto. No credential appears in a log line or an event.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { GetRoleCommand } from '@aws-sdk/client-iam';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { startMoto, SKIP_AWS, type MotoServer } from '../harness/moto.js';
import { startKubeClusters, SKIP_KUBE, SKIP_KUBE_REASON, type KubeClusterSet } from '../harness/kube-cluster.js';
import { Settlements, eventsOf, eventually, startEnv, startRuntime, type Env } from '../reconcile/helpers.js';
import type { ReconcileRuntime } from '../../src/reconcile/runtime.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import type { Kind } from '../../src/kinds/declare.js';
import type { JsonObject } from '../../src/kinds/validate.js';
import {
  AwsAccount,
  AwsEksKubernetesRuntimeDefinition,
  AwsEksKubernetesRuntimeInstance,
  AwsObjectStorageBucketDefinition,
  AwsObjectStorageBucketInstance,
  AwsRelationalDatabaseDefinition,
  AwsRelationalDatabaseInstance,
} from '../../src/kinds/aws.js';
import { KubernetesRuntimeDefinition, KubernetesRuntimeInstance } from '../../src/kinds/kubernetes-runtime.js';
import { SecretDefinition, SecretInstance } from '../../src/kinds/secret.js';
import { WorkloadDefinition, WorkloadInstance, WorkloadResourceInstance } from '../../src/kinds/workload.js';
import { NotFoundError } from '../../src/errors.js';
import { AwsController } from '../../src/controllers/aws/index.js';
import { SecretController } from '../../src/controllers/secret/index.js';
import { KubernetesRuntimeController } from '../../src/controllers/kubernetes-runtime/index.js';
import { kubeClusterClient } from '../../src/providers/kube/client.js';
import { parseInventory } from '../../src/providers/aws/inventory.js';
import { added, capturingLogger, census, motoDefaultAccount, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, type Census } from '../aws/helpers.js';
import { LocalClusterResolver, LocalPostgresResolver, standInWorkloadReconciler } from '../aws/seams.js';
import { AwsProvider } from '../../src/providers/aws/provider.js';

const skip = SKIP_AWS ?? (SKIP_KUBE ? SKIP_KUBE_REASON : undefined);
const SECRET_VALUE = 'an-api-key-that-must-stay-secret-42';

async function create(store: ObjectStore, kind: Kind, fields: JsonObject): Promise<JsonObject> {
  return JSON.parse(await store.create(kind, fields)) as JsonObject;
}

async function get(store: ObjectStore, kind: Kind, id: number): Promise<JsonObject | undefined> {
  try {
    return await store.getObject(kind, id);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

function b64d(s: unknown): string {
  return Buffer.from(String(s), 'base64').toString('utf8');
}

describe('AWS controllers: a workload with RDS, S3 and a secret on a lazily provisioned EKS runtime', { skip }, () => {
  let moto: MotoServer;
  let env: Env;
  let clusters: KubeClusterSet;
  let runtime: ReconcileRuntime;
  let aws: AwsController;
  let kubeRuntimes: KubernetesRuntimeController;
  let workload: ReturnType<typeof standInWorkloadReconciler>;
  let dataDir: string;
  let baseline: Census;
  const logs = capturingLogger();
  const settlements = new Settlements();
  let observer: AwsProvider;

  before(async () => {
    moto = await startMoto();
    env = await startEnv();
    clusters = await startKubeClusters({ names: ['eks'], log: () => {} });
    dataDir = mkdtempSync(join(tmpdir(), 'threeport-aws-ctl-'));
    const providerOptions = {
      endpoint: moto.url,
      retry: { maxAttempts: 5, baseDelayMs: 5, maxDelayMs: 50 },
      baseCredentials: { accessKeyId: 'base-testing-key', secretAccessKey: 'base-testing-secret' },
    };
    aws = new AwsController({
      logger: logs.log,
      provider: providerOptions,
      connectionResolver: new LocalClusterResolver(clusters.get('eks')),
      databaseResolver: new LocalPostgresResolver(env.pg.url),
      lazyCheckIntervalMs: 200,
      waitPollMs: 200,
      eksPoll: { clusterMs: 200, nodeGroupMs: 200, natGatewayMs: 200, deleteMs: 200, iamPropagationMs: 200 },
    });
    const secrets = new SecretController({ deps: aws.deps });
    kubeRuntimes = new KubernetesRuntimeController({ dataDir, logger: logs.log });
    workload = standInWorkloadReconciler((c) => env.store.decrypt(c));
    runtime = await startRuntime(env, [...aws.reconcilers, ...secrets.reconcilers, ...kubeRuntimes.reconcilers, workload], settlements, {
      logger: logs.log,
    });
    // A separate provider (plain keys, same moto) to look at what exists.
    observer = new AwsProvider({ decrypt: (c) => c, endpoint: moto.url });
    baseline = await census(observer.session({ ID: 0, Name: 'observer', AccessKeyID: 'observer-key', SecretAccessKey: 'observer-secret', DefaultRegion: 'us-east-1' }));
  });

  after(async () => {
    await runtime?.stop().catch(() => undefined);
    await kubeRuntimes?.stop?.().catch(() => undefined);
    await clusters?.stopAll();
    await env?.close();
    await moto?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('provision on first use, deliver to the workload, delete to nothing', { timeout: 240_000 }, async () => {
    const store = env.store;
    const observe = observer.session({ ID: 0, Name: 'observer', AccessKeyID: 'observer-key', SecretAccessKey: 'observer-secret', DefaultRegion: 'us-east-1' });

    // A fresh account (static keys, encrypted by the store), and an EKS runtime.
    await create(store, AwsAccount, motoDefaultAccount());
    const krd = await create(store, KubernetesRuntimeDefinition, { Name: 'eks-runtime', InfraProvider: 'eks', NodeSize: 'Small' });
    const kri = await create(store, KubernetesRuntimeInstance, {
      Name: 'eks-runtime',
      Location: 'NorthAmerica:NewYork',
      KubernetesRuntimeDefinitionID: krd['ID'],
    });
    const kriId = kri['ID'] as number;

    // Nobody uses the runtime yet: recorded, not provisioned.
    const eks = await eventually(async () => {
      const [e] = await store.find(AwsEksKubernetesRuntimeInstance, { KubernetesRuntimeInstanceID: kriId });
      return e && parseInventory(e['ResourceInventory'])?.phase === 'deferred' ? e : undefined;
    }, 'the AwsEks instance to be deferred', 30_000);
    assert.match(String(eks['Status']), /^deferred: no workload uses KubernetesRuntimeInstance "eks-runtime"/);
    assert.equal(eks['Region'], 'us-east-1');
    const [eksDef] = await store.find(AwsEksKubernetesRuntimeDefinition, { KubernetesRuntimeDefinitionID: krd['ID'] as number });
    assert.equal(eksDef!['DefaultNodeGroupInstanceType'], 't3.small');
    assert.deepEqual(added(baseline, await census(observe)), {}, 'nothing exists in AWS yet');
    const deferredEvents = await eventsOf(env.db, 'AwsEksKubernetesRuntimeInstance', eks['ID'] as number);
    assert.ok(deferredEvents.some((e) => e['Reason'] === 'ProvisioningDeferred'));

    // The first workload triggers provisioning; its resources are what the workload controller would have made.
    const wd = await create(store, WorkloadDefinition, { Name: 'app', YAMLDocument: 'kind: Deployment' });
    const wi = await create(store, WorkloadInstance, { Name: 'app', WorkloadDefinitionID: wd['ID'], KubernetesRuntimeInstanceID: kriId });
    const wiId = wi['ID'] as number;
    const ns = 'app-x7k2p9q4mz';
    for (const def of [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'app-sa', namespace: ns } },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'app', namespace: ns },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'app' } },
          template: {
            metadata: { labels: { app: 'app' } },
            spec: { serviceAccountName: 'app-sa', containers: [{ name: 'app', image: 'example.com/app:1', env: [{ name: 'MODE', value: 'prod' }] }] },
          },
        },
      },
    ]) {
      await create(store, WorkloadResourceInstance, { JSONDefinition: def, WorkloadInstanceID: wiId, Reconciled: false });
    }
    const provisioned = await eventually(async () => {
      const r = await get(store, KubernetesRuntimeInstance, kriId);
      return r && r['Reconciled'] === true && r['APIEndpoint'] === clusters.get('eks').server ? r : undefined;
    }, 'the runtime to be provisioned and reachable', 120_000);
    assert.ok(provisioned['CACertificate']);
    const eksDone = (await get(store, AwsEksKubernetesRuntimeInstance, eks['ID'] as number))!;
    const inventory = parseInventory(eksDone['ResourceInventory'])!;
    assert.equal(inventory.phase, 'created');
    assert.equal(Object.keys(inventory.resources).length, 17);
    assert.ok(eksDone['CreationConfirmed']);
    assert.match(String(eksDone['Status']), /^created: EKS cluster tp-eks-runtime-\d+ in us-east-1$/);
    const grown = added(baseline, await census(observe));
    assert.equal(grown.eksClusters?.length, 1);
    assert.equal(grown.vpcs?.length, 1);
    await eventually(async () => ((await get(store, WorkloadInstance, wiId))?.['Reconciled'] === true ? true : undefined), 'the workload to be deployed');

    // Managed services attached to the workload.
    const rdsDef = await create(store, AwsRelationalDatabaseDefinition, {
      Name: 'app-db',
      Engine: 'postgres',
      EngineVersion: '16',
      DatabaseName: 'appdb',
      DatabasePort: 5432,
      MachineSize: 'XSmall',
      StorageGb: 20,
      WorkloadSecretName: 'app-db-conn',
      AwsAccountID: (await store.find(AwsAccount, { Name: 'default-account' }))[0]!['ID'],
    });
    const rds = await create(store, AwsRelationalDatabaseInstance, { Name: 'app-db', AwsRelationalDatabaseDefinitionID: rdsDef['ID'], WorkloadInstanceID: wiId });
    const s3Def = await create(store, AwsObjectStorageBucketDefinition, {
      Name: 'app-bucket',
      WorkloadServiceAccountName: 'app-sa',
      WorkloadBucketEnvVar: 'BUCKET_NAME',
      AwsAccountID: rdsDef['AwsAccountID'],
    });
    const s3 = await create(store, AwsObjectStorageBucketInstance, { Name: 'app-bucket', AwsObjectStorageBucketDefinitionID: s3Def['ID'], WorkloadInstanceID: wiId });
    const secretDef = await create(store, SecretDefinition, { Name: 'app-api-key', AwsAccountID: rdsDef['AwsAccountID'], Data: { 'api-key': SECRET_VALUE } });
    const secretInst = await create(store, SecretInstance, {
      Name: 'app-api-key',
      SecretDefinitionID: secretDef['ID'],
      WorkloadInstanceID: wiId,
      KubernetesRuntimeInstanceID: kriId,
    });
    for (const [kind, id] of [
      [AwsRelationalDatabaseInstance, rds['ID']],
      [AwsObjectStorageBucketInstance, s3['ID']],
      [SecretDefinition, secretDef['ID']],
      [SecretInstance, secretInst['ID']],
    ] as const) {
      await eventually(async () => ((await get(store, kind, id as number))?.['Reconciled'] === true ? true : undefined), `${kind.name} to be reconciled`, 60_000);
    }
    // The workload controller (stand-in) applies what they added.
    await eventually(async () => ((await get(store, WorkloadInstance, wiId))?.['Reconciled'] === true ? true : undefined), 'the workload to be reconciled again');

    const kube = kubeClusterClient(clusters.get('eks').connection('test cluster'));
    try {
      // RDS: the connection Secret, and credentials that work.
      const secret = await kube.get({ apiVersion: 'v1', kind: 'Secret', name: 'app-db-conn', namespace: ns });
      assert.ok(secret, 'the connection Secret is in the cluster');
      const data = secret['data'] as Record<string, string>;
      assert.deepEqual(Object.keys(data).sort(), ['db-endpoint', 'db-name', 'db-password', 'db-port', 'db-user']);
      assert.match(b64d(data['db-user']), /^[a-z]{12}$/);
      assert.match(b64d(data['db-password']), /^[A-Za-z0-9]{32}$/);
      assert.equal(b64d(data['db-name']), 'appdb');
      const conn = new pg.Client({
        host: b64d(data['db-endpoint']),
        port: Number(b64d(data['db-port'])),
        user: b64d(data['db-user']),
        password: b64d(data['db-password']),
        database: b64d(data['db-name']),
      });
      await conn.connect();
      assert.equal((await conn.query('SELECT current_user AS u')).rows[0].u, b64d(data['db-user']));
      await conn.end();
      const rdsDone = (await get(store, AwsRelationalDatabaseInstance, rds['ID'] as number))!;
      assert.deepEqual(Object.keys(parseInventory(rdsDone['ResourceInventory'])!.resources).sort(), ['db-instance', 'db-security-group', 'db-subnet-group']);
      assert.ok(!JSON.stringify(rdsDone).includes(b64d(data['db-password'])), 'the password is not in the inventory');

      // S3: bucket, IRSA role on the ServiceAccount, ConfigMap and env var.
      const s3Done = (await get(store, AwsObjectStorageBucketInstance, s3['ID'] as number))!;
      const s3Inv = parseInventory(s3Done['ResourceInventory'])!;
      const bucket = s3Inv.resources['bucket']!.id;
      await observe.s3.send(new HeadBucketCommand({ Bucket: bucket }));
      const role = await observe.iam.send(new GetRoleCommand({ RoleName: s3Inv.resources['s3-role']!.id }));
      assert.match(decodeURIComponent(role.Role!.AssumeRolePolicyDocument!), /sts:AssumeRoleWithWebIdentity[\s\S]*system:serviceaccount:\*:app-sa/);
      const sa = await kube.get({ apiVersion: 'v1', kind: 'ServiceAccount', name: 'app-sa', namespace: ns });
      assert.equal(sa?.metadata.annotations?.['eks.amazonaws.com/role-arn'], role.Role!.Arn);
      const deployment = await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'app', namespace: ns });
      const envVars = ((deployment?.['spec'] as any).template.spec.containers[0].env ?? []) as Array<{ name: string; value?: string; valueFrom?: any }>;
      assert.deepEqual(envVars[0], { name: 'MODE', value: 'prod' });
      const bucketEnv = envVars.find((e) => e.name === 'BUCKET_NAME');
      assert.ok(bucketEnv?.valueFrom?.configMapKeyRef, 'BUCKET_NAME comes from the ConfigMap');
      const cm = await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', name: bucketEnv.valueFrom.configMapKeyRef.name, namespace: ns });
      assert.match(cm!.metadata.name, /^app-s3-config-[a-z0-9]{6}$/);
      assert.equal((cm!['data'] as Record<string, string>)['BUCKET_NAME'], bucket);

      // Secret: in Secrets Manager, and delivered by the control plane into the workload's namespace.
      const value = await observe.secretsManager.send(new GetSecretValueCommand({ SecretId: 'app-api-key' }));
      assert.deepEqual(JSON.parse(value.SecretString!), { 'api-key': SECRET_VALUE });
      const delivered = await eventually(async () => kube.get({ apiVersion: 'v1', kind: 'Secret', name: 'app-api-key', namespace: ns }), 'the delivered Secret', 30_000);
      assert.equal(b64d((delivered['data'] as Record<string, string>)['api-key']), SECRET_VALUE);

      // The workload controller re-applies the Deployment as its definition says (without the env var):
      // the bucket wiring is another field manager's and survives.
      const [depWri] = (await store.find(WorkloadResourceInstance, { WorkloadInstanceID: wiId })).filter(
        (w) => (w['JSONDefinition'] as { kind?: string }).kind === 'Deployment',
      );
      assert.ok(!JSON.stringify(depWri!['JSONDefinition']).includes('BUCKET_NAME'), 'the WRI stays as the definition has it');
      await store.patch(WorkloadResourceInstance, depWri!['ID'] as number, { Reconciled: false });
      await store.patch(WorkloadInstance, wiId, { Reconciled: false });
      await eventually(async () => ((await get(store, WorkloadResourceInstance, depWri!['ID'] as number))?.['Reconciled'] === true ? true : undefined), 'the re-apply');
      const reapplied = await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'app', namespace: ns });
      const names = ((reapplied?.['spec'] as any).template.spec.containers[0].env as Array<{ name: string }>).map((e) => e.name);
      assert.deepEqual(names, ['MODE', 'BUCKET_NAME']);

      // Deleting the bucket withdraws the wiring from the workload's objects.
      await store.delete(AwsObjectStorageBucketInstance, s3['ID'] as number);
      await eventually(async () => ((await get(store, AwsObjectStorageBucketInstance, s3['ID'] as number)) ? undefined : true), 'the bucket instance to be deleted', 60_000);
      const unwired = await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'app', namespace: ns });
      assert.deepEqual(((unwired?.['spec'] as any).template.spec.containers[0].env as Array<{ name: string }>).map((e) => e.name), ['MODE']);
      const plainSa = await kube.get({ apiVersion: 'v1', kind: 'ServiceAccount', name: 'app-sa', namespace: ns });
      assert.equal(plainSa?.metadata.annotations?.['eks.amazonaws.com/role-arn'], undefined);
      await eventually(async () => ((await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', name: bucketEnv.valueFrom.configMapKeyRef.name, namespace: ns })) ? undefined : true), 'the ConfigMap to be removed');
    } finally {
      kube.close();
    }

    // Delete everything, dependencies first, as `tptctl delete` and the workload controller would.
    for (const [kind, id] of [
      [SecretInstance, secretInst['ID']],
      [SecretDefinition, secretDef['ID']],
      [AwsRelationalDatabaseInstance, rds['ID']],
    ] as const) {
      await store.delete(kind, id as number);
      await eventually(async () => ((await get(store, kind, id as number)) ? undefined : true), `${kind.name} ${String(id)} to be deleted`, 60_000);
    }
    await store.delete(WorkloadInstance, wiId);
    await eventually(async () => ((await get(store, WorkloadInstance, wiId)) ? undefined : true), 'the workload to be deleted', 60_000);
    await store.delete(KubernetesRuntimeInstance, kriId);
    await eventually(async () => ((await get(store, AwsEksKubernetesRuntimeInstance, eks['ID'] as number)) ? undefined : true), 'the EKS runtime to be deleted', 120_000);
    await eventually(async () => ((await get(store, KubernetesRuntimeInstance, kriId)) ? undefined : true), 'the runtime instance to be deleted', 60_000);
    await store.delete(KubernetesRuntimeDefinition, krd['ID'] as number);
    await eventually(async () => ((await get(store, KubernetesRuntimeDefinition, krd['ID'] as number)) ? undefined : true), 'the runtime definition to be deleted', 60_000);

    assert.deepEqual(added(baseline, await census(observe)), {}, 'nothing is left in AWS');

    // No credential, password or secret value in any log line or event.
    const password = (aws.deps.databaseResolver as LocalPostgresResolver).requests[0]!.password;
    const events = await env.db.query<{ t: string }>('SELECT data::text AS t FROM v0_events');
    const texts = [...logs.lines, ...events.rows.map((r) => r.t)];
    assert.ok(texts.length > 0);
    for (const text of texts) {
      for (const secret of [TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, password, SECRET_VALUE]) {
        assert.ok(!text.includes(secret), `a secret leaked into: ${text.slice(0, 300)}`);
      }
    }
    assert.ok(aws.provider!.stats.calls > 50, `AWS calls: ${aws.provider!.stats.calls}`);
  });
});
