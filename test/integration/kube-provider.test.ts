// The kube provider (src/providers/kube) against a real kube-apiserver from the harness:
// server-side apply (create, update, field manager), discovery, NotFound-tolerant delete,
// list, watches that resume across an API server restart and relist on 410 Gone, and error
// classification (unreachable, timeout, invalid, unknown kind) with messages that name the
// runtime and the endpoint and carry no credentials.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { kubeClusterClient, FIELD_MANAGER, type KubeClusterClient, type KubeObject } from '../../src/providers/kube/client.js';
import { connectionFieldsFromKubeconfig, connectionFromRuntimeInstance } from '../../src/providers/kube/connection.js';
import { KubeClients } from '../../src/providers/kube/clients.js';
import { KubeError } from '../../src/providers/kube/errors.js';
import type { WatchEvent } from '../../src/providers/kube/watch.js';
import { InputError } from '../../src/errors.js';
import { FieldCipher } from '../../src/crypto/field-encryption.js';
import { freePort } from '../../src/system.js';
import { startKubeClusters, SKIP_KUBE, SKIP_KUBE_REASON, type KubeCluster, type KubeClusterSet } from '../harness/kube-cluster.js';
import { until } from '../harness/until.js';


function configMap(name: string, data: Record<string, string>, namespace = 'default'): KubeObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels: { suite: 'kube-provider' } }, data };
}

