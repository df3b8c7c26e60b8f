// Shared by the workload-*.test.ts suites: a real `threeport server` (API + controllers, embedded
// PostgreSQL) whose kwok runtimes are created through the API, and small API/cluster helpers.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunningServer } from '../../src/server.js';
import { startLocalServer, TEST_CONTROLLER_SETTINGS } from '../harness/local-server.js';
import type { ReconcileRuntimeSettings } from '../../src/reconcile/runtime.js';
import { connectionFromRuntimeInstance } from '../../src/providers/kube/connection.js';
import { kubeClusterClient, type KubeClusterClient, type KubeObject } from '../../src/providers/kube/client.js';
import { kubeRequest } from '../../src/providers/runtimes/kwok/http.js';
import { LABEL_WORKLOAD_INSTANCE } from '../../src/controllers/workload/resources.js';
import { until } from '../harness/until.js';
import { api, must, get, type Obj } from '../harness/api-calls.js';
export { api, must, get, type Obj };
export { until };

export async function list(server: RunningServer, plural: string, query = ''): Promise<Obj[]> {
  return (await api(server, 'GET', `/v0/${plural}?size=-1${query ? `&${query}` : ''}`)).data;
}

/** Threeport Events attached to an object. */
export async function events(server: RunningServer, objectId: unknown): Promise<Obj[]> {
  return (await api(server, 'GET', `/v0/events-join-attached-object-references?objectid=${String(objectId)}&size=200`)).data;
}

export async function workloadEvents(server: RunningServer, instanceId: unknown): Promise<Obj[]> {
  return list(server, 'workload-events', `workloadinstanceid=${String(instanceId)}`);
}

export async function instanceStatus(server: RunningServer, id: unknown): Promise<string | undefined> {
  return (await get(server, 'workload-instances', id))?.['Status'] as string | undefined;
}

/** Waits for a WorkloadInstance Status; fails early on Error unless Error is what is wanted. */
export async function status(server: RunningServer, id: unknown, wanted: string, timeoutMs = 120_000): Promise<Obj> {
  try {
    return await until(`WorkloadInstance ${String(id)} Status ${wanted}`, async () => {
      const o = await get(server, 'workload-instances', id);
      if (wanted !== 'Error' && o?.['Status'] === 'Error') {
        throw new Error(`Status Error: ${JSON.stringify((await events(server, id)).map((e) => e['Note']))}`);
      }
      return o?.['Status'] === wanted ? o : undefined;
    }, timeoutMs);
  } catch (err) {
    const o = await get(server, 'workload-instances', id);
    const es = (await events(server, id)).map((e) => `${String(e['Reason'])}: ${String(e['Note'])} (x${String(e['Count'])})`);
    const wes = (await workloadEvents(server, id)).map((e) => `${String(e['Type'])} ${String(e['Reason'])}: ${String(e['Message'])}`);
    throw new Error(`${(err as Error).message}\n  instance: Status ${String(o?.['Status'])}, Reconciled ${String(o?.['Reconciled'])}\n  events: ${es.join('\n    ')}\n  workload events: ${wes.join('\n    ')}`);
  }
}

export interface ControlPlane {
  server: RunningServer;
  dataDir: string;
  /** Stops the server (its simulated clusters stop with it) and starts it again on the same data. */
  restart(): Promise<RunningServer>;
  close(): Promise<void>;
}

