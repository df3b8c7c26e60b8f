// Runtime providers that need no Kubernetes binaries, through a real `threeport server` (API +
// the kubernetes-runtime reconcilers, embedded PostgreSQL): the eks hand-off of spec §3.2, the
// kind provider's refusal where kind and Docker are missing, and the kubeconfig provider's
// configuration and connectivity errors (the kube client faked only to script its failures).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { createLogger } from '../../src/logger.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { KubernetesRuntimeController } from '../../src/controllers/kubernetes-runtime/index.js';
import { KindRuntimeProvider, type RunCommand } from '../../src/providers/runtimes/kind.js';
import { KubeError, type KubeFailure } from '../../src/providers/kube/errors.js';
import type { KubeClusterClient } from '../../src/providers/kube/client.js';
import type { KubeConnection } from '../../src/providers/kube/connection.js';
import { AwsEksKubernetesRuntimeInstance } from '../../src/kinds/aws.js';
import { QUEUE_TABLE } from '../../src/store/schema.js';
import { until } from '../harness/until.js';
import { api, must,  type Obj } from '../harness/api-calls.js';

const get = async (server: RunningServer, plural: string, id: unknown): Promise<Obj | undefined> => {
  const r = await api(server, 'GET', `/v0/${plural}/${String(id)}`);
  return r.status === 200 ? r.data[0] : undefined;
};

const reconciled = (server: RunningServer, plural: string, id: unknown): Promise<Obj> =>
  until(`${plural}/${String(id)} Reconciled`, async () => {
    const o = await get(server, plural, id);
    return o?.['Reconciled'] === true ? o : undefined;
  });

const eventWith = (server: RunningServer, id: unknown, reason: string): Promise<Obj> =>
  until(`event ${reason} on object ${String(id)}`, async () =>
    (await api(server, 'GET', `/v0/events-join-attached-object-references?objectid=${String(id)}&size=100`)).data.find((e) => e['Reason'] === reason),
  );

/** A kube client whose every call fails with `failure` while `failing()` is true, and answers otherwise. */
function scriptedClient(conn: KubeConnection, failing: () => KubeFailure | undefined): KubeClusterClient {
  const fail = (): never => {
    const failure = failing()!;
    throw new KubeError(`${conn.label}: scripted ${failure} at ${conn.server}`, { failure, cluster: conn.label, endpoint: conn.server });
  };
  const answer = async <T>(v: T): Promise<T> => {
    if (failing()) fail();
    return v;
  };
  return {
    label: conn.label,
    endpoint: conn.server,
    version: () => answer({ gitVersion: 'v1.34.4-fake' }),
    discover: (apiVersion, kind) => answer({ apiVersion, kind, plural: 'namespaces', namespaced: false, verbs: [] }),
    apply: () => Promise.reject(new Error('not used')),
    get: () => Promise.reject(new Error('not used')),
    list: () => Promise.reject(new Error('not used')),
    delete: () => Promise.reject(new Error('not used')),
    watch: () => {
      throw new Error('not used');
    },
    close: () => {},
  };
}

