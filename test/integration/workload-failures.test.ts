// Workloads that cannot be applied, nested workloads, and watches that outlive their cluster's
// API server and the control plane itself. A real `threeport server` with one simulated cluster
// (InfraProvider kwok) created through the API:
//  - an instance created before its runtime serves waits for it, with an event;
//  - bad manifests: invalid YAML and non-objects get a 400 and nothing is stored; an unknown kind
//    and an invalid field give Status Error, a WorkloadEvent and an event, and are retried
//    slowly (unknown kind) or not at all (invalid field): no crash loop;
//  - DependsOn: the dependent waits until its dependency is Healthy, the dependency's deletion
//    waits for the dependent, and a cycle is a 400 that names it;
//  - a killed kube-apiserver: the watches resume and still repair drift;
//  - a restarted control plane: watches start again for existing instances, and a resource
//    deleted while it was down is restored.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import type { KubeClusterClient, KubeObject } from '../../src/providers/kube/client.js';
import { findKubeBinaries, SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';
import {
  api,
  clientFor,
  events,
  get,
  labelledObjects,
  list,
  must,
  startControlPlane,
  status,
  until,
  workloadEvents,
  type ControlPlane,
  type Obj,
} from './workload-helpers.js';

function deployment(name: string, extra: { replicas?: number; nodeSelector?: Record<string, string> } = {}): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas: extra.replicas ?? 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name, image: 'registry.k8s.io/pause:3.10' }], ...(extra.nodeSelector ? { nodeSelector: extra.nodeSelector } : {}) },
      },
    },
  };
}

function yamlOf(...objects: Record<string, unknown>[]): string {
  return objects.map((o) => JSON.stringify(o)).join('\n---\n');
}

const NOWHERE = { 'threeport.test/no-such-node': 'true' };

async function namespaceOf(cp: ControlPlane, instanceId: unknown): Promise<string> {
  const wris = await list(cp.server, 'workload-resource-instances', `workloadinstanceid=${String(instanceId)}`);
  return (wris.find((w) => (w['JSONDefinition'] as KubeObject).kind === 'Namespace')!['JSONDefinition'] as KubeObject).metadata.name;
}

async function eventCount(cp: ControlPlane, id: unknown, reason: string): Promise<number> {
  return (await events(cp.server, id)).filter((e) => e['Reason'] === reason).reduce((n, e) => n + Number(e['Count'] ?? 1), 0);
}

async function expectDeletedAndClean(cp: ControlPlane, runtime: Obj, ids: unknown[]): Promise<void> {
  for (const id of ids) {
    await until(`WorkloadInstance ${String(id)} deleted`, async () => ((await get(cp.server, 'workload-instances', id)) ? undefined : true));
    await until(`no object labelled for WorkloadInstance ${String(id)}`, async () =>
      (await labelledObjects(cp.server, runtime, id)).length === 0 ? true : undefined,
    180_000, 1_000);
  }
}

