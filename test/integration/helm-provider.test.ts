// The helm provider without a cluster: finding helm, the post-renderer run by the real helm
// (`helm template --post-renderer`), the private workspace (kubeconfig 0600, removed afterwards,
// secrets scrubbed from errors, the process group killed on cancel), chart source resolution,
// and the controller's checks of values and AdditionalResources.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import test from 'node:test';
import { parseAllDocuments } from 'yaml';
import { findHelm, HELM_PATH_ENV } from '../../src/providers/helm/binary.js';
import { chartSource, ChartSourceError } from '../../src/providers/helm/chart-source.js';
import { HelmCommandError, HelmNotFoundError, HelmScrubber, isTransientHelmFailure } from '../../src/providers/helm/errors.js';
import { HELM_WORKLOAD_INSTANCE_LABEL, postRender, threeportLabels } from '../../src/providers/helm/post-render.js';
import { HelmWorkspace } from '../../src/providers/helm/workspace.js';
import { additionalResources, checkValues, isGeneratedNamespace, generateNamespace } from '../../src/controllers/helm-workload/index.js';
import { packageRoot } from '../../src/providers/runtimes/kwok/binaries.js';
import { createCa } from '../../src/crypto/pki.js';
import { SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';

const ROOT = packageRoot() ?? resolve('.');
const CHARTS_DIR = join(ROOT, 'test', 'fixtures', 'charts');
const FAKE_KEY = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAAAAAAAAAAAAAAAA\nAAAAAAAAAAAAAAAAAAAAAAAAAAChRANCAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----\n';
const TOKEN = 'tok3n-th4t-must-n3ver-leak';

test('findHelm: THREEPORT_HELM, then the build script cache, then PATH; a clear error otherwise', () => {
  assert.throws(
    () => findHelm({ [HELM_PATH_ENV]: '/nonexistent/helm', PATH: '' }),
    (err: unknown) => err instanceof HelmNotFoundError && err.message === `${HELM_PATH_ENV}=/nonexistent/helm: there is no executable file at that path`,
  );
  const empty = mkdtempSync(join(tmpdir(), 'threeport-helm-none-'));
  try {
    assert.throws(
      () => findHelm({ PATH: empty, THREEPORT_CACHE_DIR: empty }),
      (err: unknown) =>
        err instanceof HelmNotFoundError &&
        err.message.startsWith(`helm is not installed: looked in ${join(empty, 'helm', 'v3.22.0', 'bin', 'helm')}, helm on PATH.`) &&
        err.message.includes('build-test-bins.sh'),
    );
    // A `helm` on PATH is used when there is no cached build.
    writeFileSync(join(empty, 'helm'), '#!/bin/sh\n', { mode: 0o755 });
    assert.deepEqual(findHelm({ PATH: empty, THREEPORT_CACHE_DIR: empty }), { path: join(empty, 'helm'), source: 'PATH' });
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('chart sources: https repository, OCI reference, local directories, and clear errors', () => {
  assert.deepEqual(chartSource({ Repo: 'https://charts.example.com/', Chart: 'web', ChartVersion: '1.2.3' }, 'D'), {
    type: 'repository',
    url: 'https://charts.example.com/',
    chart: 'web',
    version: '1.2.3',
  });
  assert.deepEqual(chartSource({ Repo: 'oci://registry-1.docker.io/bitnamicharts/', Chart: 'wordpress' }, 'D'), {
    type: 'oci',
    ref: 'oci://registry-1.docker.io/bitnamicharts/wordpress',
  });
  const hello = join(CHARTS_DIR, 'hello');
  assert.deepEqual(chartSource({ Repo: CHARTS_DIR, Chart: 'hello' }, 'D'), { type: 'local', path: hello, packaged: false });
  assert.deepEqual(chartSource({ Repo: hello, Chart: 'hello', ChartVersion: '0.1.0' }, 'D'), { type: 'local', path: hello, packaged: false });
  assert.deepEqual(chartSource({ Repo: 'test/fixtures/charts', Chart: 'hello' }, 'D', ROOT), { type: 'local', path: hello, packaged: false });
  assert.deepEqual(chartSource({ Repo: `file://${CHARTS_DIR}`, Chart: 'hello' }, 'D'), { type: 'local', path: hello, packaged: false });

  const fails = (fields: Parameters<typeof chartSource>[0], message: string | RegExp): void =>
    assert.throws(
      () => chartSource(fields, 'HelmWorkloadDefinition "d" (ID 1)', ROOT),
      (err: unknown) => err instanceof ChartSourceError && err.retryable === false && (typeof message === 'string' ? err.message === message : message.test(err.message)),
    );
  fails({ Repo: 'ftp://x', Chart: 'c' }, 'HelmWorkloadDefinition "d" (ID 1): Repo "ftp://x" has an unsupported scheme; use https://, oci:// or a local directory');
  fails({ Repo: '/nonexistent/charts', Chart: 'c' }, 'HelmWorkloadDefinition "d" (ID 1): the local chart directory /nonexistent/charts does not exist');
  fails({ Repo: CHARTS_DIR, Chart: 'hello', ChartVersion: '9.9.9' }, `HelmWorkloadDefinition "d" (ID 1): the local chart ${hello} has version 0.1.0, but ChartVersion asks for 9.9.9`);
  fails({ Repo: CHARTS_DIR, Chart: 'nope' }, /^HelmWorkloadDefinition "d" \(ID 1\): no chart "nope" in the local directory /);
  fails({ Repo: 'oci://r.example.com', Chart: 'a/b' }, 'HelmWorkloadDefinition "d" (ID 1): Chart "a/b" must be a chart name; put the registry path in Repo');
  fails({ Repo: '', Chart: 'c' }, /Repo is empty/);
});

test('values and AdditionalResources are checked before helm runs', () => {
  assert.equal(checkValues(undefined, 'I'), '');
  assert.equal(checkValues('a: 1\n', 'I'), 'a: 1\n');
  assert.throws(() => checkValues('a: [1,\n', 'HelmWorkloadInstance "i" (ID 2)'), /^TerminalError: HelmWorkloadInstance "i" \(ID 2\) ValuesDocument is not valid YAML: /);
  assert.throws(
    () => checkValues('- a\n- b\n', 'HelmWorkloadInstance "i" (ID 2)'),
    { name: 'TerminalError', message: 'HelmWorkloadInstance "i" (ID 2) ValuesDocument must be a YAML mapping of chart values, got a list' },
  );

  const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } };
  assert.deepEqual(additionalResources([cm], 'I'), [cm]);
  assert.deepEqual(additionalResources(cm, 'I'), [cm]);
  assert.deepEqual(additionalResources('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n---\n', 'I'), [cm]);
  assert.throws(() => additionalResources([cm, { kind: 'Secret', metadata: { name: 's' } }], 'I'), {
    name: 'TerminalError',
    message: 'I AdditionalResources item 2 is not a Kubernetes object: apiVersion missing',
  });
  assert.throws(() => additionalResources([{ apiVersion: 'v1', kind: 'Secret', metadata: {} }], 'I'), {
    message: 'I AdditionalResources item 1 (Secret) has no metadata.name',
  });

  const ns = generateNamespace('web');
  assert.match(ns, /^web-[a-z]{10}$/);
  assert.ok(isGeneratedNamespace('web', ns));
  assert.ok(!isGeneratedNamespace('web', 'shop'));
  assert.ok(!isGeneratedNamespace('web', 'web-ABCDEFGHIJ'));
});

test('post-render: labels only where absent, pod templates, Lists, additional resources appended', () => {
  const config = {
    ...threeportLabels('My Definition!', 'inst', 42),
    additionalResources: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'extra' } }],
  };
  const input = [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata: {name: d, labels: {app.kubernetes.io/name: chart-name}}',
    'spec: {template: {metadata: {labels: {app: d}}, spec: {containers: []}}}',
    '---',
    '# only a comment',
    '---',
    'apiVersion: v1',
    'kind: List',
    'items: [{apiVersion: v1, kind: Service, metadata: {name: s}}]',
  ].join('\n');
  const docs = parseAllDocuments(postRender(input, config)).map((d) => d.toJS() as Record<string, any>);
  assert.equal(docs.length, 3);
  assert.deepEqual(docs[0]!['metadata'].labels, {
    'app.kubernetes.io/name': 'chart-name',
    'app.kubernetes.io/managed-by': 'threeport',
    'app.kubernetes.io/instance': 'inst',
    [HELM_WORKLOAD_INSTANCE_LABEL]: '42',
    'control-plane.threeport.io/managed-by': 'threeport',
  });
  assert.deepEqual(docs[0]!['spec'].template.metadata.labels, {
    app: 'd',
    [HELM_WORKLOAD_INSTANCE_LABEL]: '42',
    'control-plane.threeport.io/managed-by': 'threeport',
  });
  assert.equal(docs[1]!['items'][0].metadata.labels[HELM_WORKLOAD_INSTANCE_LABEL], '42');
  assert.equal(docs[2]!['metadata'].name, 'extra');
  assert.equal(docs[2]!['metadata'].labels['app.kubernetes.io/name'], 'My-Definition', 'names become valid label values');
  assert.throws(() => postRender('a: [\n', config), /rendered document 1 is not valid YAML/);
});