test('runtime providers through the API: eks hand-off, kind unavailable, kubeconfig errors', { timeout: 180_000 }, async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'threeport-runtime-providers-'));
  let failure: KubeFailure | undefined;
  const controller = new KubernetesRuntimeController({
    dataDir,
    logger: createLogger({ level: 'silent' }),
    providers: { kind: new KindRuntimeProvider({ dataDir, kindBin: '/nonexistent/kind', dockerBin: '/nonexistent/docker' }) },
    kubeClientFactory: (conn) => scriptedClient(conn, () => failure),
  });
  let server: RunningServer | undefined;
  try {
    server = await startServer({
      port: 0,
      host: '127.0.0.1',
      role: 'all',
      dataDir,
      auth: false,
      reconcilers: controller.reconcilers,
      controllers: { pollIntervalMs: 100, resyncIntervalMs: 0, retry: { initialIntervalMs: 100, maximumIntervalMs: 500 } },
      logger: createLogger({ level: 'silent' }),
    });
    const s = server;

    await t.test('eks: definition and instance hand off to AwsEks objects, deletion follows', async () => {
      // No account yet: a readable event and retries until there is one.
      const def = await must(s, 'POST', '/v0/kubernetes-runtime-definitions', {
        Name: 'eks-ha',
        InfraProvider: 'eks',
        InfraProviderAccountName: 'prod',
        HighAvailability: true,
        NodeProfile: 'ComputeOptimized',
        NodeSize: 'Large',
        NodeMaximum: 12,
      });
      const noAccount = await eventWith(s, def['ID'], 'AwsAccountNotFound');
      assert.equal(noAccount['Note'], `KubernetesRuntimeDefinition "eks-ha" (ID ${String(def['ID'])}): no AwsAccount named "prod"; create it (or fix InfraProviderAccountName)`);
      const account = await must(s, 'POST', '/v0/aws-accounts', {
        Name: 'prod',
        AccountID: '123456789012',
        DefaultRegion: 'us-east-1',
        RoleArn: 'arn:aws:iam::123456789012:role/threeport',
      });
      await reconciled(s, 'kubernetes-runtime-definitions', def['ID']);
      const eksDefs = (await api(s, 'GET', '/v0/aws-eks-kubernetes-runtime-definitions')).data.filter((d) => d['KubernetesRuntimeDefinitionID'] === def['ID']);
      assert.equal(eksDefs.length, 1);
      const eksDef = eksDefs[0]!;
      assert.deepEqual(
        {
          Name: eksDef['Name'],
          AWSAccountID: eksDef['AWSAccountID'],
          ZoneCount: eksDef['ZoneCount'],
          DefaultNodeGroupInstanceType: eksDef['DefaultNodeGroupInstanceType'],
          DefaultNodeGroupInitialSize: eksDef['DefaultNodeGroupInitialSize'],
          DefaultNodeGroupMinimumSize: eksDef['DefaultNodeGroupMinimumSize'],
          DefaultNodeGroupMaximumSize: eksDef['DefaultNodeGroupMaximumSize'],
        },
        {
          Name: 'eks-ha',
          AWSAccountID: account['ID'],
          ZoneCount: 3,
          DefaultNodeGroupInstanceType: 'c7i.xlarge',
          DefaultNodeGroupInitialSize: 2,
          DefaultNodeGroupMinimumSize: 0,
          DefaultNodeGroupMaximumSize: 12,
        },
      );

      const inst = await must(s, 'POST', '/v0/kubernetes-runtime-instances', {
        Name: 'prod-eu',
        Location: 'Europe:Dublin',
        KubernetesRuntimeDefinitionID: def['ID'],
      });
      await reconciled(s, 'kubernetes-runtime-instances', inst['ID']);
      const eksInst = (await api(s, 'GET', '/v0/aws-eks-kubernetes-runtime-instances')).data.find((i) => i['KubernetesRuntimeInstanceID'] === inst['ID'])!;
      assert.equal(eksInst['Region'], 'eu-west-1');
      assert.equal(eksInst['AwsEksKubernetesRuntimeDefinitionID'], eksDef['ID']);
      assert.equal(eksInst['Name'], 'prod-eu');

      // Deleting the runtime instance asks the AWS controller to delete the EKS instance.
      await must(s, 'DELETE', `/v0/kubernetes-runtime-instances/${String(inst['ID'])}`);
      await until('the runtime instance deleted', async () => ((await get(s, 'kubernetes-runtime-instances', inst['ID'])) ? undefined : true));
      assert.ok((await get(s, 'aws-eks-kubernetes-runtime-instances', eksInst['ID']))?.['DeletionScheduled']);

      // The definition's deletion waits for the AWS controller to finish with the EKS instance.
      await must(s, 'DELETE', `/v0/kubernetes-runtime-definitions/${String(def['ID'])}`);
      const waiting = await eventWith(s, def['ID'], 'FailedDelete');
      assert.match(String(waiting['Note']), /cannot delete AwsEksKubernetesRuntimeDefinition "eks-ha" .* yet: .*has related AwsEksKubernetesRuntimeInstances.*; will retry/);
      assert.ok(await get(s, 'kubernetes-runtime-definitions', def['ID']));
      // Stand in for the AWS controller confirming the EKS deletion (a later issue).
      await s.store.patch(AwsEksKubernetesRuntimeInstance, eksInst['ID'] as number, { DeletionConfirmed: new Date().toISOString() }, { enqueue: false });
      await s.store.delete(AwsEksKubernetesRuntimeInstance, eksInst['ID'] as number);
      await until('the definition deleted', async () => ((await get(s, 'kubernetes-runtime-definitions', def['ID'])) ? undefined : true));
      assert.equal(await get(s, 'aws-eks-kubernetes-runtime-definitions', eksDef['ID']), undefined);

      // Without InfraProviderAccountName the default account is used.
      await must(s, 'PATCH', `/v0/aws-accounts/${String(account['ID'])}`, { DefaultAccount: true });
      const def2 = await must(s, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'eks-small', InfraProvider: 'eks' });
      await reconciled(s, 'kubernetes-runtime-definitions', def2['ID']);
      const eksDef2 = (await api(s, 'GET', '/v0/aws-eks-kubernetes-runtime-definitions')).data.find((d) => d['KubernetesRuntimeDefinitionID'] === def2['ID'])!;
      assert.equal(eksDef2['AWSAccountID'], account['ID']);
      assert.equal(eksDef2['ZoneCount'], 2);
      assert.equal(eksDef2['DefaultNodeGroupInstanceType'], 't3.medium');
      assert.equal(eksDef2['DefaultNodeGroupMaximumSize'], 250);
    });

    await t.test('kind without the kind CLI and Docker: a terminal error that says what to use instead', async () => {
      const def = await must(s, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'kind-local', InfraProvider: 'kind' });
      await reconciled(s, 'kubernetes-runtime-definitions', def['ID']);
      const inst = await must(s, 'POST', '/v0/kubernetes-runtime-instances', { Name: 'kind-1', Location: 'Local', KubernetesRuntimeDefinitionID: def['ID'] });
      const e = await eventWith(s, inst['ID'], 'KindUnavailable');
      assert.equal(
        e['Note'],
        'the kind provider needs the kind CLI and a Docker engine; none found — use InfraProvider kwok for a local simulated cluster or kubeconfig for an existing cluster',
      );
      const failed = await until('CreationFailed', async () => {
        const o = await get(s, 'kubernetes-runtime-instances', inst['ID']);
        return o?.['CreationFailed'] === true ? o : undefined;
      });
      assert.equal(failed['Reconciled'], false);
      // Nothing was made, so deletion has nothing to remove.
      await must(s, 'DELETE', `/v0/kubernetes-runtime-instances/${String(inst['ID'])}`);
      await until('kind instance deleted', async () => ((await get(s, 'kubernetes-runtime-instances', inst['ID'])) ? undefined : true));
    });

    await t.test('kubeconfig: missing connection is terminal; an unreachable cluster is retried with an event, then recovers', async () => {
      const def = await must(s, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'existing', InfraProvider: 'kubeconfig' });
      const bare = await must(s, 'POST', '/v0/kubernetes-runtime-instances', { Name: 'bare', Location: 'Local', KubernetesRuntimeDefinitionID: def['ID'] });
      const misconfigured = await eventWith(s, bare['ID'], 'KubernetesRuntimeMisconfigured');
      assert.match(String(misconfigured['Note']), /^KubernetesRuntimeInstance "bare" \(ID \d+\) uses InfraProvider kubeconfig but has no APIEndpoint/);
      const noCreds = await must(s, 'POST', '/v0/kubernetes-runtime-instances', {
        Name: 'no-creds',
        Location: 'Local',
        KubernetesRuntimeDefinitionID: def['ID'],
        APIEndpoint: 'https://127.0.0.1:6443',
      });
      const e2 = await eventWith(s, noCreds['ID'], 'KubernetesRuntimeMisconfigured');
      assert.match(String(e2['Note']), /has no credentials: it needs Certificate and CertificateKey, or ConnectionToken$/);

      failure = 'Unreachable';
      const token = 'very-secret-bearer-token';
      const inst = await must(s, 'POST', '/v0/kubernetes-runtime-instances', {
        Name: 'remote',
        Location: 'Local',
        KubernetesRuntimeDefinitionID: def['ID'],
        APIEndpoint: 'https://127.0.0.1:6443',
        ConnectionToken: token,
      });
      const ev = await eventWith(s, inst['ID'], 'KubernetesRuntimeUnreachable');
      assert.equal(ev['Note'], `KubernetesRuntimeInstance "remote" (ID ${String(inst['ID'])}): scripted Unreachable at https://127.0.0.1:6443`);
      await until('several retries', async () => {
        const e = await eventWith(s, inst['ID'], 'KubernetesRuntimeUnreachable');
        return Number(e['Count']) >= 3 ? true : undefined;
      });
      failure = undefined;
      await reconciled(s, 'kubernetes-runtime-instances', inst['ID']);
      const all = (await api(s, 'GET', `/v0/events-join-attached-object-references?objectid=${String(inst['ID'])}&size=100`)).text;
      assert.ok(!all.includes(token), 'no credential in any event');

      // A 4xx such as Invalid is not retried.
      failure = 'Invalid';
      await must(s, 'PATCH', `/v0/kubernetes-runtime-instances/${String(inst['ID'])}`, { Reconciled: false });
      const invalid = await eventWith(s, inst['ID'], 'KubernetesRuntimeError');
      assert.equal(invalid['Count'], 1);
      // Parked, not scheduled for a retry (the failure and the event commit together).
      const row = await s.db.query(`SELECT not_before = 'infinity' AS parked FROM ${QUEUE_TABLE} WHERE kind = $1 AND object_id = $2`, [
        'KubernetesRuntimeInstance',
        inst['ID'],
      ]);
      assert.equal((row.rows[0] as { parked: boolean }).parked, true);
      failure = undefined;
    });
  } finally {
    await server?.close();
    await controller.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test('kind provider: what is missing', async () => {
  const run = (kind: boolean, docker: boolean): RunCommand => async (bin) =>
    bin === 'kind' ? { code: kind ? 0 : 127, stdout: '', stderr: '' } : { code: docker ? 0 : 1, stdout: docker ? '27.0.1\n' : '', stderr: '' };
  const provider = (kind: boolean, docker: boolean): KindRuntimeProvider => new KindRuntimeProvider({ dataDir: '/nonexistent', run: run(kind, docker) });
  assert.equal(await provider(false, false).missing(), 'none found');
  assert.equal(await provider(false, true).missing(), 'the kind CLI was not found');
  assert.equal(await provider(true, false).missing(), 'no Docker engine answers `docker info`');
  assert.equal(await provider(true, true).missing(), undefined);
});