test('workloads: waiting, bad manifests, nested dependencies, watch resume and restart', { skip: SKIP_KUBE ? SKIP_KUBE_REASON : false, timeout: 900_000 }, async (t) => {
  findKubeBinaries();
  let cp: ControlPlane | undefined;
  const clients: KubeClusterClient[] = [];
  try {
    cp = await startControlPlane();
    let server = cp.server;

    // ---- an instance created before its runtime serves waits for it ---------------------------
    const rdef = await must(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'local', InfraProvider: 'kwok' });
    const gammaCreated = await must(server, 'POST', '/v0/kubernetes-runtime-instances', {
      Name: 'gamma',
      Location: 'Local',
      KubernetesRuntimeDefinitionID: rdef['ID'],
      DefaultRuntime: true,
    });
    const keepDef = await must(server, 'POST', '/v0/workload-definitions', { Name: 'keep', YAMLDocument: yamlOf(deployment('keep')) });
    const keep = await must(server, 'POST', '/v0/workload-instances', { Name: 'keep', WorkloadDefinitionID: keepDef['ID'], KubernetesRuntimeInstanceID: gammaCreated['ID'] });
    const waiting = await until('a WaitingForKubernetesRuntimeInstance event', async () =>
      (await events(server, keep['ID'])).find((e) => e['Reason'] === 'WaitingForKubernetesRuntimeInstance'),
    );
    assert.equal(waiting['Note'], `waiting for KubernetesRuntimeInstance "gamma" (ID ${String(gammaCreated['ID'])}) to be Reconciled`);
    assert.equal(await get(server, 'workload-instances', keep['ID']).then((o) => o?.['Status']), 'Reconciling');
    await status(server, keep['ID'], 'Healthy', 240_000);
    const gamma = (await get(server, 'kubernetes-runtime-instances', gammaCreated['ID']))!;
    const g = clientFor(server, gamma);
    clients.push(g);

    // ---- bad manifests -------------------------------------------------------------------------
    const badYaml = await api(server, 'POST', '/v0/workload-definitions', { Name: 'bad-yaml', YAMLDocument: 'kind: [unclosed' });
    assert.equal(badYaml.status, 400);
    assert.match(badYaml.text, /YAMLDocument is not valid YAML \(document 1\)/);
    const notObject = await api(server, 'POST', '/v0/workload-definitions', { Name: 'not-object', YAMLDocument: 'just a string' });
    assert.equal(notObject.status, 400);
    assert.match(notObject.text, /YAMLDocument document 1 is not a Kubernetes object/);
    assert.deepEqual(await list(server, 'workload-definitions', 'name=bad-yaml'), []);

    const unknownDef = await must(server, 'POST', '/v0/workload-definitions', {
      Name: 'unknown-kind',
      YAMLDocument: yamlOf(
        { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'before-widget' }, data: { a: '1' } },
        { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec: { size: 3 } },
      ),
    });
    const unknown = await must(server, 'POST', '/v0/workload-instances', { Name: 'unknown-kind', WorkloadDefinitionID: unknownDef['ID'], KubernetesRuntimeInstanceID: gamma['ID'] });
    await status(server, unknown['ID'], 'Error');
    const unknownEvent = await until('a CreateResourceError WorkloadEvent', async () =>
      (await workloadEvents(server, unknown['ID'])).find((e) => e['Reason'] === 'CreateResourceError'),
    );
    assert.equal(unknownEvent['Type'], 'Warning');
    assert.match(String(unknownEvent['Message']), /^WorkloadInstance "unknown-kind" \(ID \d+\): cannot apply Widget unknown-kind-[a-z0-9]{10}\/w: .*does not serve example\.com\/v1 Widget \(is its CustomResourceDefinition installed\?\)/);
    const failed = (await events(server, unknown['ID'])).find((e) => e['Reason'] === 'FailedCreate');
    assert.ok(failed, 'the failure is an event on the instance');
    assert.equal(failed['Note'], unknownEvent['Message']);
    const ns = await namespaceOf(cp, unknown['ID']);
    assert.ok(await g.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'before-widget', namespace: ns }), 'resources before the failing one are applied');

    const invalidDef = await must(server, 'POST', '/v0/workload-definitions', {
      Name: 'invalid-field',
      YAMLDocument: yamlOf(deployment('negative', { replicas: -1 })),
    });
    const invalid = await must(server, 'POST', '/v0/workload-instances', { Name: 'invalid-field', WorkloadDefinitionID: invalidDef['ID'], KubernetesRuntimeInstanceID: gamma['ID'] });
    await status(server, invalid['ID'], 'Error');
    const invalidInst = await until('CreationFailed', async () => {
      const o = await get(server, 'workload-instances', invalid['ID']);
      return o?.['CreationFailed'] === true ? o : undefined;
    });
    assert.equal(invalidInst['Reconciled'], false);
    const invalidEvent = (await events(server, invalid['ID'])).find((e) => e['Reason'] === 'FailedCreate')!;
    assert.match(String(invalidEvent['Note']), /cannot apply Deployment invalid-field-[a-z0-9]{10}\/negative: .*spec\.replicas: Invalid value: -1: must be greater than or equal to 0.*\(HTTP 422 Invalid\)/);
    await until('a CreateResourceError WorkloadEvent', async () =>
      (await workloadEvents(server, invalid['ID'])).some((e) => e['Reason'] === 'CreateResourceError') ? true : undefined,
    );
    // No crash loop: the invalid field is not retried; the unknown kind is retried slowly.
    const unknownAttempts = await eventCount(cp, unknown['ID'], 'FailedCreate');
    await new Promise((r) => setTimeout(r, 6_000));
    assert.equal(await eventCount(cp, invalid['ID'], 'FailedCreate'), 1, 'a validation error is not retried until the object changes');
    const unknownLater = await eventCount(cp, unknown['ID'], 'FailedCreate');
    t.diagnostic(`unknown kind: ${unknownAttempts} → ${unknownLater} attempts over 6 s`);
    assert.ok(unknownLater - unknownAttempts <= 2, `an unknown kind is retried with a slow backoff (${unknownAttempts} → ${unknownLater})`);
    assert.equal(await get(server, 'workload-instances', unknown['ID']).then((o) => o?.['Status']), 'Error');

    await must(server, 'DELETE', `/v0/workload-instances/${String(unknown['ID'])}`);
    await must(server, 'DELETE', `/v0/workload-instances/${String(invalid['ID'])}`);
    await expectDeletedAndClean(cp, gamma, [unknown['ID'], invalid['ID']]);

    // ---- nested workloads ----------------------------------------------------------------------
    const dbDef = await must(server, 'POST', '/v0/workload-definitions', { Name: 'db', YAMLDocument: yamlOf(deployment('db', { nodeSelector: NOWHERE })) });
    const appDef = await must(server, 'POST', '/v0/workload-definitions', { Name: 'app', YAMLDocument: yamlOf(deployment('app')) });
    const db = await must(server, 'POST', '/v0/workload-instances', { Name: 'db', WorkloadDefinitionID: dbDef['ID'], KubernetesRuntimeInstanceID: gamma['ID'] });
    const app = await must(server, 'POST', '/v0/workload-instances', {
      Name: 'app',
      WorkloadDefinitionID: appDef['ID'],
      KubernetesRuntimeInstanceID: gamma['ID'],
      DependsOn: [db['ID']],
    });
    await status(server, db['ID'], 'Down');
    const waitingDep = await until('a WaitingForDependency event on app', async () =>
      (await events(server, app['ID'])).find((e) => e['Reason'] === 'WaitingForDependency'),
    );
    assert.match(String(waitingDep['Note']), new RegExp(`^waiting for WorkloadInstance "db" \\(ID ${String(db['ID'])}\\) to be Healthy \\(it is (Reconciling|Down)\\)$`));
    assert.equal(await get(server, 'workload-instances', app['ID']).then((o) => o?.['Status']), 'Reconciling');
    assert.deepEqual(await list(server, 'workload-resource-instances', `workloadinstanceid=${String(app['ID'])}`), [], 'nothing of app is applied before db is Healthy');

    // Cycles are refused with a 400 that names them; nothing changes.
    const edge = await must(server, 'POST', '/v0/workload-instances', {
      Name: 'edge',
      WorkloadDefinitionID: appDef['ID'],
      KubernetesRuntimeInstanceID: gamma['ID'],
      DependsOn: [app['ID']],
    });
    const twoCycle = await api(server, 'PATCH', `/v0/workload-instances/${String(db['ID'])}`, { DependsOn: [app['ID']] });
    assert.equal(twoCycle.status, 400, twoCycle.text);
    assert.match(twoCycle.text, /dependency cycle: db → app → db/);
    const threeCycle = await api(server, 'PATCH', `/v0/workload-instances/${String(db['ID'])}`, { DependsOn: [edge['ID']] });
    assert.equal(threeCycle.status, 400);
    assert.match(threeCycle.text, /dependency cycle: db → edge → app → db/);
    const selfCycle = await api(server, 'PATCH', `/v0/workload-instances/${String(db['ID'])}`, { DependsOn: [db['ID']] });
    assert.equal(selfCycle.status, 400);
    assert.match(selfCycle.text, /dependency cycle: db → db/);
    const putCycle = await api(server, 'PUT', `/v0/workload-instances/${String(db['ID'])}`, {
      Name: 'db',
      WorkloadDefinitionID: dbDef['ID'],
      KubernetesRuntimeInstanceID: gamma['ID'],
      DependsOn: [app['ID']],
    });
    assert.equal(putCycle.status, 400);
    const missing = await api(server, 'POST', '/v0/workload-instances', { Name: 'orphan', WorkloadDefinitionID: appDef['ID'], KubernetesRuntimeInstanceID: gamma['ID'], DependsOn: [987654321] });
    assert.equal(missing.status, 400);
    assert.match(missing.text, /WorkloadInstance 987654321 does not exist/);
    const notIds = await api(server, 'POST', '/v0/workload-instances', { Name: 'orphan', WorkloadDefinitionID: appDef['ID'], KubernetesRuntimeInstanceID: gamma['ID'], DependsOn: ['db'] });
    assert.equal(notIds.status, 400);
    assert.match(notIds.text, /DependsOn must hold WorkloadInstance IDs/);
    assert.equal((await get(server, 'workload-instances', db['ID']))?.['DependsOn'], undefined);
    await must(server, 'DELETE', `/v0/workload-instances/${String(edge['ID'])}`);
    await expectDeletedAndClean(cp, gamma, [edge['ID']]);

    // The dependency becomes Healthy: the dependent is applied.
    await must(server, 'PATCH', `/v0/workload-definitions/${String(dbDef['ID'])}`, { YAMLDocument: yamlOf(deployment('db')), Reconciled: false });
    await status(server, db['ID'], 'Healthy');
    await status(server, app['ID'], 'Healthy');

    // Deleting the dependency waits for its dependent.
    await must(server, 'DELETE', `/v0/workload-instances/${String(db['ID'])}`);
    const waitingDelete = await until('a WaitingForDependents event on db', async () =>
      (await events(server, db['ID'])).find((e) => e['Reason'] === 'WaitingForDependents'),
    );
    assert.equal(waitingDelete['Note'], `waiting for dependent WorkloadInstance "app" (ID ${String(app['ID'])}) to be deleted first`);
    const dbNs = await namespaceOf(cp, db['ID']);
    assert.ok(await g.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'db', namespace: dbNs }), 'the dependency still runs');
    await must(server, 'DELETE', `/v0/workload-instances/${String(app['ID'])}`);
    await expectDeletedAndClean(cp, gamma, [app['ID'], db['ID']]);

    // ---- the cluster's API server dies: watches resume, drift is still repaired ---------------
    const keepNs = await namespaceOf(cp, keep['ID']);
    const pids = JSON.parse(readFileSync(join(cp.dataDir, 'runtimes', 'gamma', 'state.json'), 'utf8')) as { pids: Record<string, number> };
    process.kill(pids.pids['kube-apiserver']!, 'SIGKILL');
    await until('gamma serving again', async () => ((await g.version().catch(() => undefined)) ? true : undefined), 120_000, 500);
    const beforeKill = await until('keep Deployment readable', () => g.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'keep', namespace: keepNs }));
    assert.equal(await g.delete({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'keep', namespace: keepNs }), true);
    await until('keep restored after the API server restart', async () => {
      const d = await g.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'keep', namespace: keepNs });
      return d && d.metadata.uid !== beforeKill.metadata.uid ? true : undefined;
    });
    await status(server, keep['ID'], 'Healthy');

    // ---- the control plane restarts: watches come back for existing instances -----------------
    server = await cp.restart();
    const gamma2 = await until('gamma back after the restart', async () => {
      const o = await get(server, 'kubernetes-runtime-instances', gamma['ID']);
      return o?.['Reconciled'] === true ? o : undefined;
    }, 240_000);
    const g2 = clientFor(server, gamma2);
    clients.push(g2);
    const live = await until('keep Deployment after the restart', () => g2.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'keep', namespace: keepNs }), 120_000);
    assert.equal(await g2.delete({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'keep', namespace: keepNs }), true);
    await until('keep restored by the restarted control plane', async () => {
      const d = await g2.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'keep', namespace: keepNs });
      return d && d.metadata.uid !== live.metadata.uid ? true : undefined;
    });
    await until('the Restored event', async () =>
      (await events(server, keep['ID'])).some((e) => e['Note'] === `Restored Deployment ${keepNs}/keep deleted out of band`) ? true : undefined,
    );
    await status(server, keep['ID'], 'Healthy');

    // Objects attached to the instance go with it (its Events stay); a ref to a missing object is fine.
    const attached = await must(server, 'POST', '/v0/profiles', { Name: 'attached-to-keep' });
    const ref = await must(server, 'POST', '/v0/attached-object-references', {
      ObjectType: 'v0.WorkloadInstance',
      ObjectID: keep['ID'],
      AttachedObjectType: 'v0.Profile',
      AttachedObjectID: attached['ID'],
    });
    const dangling = await must(server, 'POST', '/v0/attached-object-references', {
      ObjectType: 'v0.WorkloadInstance',
      ObjectID: keep['ID'],
      AttachedObjectType: 'v0.Tier',
      AttachedObjectID: 987654321,
    });
    await must(server, 'DELETE', `/v0/workload-instances/${String(keep['ID'])}`);
    await expectDeletedAndClean(cp, gamma2, [keep['ID']]);
    assert.equal(await get(server, 'profiles', attached['ID']), undefined, 'the attached object is deleted');
    assert.equal(await get(server, 'attached-object-references', ref['ID']), undefined);
    assert.equal(await get(server, 'attached-object-references', dangling['ID']), undefined);
    assert.ok((await events(server, keep['ID'])).length > 0, 'the instance\'s events stay');
    assert.deepEqual(await labelledObjects(server, gamma2), []);
  } finally {
    for (const c of clients) c.close();
    await cp?.close();
  }
});
