// Bad input to the AWS kinds gets a 400 with a precise message and changes
// nothing (the list; account credential styles and the second default
// account are covered in test/api/api.test.ts).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { call, startTestApi, type TestApi } from '../harness/api-server.js';

describe('AWS kinds reject bad input', () => {
  let api: TestApi;
  let accountId: number;
  let runtimeDefinitionId: number;

  before(async () => {
    api = await startTestApi('embedded');
    const account = await call(api, 'POST', '/v0/aws-accounts', {
      Name: 'acct',
      AccountID: '123456789012',
      DefaultRegion: 'us-east-1',
      RoleArn: 'arn:aws:iam::123456789012:role/threeport',
    });
    assert.equal(account.status, 201, account.text);
    accountId = account.body.Data![0]!['ID'] as number;
    const krd = await call(api, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'eks-def', InfraProvider: 'eks', Reconciled: true });
    assert.equal(krd.status, 201, krd.text);
    runtimeDefinitionId = krd.body.Data![0]!['ID'] as number;
  });
  after(async () => {
    await api?.stop();
  });

  async function rejects(path: string, body: Record<string, unknown>, message: RegExp | string): Promise<void> {
    const before = await call(api, 'GET', path);
    const res = await call(api, 'POST', path, body);
    assert.equal(res.status, 400, `${path} ${JSON.stringify(body)} → ${res.text}`);
    if (typeof message === 'string') assert.equal(res.body.Status.error, message);
    else assert.match(res.body.Status.error, message);
    const after = await call(api, 'GET', path);
    assert.equal(after.body.Meta.TotalCount, before.body.Meta.TotalCount, 'nothing was created');
  }

  test('invalid locations and regions', async () => {
    await rejects(
      '/v0/kubernetes-runtime-instances',
      { Name: 'x', Location: 'Mars:Olympus', KubernetesRuntimeDefinitionID: runtimeDefinitionId },
      /field KubernetesRuntimeInstance\.Location has invalid value "Mars:Olympus": must be one of Local, NorthAmerica:NewYork/,
    );
    await rejects(
      '/v0/aws-eks-kubernetes-runtime-instances',
      { Name: 'x', Region: 'moon-1', AwsEksKubernetesRuntimeDefinitionID: 1, KubernetesRuntimeInstanceID: 1 },
      /field AwsEksKubernetesRuntimeInstance\.Region has invalid value "moon-1": must be one of us-east-1/,
    );
  });

  test('EKS definitions: zone count, node group sizes and instance type', async () => {
    const base = {
      Name: 'eks',
      AWSAccountID: accountId,
      ZoneCount: 2,
      DefaultNodeGroupInstanceType: 't3.medium',
      DefaultNodeGroupInitialSize: 2,
      DefaultNodeGroupMinimumSize: 0,
      DefaultNodeGroupMaximumSize: 5,
      KubernetesRuntimeDefinitionID: runtimeDefinitionId,
    };
    const path = '/v0/aws-eks-kubernetes-runtime-definitions';
    await rejects(path, { ...base, ZoneCount: 7 }, 'AwsEksKubernetesRuntimeDefinition.ZoneCount must be from 1 to 4, got 7');
    await rejects(path, { ...base, ZoneCount: 0 }, 'AwsEksKubernetesRuntimeDefinition.ZoneCount must be from 1 to 4, got 0');
    await rejects(
      path,
      { ...base, DefaultNodeGroupInitialSize: 9 },
      'AwsEksKubernetesRuntimeDefinition node group sizes must satisfy DefaultNodeGroupMinimumSize <= DefaultNodeGroupInitialSize <= DefaultNodeGroupMaximumSize, got 0 <= 9 <= 5',
    );
    await rejects(path, { ...base, DefaultNodeGroupMaximumSize: 0, DefaultNodeGroupInitialSize: 0 }, 'AwsEksKubernetesRuntimeDefinition.DefaultNodeGroupMaximumSize must be from 1 to 1000, got 0');
    await rejects(
      path,
      { ...base, DefaultNodeGroupInstanceType: 'Medium' },
      'AwsEksKubernetesRuntimeDefinition.DefaultNodeGroupInstanceType must be an EC2 instance type such as t3.medium, got "Medium"',
    );
    await rejects(path, { ...base, KubernetesRuntimeDefinitionID: undefined }, /Missing required field\(s\) : KubernetesRuntimeDefinitionID/);
    const ok = await call(api, 'POST', path, base);
    assert.equal(ok.status, 201, ok.text);
    const badPatch = await call(api, 'PATCH', `${path}/${ok.body.Data![0]!['ID']}`, { DefaultNodeGroupMinimumSize: 6 });
    assert.equal(badPatch.status, 400);
    assert.match(badPatch.body.Status.error, /got 6 <= 2 <= 5/);
  });

  test('RDS definitions: engines, engine versions, machine sizes, ports, storage, names', async () => {
    const base = {
      Name: 'db',
      Engine: 'postgres',
      EngineVersion: '16',
      DatabaseName: 'app',
      DatabasePort: 5432,
      MachineSize: 'XSmall',
      StorageGb: 20,
      WorkloadSecretName: 'app-db-conn',
      AwsAccountID: accountId,
    };
    const path = '/v0/aws-relational-database-definitions';
    await rejects(path, { ...base, Engine: 'oracle' }, /field AwsRelationalDatabaseDefinition\.Engine has invalid value "oracle": must be one of mysql, postgres, mariadb/);
    await rejects(
      path,
      { ...base, EngineVersion: '9.6' },
      'AwsRelationalDatabaseDefinition.EngineVersion "9.6" is not supported for Engine postgres: must be one of 12, 13, 14, 15, 16 (or a minor release of one)',
    );
    await rejects(
      path,
      { ...base, Engine: 'mariadb', EngineVersion: '16' },
      'AwsRelationalDatabaseDefinition.EngineVersion "16" is not supported for Engine mariadb: must be one of 10.4, 10.5, 10.6, 10.11, 11.4 (or a minor release of one)',
    );
    await rejects(path, { ...base, MachineSize: 'Huge' }, /field AwsRelationalDatabaseDefinition\.MachineSize has invalid value "Huge": must be one of XSmall, Small, Medium, Large, XLarge/);
    await rejects(path, { ...base, DatabasePort: 80 }, 'AwsRelationalDatabaseDefinition.DatabasePort must be from 1150 to 65535, got 80');
    await rejects(path, { ...base, StorageGb: 5 }, 'AwsRelationalDatabaseDefinition.StorageGb must be from 20 to 65536, got 5');
    await rejects(path, { ...base, BackupDays: 90 }, 'AwsRelationalDatabaseDefinition.BackupDays must be from 0 to 35, got 90');
    await rejects(
      path,
      { ...base, DatabaseName: 'my-db' },
      'AwsRelationalDatabaseDefinition.DatabaseName must start with a letter and hold only letters, digits and underscores (at most 63), got "my-db"',
    );
    await rejects(
      path,
      { ...base, WorkloadSecretName: 'Conn_Secret' },
      `AwsRelationalDatabaseDefinition.WorkloadSecretName must be a Kubernetes object name (lower-case letters, digits, '-' and '.'), got "Conn_Secret"`,
    );
    const ok = await call(api, 'POST', path, base);
    assert.equal(ok.status, 201, ok.text);
    const minor = await call(api, 'POST', path, { ...base, Name: 'db-minor', EngineVersion: '16.3' });
    assert.equal(minor.status, 201, minor.text);
  });

  test('S3 definitions: ServiceAccount and env var names', async () => {
    const base = { Name: 'bucket', WorkloadServiceAccountName: 'app', WorkloadBucketEnvVar: 'BUCKET', AwsAccountID: accountId };
    const path = '/v0/aws-object-storage-bucket-definitions';
    await rejects(
      path,
      { ...base, WorkloadBucketEnvVar: '1BUCKET-NAME' },
      `AwsObjectStorageBucketDefinition.WorkloadBucketEnvVar must be an environment variable name (letters, digits and '_', not starting with a digit), got "1BUCKET-NAME"`,
    );
    await rejects(
      path,
      { ...base, WorkloadServiceAccountName: 'App SA' },
      `AwsObjectStorageBucketDefinition.WorkloadServiceAccountName must be a Kubernetes object name (lower-case letters, digits, '-' and '.'), got "App SA"`,
    );
    const ok = await call(api, 'POST', path, base);
    assert.equal(ok.status, 201, ok.text);
  });
});