/** `serverOptions`: other server settings, e.g. `helmChartDir` for suites that install local charts. */
export async function startControlPlane(settings: ReconcileRuntimeSettings = {}, serverOptions: { helmChartDir?: string } = {}): Promise<ControlPlane> {
  const dataDir = mkdtempSync(join(tmpdir(), 'threeport-workloads-'));
  const start = (): Promise<RunningServer> =>
    startLocalServer(dataDir, { ...serverOptions, controllers: { ...TEST_CONTROLLER_SETTINGS, ...settings } });
  let server: RunningServer | undefined;
  try {
    server = await start();
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const cp: ControlPlane = {
    server,
    dataDir,
    async restart() {
      await server?.close();
      server = undefined;
      server = await start();
      cp.server = server;
      return server;
    },
    async close() {
      await server?.close();
      server = undefined;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return cp;
}

/** Creates kwok runtimes through the API and waits until they serve. */
export async function createRuntimes(server: RunningServer, names: string[]): Promise<Obj[]> {
  const def = await must(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: `kwok-${names.join('-')}`, InfraProvider: 'kwok' });
  const created = await Promise.all(
    names.map((Name, i) =>
      must(server, 'POST', '/v0/kubernetes-runtime-instances', {
        Name,
        Location: 'Local',
        KubernetesRuntimeDefinitionID: def['ID'],
        ...(i === 0 ? { DefaultRuntime: true } : {}),
      }),
    ),
  );
  return Promise.all(
    created.map((c) =>
      until(`KubernetesRuntimeInstance ${String(c['Name'])} Reconciled`, async () => {
        const o = await get(server, 'kubernetes-runtime-instances', c['ID']);
        return o?.['Reconciled'] === true && o['APIEndpoint'] ? o : undefined;
      }, 240_000),
    ),
  );
}

export function clientFor(server: RunningServer, runtime: Obj): KubeClusterClient {
  return kubeClusterClient(connectionFromRuntimeInstance(runtime, (v) => server.store.decrypt(v)));
}

/** A raw request to a runtime's API server as its admin, e.g. a merge patch made by "someone else". */
export async function kubeCall(server: RunningServer, runtime: Obj, method: string, path: string, body?: unknown, contentType?: string): Promise<{ status: number; body: string }> {
  const conn = connectionFromRuntimeInstance(runtime, (v) => server.store.decrypt(v));
  const creds = { server: conn.server, caPem: conn.caPem!, clientCertPem: conn.clientCertPem!, clientKeyPem: conn.clientKeyPem! };
  const r = await kubeRequest(creds, method, path, { ...(body !== undefined ? { body } : {}), ...(contentType ? { contentType } : {}) });
  return { status: r.status, body: r.body };
}

/** Every object of every listable resource type on the cluster that carries the workload-instance label (= id, or any). */
export async function labelledObjects(server: RunningServer, runtime: Obj, instanceId?: unknown): Promise<string[]> {
  const conn = connectionFromRuntimeInstance(runtime, (v) => server.store.decrypt(v));
  const creds = { server: conn.server, caPem: conn.caPem!, clientCertPem: conn.clientCertPem!, clientKeyPem: conn.clientKeyPem! };
  const getJson = async (path: string): Promise<Record<string, unknown>> => {
    const r = await kubeRequest(creds, 'GET', path);
    if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status} ${r.body}`);
    return JSON.parse(r.body) as Record<string, unknown>;
  };
  const groupVersions = ['/api/v1'];
  const groups = (await getJson('/apis'))['groups'] as Array<{ preferredVersion: { groupVersion: string } }>;
  for (const g of groups) groupVersions.push(`/apis/${g.preferredVersion.groupVersion}`);
  const selector = encodeURIComponent(instanceId === undefined ? LABEL_WORKLOAD_INSTANCE : `${LABEL_WORKLOAD_INSTANCE}=${String(instanceId)}`);
  const found: string[] = [];
  for (const gv of groupVersions) {
    const resources = (await getJson(gv))['resources'] as Array<{ name: string; kind: string; verbs: string[] }>;
    for (const r of resources) {
      if (r.name.includes('/') || !r.verbs.includes('list')) continue;
      const items = ((await getJson(`${gv}/${r.name}?labelSelector=${selector}`))['items'] ?? []) as KubeObject[];
      for (const item of items) found.push(`${r.kind} ${item.metadata.namespace ? `${item.metadata.namespace}/` : ''}${item.metadata.name}`);
    }
  }
  return found;
}

/** A hostPath PersistentVolume that a `storageClassName: manual` claim binds to (no provisioner on kwok). */
export async function createManualVolume(client: KubeClusterClient, name: string): Promise<void> {
  await client.apply({
    apiVersion: 'v1',
    kind: 'PersistentVolume',
    metadata: { name },
    spec: {
      storageClassName: 'manual',
      capacity: { storage: '1Gi' },
      accessModes: ['ReadWriteOnce'],
      persistentVolumeReclaimPolicy: 'Retain',
      hostPath: { path: `/tmp/${name}` },
    },
  });
}