test('kube provider against a real API server', { skip: SKIP_KUBE ? SKIP_KUBE_REASON : false, timeout: 300_000 }, async (t) => {
  let set: KubeClusterSet | undefined;
  let client: KubeClusterClient | undefined;
  try {
    set = await startKubeClusters({ names: ['p'], log: () => {} });
    const cluster: KubeCluster = set.get('p');
    client = kubeClusterClient(cluster.connection('KubernetesRuntimeInstance "p" (ID 7)'));
    const c = client;

    await t.test('discovery tells namespaced kinds from cluster-scoped ones', async () => {
      assert.deepEqual(
        { ...(await c.discover('apps/v1', 'Deployment')), verbs: undefined },
        { apiVersion: 'apps/v1', kind: 'Deployment', plural: 'deployments', namespaced: true, verbs: undefined },
      );
      assert.equal((await c.discover('v1', 'Namespace')).namespaced, false);
      assert.equal((await c.discover('rbac.authorization.k8s.io/v1', 'ClusterRole')).namespaced, false);
      const err = await c.discover('example.threeport.io/v1', 'Widget').then(
        () => assert.fail('an unknown kind must throw'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof KubeError);
      assert.equal(err.failure, 'UnknownKind');
      assert.equal(err.retryable, true, 'a CRD may be installed later');
      assert.equal(
        err.message,
        `KubernetesRuntimeInstance "p" (ID 7): the Kubernetes API server at ${cluster.server} does not serve example.threeport.io/v1 Widget (is its CustomResourceDefinition installed?)`,
      );
    });

    await t.test('server-side apply creates, updates and owns fields as "threeport"', async () => {
      const created = await c.apply(configMap('settings', { color: 'blue' }));
      assert.equal(created.metadata.namespace, 'default');
      assert.deepEqual(created['data'], { color: 'blue' });
      const managers = (created.metadata['managedFields'] as { manager: string; operation: string }[]).map((m) => `${m.manager}/${m.operation}`);
      assert.deepEqual(managers, [`${FIELD_MANAGER}/Apply`]);

      // Another manager changes a field; apply (forced) takes it back, and drops what we no longer declare.
      const r = await cluster.request('PATCH', '/api/v1/namespaces/default/configmaps/settings?fieldManager=someone-else', {
        body: { data: { color: 'red', extra: 'x' } },
        contentType: 'application/merge-patch+json',
      });
      assert.equal(r.status, 200, r.body);
      const updated = await c.apply(configMap('settings', { color: 'green', size: 'L' }));
      assert.deepEqual(updated['data'], { color: 'green', size: 'L', extra: 'x' });
      assert.notEqual(updated.metadata.resourceVersion, created.metadata.resourceVersion);
      const again = await c.apply(configMap('settings', { color: 'green', size: 'L' }));
      assert.equal(again.metadata.resourceVersion, updated.metadata.resourceVersion, 'an unchanged apply writes nothing');

      // A namespace on a cluster-scoped object is dropped rather than sent.
      const ns = await c.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'provider-test', namespace: 'ignored' } });
      assert.equal(ns.metadata.namespace, undefined);
      const inNs = await c.apply(configMap('in-ns', { a: '1' }, 'provider-test'));
      assert.equal(inNs.metadata.namespace, 'provider-test');
    });

    await t.test('get, list and NotFound-tolerant delete', async () => {
      assert.equal(await c.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'nope', namespace: 'default' }), undefined);
      const got = await c.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'settings' });
      assert.equal(got?.metadata.name, 'settings');
      const everywhere = await c.list('v1', 'ConfigMap', { labelSelector: 'suite=kube-provider' });
      assert.deepEqual(everywhere.items.map((i) => `${i.metadata.namespace}/${i.metadata.name}`).sort(), ['default/settings', 'provider-test/in-ns']);
      assert.ok(everywhere.items.every((i) => i.apiVersion === 'v1' && i.kind === 'ConfigMap'));
      assert.match(everywhere.resourceVersion, /^\d+$/);
      const oneNs = await c.list('v1', 'ConfigMap', { namespace: 'provider-test', labelSelector: 'suite=kube-provider' });
      assert.deepEqual(oneNs.items.map((i) => i.metadata.name), ['in-ns']);
      assert.equal(await c.delete({ apiVersion: 'v1', kind: 'ConfigMap', name: 'in-ns', namespace: 'provider-test' }), true);
      assert.equal(await c.delete({ apiVersion: 'v1', kind: 'ConfigMap', name: 'in-ns', namespace: 'provider-test' }), false);
      assert.equal(await c.delete({ apiVersion: 'v1', kind: 'Namespace', name: 'never-existed' }), false);
    });

    await t.test('invalid objects are rejected as not retryable', async () => {
      const err = await c
        .apply({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'broken' }, spec: { replicas: 1 } })
        .then(() => assert.fail('must throw'), (e: unknown) => e);
      assert.ok(err instanceof KubeError);
      assert.equal(err.failure, 'Invalid');
      assert.equal(err.status, 422);
      assert.equal(err.retryable, false);
      assert.match(err.message, /^KubernetesRuntimeInstance "p" \(ID 7\): apply apps\/v1 Deployment default\/broken failed: .*selector.*\(HTTP 422 Invalid\)$/s);
    });

    await t.test('a watch delivers changes, resumes from its resourceVersion across an API server restart, and relists on 410', async () => {
      const events: string[] = [];
      const errors: KubeError[] = [];
      const record = (e: WatchEvent): void => {
        if (e.object.metadata.labels?.['suite'] === 'watch') events.push(`${e.type} ${e.object.metadata.name} ${JSON.stringify(e.object['data'] ?? {})}`);
      };
      const w = c.watch('v1', 'ConfigMap', { namespace: 'default', labelSelector: 'suite=watch', onEvent: record, onError: (e) => errors.push(e) });
      await w.ready;
      const cm = (name: string, v: string): KubeObject => ({ ...configMap(name, { v }), metadata: { name, namespace: 'default', labels: { suite: 'watch' } } });
      await c.apply(cm('w1', '1'));
      await c.apply(cm('w1', '2'));
      await until('two events', () => (events.length >= 2 ? true : undefined));
      assert.deepEqual(events, ['ADDED w1 {"v":"1"}', 'MODIFIED w1 {"v":"2"}']);
      const rvBefore = w.resourceVersion;
      assert.ok(rvBefore);

      // The API server goes away: the watch reports retryable errors, then resumes where it was.
      await cluster.stopApiServer({ signal: 'SIGKILL' });
      await until('a watch error while the API server is down', () => (errors.length > 0 ? true : undefined));
      assert.ok(errors.every((e) => e.retryable && e.unreachable), errors.map((e) => e.message).join('\n'));
      await cluster.startApiServer();
      await c.apply(cm('w2', '1'));
      await c.delete({ apiVersion: 'v1', kind: 'ConfigMap', name: 'w1' });
      await until('events after the restart', () => (events.length >= 4 ? true : undefined));
      assert.deepEqual(events.slice(2), ['ADDED w2 {"v":"1"}', 'DELETED w1 {"v":"2"}']);
      assert.equal(w.relists, 0, 'resumed from its resourceVersion: no relist needed');
      await w.stop();

      // Resume a new watch from the old resourceVersion: it sees exactly what happened since.
      const resumed: string[] = [];
      const w2 = c.watch('v1', 'ConfigMap', {
        namespace: 'default',
        labelSelector: 'suite=watch',
        resourceVersion: rvBefore,
        onEvent: (e) => resumed.push(`${e.type} ${e.object.metadata.name}`),
      });
      await until('resumed events', () => (resumed.length >= 2 ? true : undefined));
      assert.deepEqual(resumed, ['ADDED w2', 'DELETED w1']);
      await w2.stop();

      // A resourceVersion the server no longer has (410 Gone): the watch lists again and carries on.
      const relisted: string[] = [];
      const w3 = c.watch('v1', 'ConfigMap', {
        namespace: 'default',
        labelSelector: 'suite=watch',
        resourceVersion: '1',
        onEvent: (e) => relisted.push(`${e.type} ${e.object.metadata.name}`),
      });
      await until('a relist after 410 Gone', () => (w3.relists >= 1 && relisted.length >= 1 ? true : undefined));
      assert.deepEqual(relisted, ['ADDED w2']);
      await w3.ready;
      await c.apply(cm('w3', '1'));
      await until('an event after the relist', () => (relisted.includes('ADDED w3') ? true : undefined));
      await w3.stop();
    });

    await t.test('an unreachable cluster is a retryable error naming the runtime and endpoint, never credentials', async () => {
      const port = await freePort();
      const conn = { ...cluster.connection('KubernetesRuntimeInstance "gone" (ID 9)'), server: `https://127.0.0.1:${port}`, token: 'secret-token-value' };
      const down = kubeClusterClient(conn);
      try {
        const err = await down.apply(configMap('x', {})).then(() => assert.fail('must throw'), (e: unknown) => e);
        assert.ok(err instanceof KubeError);
        assert.equal(err.failure, 'Unreachable');
        assert.equal(err.retryable, true);
        assert.equal(err.message, `KubernetesRuntimeInstance "gone" (ID 9): the Kubernetes API server at https://127.0.0.1:${port} is unreachable (connection refused); will retry`);
        for (const secret of ['secret-token-value', conn.clientKeyPem!.split('\n')[1]!]) assert.ok(!err.message.includes(secret));
      } finally {
        down.close();
      }

      // A server that accepts connections and never answers: a timeout, also retryable.
      const sockets: Socket[] = [];
      const blackhole: Server = createServer((s) => sockets.push(s));
      await new Promise<void>((r) => blackhole.listen(0, '127.0.0.1', r));
      const bhPort = (blackhole.address() as { port: number }).port;
      const slow = kubeClusterClient({ ...conn, server: `https://127.0.0.1:${bhPort}` }, { requestTimeoutMs: 500 });
      try {
        const err = await slow.version().then(() => assert.fail('must throw'), (e: unknown) => e);
        assert.ok(err instanceof KubeError);
        assert.equal(err.failure, 'Timeout');
        assert.equal(err.retryable, true);
        assert.equal(err.message, `KubernetesRuntimeInstance "gone" (ID 9): the Kubernetes API server at https://127.0.0.1:${bhPort} did not answer GET /version within 0.5 s; will retry`);
      } finally {
        slow.close();
        for (const s of sockets) s.destroy();
        await new Promise((r) => blackhole.close(r));
      }

      // The caller's abort is not a timeout.
      const ac = new AbortController();
      ac.abort();
      const aborted = await c.version({ signal: ac.signal }).then(() => assert.fail('must throw'), (e: unknown) => e);
      assert.ok(aborted instanceof KubeError);
      assert.equal(aborted.failure, 'Aborted');
    });

    await t.test('rejected credentials: 401, reported as such', async () => {
      const wrong = kubeClusterClient({ label: 'KubernetesRuntimeInstance "p" (ID 7)', server: cluster.server, caPem: cluster.caPem, token: 'not-a-valid-token' });
      try {
        const err = await wrong.version().then(() => assert.fail('must throw'), (e: unknown) => e);
        assert.ok(err instanceof KubeError);
        assert.equal(err.failure, 'Unauthorized');
        assert.match(err.message, /\(HTTP 401 Unauthorized\) \(the runtime instance credentials were rejected\)$/);
        assert.ok(!err.message.includes('not-a-valid-token'));
      } finally {
        wrong.close();
      }
    });

    await t.test('clients built from runtime instances and kubeconfig files', async () => {
      const fields = connectionFieldsFromKubeconfig(cluster.kubeconfigPath);
      assert.equal(fields.APIEndpoint, cluster.server);
      assert.equal(fields.CACertificate, cluster.caPem);
      assert.equal(fields.CertificateKey, cluster.clientKeyPem);
      const cipher = new FieldCipher(FieldCipher.generateKey());
      const instance = {
        ID: 7,
        Name: 'p',
        APIEndpoint: fields.APIEndpoint.replace('https://', ''),
        CACertificate: fields.CACertificate!,
        Certificate: fields.Certificate!,
        CertificateKey: cipher.encrypt(fields.CertificateKey!),
      };
      const conn = connectionFromRuntimeInstance(instance, (v) => cipher.decrypt(v), { inCluster: false });
      assert.equal(conn.server, cluster.server, 'an endpoint without scheme means https');
      assert.equal(conn.clientKeyPem, cluster.clientKeyPem);
      const clients = new KubeClients({ decrypt: (v) => cipher.decrypt(v) });
      try {
        const k1 = clients.forRuntime(instance);
        assert.equal(clients.forRuntime({ ...instance, UpdatedAt: 'later' }), k1, 'one client (and discovery cache) per runtime');
        assert.ok((await k1.version()).gitVersion.startsWith('v1.34'));
        const k2 = clients.forRuntime({ ...instance, CertificateKey: cipher.encrypt(fields.CertificateKey!) + '' });
        assert.notEqual(k2, k1, 'new connection fields, new client');
        assert.equal((await k2.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'settings' }))?.metadata.name, 'settings');
      } finally {
        clients.close();
      }
      assert.throws(
        () => connectionFromRuntimeInstance({ ID: 3, Name: 'empty' }, (v) => v),
        /KubernetesRuntimeInstance "empty" \(ID 3\) has no APIEndpoint yet/,
      );
    });
  } finally {
    client?.close();
    await set?.stopAll();
  }
});

