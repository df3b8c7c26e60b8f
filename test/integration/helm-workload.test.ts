// HelmWorkloadDefinition/Instance reconcilers against real peers: a real `threeport server`
// (API + controllers, embedded PostgreSQL) starts a simulated cluster (InfraProvider kwok) and
// deploys the chart in test/fixtures/charts/hello through the `helm` CLI from
//   - a local directory,
//   - an https chart repository (index.yaml + packages made by `helm package`/`helm repo index`
//     at test time) served from loopback with a test CA, trusted through THREEPORT_HELM_CA_FILE,
//   - an OCI registry (the cached go-containerregistry `registry`, plain HTTP on loopback) behind
//     the same loopback HTTPS server, when that binary has been built.
// It checks values merging (instance wins), the threeport labels on every object, upgrades on
// definition and instance changes, clear terminal events for a bad chart and bad values (no
// retry loop), and that deletion leaves no labelled object behind.
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import test from 'node:test';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { createLogger } from '../../src/logger.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { createCa, issueCertificate } from '../../src/crypto/pki.js';
import { connectionFromRuntimeInstance, type KubeConnection } from '../../src/providers/kube/connection.js';
import { kubeClusterClient, type KubeClusterClient, type KubeObject } from '../../src/providers/kube/client.js';
import { findHelm } from '../../src/providers/helm/binary.js';
import { HelmReleases } from '../../src/providers/helm/releases.js';
import { HELM_WORKLOAD_INSTANCE_LABEL } from '../../src/providers/helm/post-render.js';
import { HELM_CA_FILE_ENV } from '../../src/controllers/helm-workload/index.js';
import { BUILD_SCRIPT_REL, packageRoot } from '../../src/providers/runtimes/kwok/binaries.js';
import { findKubeBinaries, SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';
import { until } from '../harness/until.js';
import { findRegistryBinary, startRegistry } from '../harness/registry.js';
import { api, must, get, type Obj } from '../harness/api-calls.js';

const execFileP = promisify(execFile);

const ROOT = packageRoot() ?? resolve('.');
const CHARTS_DIR = join(ROOT, 'test', 'fixtures', 'charts');

async function events(server: RunningServer, objectId: unknown): Promise<Obj[]> {
  return (await api(server, 'GET', `/v0/events-join-attached-object-references?objectid=${String(objectId)}&size=100`)).data;
}

/** Waits until the instance is Reconciled (after `after`, when given: an UpdatedAt strictly later). */
function reconciled(server: RunningServer, id: unknown, what: string): Promise<Obj> {
  return until(`HelmWorkloadInstance ${what} Reconciled`, async () => {
    const o = await get(server, 'helm-workload-instances', id);
    if (o?.['CreationFailed'] === true) throw new Error(`${what} failed: ${JSON.stringify(await events(server, id))}`);
    return o?.['Reconciled'] === true ? o : undefined;
  });
}

function failedTerminally(server: RunningServer, id: unknown, what: string): Promise<Obj> {
  return until(`HelmWorkloadInstance ${what} CreationFailed`, async () => {
    const o = await get(server, 'helm-workload-instances', id);
    return o?.['CreationFailed'] === true ? o : undefined;
  });
}

function startControlPlane(dataDir: string): Promise<RunningServer> {
  return startServer({
    port: 0,
    host: '127.0.0.1',
    role: 'all',
    dataDir,
    auth: false,
    helmChartDir: CHARTS_DIR,
    controllers: { pollIntervalMs: 200, resyncIntervalMs: 0, retry: { initialIntervalMs: 250, maximumIntervalMs: 2_000 } },
    logger: createLogger({ level: process.env['THREEPORT_TEST_LOG_LEVEL'] ?? 'silent' }),
  });
}

/**
 * A loopback HTTPS server with a certificate from a test CA: it serves `repoDir` as a chart
 * repository and, when `registryPort` is set, forwards /v2/ (the OCI distribution API) to the
 * plain-HTTP registry, so helm reaches both over TLS with `--ca-file`.
 */
async function startChartServer(cert: { cert: string; key: string }, repoDir: string): Promise<{ server: HttpsServer; port: number; setRegistry(port: number): void }> {
  let registryPort: number | undefined;
  const server = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    if (url.pathname.startsWith('/v2/') || url.pathname === '/v2') {
      if (!registryPort) {
        res.writeHead(404).end();
        return;
      }
      const upstream = httpRequest(
        { host: '127.0.0.1', port: registryPort, method: req.method, path: req.url, headers: { ...req.headers, host: `127.0.0.1:${registryPort}` } },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      upstream.on('error', () => res.writeHead(502).end());
      req.pipe(upstream);
      return;
    }
    const file = join(repoDir, url.pathname.replace(/^\/+/, ''));
    if (!file.startsWith(repoDir) || !existsSync(file) || url.pathname === '/') {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': file.endsWith('.yaml') ? 'application/x-yaml' : 'application/gzip' }).end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    setRegistry(port: number) {
      registryPort = port;
    },
  };
}

const THREEPORT_LABEL_KEYS = [
  'app.kubernetes.io/managed-by',
  'app.kubernetes.io/name',
  'app.kubernetes.io/instance',
  HELM_WORKLOAD_INSTANCE_LABEL,
  'control-plane.threeport.io/managed-by',
];

/** Every object of the release (as helm stored the post-rendered manifest), read back from the cluster. */
async function releaseObjects(helm: HelmReleases, conn: KubeConnection, kube: KubeClusterClient, release: string, ns: string): Promise<KubeObject[]> {
  const manifest = await helm.manifest(conn, release, ns);
  assert.ok(manifest, `release ${release} exists`);
  const out: KubeObject[] = [];
  for (const doc of parseAllDocuments(manifest)) {
    const o = doc.toJS() as KubeObject | null;
    if (!o) continue;
    const live = await kube.get({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace ?? ns });
    assert.ok(live, `${o.kind} ${o.metadata.name} of ${release} exists in the cluster`);
    out.push(live);
  }
  return out;
}

function assertLabelled(obj: KubeObject, instanceId: unknown): void {
  const labels = obj.metadata.labels ?? {};
  for (const k of THREEPORT_LABEL_KEYS) assert.ok(labels[k], `${obj.kind} ${obj.metadata.name} has label ${k}: ${JSON.stringify(labels)}`);
  assert.equal(labels[HELM_WORKLOAD_INSTANCE_LABEL], String(instanceId));
  assert.equal(labels['control-plane.threeport.io/managed-by'], 'threeport');
}

const LABELLED_KINDS: Array<[string, string]> = [
  ['v1', 'Namespace'],
  ['v1', 'ConfigMap'],
  ['v1', 'Service'],
  ['apps/v1', 'Deployment'],
  ['apps/v1', 'ReplicaSet'],
  ['v1', 'Pod'],
];

async function labelledObjects(kube: KubeClusterClient, instanceId: unknown): Promise<string[]> {
  const found: string[] = [];
  for (const [apiVersion, kind] of LABELLED_KINDS) {
    const list = await kube.list(apiVersion, kind, { labelSelector: `${HELM_WORKLOAD_INSTANCE_LABEL}=${String(instanceId)}` });
    for (const o of list.items) found.push(`${kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`);
  }
  return found;
}

test(
  'helm workloads: local, https and OCI charts on a kwok runtime; values, labels, upgrades, bad input, deletion',
  { skip: SKIP_KUBE ? SKIP_KUBE_REASON : false, timeout: 600_000 },
  async (t) => {
    findKubeBinaries(); // fails with build instructions when the binaries are missing
    const helmBin = findHelm().path;
    const work = mkdtempSync(join(tmpdir(), 'threeport-helm-test-'));
    const dataDir = join(work, 'server');
    const repoDir = join(work, 'repo');
    mkdirSync(repoDir);
    const helmEnv = { ...process.env, HELM_CACHE_HOME: join(work, 'helm-cache'), HELM_CONFIG_HOME: join(work, 'helm-config'), HELM_DATA_HOME: join(work, 'helm-data') };
    const helmCli = (args: string[]) => execFileP(helmBin, args, { env: helmEnv, cwd: work });

    let server: RunningServer | undefined;
    let chartServer: Awaited<ReturnType<typeof startChartServer>> | undefined;
    let registry: { port: number; child: ChildProcess } | undefined;
    const clients: KubeClusterClient[] = [];
    const previousCa = process.env[HELM_CA_FILE_ENV];
    try {
      // ---- chart sources on loopback: https repository (+ OCI registry behind it) -------------
      const ca = await createCa('helm test CA');
      const leaf = await issueCertificate(ca, { commonName: '127.0.0.1', usage: 'server', ips: ['127.0.0.1'], dnsNames: ['localhost'] });
      const caFile = join(work, 'ca.crt');
      writeFileSync(caFile, ca.cert);
      chartServer = await startChartServer(leaf, repoDir);
      const repoUrl = `https://127.0.0.1:${chartServer.port}`;
      await helmCli(['package', join(CHARTS_DIR, 'hello'), '--destination', repoDir]);
      await helmCli(['package', join(CHARTS_DIR, 'hello'), '--version', '0.2.0', '--destination', repoDir]);
      await helmCli(['repo', 'index', repoDir, '--url', repoUrl]);

      const registryBin = findRegistryBinary();
      if (registryBin) {
        registry = await startRegistry(registryBin);
        chartServer.setRegistry(registry.port);
        await helmCli(['push', join(repoDir, 'hello-0.1.0.tgz'), `oci://127.0.0.1:${registry.port}/charts`, '--plain-http']);
      } else {
        t.diagnostic(`OCI registry binary not built (bash ${BUILD_SCRIPT_REL}); the OCI case is skipped`);
      }

      // ---- control plane and a simulated cluster ---------------------------------------------
      process.env[HELM_CA_FILE_ENV] = caFile;
      const t0 = Date.now();
      server = await startControlPlane(dataDir);
      const rdef = await must(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'local', InfraProvider: 'kwok' });
      const rinstCreated = await must(server, 'POST', '/v0/kubernetes-runtime-instances', {
        Name: 'helm-rt',
        Location: 'Local',
        KubernetesRuntimeDefinitionID: rdef['ID'],
      });
      const runtime = await until(
        'the kwok runtime Reconciled',
        async () => {
          const o = await get(server!, 'kubernetes-runtime-instances', rinstCreated['ID']);
          return o?.['Reconciled'] === true && o['APIEndpoint'] ? o : undefined;
        },
        180_000,
      );
      t.diagnostic(`control plane and kwok runtime up in ${Date.now() - t0} ms`);
      const conn = connectionFromRuntimeInstance(runtime, (v) => server!.store.decrypt(v));
      const kube = kubeClusterClient(conn);
      clients.push(kube);
      const helm = new HelmReleases({ helm: helmBin, workRoot: join(work, 'helm-work') });
      const runtimeId = runtime['ID'];

      // ---- (a) a local chart directory; values merged, instance wins; labels everywhere --------
      const localDef = await must(server, 'POST', '/v0/helm-workload-definitions', {
        Name: 'hello-local',
        Repo: CHARTS_DIR,
        Chart: 'hello',
        ValuesDocument: 'greeting: hello from the definition\ncolor: red\n',
        AdditionalResources: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'definition-extra' }, data: { from: 'definition' } }],
      });
      const webCreated = await must(server, 'POST', '/v0/helm-workload-instances', {
        Name: 'web',
        ValuesDocument: 'color: green\n',
        AdditionalResources: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'instance-extra' }, data: { from: 'instance' } }],
        KubernetesRuntimeInstanceID: runtimeId,
        HelmWorkloadDefinitionID: localDef['ID'],
      });
      const webId = webCreated['ID'];
      const tInstall = Date.now();
      const web = await reconciled(server, webId, 'web');
      t.diagnostic(`local chart installed ${Date.now() - tInstall} ms after create`);
      const webNs = String(web['ReleaseNamespace']);
      assert.match(webNs, /^web-[a-z]{10}$/, 'a generated namespace is written back');
      const webCm = await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'web-release-hello', namespace: webNs });
      assert.deepEqual(webCm?.['data'], { greeting: 'hello from the definition', color: 'green' });

      const webObjects = await releaseObjects(helm, conn, kube, 'web-release', webNs);
      assert.deepEqual(
        webObjects.map((o) => `${o.kind}/${o.metadata.name}`).sort(),
        ['ConfigMap/definition-extra', 'ConfigMap/instance-extra', 'ConfigMap/web-release-hello', 'Deployment/web-release-hello', 'Service/web-release-hello'],
      );
      for (const o of webObjects) assertLabelled(o, webId);
      // The chart's own labels win where both set one (added only when absent).
      assert.equal(webObjects.find((o) => o.kind === 'Service')!.metadata.labels!['app.kubernetes.io/managed-by'], 'Helm');
      assert.equal(webObjects.find((o) => o.metadata.name === 'instance-extra')!.metadata.labels!['app.kubernetes.io/name'], 'hello-local');
      const deployment = webObjects.find((o) => o.kind === 'Deployment')!;
      const podLabels = (deployment['spec'] as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
      assert.equal(podLabels[HELM_WORKLOAD_INSTANCE_LABEL], String(webId));
      assert.equal(podLabels['control-plane.threeport.io/managed-by'], 'threeport');
      const nsObj = await kube.get({ apiVersion: 'v1', kind: 'Namespace', name: webNs });
      assert.equal(nsObj?.metadata.labels?.[HELM_WORKLOAD_INSTANCE_LABEL], String(webId), 'the generated namespace is labelled');
      assert.ok((await events(server, webId)).some((e) => e['Reason'] === 'HelmReleaseInstalled'));
      // Status is derived on the server from the labelled Deployment, ReplicaSet and Pods.
      await until('web Status Healthy', async () => ((await get(server!, 'helm-workload-instances', webId))?.['Status'] === 'Healthy' ? true : undefined));
      // A WorkloadEvent for the instance, to be removed with it.
      await must(server, 'POST', '/v0/workload-events', {
        RuntimeEventUID: 'test-uid-1',
        Type: 'Normal',
        Reason: 'Started',
        Message: 'test',
        Timestamp: new Date().toISOString(),
        HelmWorkloadInstanceID: webId,
      });

      // ---- (b) an https chart repository with a test CA; upgrade on a definition change -------
      const repoDef = await must(server, 'POST', '/v0/helm-workload-definitions', {
        Name: 'hello-repo',
        Repo: repoUrl,
        Chart: 'hello',
        ChartVersion: '0.1.0',
      });
      const shopCreated = await must(server, 'POST', '/v0/helm-workload-instances', {
        Name: 'shop',
        ReleaseNamespace: 'shop',
        ValuesDocument: 'greeting: hello shop\n',
        KubernetesRuntimeInstanceID: runtimeId,
        HelmWorkloadDefinitionID: repoDef['ID'],
      });
      const shopId = shopCreated['ID'];
      await reconciled(server, shopId, 'shop');
      const chartLabel = async (): Promise<string | undefined> =>
        (await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'shop-release-hello', namespace: 'shop' }))?.metadata.labels?.['helm.sh/chart'];
      assert.equal(await chartLabel(), 'hello-0.1.0');
      for (const o of await releaseObjects(helm, conn, kube, 'shop-release', 'shop')) assertLabelled(o, shopId);

      await must(server, 'PATCH', `/v0/helm-workload-definitions/${String(repoDef['ID'])}`, { ChartVersion: '0.2.0', Reconciled: false });
      await until('shop upgraded to chart 0.2.0', async () => ((await chartLabel()) === 'hello-0.2.0' ? true : undefined));
      await reconciled(server, shopId, 'shop after the definition change');
      assert.equal((await helm.status(conn, 'shop-release', 'shop'))?.revision, 2);

      // ---- upgrade on an instance change --------------------------------------------------------
      await must(server, 'PATCH', `/v0/helm-workload-instances/${String(webId)}`, { ValuesDocument: 'color: yellow\n', Reconciled: false });
      await until('web ConfigMap shows the new instance values', async () => {
        const cm = await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'web-release-hello', namespace: webNs });
        const data = cm?.['data'] as Record<string, string> | undefined;
        return data?.['color'] === 'yellow' ? data : undefined;
      }).then((data) => assert.equal(data['greeting'], 'hello from the definition'));
      await reconciled(server, webId, 'web after the instance change');
      // A reconcile with nothing changed makes no new revision.
      const revisionBefore = (await helm.status(conn, 'web-release', webNs))!.revision;
      await must(server, 'PATCH', `/v0/helm-workload-instances/${String(webId)}`, { Reconciled: false });
      await reconciled(server, webId, 'web, unchanged');
      assert.equal((await helm.status(conn, 'web-release', webNs))!.revision, revisionBefore);

      // ---- (c) an OCI registry ----------------------------------------------------------------
      let ociId: unknown;
      let ociDefId: unknown;
      if (registry) {
        const ociDef = await must(server, 'POST', '/v0/helm-workload-definitions', {
          Name: 'hello-oci',
          Repo: `oci://127.0.0.1:${chartServer.port}/charts`,
          Chart: 'hello',
          ChartVersion: '0.1.0',
        });
        ociDefId = ociDef['ID'];
        const oci = await must(server, 'POST', '/v0/helm-workload-instances', {
          Name: 'oci',
          KubernetesRuntimeInstanceID: runtimeId,
          HelmWorkloadDefinitionID: ociDefId,
        });
        ociId = oci['ID'];
        const ociInst = await reconciled(server, ociId, 'oci');
        const ociObjects = await releaseObjects(helm, conn, kube, 'oci-release', String(ociInst['ReleaseNamespace']));
        assert.equal(ociObjects.length, 3);
        for (const o of ociObjects) assertLabelled(o, ociId);
      }

      // ---- bad values and a missing chart: a clear event, terminal, no release left -----------
      const badValues = await must(server, 'POST', '/v0/helm-workload-instances', {
        Name: 'bad-values',
        ValuesDocument: 'replicaCount: many\n',
        KubernetesRuntimeInstanceID: runtimeId,
        HelmWorkloadDefinitionID: localDef['ID'],
      });
      const missingDef = await must(server, 'POST', '/v0/helm-workload-definitions', { Name: 'missing', Repo: repoUrl, Chart: 'nope' });
      const badChart = await must(server, 'POST', '/v0/helm-workload-instances', {
        Name: 'bad-chart',
        ReleaseNamespace: 'shop',
        KubernetesRuntimeInstanceID: runtimeId,
        HelmWorkloadDefinitionID: missingDef['ID'],
      });
      const badValuesInst = await failedTerminally(server, badValues['ID'], 'bad-values');
      await failedTerminally(server, badChart['ID'], 'bad-chart');
      assert.equal(badValuesInst['Status'], 'Error');
      const badValuesEvent = (await events(server, badValues['ID'])).find((e) => e['Reason'] === 'FailedCreate');
      assert.ok(badValuesEvent, 'a FailedCreate event on bad-values');
      assert.equal(badValuesEvent['Type'], 'Warning');
      assert.match(String(badValuesEvent['Note']), /^helm upgrade --install of release "bad-values-release" in namespace "bad-values-[a-z]{10}" on KubernetesRuntimeInstance "helm-rt"/);
      assert.match(String(badValuesEvent['Note']), /replicaCount.*got string, want integer/s);
      const badChartEvent = (await events(server, badChart['ID'])).find((e) => e['Reason'] === 'FailedCreate');
      assert.ok(badChartEvent, 'a FailedCreate event on bad-chart');
      assert.match(String(badChartEvent['Note']), /chart "nope" not found in https:\/\/127\.0\.0\.1:\d+ repository/);
      assert.equal(await helm.status(conn, 'bad-values-release', String(badValuesInst['ReleaseNamespace'])), undefined, 'the failed install was removed');
      assert.equal(await helm.status(conn, 'bad-chart-release', 'shop'), undefined);

      // Fixing the values recovers the instance.
      await must(server, 'PATCH', `/v0/helm-workload-instances/${String(badValues['ID'])}`, { ValuesDocument: 'replicaCount: 2\n', Reconciled: false });
      await until('bad-values Healthy after the fix', async () => {
        const o = await get(server!, 'helm-workload-instances', badValues['ID']);
        return o?.['Reconciled'] === true && o['Status'] === 'Healthy' ? o : undefined;
      });
      // Terminal failures were not retried: each event was recorded exactly once.
      for (const id of [badValues['ID'], badChart['ID']]) {
        const failed: Obj[] = (await events(server, id)).filter((e) => e['Reason'] === 'FailedCreate');
        assert.deepEqual(failed.map((e) => e['Count']), [1], `FailedCreate on ${String(id)} counted once`);
      }

      // ---- deletion: uninstall, generated namespaces removed, no labelled object left ----------
      const instanceIds = [webId, shopId, badValues['ID'], badChart['ID'], ...(ociId ? [ociId] : [])];
      for (const id of instanceIds) await must(server, 'DELETE', `/v0/helm-workload-instances/${String(id)}`);
      for (const id of instanceIds) {
        await until(`HelmWorkloadInstance ${String(id)} deleted`, async () =>
          (await get(server!, 'helm-workload-instances', id)) === undefined ? true : undefined,
        );
      }
      for (const id of instanceIds) {
        await until(`no object labelled ${HELM_WORKLOAD_INSTANCE_LABEL}=${String(id)}`, async () => {
          const left = await labelledObjects(kube, id);
          return left.length === 0 ? true : undefined;
        });
      }
      assert.equal(await helm.status(conn, 'web-release', webNs), undefined);
      assert.equal(await helm.status(conn, 'shop-release', 'shop'), undefined);
      assert.ok(await kube.get({ apiVersion: 'v1', kind: 'Namespace', name: 'shop' }), 'a namespace the user named is left alone');
      assert.deepEqual((await api(server, 'GET', `/v0/workload-events?helmworkloadinstanceid=${String(webId)}`)).data, []);
      for (const id of [localDef['ID'], repoDef['ID'], missingDef['ID'], ...(ociDefId ? [ociDefId] : [])]) {
        await must(server, 'DELETE', `/v0/helm-workload-definitions/${String(id)}`);
      }
    } finally {
      if (previousCa === undefined) delete process.env[HELM_CA_FILE_ENV];
      else process.env[HELM_CA_FILE_ENV] = previousCa;
      for (const c of clients) c.close();
      await server?.close();
      if (registry) {
        registry.child.kill('SIGKILL');
        await new Promise((r) => (registry!.child.exitCode !== null ? r(undefined) : registry!.child.once('exit', r)));
      }
      await new Promise((r) => (chartServer ? chartServer.server.close(r) : r(undefined)));
      rmSync(work, { recursive: true, force: true });
    }
  },
);
