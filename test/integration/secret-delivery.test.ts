// SecretInstance delivery against real peers: a real `threeport server` (API + controllers,
// embedded PostgreSQL), moto for Secrets Manager (behind the fault proxy, to take it "down"), and a
// real kube-apiserver + kwok runtime created through the API.
//
// A workload gets a SecretInstance: the Kubernetes Secret in the workload's namespace holds the
// SecretDefinition's data; a rotation in moto reaches it within the (short) refresh interval with
// a SecretRotated event; Secrets Manager being unavailable is retried and recorded as an event;
// bad references are 400s that write nothing; deleting the SecretInstance removes the Secret.
// No secret value appears in an event, a status or an API response.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join, resolve } from 'node:path';
import { PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { startMoto, startFaultProxy, SKIP_AWS, type MotoServer, type FaultProxy } from '../harness/moto.js';
import { SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';
import { AwsProvider, AWS_ENDPOINT_ENV } from '../../src/providers/aws/provider.js';
import { SECRET_REFRESH_ENV } from '../../src/controllers/secret/index.js';
import type { KubeClusterClient, KubeObject } from '../../src/providers/kube/client.js';
import { packageRoot } from '../../src/providers/runtimes/kwok/binaries.js';
import { motoDefaultAccount } from '../aws/helpers.js';
import { api, clientFor, createRuntimes, events, get, list, must, startControlPlane, status, until, type ControlPlane, type Obj } from './workload-helpers.js';

const skip = SKIP_AWS ?? (SKIP_KUBE ? SKIP_KUBE_REASON : undefined);
const FIRST = { 'api-key': 'first-value-that-must-stay-secret-1', 'db-password': 'second-value-that-must-stay-secret-2' };
const ROTATED = { 'api-key': 'rotated-value-that-must-stay-secret-3', 'db-password': 'second-value-that-must-stay-secret-2' };
const CHARTS_DIR = join(packageRoot() ?? resolve('.'), 'test', 'fixtures', 'charts');
const SECRET_VALUES = [...Object.values(FIRST), ...Object.values(ROTATED)];
const APP = [
  'apiVersion: apps/v1',
  'kind: Deployment',
  'metadata: {name: web}',
  'spec:',
  '  replicas: 1',
  '  selector: {matchLabels: {app: web}}',
  '  template:',
  '    metadata: {labels: {app: web}}',
  '    spec: {containers: [{name: web, image: nginx}]}',
].join('\n');

function decoded(secret: KubeObject | undefined): Record<string, string> | undefined {
  if (!secret) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries((secret["data"] ?? {}) as Record<string, string>)) out[k] = Buffer.from(v, 'base64').toString('utf8');
  return out;
}

function assertNoSecretIn(text: string, where: string): void {
  for (const v of SECRET_VALUES) assert.ok(!text.includes(v), `a secret value leaked into ${where}: ${text.slice(0, 300)}`);
}

describe('SecretInstance: direct delivery from Secrets Manager to the workload namespace', { skip }, () => {
  let moto: MotoServer;
  let proxy: FaultProxy;
  let cp: ControlPlane;
  let runtime: Obj;
  let kube: KubeClusterClient;
  const saved: Record<string, string | undefined> = {};

  before(async () => {
    moto = await startMoto();
    proxy = await startFaultProxy(moto.url);
    for (const k of [AWS_ENDPOINT_ENV, SECRET_REFRESH_ENV]) saved[k] = process.env[k];
    process.env[AWS_ENDPOINT_ENV] = proxy.url;
    process.env[SECRET_REFRESH_ENV] = '500';
    cp = await startControlPlane({}, { helmChartDir: CHARTS_DIR });
    [runtime] = (await createRuntimes(cp.server, ['secrets'])) as [Obj];
    kube = clientFor(cp.server, runtime);
  });

  after(async () => {
    kube?.close();
    await cp?.close();
    await proxy?.close();
    await moto?.stop();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  test('deliver, rotate, survive an outage, refuse bad input, delete to nothing', { timeout: 300_000 }, async (t) => {
    const server = cp.server;
    await must(server, 'POST', '/v0/aws-accounts', motoDefaultAccount());
    const wd = await must(server, 'POST', '/v0/workload-definitions', { Name: 'web', YAMLDocument: APP });
    await until('the definition reconciled', async () => ((await get(server, 'workload-definitions', wd['ID']))?.['Reconciled'] === true ? true : undefined));
    const wi = await must(server, 'POST', '/v0/workload-instances', { Name: 'web', WorkloadDefinitionID: wd['ID'], KubernetesRuntimeInstanceID: runtime['ID'] });
    await status(server, wi['ID'], 'Healthy');
    const nsWri = (await list(server, 'workload-resource-instances', `workloadinstanceid=${String(wi['ID'])}`)).find(
      (w) => (w['JSONDefinition'] as { kind: string }).kind === 'Namespace',
    );
    const namespace = (nsWri!['JSONDefinition'] as { metadata: { name: string } }).metadata.name;

    const sd = await must(server, 'POST', '/v0/secret-definitions', { Name: 'web-credentials', Data: FIRST });
    assertNoSecretIn(JSON.stringify(sd), 'the create response');

    // ---- bad input: precise 400s, nothing written ------------------------------------------------
    const before = (await list(server, 'secret-instances')).length;
    const refused = async (body: Obj, pattern: RegExp): Promise<void> => {
      const r = await api(server, 'POST', '/v0/secret-instances', body);
      assert.equal(r.status, 400, r.text);
      assert.match(r.text, pattern);
    };
    const base = { Name: 'creds', SecretDefinitionID: sd['ID'], KubernetesRuntimeInstanceID: runtime['ID'] };
    await refused({ ...base, WorkloadInstanceID: 987654 }, /WorkloadInstanceID refers to WorkloadInstance 987654, which does not exist/);
    await refused({ ...base, HelmWorkloadInstanceID: 987654 }, /HelmWorkloadInstanceID refers to HelmWorkloadInstance 987654, which does not exist/);
    await refused(base, /exactly one of WorkloadInstanceID and HelmWorkloadInstanceID/);
    await refused({ ...base, WorkloadInstanceID: wi['ID'], HelmWorkloadInstanceID: wi['ID'] }, /exactly one of/);
    await refused({ Name: 'creds', SecretDefinitionID: sd['ID'], WorkloadInstanceID: wi['ID'] }, /KubernetesRuntimeInstanceID/);
    assert.equal((await list(server, 'secret-instances')).length, before, 'a refused SecretInstance was written');

    // ---- delivery ---------------------------------------------------------------------------------
    const t0 = Date.now();
    const si = await must(server, 'POST', '/v0/secret-instances', { ...base, WorkloadInstanceID: wi['ID'] });
    const ref = { apiVersion: 'v1', kind: 'Secret', name: 'creds', namespace };
    const delivered = await until('the Secret in the workload namespace', async () => decoded(await kube.get(ref)), 120_000);
    t.diagnostic(`Secret present ${Date.now() - t0} ms after the SecretInstance was created`);
    assert.deepEqual(delivered, FIRST);

    // ---- rotation in Secrets Manager reaches the Secret, with an event ------------------------------
    const sm = new AwsProvider({ decrypt: (c) => c, endpoint: moto.url }).session({ ID: 0, Name: 'observer', AccessKeyID: 'k', SecretAccessKey: 's', DefaultRegion: 'us-east-1' });
    const t1 = Date.now();
    await sm.secretsManager.send(new PutSecretValueCommand({ SecretId: 'web-credentials', SecretString: JSON.stringify(ROTATED) }));
    await until('the rotated value in the Secret', async () => {
      const d = decoded(await kube.get(ref));
      return d?.['api-key'] === ROTATED['api-key'] ? d : undefined;
    }, 60_000);
    t.diagnostic(`rotation reached the Secret in ${Date.now() - t1} ms (refresh 500 ms)`);
    assert.deepEqual(decoded(await kube.get(ref)), ROTATED);
    await until('a SecretRotated event', async () => ((await events(server, si['ID'])).some((e) => e['Reason'] === 'SecretRotated') ? true : undefined));

    // ---- Secrets Manager unavailable: retried with backoff, recorded as an event ----------------------
    proxy.setRule({ match: (op) => op === 'GetSecretValue', fraction: 1, fault: 'unavailable', maxFaults: 200 });
    const failed = await until('a failure event while Secrets Manager is down', async () => {
      const es = await events(server, si['ID']);
      return es.find((e) => e['Type'] === 'Warning' && /GetSecretValue|Secrets Manager|unavailable|503/i.test(String(e['Note']))) ?? undefined;
    }, 60_000);
    t.diagnostic(`outage event: ${String(failed['Reason'])}: ${String(failed['Note']).slice(0, 160)}`);
    assert.ok(proxy.stats.injected.unavailable >= 1);
    proxy.setRule(undefined);
    // Back: the next refresh works again (a status that says delivered, a Secret still correct).
    await until('delivered again after the outage', async () => {
      const o = await get(server, 'secret-instances', si['ID']);
      return String(o?.['Status']).startsWith('delivered') ? o : undefined;
    }, 60_000);
    assert.deepEqual(decoded(await kube.get(ref)), ROTATED);

    // ---- no secret value in events, status or API responses ---------------------------------------
    assertNoSecretIn(JSON.stringify(await events(server, si['ID'])), 'SecretInstance events');
    assertNoSecretIn(JSON.stringify(await events(server, sd['ID'])), 'SecretDefinition events');
    assertNoSecretIn(JSON.stringify(await list(server, 'secret-instances')), 'GET secret-instances');
    assertNoSecretIn(JSON.stringify(await list(server, 'secret-definitions')), 'GET secret-definitions');
    assertNoSecretIn((await api(server, 'GET', '/v0/events?size=500')).text, 'GET events');

    // ---- delete: the Secret goes; nothing left behind ------------------------------------------------
    await must(server, 'DELETE', `/v0/secret-instances/${String(si['ID'])}`);
    await until('the SecretInstance gone', async () => ((await get(server, 'secret-instances', si['ID'])) ? undefined : true), 60_000);
    assert.equal(await kube.get(ref), undefined, 'the Secret is gone after the SecretInstance was deleted');
    const left = await kube.list('v1', 'Secret', { labelSelector: 'control-plane.threeport.io/secret-instance' });
    assert.deepEqual(left.items.map((s) => `${s.metadata.namespace}/${s.metadata.name}`), []);
    await must(server, 'DELETE', `/v0/secret-definitions/${String(sd['ID'])}`);
    await until('the SecretDefinition gone', async () => ((await get(server, 'secret-definitions', sd['ID'])) ? undefined : true), 60_000);
  });

  test('a HelmWorkloadInstance gets the Secret in its release namespace, removed with the SecretInstance', { timeout: 300_000 }, async () => {
    const server = cp.server;
    const hd = await must(server, 'POST', '/v0/helm-workload-definitions', { Name: 'hello', Repo: CHARTS_DIR, Chart: 'hello' });
    const hi = await must(server, 'POST', '/v0/helm-workload-instances', { Name: 'hello', KubernetesRuntimeInstanceID: runtime['ID'], HelmWorkloadDefinitionID: hd['ID'] });
    const installed = await until('the release installed', async () => {
      const o = await get(server, 'helm-workload-instances', hi['ID']);
      return o?.['Reconciled'] === true && o['ReleaseNamespace'] ? o : undefined;
    }, 180_000);
    const namespace = String(installed['ReleaseNamespace']);
    const sd = await must(server, 'POST', '/v0/secret-definitions', { Name: 'hello-credentials', Data: FIRST });
    const si = await must(server, 'POST', '/v0/secret-instances', { Name: 'hello-creds', SecretDefinitionID: sd['ID'], KubernetesRuntimeInstanceID: runtime['ID'], HelmWorkloadInstanceID: hi['ID'] });
    const ref = { apiVersion: 'v1', kind: 'Secret', name: 'hello-creds', namespace };
    assert.deepEqual(await until('the Secret in the release namespace', async () => decoded(await kube.get(ref)), 120_000), FIRST);
    await must(server, 'DELETE', `/v0/secret-instances/${String(si['ID'])}`);
    await until('the SecretInstance gone', async () => ((await get(server, 'secret-instances', si['ID'])) ? undefined : true), 60_000);
    assert.equal(await kube.get(ref), undefined, 'the Secret is gone after the SecretInstance was deleted');
    assertNoSecretIn(JSON.stringify(await events(server, si['ID'])), 'SecretInstance events');
    await must(server, 'DELETE', `/v0/secret-definitions/${String(sd['ID'])}`);
    await must(server, 'DELETE', `/v0/helm-workload-instances/${String(hi['ID'])}`);
    await until('the HelmWorkloadInstance gone', async () => ((await get(server, 'helm-workload-instances', hi['ID'])) ? undefined : true), 120_000);
  });
});
