// Workloads against real peers: a real `threeport server` (API + controllers, embedded
// PostgreSQL) with two simulated clusters (InfraProvider kwok) created through the API.
//  - WordPress + MySQL (Secrets, a ConfigMap, a PVC, Services, a StatefulSet, a Deployment) on
//    two clusters from one definition: generated namespaces, labels (pod templates too), one WRI
//    per resource with its live RuntimeDefinition, WorkloadEvents, Status Healthy;
//  - a manifest with its own Namespace, used as it is;
//  - a definition update rolls out to both instances;
//  - a Deployment deleted, and one scaled, out of band are restored, with an event;
//  - pods that cannot be scheduled: Status Down, and Unhealthy when only some are ready;
//  - deletion leaves no labelled object behind on either cluster.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import type { KubeClusterClient, KubeObject } from '../../src/providers/kube/client.js';
import { packageRoot } from '../../src/providers/runtimes/kwok/binaries.js';
import {
  ANNOTATION_DEFINITION,
  LABEL_CP_MANAGED_BY,
  LABEL_INSTANCE,
  LABEL_MANAGED_BY,
  LABEL_NAME,
  LABEL_WORKLOAD_INSTANCE,
} from '../../src/controllers/workload/resources.js';
import { findKubeBinaries, SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';
import {
  clientFor,
  createManualVolume,
  createRuntimes,
  events,
  get,
  kubeCall,
  labelledObjects,
  list,
  must,
  startControlPlane,
  status,
  until,
  workloadEvents,
  type ControlPlane,
} from './workload-helpers.js';

const MANIFESTS = join(packageRoot() ?? '.', 'test', 'fixtures', 'manifests');
const WORDPRESS = readFileSync(join(MANIFESTS, 'wordpress.yaml'), 'utf8');
const WITH_NAMESPACE = readFileSync(join(MANIFESTS, 'web-with-namespace.yaml'), 'utf8');

function deployment(name: string, spec: { replicas?: number; extraPodSpec?: Record<string, unknown> } = {}): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas: spec.replicas ?? 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name, image: 'registry.k8s.io/pause:3.10' }], ...(spec.extraPodSpec ?? {}) },
      },
    },
  });
}

