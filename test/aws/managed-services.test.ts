// RDS and Secrets Manager reconcilers against moto and PostgreSQL, on an EKS runtime whose
// inventory was built beforehand: lost credentials are replaced with a password reset, a runtime
// that is not EKS is a terminal error, and a foreign secret is neither overwritten nor deleted.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CreateSecretCommand, GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { startMoto, SKIP_AWS, type MotoServer } from '../harness/moto.js';
import { Settlements, eventsOf, eventually, resetData, startEnv, startRuntime, type Env } from '../reconcile/helpers.js';
import type { ReconcileRuntime } from '../../src/reconcile/runtime.js';
import type { ObjectStore } from '../../src/store/object-store.js';
import type { Kind } from '../../src/kinds/declare.js';
import type { JsonObject } from '../../src/kinds/validate.js';
import {
  AwsAccount,
  AwsEksKubernetesRuntimeDefinition,
  AwsEksKubernetesRuntimeInstance,
  AwsRelationalDatabaseDefinition,
  AwsRelationalDatabaseInstance,
} from '../../src/kinds/aws.js';
import { KubernetesRuntimeDefinition, KubernetesRuntimeInstance } from '../../src/kinds/kubernetes-runtime.js';
import { SecretDefinition } from '../../src/kinds/secret.js';
import { WorkloadDefinition, WorkloadInstance, WorkloadResourceInstance } from '../../src/kinds/workload.js';
import { AwsController } from '../../src/controllers/aws/index.js';
import { SecretController } from '../../src/controllers/secret/index.js';
import { provisionEks, runtimeNetwork } from '../../src/providers/aws/eks.js';
import { provisionDatabase } from '../../src/providers/aws/rds.js';
import { parseInventory } from '../../src/providers/aws/inventory.js';
import { stackName } from '../../src/providers/aws/tags.js';
import { motoDefaultAccount } from './helpers.js';
import { LocalPostgresResolver } from './seams.js';

const skip = SKIP_AWS;

async function create(store: ObjectStore, kind: Kind, fields: JsonObject): Promise<JsonObject> {
  return JSON.parse(await store.create(kind, fields)) as JsonObject;
}

function secretWri(wris: JsonObject[]): JsonObject | undefined {
  return wris.find((w) => (w['JSONDefinition'] as { kind?: string }).kind === 'Secret');
}

function password(wri: JsonObject): string {
  const data = (wri['JSONDefinition'] as { data: Record<string, string> }).data;
  return Buffer.from(data['db-password']!, 'base64').toString('utf8');
}