test('scrubbing and transient-failure classification', () => {
  const s = new HelmScrubber();
  s.addSecret(FAKE_KEY, TOKEN);
  s.replace('/tmp/ws-1/', '');
  const text = `open /tmp/ws-1/instance-values.yaml failed; key ${FAKE_KEY} token=${TOKEN} b64 ${Buffer.from(FAKE_KEY).toString('base64')} https://user:pa55word@repo.example.com/x Authorization: Bearer abcdefghijklmnop`;
  const out = s.scrub(text);
  assert.ok(!out.includes(TOKEN) && !out.includes('PRIVATE KEY-----\nMIG') && !out.includes('pa55word') && !out.includes('abcdefghijklmnop'), out);
  assert.ok(!out.includes(Buffer.from(FAKE_KEY).toString('base64')));
  assert.ok(out.startsWith('open instance-values.yaml failed'), out);

  assert.equal(isTransientHelmFailure('Error: Kubernetes cluster unreachable: Get "https://127.0.0.1:1/version": dial tcp 127.0.0.1:1: connect: connection refused'), true);
  assert.equal(isTransientHelmFailure('Error: looks like "https://x" is not a valid chart repository or cannot be reached: Get "https://x/index.yaml": EOF'), true);
  assert.equal(isTransientHelmFailure('Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress'), true);
  assert.equal(isTransientHelmFailure('Error: chart "nope" not found in https://x repository'), false);
  assert.equal(isTransientHelmFailure("Error: values don't meet the specifications of the schema(s): replicaCount: got string, want integer"), false);
});

