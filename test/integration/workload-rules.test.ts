// The workload controller's pure rules, without peers: the status rules of docs/workloads.md,
// the namespace and label rules of spec §3.1, and the drift comparison.
import assert from 'node:assert/strict';
import test from 'node:test';
import type { KubeObject } from '../../src/providers/kube/client.js';
import { deriveStatus, STATUS_REASON_MAX, statusFields, type StatusInput } from '../../src/controllers/workload/status.js';
import { instanceStatus } from '../../src/cli/render.js';
import { addThreeportLabels, generateNamespaceName, resourceKey } from '../../src/controllers/workload/resources.js';
import { containsDeclared } from '../../src/controllers/workload/index.js';
import { runtimeDefinitionOf } from '../../src/controllers/workload/runtime-watch.js';

const NOW = Date.parse('2030-01-01T00:10:00Z');
const iso = (msAgo: number): string => new Date(NOW - msAgo).toISOString();

function deployment(uid: string, spec: { replicas?: number }, status: Record<string, unknown>, generation = 1): KubeObject {
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: uid, uid, generation }, spec, status } as KubeObject;
}

function replicaSet(uid: string, owner: string): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name: uid, uid, ownerReferences: [{ uid: owner, controller: true }] },
    spec: { replicas: 1 },
    status: {},
  } as unknown as KubeObject;
}

function pod(uid: string, rs: string, status: Record<string, unknown>): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: uid, uid, ownerReferences: [{ uid: rs, controller: true }] }, status } as unknown as KubeObject;
}

const ready = { phase: 'Running', startTime: iso(60_000), conditions: [{ type: 'Ready', status: 'True' }] };
const unschedulable = { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable' }] };
const pending = { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }] };

function input(over: Partial<StatusInput>): StatusInput {
  return { phase: 'applied', resources: [], pods: [], replicaSets: [], warnings: [], synced: true, now: NOW, ...over };
}

const settled = (n: number, readyN: number): Record<string, unknown> => ({ observedGeneration: 1, replicas: n, updatedReplicas: n, readyReplicas: readyN });

test('status: the reconciler phase comes first', () => {
  assert.equal(deriveStatus(input({ phase: 'error' })).status, 'Error');
  assert.equal(deriveStatus(input({ phase: 'reconciling' })).status, 'Reconciling');
  assert.equal(deriveStatus(input({ synced: false })).status, 'Reconciling');
  assert.equal(deriveStatus(input({ resources: [{ apiVersion: 'v1', kind: 'ConfigMap', live: undefined }] })).status, 'Healthy');
});

test('status: Healthy, Down, Unhealthy and Reconciling from replicas and pods', () => {
  const d = (status: Record<string, unknown>, replicas = 1, generation = 1) => [{ apiVersion: 'apps/v1', kind: 'Deployment', live: deployment('d', { replicas }, status, generation) }];
  assert.equal(deriveStatus(input({ resources: d(settled(1, 1)) })).status, 'Healthy');
  assert.equal(deriveStatus(input({ resources: [{ apiVersion: 'apps/v1', kind: 'Deployment', live: undefined }] })).status, 'Reconciling', 'not seen yet');
  assert.equal(deriveStatus(input({ resources: d(settled(1, 1), 1, 2) })).status, 'Reconciling', 'observedGeneration behind');
  // No pods yet, or a pod still Pending without a failure: starting.
  assert.equal(deriveStatus(input({ resources: d(settled(1, 0)) })).status, 'Reconciling');
  const rs = [replicaSet('rs', 'd')];
  assert.equal(deriveStatus(input({ resources: d(settled(1, 0)), replicaSets: rs, pods: [pod('p', 'rs', pending)] })).status, 'Reconciling');
  // Unschedulable: Down with none ready, Unhealthy with some.
  const down = deriveStatus(input({ resources: d(settled(1, 0)), replicaSets: rs, pods: [pod('p', 'rs', unschedulable)] }));
  assert.deepEqual([down.status, down.detail], ['Down', 'Deployment with no ready replicas']);
  assert.equal(
    deriveStatus(input({ resources: d(settled(2, 1), 2), replicaSets: rs, pods: [pod('p1', 'rs', ready), pod('p2', 'rs', unschedulable)] })).status,
    'Unhealthy',
  );
  // Crash loops and failed containers fail at once.
  const crashing = { phase: 'Running', startTime: iso(5_000), conditions: [{ type: 'Ready', status: 'False' }], containerStatuses: [{ restartCount: 3, state: { waiting: { reason: 'CrashLoopBackOff' } } }] };
  assert.equal(deriveStatus(input({ resources: d(settled(1, 0)), replicaSets: rs, pods: [pod('p', 'rs', crashing)] })).status, 'Down');
  // Running but not ready: starting during the grace, failing after it.
  const notReady = (msAgo: number) => ({ phase: 'Running', startTime: iso(msAgo), conditions: [{ type: 'Ready', status: 'False', lastTransitionTime: iso(msAgo) }] });
  const early = deriveStatus(input({ resources: d(settled(1, 0)), replicaSets: rs, pods: [pod('p', 'rs', notReady(5_000))] }));
  assert.equal(early.status, 'Reconciling');
  assert.equal(early.recheckAt, NOW + 25_000, 'derived again when the grace ends');
  assert.equal(deriveStatus(input({ resources: d(settled(1, 0)), replicaSets: rs, pods: [pod('p', 'rs', notReady(40_000))] })).status, 'Down');
  // A failed rollout.
  assert.equal(
    deriveStatus(input({ resources: d({ ...settled(1, 0), conditions: [{ type: 'Progressing', status: 'False', reason: 'ProgressDeadlineExceeded' }] }) })).status,
    'Down',
  );
  // Scaled to zero is fine.
  assert.equal(deriveStatus(input({ resources: d({ observedGeneration: 1 }, 0) })).status, 'Healthy');
});