test('workloads: realistic apps on two clusters, rollouts, drift repair, status, cleanup', { skip: SKIP_KUBE ? SKIP_KUBE_REASON : false, timeout: 900_000 }, async (t) => {
  findKubeBinaries();
  let cp: ControlPlane | undefined;
  const clients: KubeClusterClient[] = [];
  try {
    cp = await startControlPlane();
    const server = cp.server;
    const t0 = Date.now();
    const [alpha, beta] = await createRuntimes(server, ['alpha', 'beta']);
    t.diagnostic(`two kwok runtimes up in ${Date.now() - t0} ms`);
    const a = clientFor(server, alpha!);
    const b = clientFor(server, beta!);
    clients.push(a, b);
    await createManualVolume(a, 'wp-volume');
    await createManualVolume(b, 'wp-volume');

    // ---- WordPress + MySQL on both clusters from one definition ------------------------------
    const wd = await must(server, 'POST', '/v0/workload-definitions', { Name: 'wordpress', YAMLDocument: WORDPRESS });
    const wrds = await until('the definition split into WRDs', async () => {
      const d = await get(server, 'workload-definitions', wd['ID']);
      if (d?.['Reconciled'] !== true) return undefined;
      return list(server, 'workload-resource-definitions', `workloaddefinitionid=${String(wd['ID'])}`);
    });
    assert.deepEqual(
      wrds.map((w) => `${(w['JSONDefinition'] as KubeObject).kind}/${(w['JSONDefinition'] as KubeObject).metadata.name}`),
      ['Secret/mysql-pass', 'Secret/wordpress-salts', 'ConfigMap/wordpress-config', 'Service/mysql', 'StatefulSet/mysql', 'PersistentVolumeClaim/wp-pv-claim', 'Service/wordpress', 'Deployment/wordpress'],
    );
    const tCreate = Date.now();
    const onAlpha = await must(server, 'POST', '/v0/workload-instances', {
      Name: 'blog',
      WorkloadDefinitionID: wd['ID'],
      KubernetesRuntimeInstanceID: alpha!['ID'],
    });
    const onBeta = await must(server, 'POST', '/v0/workload-instances', {
      Name: 'blog-beta',
      WorkloadDefinitionID: wd['ID'],
      KubernetesRuntimeInstanceID: beta!['ID'],
    });
    await status(server, onAlpha['ID'], 'Healthy');
    await status(server, onBeta['ID'], 'Healthy');
    t.diagnostic(`two WordPress instances Healthy ${Date.now() - tCreate} ms after create`);

    for (const [inst, client, name] of [
      [onAlpha, a, 'blog'],
      [onBeta, b, 'blog-beta'],
    ] as const) {
      const wris = await list(server, 'workload-resource-instances', `workloadinstanceid=${String(inst['ID'])}`);
      assert.equal(wris.length, 9, 'one WRI per resource plus the generated Namespace');
      assert.ok(wris.every((w) => w['Reconciled'] === true), JSON.stringify(wris.filter((w) => w['Reconciled'] !== true).map((w) => [(w['JSONDefinition'] as KubeObject).kind, w['Reconciled'], w['LastOperation']])));
      const nsWri = wris.find((w) => (w['JSONDefinition'] as KubeObject).kind === 'Namespace')!;
      const ns = (nsWri['JSONDefinition'] as KubeObject).metadata.name;
      assert.match(ns, new RegExp(`^${name}-[a-z0-9]{10}$`));
      for (const w of wris) {
        const def = w['JSONDefinition'] as KubeObject;
        if (def.kind !== 'Namespace') assert.equal(def.metadata.namespace, ns, `${def.kind} ${def.metadata.name} is in the generated namespace`);
        const live = await client.get({ apiVersion: def.apiVersion, kind: def.kind, name: def.metadata.name, ...(def.metadata.namespace ? { namespace: def.metadata.namespace } : {}) });
        assert.ok(live, `${def.kind} ${def.metadata.name} exists`);
        const labels = live.metadata.labels ?? {};
        assert.equal(labels[LABEL_MANAGED_BY], 'threeport');
        assert.equal(labels[LABEL_NAME], 'wordpress');
        assert.equal(labels[LABEL_INSTANCE], name);
        assert.equal(labels[LABEL_WORKLOAD_INSTANCE], String(inst['ID']));
        assert.equal(labels[LABEL_CP_MANAGED_BY], 'threeport');
        const rd = await until(`RuntimeDefinition of ${def.kind} ${def.metadata.name}`, async () => {
          const fresh = await get(server, 'workload-resource-instances', w['ID']);
          return (fresh?.['RuntimeDefinition'] as KubeObject | undefined)?.metadata?.uid ? (fresh!['RuntimeDefinition'] as KubeObject) : undefined;
        });
        assert.equal(rd.metadata.uid, live.metadata.uid);
        assert.equal(rd.metadata['managedFields'], undefined);
        if (def.kind === 'Secret') assert.deepEqual(rd['data'], { [Object.keys(rd['data'] as object)[0]!]: '[redacted]' });
        if (def.kind === 'Deployment' || def.kind === 'StatefulSet') {
          const tpl = (live['spec'] as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
          assert.equal(tpl[LABEL_WORKLOAD_INSTANCE], String(inst['ID']));
          assert.equal(tpl[LABEL_CP_MANAGED_BY], 'threeport');
          assert.equal(tpl['app'], 'wordpress', 'the manifest\'s own pod labels stay');
        }
      }
      const deploymentWri = wris.find((w) => (w['JSONDefinition'] as KubeObject).kind === 'Deployment')!;
      await until('the Deployment\'s RuntimeDefinition shows it ready', async () => {
        const fresh = await get(server, 'workload-resource-instances', deploymentWri['ID']);
        return ((fresh?.['RuntimeDefinition'] as { status?: { readyReplicas?: number } })?.status?.readyReplicas ?? 0) >= 1 ? true : undefined;
      });
      const wevents = await until('Kubernetes events recorded as WorkloadEvents', async () => {
        const es = await workloadEvents(server, inst['ID']);
        return es.some((e) => e['Reason'] === 'ScalingReplicaSet') && es.some((e) => e['Reason'] === 'Scheduled') ? es : undefined;
      });
      const scaling = wevents.find((e) => e['Reason'] === 'ScalingReplicaSet')!;
      assert.equal(scaling['WorkloadResourceInstanceID'], deploymentWri['ID'], 'an event about an applied resource names its WRI');
      assert.match(String(scaling['RuntimeEventUID']), /^[0-9a-f-]{36}$/);
      assert.ok(scaling['Timestamp']);
    }
    // The CLI and the API read the same Status (tptctl get workloads prints it).
    assert.equal((await list(server, 'workload-instances', `name=blog`))[0]?.['Status'], 'Healthy');

    // ---- a manifest with its own Namespace: used as it is ------------------------------------
    const shop = await must(server, 'POST', '/v0/workload-definitions', { Name: 'shop', YAMLDocument: WITH_NAMESPACE });
    const shopInst = await must(server, 'POST', '/v0/workload-instances', { Name: 'shop', WorkloadDefinitionID: shop['ID'], KubernetesRuntimeInstanceID: alpha!['ID'] });
    await status(server, shopInst['ID'], 'Healthy');
    const shopWris = await list(server, 'workload-resource-instances', `workloadinstanceid=${String(shopInst['ID'])}`);
    assert.deepEqual(shopWris.map((w) => (w['JSONDefinition'] as KubeObject).metadata.namespace ?? '-').sort(), ['-', 'shop', 'shop']);
    assert.ok(await a.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'shop' }));
    // The same resources cannot belong to two instances on one runtime.
    const shopTwice = await must(server, 'POST', '/v0/workload-instances', { Name: 'shop-2', WorkloadDefinitionID: shop['ID'], KubernetesRuntimeInstanceID: alpha!['ID'] });
    await status(server, shopTwice['ID'], 'Error');
    assert.match(
      String((await events(server, shopTwice['ID'])).find((e) => e['Reason'] === 'FailedCreate')?.['Note']),
      new RegExp(`^WorkloadInstance "shop-2" \\(ID \\d+\\): Namespace shop on KubernetesRuntimeInstance "alpha" already belongs to WorkloadInstance "shop" \\(ID ${String(shopInst['ID'])}\\)`),
    );
    await must(server, 'DELETE', `/v0/workload-instances/${String(shopTwice['ID'])}`);
    await until('shop-2 deleted', async () => ((await get(server, 'workload-instances', shopTwice['ID'])) ? undefined : true));
    assert.ok(await a.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'shop' }), 'deleting shop-2 left shop\'s resources alone');

    // ---- a definition update rolls out to every instance ---------------------------------------
    const updated = WORDPRESS.replace('  WORDPRESS_DB_USER: wordpress', '  WORDPRESS_DB_USER: wordpress\n  WORDPRESS_TABLE_PREFIX: wp2_') +
      `---\n${JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'added-later' }, data: { a: 'b' } })}\n`;
    await must(server, 'PATCH', `/v0/workload-definitions/${String(wd['ID'])}`, { YAMLDocument: updated, Reconciled: false });
    for (const [inst, client] of [
      [onAlpha, a],
      [onBeta, b],
    ] as const) {
      const wris = await until('the rollout recorded', async () => {
        const ws = await list(server, 'workload-resource-instances', `workloadinstanceid=${String(inst['ID'])}`);
        return ws.length === 10 && ws.every((w) => w['Reconciled'] === true) ? ws : undefined;
      });
      const ns = (wris.find((w) => (w['JSONDefinition'] as KubeObject).kind === 'Namespace')!['JSONDefinition'] as KubeObject).metadata.name;
      await until('the changed ConfigMap on the cluster', async () => {
        const cm = await client.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'wordpress-config', namespace: ns });
        return (cm?.['data'] as Record<string, string> | undefined)?.['WORDPRESS_TABLE_PREFIX'] === 'wp2_' ? true : undefined;
      });
      const added = await client.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'added-later', namespace: ns });
      assert.equal(added?.metadata.annotations?.[ANNOTATION_DEFINITION], String(wd['ID']));
      await status(server, inst['ID'], 'Healthy');
    }
    assert.ok((await events(server, wd['ID'])).some((e) => e['Reason'] === 'DefinitionChanged' && /rolling out to 2 WorkloadInstances/.test(String(e['Note']))));
    // Removing a resource from the definition removes it from the clusters.
    await must(server, 'PATCH', `/v0/workload-definitions/${String(wd['ID'])}`, { YAMLDocument: updated.replace(/---\n\{"apiVersion":"v1","kind":"ConfigMap","metadata":\{"name":"added-later".*\n/, ''), Reconciled: false });
    const alphaNs = async (): Promise<string> => {
      const ws = await list(server, 'workload-resource-instances', `workloadinstanceid=${String(onAlpha['ID'])}`);
      return (ws.find((w) => (w['JSONDefinition'] as KubeObject).kind === 'Namespace')!['JSONDefinition'] as KubeObject).metadata.name;
    };
    const nsA = await alphaNs();
    await until('added-later removed from alpha', async () =>
      (await a.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'added-later', namespace: nsA })) === undefined &&
      (await list(server, 'workload-resource-instances', `workloadinstanceid=${String(onAlpha['ID'])}`)).length === 9
        ? true
        : undefined,
    );

    // ---- WRIs another controller adds and later schedules for deletion (spec §1.6) -------------
    const nsB = (await list(server, 'workload-resource-instances', `workloadinstanceid=${String(onBeta['ID'])}`))
      .map((w) => w['JSONDefinition'] as KubeObject)
      .find((o) => o.kind === 'Namespace')!.metadata.name;
    const added = await must(server, 'POST', '/v0/workload-resource-instances', {
      WorkloadInstanceID: onBeta['ID'],
      JSONDefinition: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'from-gateway', namespace: 'elsewhere' }, data: { route: '/' } },
      Reconciled: false,
    });
    await must(server, 'PATCH', `/v0/workload-instances/${String(onBeta['ID'])}`, { Reconciled: false });
    const fromGateway = await until('the added WRI applied in the workload namespace', async () => {
      const w = await get(server, 'workload-resource-instances', added['ID']);
      return w?.['Reconciled'] === true ? (w['JSONDefinition'] as KubeObject) : undefined;
    });
    assert.equal(fromGateway.metadata.namespace, nsB, 'it gets the workload namespace');
    const liveAdded = await b.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'from-gateway', namespace: nsB });
    assert.equal(liveAdded?.metadata.labels?.[LABEL_WORKLOAD_INSTANCE], String(onBeta['ID']));
    await must(server, 'PATCH', `/v0/workload-resource-instances/${String(added['ID'])}`, { ScheduledForDeletion: new Date().toISOString(), Reconciled: false });
    await must(server, 'PATCH', `/v0/workload-instances/${String(onBeta['ID'])}`, { Reconciled: false });
    await until('the scheduled WRI removed with its resource', async () =>
      (await get(server, 'workload-resource-instances', added['ID'])) === undefined &&
      (await b.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'from-gateway', namespace: nsB })) === undefined
        ? true
        : undefined,
    );
    await status(server, onBeta['ID'], 'Healthy');

    // ---- drift: deleted and changed out of band, restored, with an event ----------------------
    const before = await a.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'wordpress', namespace: nsA });
    assert.ok(before);
    assert.equal(await a.delete({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'wordpress', namespace: nsA }), true);
    const restored = await until('the Deployment restored', async () => {
      const d = await a.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'wordpress', namespace: nsA });
      return d && d.metadata.uid !== before.metadata.uid ? d : undefined;
    });
    assert.equal(restored.metadata.labels?.[LABEL_WORKLOAD_INSTANCE], String(onAlpha['ID']));
    const restoredEvent = await until('a ResourceRestored event', async () =>
      (await events(server, onAlpha['ID'])).find((e) => e['Reason'] === 'ResourceRestored' && String(e['Note']).includes('deleted')),
    );
    assert.equal(restoredEvent['Note'], `Restored Deployment ${nsA}/wordpress deleted out of band`);
    // The WorkloadEvent is written by the watch side, which may trail the instance's event.
    await until('a ResourceRestored WorkloadEvent', async () =>
      (await workloadEvents(server, onAlpha['ID'])).some((e) => e['Reason'] === 'ResourceRestored') ? true : undefined,
    );
    await status(server, onAlpha['ID'], 'Healthy');

    // Someone scales it by hand (a merge patch, another field manager).
    const scaled = await kubeCall(server, alpha!, 'PATCH', `/apis/apps/v1/namespaces/${nsA}/deployments/wordpress`, { spec: { replicas: 3 } }, 'application/merge-patch+json');
    assert.equal(scaled.status, 200, scaled.body);
    await until('replicas restored to 1', async () => {
      const d = await a.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'wordpress', namespace: nsA });
      return (d?.['spec'] as { replicas?: number })?.replicas === 1 ? true : undefined;
    });
    await until('a ResourceRestored event for the change', async () =>
      (await events(server, onAlpha['ID'])).find((e) => e['Note'] === `Restored Deployment ${nsA}/wordpress modified out of band`),
    );

    // ---- status: Down when no pod can be scheduled, Unhealthy when only some are ready ---------
    const stuckDef = await must(server, 'POST', '/v0/workload-definitions', {
      Name: 'stuck',
      YAMLDocument: deployment('stuck', { extraPodSpec: { nodeSelector: { 'threeport.test/no-such-node': 'true' } } }),
    });
    const stuck = await must(server, 'POST', '/v0/workload-instances', { Name: 'stuck', WorkloadDefinitionID: stuckDef['ID'], KubernetesRuntimeInstanceID: beta!['ID'] });
    await status(server, stuck['ID'], 'Down');
    await until('a FailedScheduling WorkloadEvent', async () =>
      (await workloadEvents(server, stuck['ID'])).find((e) => e['Reason'] === 'FailedScheduling' && e['Type'] === 'Warning'),
    );
    const partialDef = await must(server, 'POST', '/v0/workload-definitions', {
      Name: 'partial',
      YAMLDocument: deployment('partial', {
        replicas: 2,
        extraPodSpec: {
          affinity: {
            podAntiAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: [{ labelSelector: { matchLabels: { app: 'partial' } }, topologyKey: 'kubernetes.io/hostname' }],
            },
          },
        },
      }),
    });
    const partial = await must(server, 'POST', '/v0/workload-instances', { Name: 'partial', WorkloadDefinitionID: partialDef['ID'], KubernetesRuntimeInstanceID: beta!['ID'] });
    await status(server, partial['ID'], 'Unhealthy');
    // Fixing the definition rolls out and the instance becomes Healthy.
    await must(server, 'PATCH', `/v0/workload-definitions/${String(stuckDef['ID'])}`, { YAMLDocument: deployment('stuck'), Reconciled: false });
    await status(server, stuck['ID'], 'Healthy');

    // ---- deletion leaves no labelled object behind ---------------------------------------------
    const instances = [onAlpha, onBeta, shopInst, stuck, partial];
    for (const inst of instances) await must(server, 'DELETE', `/v0/workload-instances/${String(inst['ID'])}`);
    for (const inst of instances) {
      await until(`WorkloadInstance ${String(inst['ID'])} deleted`, async () => ((await get(server, 'workload-instances', inst['ID'])) ? undefined : true));
      assert.deepEqual(await list(server, 'workload-resource-instances', `workloadinstanceid=${String(inst['ID'])}`), []);
      assert.deepEqual(await workloadEvents(server, inst['ID']), []);
    }
    for (const [runtime, name] of [
      [alpha!, 'alpha'],
      [beta!, 'beta'],
    ] as const) {
      await until(`no labelled object left on ${name}`, async () => {
        const left = await labelledObjects(server, runtime);
        return left.length === 0 ? true : undefined;
      }, 180_000, 1_000);
    }
    assert.equal(await a.get({ apiVersion: 'v1', kind: 'Namespace', name: 'shop' }).then((n) => n === undefined || Boolean(n.metadata['deletionTimestamp'])), true);
    assert.ok(await a.get({ apiVersion: 'v1', kind: 'PersistentVolume', name: 'wp-volume' }), 'objects threeport did not create are left alone');
    for (const d of [wd, shop, stuckDef, partialDef]) await must(server, 'DELETE', `/v0/workload-definitions/${String(d['ID'])}`);
  } finally {
    for (const c of clients) c.close();
    await cp?.close();
  }
});
