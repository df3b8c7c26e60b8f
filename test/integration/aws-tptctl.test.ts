// The "done when", end to end: a workload with an RDS database and an S3 bucket, on an
// EKS runtime in a fresh AWS account, goes from `tptctl create workload -c …` to Healthy, and
// `tptctl delete` then leaves nothing behind in moto.
//
// A real control plane (`tptctl up`: API, every built-in controller, embedded PostgreSQL) runs
// against moto (THREEPORT_AWS_ENDPOINT_URL). moto's EKS endpoint and RDS endpoints are fake, so the
// AWS reconcilers run with their seams pointed at a local Kubernetes test cluster and a local
// PostgreSQL (test/aws/seamed-reconcilers.ts, loaded through THREEPORT_TEST_RECONCILERS).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startMoto, SKIP_AWS, type MotoServer } from '../harness/moto.js';
import { startKubeClusters, SKIP_KUBE, SKIP_KUBE_REASON, type KubeClusterSet } from '../harness/kube-cluster.js';
import { startTestPostgres, type TestPostgres } from '../harness/postgres.js';
import { TptctlHome, eventually } from '../e2e/tptctl-harness.js';
import { aws, kubernetesRuntime, workload } from '../../src/kinds/index.js';
import type { ThreeportClient } from '../../src/client/api-client.js';
import { AwsProvider } from '../../src/providers/aws/provider.js';
import { kubeClusterClient } from '../../src/providers/kube/client.js';
import { parseInventory } from '../../src/providers/aws/inventory.js';
import { added, census, MOTO_ACCOUNT_ID, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, type Census } from '../aws/helpers.js';

const skip = SKIP_AWS ?? (SKIP_KUBE ? SKIP_KUBE_REASON : undefined);
const SEAMED = fileURLToPath(new URL('../aws/seamed-reconcilers.js', import.meta.url));
const CP = 'aws-e2e';

function b64d(s: unknown): string {
  return Buffer.from(String(s), 'base64').toString('utf8');
}