test('status: warnings count while recent, and only about objects that are not healthy now', () => {
  const resources = [
    { apiVersion: 'apps/v1', kind: 'Deployment', live: deployment('d', { replicas: 1 }, settled(1, 1)) },
    { apiVersion: 'v1', kind: 'Service', live: { apiVersion: 'v1', kind: 'Service', metadata: { name: 's', uid: 'svc' } } as KubeObject },
  ];
  const rs = [replicaSet('rs', 'd')];
  const pods = [pod('p', 'rs', ready)];
  // FailedScheduling about a pod that is Ready now: resolved, ignored.
  assert.equal(deriveStatus(input({ resources, replicaSets: rs, pods, warnings: [{ involvedUid: 'p', at: NOW - 1_000 }] })).status, 'Healthy');
  // About a deleted object: ignored.
  assert.equal(deriveStatus(input({ resources, replicaSets: rs, pods, warnings: [{ involvedUid: 'gone', at: NOW - 1_000 }] })).status, 'Healthy');
  // About a Service, recent: Unhealthy until it leaves the window.
  const recent = deriveStatus(input({ resources, replicaSets: rs, pods, warnings: [{ involvedUid: 'svc', at: NOW - 10_000 }] }));
  assert.equal(recent.status, 'Unhealthy');
  assert.equal(recent.recheckAt, NOW + 50_000);
  assert.equal(deriveStatus(input({ resources, replicaSets: rs, pods, warnings: [{ involvedUid: 'svc', at: NOW - 61_000 }] })).status, 'Healthy');
  // The API server's IP allocation repair loop reports a repair it made: not about health.
  assert.equal(deriveStatus(input({ resources, replicaSets: rs, pods, warnings: [{ involvedUid: 'svc', reason: 'ClusterIPNotAllocated', at: NOW - 1_000 }] })).status, 'Healthy');
});

test('namespace names, labels and resource identity', () => {
  const seq = [0, 1, 2, 3, 4, 5, 6, 7, 8, 35];
  let i = 0;
  assert.equal(generateNamespaceName('blog', () => seq[i++]!), 'blog-abcdefghi9');
  assert.match(generateNamespaceName('My_App.Prod'), /^my-app-prod-[a-z0-9]{10}$/);
  assert.ok(generateNamespaceName('x'.repeat(80)).length <= 63);

  const labelled = addThreeportLabels(
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', labels: { 'app.kubernetes.io/name': 'mine', 'control-plane.threeport.io/workload-instance': '999' } },
      spec: { template: { metadata: { labels: { app: 'web' } } } },
    },
    { definitionName: 'web def', instanceName: 'web', instanceId: 7 },
  );
  assert.deepEqual(labelled.metadata.labels, {
    'app.kubernetes.io/managed-by': 'threeport',
    'app.kubernetes.io/name': 'mine',
    'app.kubernetes.io/instance': 'web',
    'control-plane.threeport.io/workload-instance': '7',
    'control-plane.threeport.io/managed-by': 'threeport',
  });
  assert.deepEqual((labelled['spec'] as { template: { metadata: { labels: object } } }).template.metadata.labels, {
    app: 'web',
    'control-plane.threeport.io/workload-instance': '7',
    'control-plane.threeport.io/managed-by': 'threeport',
  });
  assert.equal(resourceKey({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'w', namespace: 'n' } }), 'apps/Deployment/n/w');
  assert.equal(resourceKey({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'n' } }), '/Namespace//n');
});

