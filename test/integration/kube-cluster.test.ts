// Two simulated Kubernetes control planes (real kube-apiserver/controller-manager/scheduler on a
// shared etcd, kwok for nodes): a Deployment becomes Available, clusters are isolated, and a
// cluster's API server can be killed and restarted without losing state.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import test from 'node:test';
import { startKubeClusters, pollUntil, type KubeCluster, type KubeClusterSet } from '../harness/kube-cluster.js';

const skipKube = process.env.THREEPORT_SKIP_KUBE === '1';

function kubectl(cluster: KubeCluster, args: string[], stdin?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('kubectl', [`--kubeconfig=${cluster.kubeconfigPath}`, '--request-timeout=20s', ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`kubectl ${args.join(' ')} exited ${code}: ${err}${out}`));
    });
    child.stdin.end(stdin ?? '');
  });
}

const manifest = `
apiVersion: v1
kind: ConfigMap
metadata:
  name: greeting
  namespace: default
data:
  hello: world
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.k8s.io/pause:3.10
`;

interface DeploymentStatus {
  status?: { readyReplicas?: number; availableReplicas?: number; conditions?: { type: string; status: string }[] };
}

test(
  'simulated clusters: deployment becomes available, clusters are isolated, API server restarts',
  { skip: skipKube ? 'THREEPORT_SKIP_KUBE=1: Kubernetes integration tests skipped' : false, timeout: 400_000 },
  async (t) => {
    let set: KubeClusterSet | undefined;
    try {
      const t0 = Date.now();
      set = await startKubeClusters({ names: ['a', 'b'] });
      t.diagnostic(`2 clusters up in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
      const a = set.get('a');
      const b = set.get('b');

      await kubectl(a, ['apply', '-f', '-'], manifest);

      const deployPath = '/apis/apps/v1/namespaces/default/deployments/web';
      const tDeploy = Date.now();
      const status = await pollUntil(
        'deployment web Available with 2 ready replicas on cluster a',
        async () => {
          const r = await a.request('GET', deployPath);
          const d = r.json as DeploymentStatus;
          const available = d.status?.conditions?.find((c) => c.type === 'Available')?.status === 'True';
          return available && d.status?.readyReplicas === 2 ? d.status : undefined;
        },
        { timeoutMs: 90_000, intervalMs: 500 },
      );
      assert.equal(status.availableReplicas, 2);
      t.diagnostic(`deployment available after ${((Date.now() - tDeploy) / 1000).toFixed(1)}s`);

      const pods = JSON.parse(await kubectl(a, ['get', 'pods', '-l', 'app=web', '-o', 'json'])) as {
        items: { spec: { nodeName?: string }; status: { phase?: string } }[];
      };
      assert.equal(pods.items.length, 2);
      for (const p of pods.items) {
        assert.ok(a.nodeNames.includes(p.spec.nodeName ?? ''), `pod scheduled on a fake node: ${p.spec.nodeName}`);
        assert.equal(p.status.phase, 'Running');
      }

      // Isolation: same etcd, different prefixes.
      assert.equal((await a.request('GET', '/api/v1/namespaces/default/configmaps/greeting')).status, 200);
      assert.equal((await b.request('GET', '/api/v1/namespaces/default/configmaps/greeting')).status, 404);
      assert.equal((await b.request('GET', deployPath)).status, 404);

      const rss = [...a.processes().map((p) => [p.component, p.rssBytes] as const), ['etcd (shared)', set.etcdRssBytes()] as const];
      t.diagnostic(
        'RSS: ' + rss.map(([c, bytes]) => `${c}=${bytes === undefined ? '?' : Math.round(bytes / 2 ** 20)}MiB`).join(' '),
      );

      // Kill cluster a's API server hard, check it is down, bring it back.
      await a.stopApiServer({ signal: 'SIGKILL' });
      assert.equal(a.apiServerRunning(), false);
      await assert.rejects(a.request('GET', '/readyz', { timeoutMs: 2_000 }));
      const tRestart = Date.now();
      await a.startApiServer();
      t.diagnostic(`kube-apiserver restarted in ${((Date.now() - tRestart) / 1000).toFixed(1)}s`);

      const after = await a.request('GET', deployPath);
      assert.equal(after.status, 200);
      assert.equal((after.json as DeploymentStatus).status?.readyReplicas, 2);
      const cm = await kubectl(a, ['get', 'configmap', 'greeting', '-o', 'jsonpath={.data.hello}']);
      assert.equal(cm, 'world');

      // The controllers reconnect: a scale-up after the restart is acted on.
      await kubectl(a, ['scale', 'deployment/web', '--replicas=3']);
      await pollUntil(
        'deployment web with 3 ready replicas after the restart',
        async () => {
          const d = (await a.request('GET', deployPath)).json as DeploymentStatus;
          return d.status?.readyReplicas === 3 ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
    } finally {
      await set?.stopAll();
    }
  },
);

const statefulManifest = `
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: uploads
  namespace: default
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: default
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: registry.k8s.io/pause:3.10
        volumeMounts: [{name: data, mountPath: /data}, {name: uploads, mountPath: /uploads}]
      volumes: [{name: uploads, persistentVolumeClaim: {claimName: uploads}}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 8Gi}}
`;

test(
  'simulated clusters: claims without a class bind through the default StorageClass, and pods get the kubelet events',
  { skip: skipKube ? 'THREEPORT_SKIP_KUBE=1: Kubernetes integration tests skipped' : false, timeout: 300_000 },
  async () => {
    let set: KubeClusterSet | undefined;
    try {
      set = await startKubeClusters({ names: ['storage'] });
      const c = set.get('storage');
      const classes = JSON.parse(await kubectl(c, ['get', 'storageclass', '-o', 'json'])) as {
        items: { metadata: { name: string; annotations?: Record<string, string> }; provisioner: string }[];
      };
      assert.deepEqual(
        classes.items.map((s) => [s.metadata.name, s.provisioner, s.metadata.annotations?.['storageclass.kubernetes.io/is-default-class']]),
        [['standard', 'kubernetes.io/host-path', 'true']],
      );
      await kubectl(c, ['apply', '-f', '-'], statefulManifest);
      await pollUntil(
        'statefulset db ready (its claims bound)',
        async () => {
          const s = (await c.request('GET', '/apis/apps/v1/namespaces/default/statefulsets/db')).json as { status?: { readyReplicas?: number } };
          return s.status?.readyReplicas === 1 ? true : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 500 },
      );
      const claims = JSON.parse(await kubectl(c, ['get', 'pvc', '-o', 'json'])) as { items: { metadata: { name: string }; status: { phase: string } }[] };
      assert.deepEqual(claims.items.map((p) => [p.metadata.name, p.status.phase]).sort(), [['data-db-0', 'Bound'], ['uploads', 'Bound']]);
      // The scheduler's Scheduled, then kwok's kubelet-like Pulled, Created and Started, in that order.
      const reasons = await pollUntil(
        'the events of pod db-0',
        async () => {
          const list = JSON.parse(await kubectl(c, ['get', 'events', '--field-selector', 'involvedObject.name=db-0', '-o', 'json'])) as {
            items: { reason: string; type: string; firstTimestamp?: string; eventTime?: string; metadata: { creationTimestamp: string } }[];
          };
          const normal = list.items.filter((e) => e.type === 'Normal').sort((a, b) => Date.parse(a.metadata.creationTimestamp) - Date.parse(b.metadata.creationTimestamp));
          const got = normal.map((e) => e.reason);
          return ['Scheduled', 'Pulled', 'Created', 'Started'].every((r) => got.includes(r)) ? got : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 500 },
      );
      const order = ['Pulled', 'Created', 'Started'].map((r) => reasons.indexOf(r));
      assert.deepEqual([...order].sort((x, y) => x - y), order, `kubelet events in order: ${reasons.join(', ')}`);
      // Deleting a claim removes its volume (reclaim policy Delete).
      await kubectl(c, ['delete', 'statefulset', 'db', '--wait=false']);
      await kubectl(c, ['delete', 'pvc', 'uploads', 'data-db-0', '--wait=false']);
      await pollUntil(
        'the volumes deleted with their claims',
        async () => ((JSON.parse(await kubectl(c, ['get', 'pv', '-o', 'json'])) as { items: unknown[] }).items.length === 0 ? true : undefined),
        { timeoutMs: 90_000, intervalMs: 1000 },
      );
    } finally {
      await set?.stopAll();
    }
  },
);