describe('RDS and Secrets Manager reconcilers', { skip }, () => {
  let moto: MotoServer;
  let env: Env;
  let runtime: ReconcileRuntime;
  let aws: AwsController;
  const settlements = new Settlements();
  let accountId: number;

  before(async () => {
    moto = await startMoto();
    env = await startEnv();
    aws = new AwsController({
      provider: { endpoint: moto.url, retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 } },
      databaseResolver: new LocalPostgresResolver(env.pg.url),
      waitPollMs: 100,
      lazyProvisioning: false,
    });
    const secrets = new SecretController({ deps: aws.deps });
    // Only the RDS and secret reconcilers: the runtime below is built by hand.
    runtime = await startRuntime(env, [aws.reconcilers[1]!, ...secrets.reconcilers], settlements);
  });
  after(async () => {
    await runtime?.stop();
    await aws?.stop();
    await env?.close();
    await moto?.stop();
  });
  beforeEach(async () => {
    await moto.reset();
    await resetData(env.db);
    const account = await create(env.store, AwsAccount, motoDefaultAccount('us-east-1', 'acct'));
    accountId = account['ID'] as number;
  });

  /** A workload on an EKS runtime whose stack exists in moto (built directly, not by the reconciler). */
  async function workloadOnEks(infraProvider = 'eks'): Promise<{ wiId: number }> {
    const store = env.store;
    const krd = await create(store, KubernetesRuntimeDefinition, { Name: 'rt', InfraProvider: infraProvider, Reconciled: true });
    const kri = await create(store, KubernetesRuntimeInstance, { Name: 'rt', Location: 'Local', KubernetesRuntimeDefinitionID: krd['ID'], Reconciled: true });
    if (infraProvider === 'eks') {
      const def = await create(store, AwsEksKubernetesRuntimeDefinition, {
        Name: 'rt',
        AWSAccountID: accountId,
        ZoneCount: 2,
        DefaultNodeGroupInstanceType: 't3.medium',
        DefaultNodeGroupInitialSize: 1,
        DefaultNodeGroupMinimumSize: 0,
        DefaultNodeGroupMaximumSize: 3,
        KubernetesRuntimeDefinitionID: krd['ID'],
      });
      const eks = await create(store, AwsEksKubernetesRuntimeInstance, {
        Name: 'rt',
        AwsEksKubernetesRuntimeDefinitionID: def['ID'],
        KubernetesRuntimeInstanceID: kri['ID'],
        Reconciled: true,
      });
      const session = aws.deps.provider(store).session((await store.getObject(AwsAccount, accountId)) as never, 'us-east-1');
      const spec = { zoneCount: 2, instanceType: 't3.medium', initialSize: 1, minSize: 0, maxSize: 3 };
      const built = await provisionEks({ session, stack: stackName('rt', eks['ID'] as number), spec, save: async () => {} });
      assert.equal(built.done, true);
      await store.patch(AwsEksKubernetesRuntimeInstance, eks['ID'] as number, { ResourceInventory: built.inventory as unknown as JsonObject }, { enqueue: false });
    }
    const wd = await create(store, WorkloadDefinition, { Name: 'app', YAMLDocument: 'kind: Deployment', Reconciled: true });
    const wi = await create(store, WorkloadInstance, { Name: 'app', WorkloadDefinitionID: wd['ID'], KubernetesRuntimeInstanceID: kri['ID'], Reconciled: true });
    return { wiId: wi['ID'] as number };
  }

  async function database(wiId: number): Promise<number> {
    const def = await create(env.store, AwsRelationalDatabaseDefinition, {
      Name: `db-${wiId}`,
      Engine: 'mysql',
      EngineVersion: '8.0',
      DatabaseName: 'shop',
      DatabasePort: 3306,
      MachineSize: 'Small',
      StorageGb: 20,
      WorkloadSecretName: 'shop-db',
      AwsAccountID: accountId,
    });
    const rds = await create(env.store, AwsRelationalDatabaseInstance, { Name: `db-${wiId}`, AwsRelationalDatabaseDefinitionID: def['ID'], WorkloadInstanceID: wiId });
    return rds['ID'] as number;
  }

  test('generated credentials live in the Secret WRI; when it is lost, the password is reset', async () => {
    const store = env.store;
    const { wiId } = await workloadOnEks();
    const rdsId = await database(wiId);
    await eventually(async () => ((await store.getObject(AwsRelationalDatabaseInstance, rdsId))['Reconciled'] === true ? true : undefined), 'RDS reconciled', 30_000);
    const first = secretWri(await store.find(WorkloadResourceInstance, { WorkloadInstanceID: wiId }))!;
    assert.equal(first['Reconciled'], false, 'left for the workload controller to apply');
    assert.equal((await store.getObject(WorkloadInstance, wiId))['Reconciled'], false, 'the workload was re-triggered');
    const firstPassword = password(first);
    assert.match(firstPassword, /^[A-Za-z0-9]{32}$/);
    assert.equal(aws.provider!.stats.byOperation.get('rds:ModifyDBInstance') ?? 0, 0);
    const rds = await store.getObject(AwsRelationalDatabaseInstance, rdsId);
    assert.match(String(rds['Status']), /^created: mysql 8\.0 instance tp-db-\d+-\d+; connection Secret shop-db$/);

    // The Secret WRI is lost: new credentials, set on the existing instance.
    await store.softDelete(WorkloadResourceInstance, first['ID'] as number);
    await store.patch(AwsRelationalDatabaseInstance, rdsId, { Reconciled: false });
    const second = await eventually(async () => secretWri(await store.find(WorkloadResourceInstance, { WorkloadInstanceID: wiId })), 'a new Secret WRI');
    await eventually(async () => ((await store.getObject(AwsRelationalDatabaseInstance, rdsId))['Reconciled'] === true ? true : undefined), 'RDS reconciled again');
    const again = secretWri(await store.find(WorkloadResourceInstance, { WorkloadInstanceID: wiId }))!;
    assert.notEqual(password(again), firstPassword);
    assert.equal(again['ID'], second['ID']);
    assert.equal(aws.provider!.stats.byOperation.get('rds:ModifyDBInstance'), 1);
    assert.equal(aws.provider!.stats.byOperation.get('rds:CreateDBInstance'), 1, 'one instance');

    // A resync with nothing changed writes nothing and re-triggers nothing.
    await store.patch(WorkloadInstance, wiId, { Reconciled: true }, { enqueue: false });
    const wriBefore = JSON.stringify(again);
    await store.patch(AwsRelationalDatabaseInstance, rdsId, { Reconciled: false });
    await eventually(async () => ((await store.getObject(AwsRelationalDatabaseInstance, rdsId))['Reconciled'] === true ? true : undefined), 'RDS reconciled once more');
    assert.equal(JSON.stringify(secretWri(await store.find(WorkloadResourceInstance, { WorkloadInstanceID: wiId }))), wriBefore);
    assert.equal((await store.getObject(WorkloadInstance, wiId))['Reconciled'], true);

    // Delete: the Secret WRI is scheduled for deletion and the stack goes.
    await store.delete(AwsRelationalDatabaseInstance, rdsId);
    await eventually(async () => ((await store.find(AwsRelationalDatabaseInstance, {})).length === 0 ? true : undefined), 'RDS deleted', 30_000);
    const gone = secretWri(await store.find(WorkloadResourceInstance, { WorkloadInstanceID: wiId }))!;
    assert.ok(gone['ScheduledForDeletion']);
  });

  test('a database created by a process that crashed before writing the Secret gets new credentials', async () => {
    const store = env.store;
    const { wiId } = await workloadOnEks();
    const def = await create(store, AwsRelationalDatabaseDefinition, {
      Name: 'crashed',
      Engine: 'postgres',
      EngineVersion: '15.4',
      DatabaseName: 'orders',
      DatabasePort: 5432,
      MachineSize: 'XSmall',
      StorageGb: 20,
      WorkloadSecretName: 'orders-db',
      AwsAccountID: accountId,
    });
    // Held back from the controller while "another process" builds the stack and dies.
    const rds = await create(store, AwsRelationalDatabaseInstance, { Name: 'crashed', AwsRelationalDatabaseDefinitionID: def['ID'], WorkloadInstanceID: wiId, Reconciled: true });
    const rdsId = rds['ID'] as number;
    const [eks] = await store.find(AwsEksKubernetesRuntimeInstance, {});
    const network = runtimeNetwork(parseInventory(eks!['ResourceInventory']))!;
    const session = aws.deps.provider(store).session((await store.getObject(AwsAccount, accountId)) as never, 'us-east-1');
    const lost = { username: 'lostuserabcd', password: 'LostPassword0123456789abcdefABCD' };
    const built = await provisionDatabase({
      session,
      stack: stackName('crashed', rdsId),
      network,
      db: { engine: 'postgres', engineVersion: '15.4', databaseName: 'orders', port: 5432, backupDays: 0, instanceClass: 'db.t3.micro', storageGb: 20 },
      credentials: lost,
      credentialsLabel: 'the-process-that-crashed',
      save: async () => {},
    });
    assert.equal(built.done, true);
    await store.patch(AwsRelationalDatabaseInstance, rdsId, { ResourceInventory: built.inventory as unknown as JsonObject }, { enqueue: false });
    const modifies = aws.provider!.stats.byOperation.get('rds:ModifyDBInstance') ?? 0;

    await store.patch(AwsRelationalDatabaseInstance, rdsId, { Reconciled: false });
    await eventually(async () => ((await store.getObject(AwsRelationalDatabaseInstance, rdsId))['Reconciled'] === true ? true : undefined), 'RDS reconciled', 30_000);
    const wri = secretWri(await store.find(WorkloadResourceInstance, { WorkloadInstanceID: wiId }))!;
    const data = (wri['JSONDefinition'] as { data: Record<string, string> }).data;
    assert.notEqual(password(wri), lost.password);
    assert.equal(Buffer.from(data['db-user']!, 'base64').toString(), 'lostuserabcd', 'the instance keeps its master user');
    assert.equal(aws.provider!.stats.byOperation.get('rds:ModifyDBInstance'), modifies + 1, 'the new password was set');
    assert.ok(!JSON.stringify(await store.getObject(AwsRelationalDatabaseInstance, rdsId)).includes(password(wri)));
  });

  test('a workload on a runtime that is not EKS gets a terminal error naming both', async () => {
    const { wiId } = await workloadOnEks('kind');
    const rdsId = await database(wiId);
    await settlements.until((all) => all.some((s) => s.id === rdsId && s.outcome === 'terminal'), 'a terminal failure');
    const events = await eventsOf(env.db, 'AwsRelationalDatabaseInstance', rdsId);
    assert.ok(
      events.some((e) =>
        /AwsRelationalDatabaseInstance "db-\d+" \(ID \d+\) needs an EKS runtime for its network, but WorkloadInstance "app" \(ID \d+\) runs on KubernetesRuntimeInstance "rt" \(ID \d+\) \(InfraProvider kind\)/.test(
          String(e['Note']),
        ),
      ),
      JSON.stringify(events),
    );
  });

  test('secrets: stored as JSON, never over a foreign secret, deleted with the definition', async () => {
    const store = env.store;
    const session = aws.deps.provider(store).session((await store.getObject(AwsAccount, accountId)) as never);
    await session.secretsManager.send(new CreateSecretCommand({ Name: 'taken', SecretString: '{"mine":"yes"}' }));
    const foreign = await create(store, SecretDefinition, { Name: 'taken', Data: { a: 'b' } });
    const ours = await create(store, SecretDefinition, { Name: 'ours', Data: { user: 'app', token: 'tok-123456789' } });
    await eventually(async () => ((await store.getObject(SecretDefinition, ours['ID'] as number))['Reconciled'] === true ? true : undefined), 'stored');
    const value = await session.secretsManager.send(new GetSecretValueCommand({ SecretId: 'ours' }));
    assert.deepEqual(JSON.parse(value.SecretString!), { user: 'app', token: 'tok-123456789' });
    await settlements.until((all) => all.some((s) => s.id === foreign['ID'] && s.outcome === 'terminal'), 'the foreign secret refused');
    const events = await eventsOf(env.db, 'SecretDefinition', foreign['ID'] as number);
    assert.ok(events.some((e) => /a secret named taken already exists in AWS Secrets Manager \(us-east-1\) and Threeport did not create it/.test(String(e['Note']))));
    assert.equal((await session.secretsManager.send(new GetSecretValueCommand({ SecretId: 'taken' }))).SecretString, '{"mine":"yes"}');

    await store.delete(SecretDefinition, ours['ID'] as number);
    await store.delete(SecretDefinition, foreign['ID'] as number);
    await eventually(async () => ((await store.find(SecretDefinition, {})).length === 0 ? true : undefined), 'definitions deleted');
    await assert.rejects(session.secretsManager.send(new GetSecretValueCommand({ SecretId: 'ours' })), /ResourceNotFoundException/);
    assert.equal((await session.secretsManager.send(new GetSecretValueCommand({ SecretId: 'taken' }))).SecretString, '{"mine":"yes"}', 'the foreign secret stays');
  });

  test('a secret never stored for want of an account deletes at once, and its name is free again', async () => {
    const store = env.store;
    await store.patch(AwsAccount, accountId, { DefaultAccount: false }, { enqueue: false });
    const orphan = await create(store, SecretDefinition, { Name: 'no-account', Data: { a: 'b' } });
    await settlements.until((all) => all.some((s) => s.id === orphan['ID'] && s.outcome === 'terminal'), 'refused: no account');
    await store.delete(SecretDefinition, orphan['ID'] as number);
    await eventually(async () => ((await store.find(SecretDefinition, { Name: 'no-account' })).length === 0 ? true : undefined), 'the definition deleted');
    const events = await eventsOf(env.db, 'SecretDefinition', orphan['ID'] as number);
    assert.ok(events.some((e) => e['Reason'] === 'SecretNeverStored'), JSON.stringify(events.map((e) => e['Reason'])));
    const again = await create(store, SecretDefinition, { Name: 'no-account', Data: { a: 'b' } });
    assert.equal(again['Name'], 'no-account');
  });
});