test(
  'workspace: helm template with the post-renderer; kubeconfig 0600, removed afterwards; errors scrubbed; cancel kills helm',
  { skip: SKIP_KUBE ? SKIP_KUBE_REASON : false, timeout: 120_000 },
  async () => {
    const helm = findHelm().path;
    const root = mkdtempSync(join(tmpdir(), 'threeport-helm-ws-'));
    // A server that accepts connections and never answers: helm waits on it until cancelled.
    const sockets: Socket[] = [];
    const blackhole = createServer((sock) => sockets.push(sock));
    await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
    const port = (blackhole.address() as { port: number }).port;
    const client = await createCa('client');
    try {
      const ws = HelmWorkspace.open(
        helm,
        { label: 'KubernetesRuntimeInstance "t" (ID 9)', server: `https://127.0.0.1:${port}`, clientKeyPem: client.key, clientCertPem: client.cert, token: TOKEN },
        root,
      );
      assert.equal(statSync(ws.dir).mode & 0o777, 0o700);
      assert.equal(statSync(ws.kubeconfig).mode & 0o777, 0o600);
      assert.ok(readFileSync(ws.kubeconfig, 'utf8').includes(TOKEN));

      // The real helm runs the post-renderer on the fixture chart.
      const wrapper = ws.postRenderer({
        ...threeportLabels('hello-def', 'hello-inst', 7),
        additionalResources: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'extra' } }],
      });
      const { stdout } = await ws.run(['template', 'r1', join(CHARTS_DIR, 'hello'), '--post-renderer', wrapper]);
      const objects = parseAllDocuments(stdout).map((d) => d.toJS() as { kind: string; metadata: { name: string; labels: Record<string, string> } });
      assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`), ['ConfigMap/r1-hello', 'Service/r1-hello', 'Deployment/r1-hello', 'ConfigMap/extra']);
      for (const o of objects) assert.equal(o.metadata.labels[HELM_WORKLOAD_INSTANCE_LABEL], '7');

      // A template error is reported with helm's message, and is not retryable.
      const err1 = await ws.run(['template', 'r1', join(CHARTS_DIR, 'hello'), '--set', 'replicaCount=many']).catch((e: unknown) => e);
      assert.ok(err1 instanceof HelmCommandError && err1.retryable === false, String(err1));
      assert.match(err1.message, /replicaCount.*got string, want integer/s);

      // helm against a cluster that never answers: cancelled, the whole process group is gone.
      const abort = new AbortController();
      const running = ws.run(['status', 'r1', '--namespace', 'x'], { signal: abort.signal });
      await new Promise((r) => setTimeout(r, 500));
      abort.abort();
      const err2 = await running.catch((e: unknown) => e);
      assert.ok(err2 instanceof HelmCommandError && err2.retryable === true && err2.message === 'helm status was cancelled', String(err2));

      // A short time limit stops it too, and the message says so.
      const err3 = await ws.run(['status', 'r1', '--namespace', 'x'], { timeoutMs: 300 }).catch((e: unknown) => e);
      assert.ok(err3 instanceof HelmCommandError && err3.retryable === true, String(err3));
      assert.match(err3.message, /^helm status did not finish within 0.3 s and was stopped/);
      for (const m of [err1, err2, err3].map((e) => (e as Error).message)) {
        assert.ok(!m.includes(TOKEN) && !m.includes('PRIVATE KEY'), m);
      }

      ws.close();
      assert.ok(!existsSync(ws.dir), 'the workspace (and its kubeconfig) is removed');
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((r) => blackhole.close(r));
      rmSync(root, { recursive: true, force: true });
    }
  },
);

test('stale workspaces of dead processes are removed; live ones are kept', async () => {
  const { removeStaleWorkspaces } = await import('../../src/providers/helm/workspace.js');
  const root = mkdtempSync(join(tmpdir(), 'threeport-helm-stale-'));
  try {
    mkdirSync(join(root, `work-${process.pid}-abc`));
    mkdirSync(join(root, 'work-999999999-abc'));
    mkdirSync(join(root, 'other'));
    assert.equal(removeStaleWorkspaces(root), 1);
    assert.ok(existsSync(join(root, `work-${process.pid}-abc`)) && existsSync(join(root, 'other')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