describe('tptctl: a workload with RDS and S3 on an EKS runtime in a fresh account', { skip }, () => {
  let moto: MotoServer;
  let clusters: KubeClusterSet;
  let postgres: TestPostgres;
  let dir: string;
  let baseline: Census;
  let api: ThreeportClient;
  const t = new TptctlHome();
  const observe = () =>
    new AwsProvider({ decrypt: (c) => c, endpoint: moto.url }).session({ ID: 0, Name: 'observer', AccessKeyID: 'observer-key', SecretAccessKey: 'observer-secret', DefaultRegion: 'us-east-1' });

  before(async () => {
    moto = await startMoto();
    postgres = await startTestPostgres();
    clusters = await startKubeClusters({ names: ['eks'], log: () => {} });
    dir = mkdtempSync(join(tmpdir(), 'threeport-aws-e2e-'));
    const c = clusters.get('eks');
    writeFileSync(
      join(dir, 'seams.json'),
      JSON.stringify({ cluster: { server: c.server, caPem: c.caPem, clientCertPem: c.clientCertPem, clientKeyPem: c.clientKeyPem }, postgresUrl: postgres.url }),
    );
    writeFileSync(
      join(dir, 'aws-account.yaml'),
      `AwsAccount:\n  Name: default-account\n  AccountID: "${MOTO_ACCOUNT_ID}"\n  DefaultAccount: true\n  DefaultRegion: us-east-1\n  AccessKeyID: ${TEST_ACCESS_KEY_ID}\n  SecretAccessKey: ${TEST_SECRET_ACCESS_KEY}\n`,
    );
    writeFileSync(
      join(dir, 'runtime.yaml'),
      'KubernetesRuntime:\n  Name: eks-remote\n  InfraProvider: eks\n  InfraProviderAccountName: default-account\n  HighAvailability: false\n  Location: NorthAmerica:NewYork\n  DefaultRuntime: true\n',
    );
    writeFileSync(
      join(dir, 'shop-manifest.yaml'),
      [
        'apiVersion: v1',
        'kind: ServiceAccount',
        'metadata:',
        '  name: shop',
        '---',
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata:',
        '  name: shop',
        'spec:',
        '  replicas: 1',
        '  selector:',
        '    matchLabels: {app: shop}',
        '  template:',
        '    metadata:',
        '      labels: {app: shop}',
        '    spec:',
        '      serviceAccountName: shop',
        '      containers:',
        '        - name: shop',
        '          image: example.com/shop:1.0',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'workload.yaml'),
      [
        'Workload:',
        '  Name: shop',
        '  YAMLDocument: shop-manifest.yaml',
        '  KubernetesRuntimeInstance:',
        '    Name: eks-remote',
        '  AwsRelationalDatabase:',
        '    Name: shop-db',
        '    AwsAccountName: default-account',
        '    Engine: postgres',
        '    EngineVersion: "16"',
        '    DatabaseName: shop',
        '    DatabasePort: 5432',
        '    StorageGb: 20',
        '    MachineSize: XSmall',
        '    WorkloadSecretName: shop-db-conn',
        '  AwsObjectStorageBucket:',
        '    Name: shop-bucket',
        '    AwsAccountName: default-account',
        '    WorkloadServiceAccountName: shop',
        '    WorkloadBucketEnvVar: BUCKET_NAME',
        '',
      ].join('\n'),
    );
    baseline = await census(observe());
    const up = await t.run(['up', '-n', CP, '--port', '0', '--no-local-runtime'], {
      env: { THREEPORT_TEST_RECONCILERS: SEAMED, THREEPORT_TEST_AWS_SEAMS: join(dir, 'seams.json'), THREEPORT_AWS_ENDPOINT_URL: moto.url },
      timeoutMs: 120_000,
    });
    assert.equal(up.code, 0, `tptctl up failed: ${up.stderr}`);
    api = t.api(CP);
  });

  after(async () => {
    await t.cleanup();
    await clusters?.stopAll();
    await postgres?.stop();
    await moto?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('create → Healthy with its database and bucket; delete → nothing left in AWS', { timeout: 300_000 }, async () => {
    const tptctl = async (...args: string[]) => {
      const r = await t.run(args, { cwd: dir, timeoutMs: 240_000 });
      assert.equal(r.code, 0, `tptctl ${args.join(' ')}: ${r.stderr}`);
      return r;
    };
    await tptctl('create', 'aws-account', '-c', join(dir, 'aws-account.yaml'));
    await tptctl('create', 'kubernetes-runtime', '-c', join(dir, 'runtime.yaml'));
    const kri = await api.getByName(kubernetesRuntime.KubernetesRuntimeInstance, 'eks-remote');

    // Nothing uses the runtime yet: recorded, not provisioned.
    const deferred = await eventually(
      'the EKS runtime to be deferred',
      async () => {
        const [e] = (await api.listAll(aws.AwsEksKubernetesRuntimeInstance, {})).filter((x) => x.KubernetesRuntimeInstanceID === kri.ID);
        return e && parseInventory(e.ResourceInventory)?.phase === 'deferred' ? e : undefined;
      },
      60_000,
    );
    assert.match(String(deferred.Status), /^deferred:/);
    assert.deepEqual(added(baseline, await census(observe())), {});

    const created = await tptctl('create', 'workload', '-c', join(dir, 'workload.yaml'));
    assert.match(created.stdout, /WorkloadInstance "shop" created/);
    assert.match(created.stdout, /AwsRelationalDatabaseInstance "shop-db" created/);
    assert.match(created.stdout, /AwsObjectStorageBucketInstance "shop-bucket" created/);

    const wi = await eventually(
      'the workload to be Healthy with its database and bucket wired in',
      async () => {
        const w = await api.getByName(workload.WorkloadInstance, 'shop');
        if (w.Status !== 'Healthy') return undefined;
        const db = await api.getByName(aws.AwsRelationalDatabaseInstance, 'shop-db');
        const bucket = await api.getByName(aws.AwsObjectStorageBucketInstance, 'shop-bucket');
        return db.Reconciled === true && bucket.Reconciled === true && w.Reconciled === true ? w : undefined;
      },
      240_000,
    );
    const grown = added(baseline, await census(observe()));
    assert.equal(grown.eksClusters?.length, 1);
    assert.equal(grown.rdsInstances?.length, 1);
    assert.equal(grown.s3Buckets?.length, 1);

    // In the cluster: the connection Secret (its credentials log in), the IRSA annotation, the env var.
    const wris = await api.listAll(workload.WorkloadResourceInstance, { WorkloadInstanceID: wi.ID });
    const nsWri = wris.find((w) => (w.JSONDefinition as { kind?: string }).kind === 'Namespace');
    const ns = (nsWri!.JSONDefinition as { metadata: { name: string } }).metadata.name;
    const kube = kubeClusterClient(clusters.get('eks').connection('test cluster'));
    try {
      const secret = await eventually('the connection Secret', () => kube.get({ apiVersion: 'v1', kind: 'Secret', name: 'shop-db-conn', namespace: ns }));
      const data = secret['data'] as Record<string, string>;
      const conn = new pg.Client({
        host: b64d(data['db-endpoint']),
        port: Number(b64d(data['db-port'])),
        user: b64d(data['db-user']),
        password: b64d(data['db-password']),
        database: b64d(data['db-name']),
      });
      await conn.connect();
      await conn.end();
      const sa = await kube.get({ apiVersion: 'v1', kind: 'ServiceAccount', name: 'shop', namespace: ns });
      assert.match(String(sa?.metadata.annotations?.['eks.amazonaws.com/role-arn']), /^arn:aws:iam::123456789012:role\/tp-shop-bucket-\d+-s3$/);
      const deployment = await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'shop', namespace: ns });
      const env = (deployment?.['spec'] as any).template.spec.containers[0].env as Array<{ name: string }>;
      assert.deepEqual(env.map((e) => e.name), ['BUCKET_NAME']);
    } finally {
      kube.close();
    }

    // Delete: the workload takes its database and bucket with it; then the runtime and the account.
    await tptctl('delete', 'workload', '-c', join(dir, 'workload.yaml'));
    await tptctl('delete', 'kubernetes-runtime', '-c', join(dir, 'runtime.yaml'));
    await eventually(
      'the EKS runtime to be gone',
      async () => ((await api.listAll(aws.AwsEksKubernetesRuntimeInstance, {})).length === 0 ? true : undefined),
      120_000,
    );
    await tptctl('delete', 'aws-account', '-c', join(dir, 'aws-account.yaml'));
    assert.deepEqual(added(baseline, await census(observe())), {}, 'nothing is left in AWS');
  });
});