test('drift comparison and recorded runtime definitions', () => {
  const desired = { spec: { replicas: 1, template: { spec: { containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 80 }] }] } } } };
  const live = { spec: { replicas: 1, progressDeadlineSeconds: 600, template: { spec: { containers: [{ name: 'a', image: 'x', ports: [{ containerPort: 80, protocol: 'TCP' }] }] } } } };
  assert.equal(containsDeclared(live, desired), true, 'defaulted fields are not drift');
  assert.equal(containsDeclared({ spec: { ...live.spec, replicas: 3 } }, desired), false);
  assert.equal(containsDeclared({ spec: { ...live.spec, template: { spec: { containers: [] } } } }, desired), false);
  assert.equal(containsDeclared({ port: '80' }, { port: 80 }), true);

  const secret = runtimeDefinitionOf({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 's', managedFields: [{ manager: 'threeport' }], annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{"data":{}}', keep: 'me' } },
    data: { password: 'c2VjcmV0' },
  });
  assert.deepEqual(secret['data'], { password: '[redacted]' });
  assert.deepEqual((secret['metadata'] as { annotations: object }).annotations, { keep: 'me' });
  assert.equal((secret['metadata'] as { managedFields?: unknown }).managedFields, undefined);
});

test('status: Down and Unhealthy carry a one-line reason naming the workload and the newest warning about it', () => {
  const d = [{ apiVersion: 'apps/v1', kind: 'Deployment', live: deployment('wordpress', { replicas: 1 }, settled(1, 0)) }];
  const rs = [replicaSet('rs', 'wordpress')];
  const warnings = [
    { involvedUid: 'p', reason: 'FailedScheduling', message: 'old news', at: NOW - 30_000 },
    { involvedUid: 'p', reason: 'FailedScheduling', message: '0/1 nodes are available:\n pod has unbound immediate PersistentVolumeClaims.', at: NOW - 1_000 },
    { involvedUid: 'elsewhere', reason: 'BackOff', message: 'not about this workload', at: NOW },
  ];
  const down = deriveStatus(input({ resources: d, replicaSets: rs, pods: [pod('p', 'rs', unschedulable)], warnings }));
  assert.equal(down.status, 'Down');
  assert.equal(down.reason, 'Deployment wordpress: no ready replicas (FailedScheduling: 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.)');
  assert.deepEqual(statusFields(down), { Status: 'Down', StatusReason: down.reason });
  // Without a warning the reason still names what is not ready; a Healthy status has none.
  assert.equal(deriveStatus(input({ resources: d, replicaSets: rs, pods: [pod('p', 'rs', unschedulable)] })).reason, 'Deployment wordpress: no ready replicas');
  const healthy = deriveStatus(input({ resources: [{ apiVersion: 'apps/v1', kind: 'Deployment', live: deployment('wordpress', { replicas: 1 }, settled(1, 1)) }] }));
  assert.deepEqual(statusFields(healthy), { Status: 'Healthy', StatusReason: null });
  // A long message is cut to one bounded line.
  const long = deriveStatus(input({ resources: d, replicaSets: rs, pods: [pod('p', 'rs', unschedulable)], warnings: [{ involvedUid: 'p', reason: 'X', message: 'y'.repeat(1000), at: NOW }] }));
  assert.equal(long.reason!.length, STATUS_REASON_MAX);
  assert.ok(long.reason!.endsWith('…'));
  // What `tptctl get workloads` shows.
  assert.equal(instanceStatus({ ID: 1, Status: 'Down', StatusReason: down.reason } as never), `Down: ${down.reason}`);
  assert.equal(instanceStatus({ ID: 1, Status: 'Healthy', StatusReason: null } as never), 'Healthy');
});