test('kubeconfig files: contexts, file references and refused authentication plugins', () => {
  const dir = mkdtempSync(join(tmpdir(), 'threeport-kubeconfig-'));
  try {
    const ca = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    writeFileSync(join(dir, 'ca.crt'), ca);
    const path = join(dir, 'config');
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: tok',
        'clusters:',
        '- name: c1',
        '  cluster: {server: "https://10.0.0.1:6443", certificate-authority: ca.crt}',
        '- name: c2',
        '  cluster: {server: "https://example.invalid", insecure-skip-tls-verify: true}',
        'users:',
        '- name: token-user',
        '  user: {token: abc.def}',
        '- name: exec-user',
        '  user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: aws}}',
        'contexts:',
        '- name: tok',
        '  context: {cluster: c1, user: token-user}',
        '- name: exec',
        '  context: {cluster: c1, user: exec-user}',
        '- name: insecure',
        '  context: {cluster: c2, user: token-user}',
        '',
      ].join('\n'),
    );
    assert.deepEqual(connectionFieldsFromKubeconfig(path), { APIEndpoint: 'https://10.0.0.1:6443', CACertificate: ca, ConnectionToken: 'abc.def' });
    assert.throws(() => connectionFieldsFromKubeconfig(path, 'nope'), (e: unknown) => {
      assert.ok(e instanceof InputError);
      assert.equal(e.message, `kubeconfig ${path} has no context "nope"; it has: tok, exec, insecure`);
      return true;
    });
    assert.throws(() => connectionFieldsFromKubeconfig(path, 'exec'), /user exec-user authenticates through an exec plugin, which threeport cannot store/);
    assert.throws(() => connectionFieldsFromKubeconfig(path, 'insecure'), /insecure-skip-tls-verify; threeport needs its CA certificate/);
    assert.throws(() => connectionFieldsFromKubeconfig(join(dir, 'missing')), InputError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
