// KubernetesRuntimeDefinition/Instance reconcilers against real peers: a real `threeport server`
// (API + controllers, embedded PostgreSQL) starts two simulated clusters (InfraProvider kwok)
// itself; objects applied through the kube provider stay isolated per cluster; a crashed
// kube-apiserver is restarted and reported; a registered cluster (InfraProvider kubeconfig)
// whose API server goes away gets a retry and a readable event, and recovers once it is back;
// after a server restart the simulated clusters come back with their data; deletion removes them.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import type { RunningServer } from '../../src/server.js';
import { startLocalServer } from '../harness/local-server.js';
import { connectionFieldsFromKubeconfig, connectionFromRuntimeInstance } from '../../src/providers/kube/connection.js';
import { kubeClusterClient, type KubeClusterClient } from '../../src/providers/kube/client.js';
import { killStaleGroups } from '../../src/providers/runtimes/kwok/processes.js';
import { QUEUE_TABLE } from '../../src/store/schema.js';
import { FieldCipher } from '../../src/crypto/field-encryption.js';
import { spawnServer, type ServerProcess } from '../harness/server-process.js';
import { findKubeBinaries, startKubeClusters, SKIP_KUBE, SKIP_KUBE_REASON, type KubeClusterSet } from '../harness/kube-cluster.js';
import { until } from '../harness/until.js';
import { api, must,  type Obj } from '../harness/api-calls.js';
import { processAlive } from '../../src/system.js';

async function instance(server: RunningServer, id: number): Promise<Obj | undefined> {
  const r = await api(server, 'GET', `/v0/kubernetes-runtime-instances/${id}`);
  return r.status === 200 ? r.data[0] : undefined;
}

async function events(server: RunningServer, objectId: number): Promise<Obj[]> {
  return (await api(server, 'GET', `/v0/events-join-attached-object-references?objectid=${objectId}&size=100`)).data;
}

async function reconciledWithEndpoint(server: RunningServer, id: number): Promise<Obj> {
  try {
    return await until(`KubernetesRuntimeInstance ${id} Reconciled with an APIEndpoint`, async () => {
      const o = await instance(server, id);
      return o && o['Reconciled'] === true && typeof o['APIEndpoint'] === 'string' ? o : undefined;
    }, 180_000);
  } catch (err) {
    // Say what the reconciler was doing: the object, its events and its queue row.
    const o = await instance(server, id).catch(() => undefined);
    const ev = await events(server, id).catch(() => []);
    const q = await server.store.db.query(`SELECT * FROM ${QUEUE_TABLE} WHERE object_id = $1`, [id]).catch(() => ({ rows: [] }));
    const brief = o && { ...o, CACertificate: '…', Certificate: '…', CertificateKey: '…' };
    throw new Error(`${(err as Error).message}\nobject: ${JSON.stringify(brief)}\nevents: ${JSON.stringify(ev.map((e) => [e['Reason'], e['Count'], e['Note']]))}\nqueue: ${JSON.stringify(q.rows)}`);
  }
}

/** Server logs go to this file; a failing test prints their end. */
const LOG_PATH = join(tmpdir(), `threeport-runtimes-${process.pid}.log`);

function startControlPlane(dataDir: string): Promise<RunningServer> {
  return startLocalServer(dataDir, { logPath: LOG_PATH });
}

function clientFor(server: RunningServer, inst: Obj): KubeClusterClient {
  return kubeClusterClient(connectionFromRuntimeInstance(inst, (v) => server.store.decrypt(v)));
}

function pidsOf(dataDir: string, runtime: string): Record<string, number> {
  return (JSON.parse(readFileSync(join(dataDir, 'runtimes', runtime, 'state.json'), 'utf8')) as { pids: Record<string, number> }).pids;
}

test(
  'kubernetes runtimes: two kwok clusters through the API, isolation, crash recovery, registered cluster outage, restart, deletion',
  { skip: SKIP_KUBE ? SKIP_KUBE_REASON : false, timeout: 600_000 },
  async (t) => {
    findKubeBinaries(); // fails with build instructions when the binaries are missing
    const dataDir = mkdtempSync(join(tmpdir(), 'threeport-runtimes-'));
    let server: RunningServer | undefined;
    let external: KubeClusterSet | undefined;
    const clients: KubeClusterClient[] = [];
    try {
      const t0 = Date.now();
      [server, external] = await Promise.all([startControlPlane(dataDir), startKubeClusters({ names: ['ext'], log: () => {} })]);
      t.diagnostic(`server and external cluster up in ${Date.now() - t0} ms`);

      // ---- two simulated clusters, created through the API ---------------------------------
      const def = await must(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'local', InfraProvider: 'kwok' });
      const tCreate = Date.now();
      const [alphaCreated, betaCreated] = await Promise.all(
        ['alpha', 'beta'].map((Name) =>
          must(server!, 'POST', '/v0/kubernetes-runtime-instances', { Name, Location: 'Local', KubernetesRuntimeDefinitionID: def['ID'] }),
        ),
      );
      const [alpha, beta] = await Promise.all([
        reconciledWithEndpoint(server, alphaCreated!['ID'] as number),
        reconciledWithEndpoint(server, betaCreated!['ID'] as number),
      ]);
      t.diagnostic(`two kwok runtimes Reconciled ${Date.now() - tCreate} ms after create`);
      assert.notEqual(alpha['APIEndpoint'], beta['APIEndpoint']);
      assert.match(String(alpha['APIEndpoint']), /^https:\/\/127\.0\.0\.1:\d+$/);
      assert.match(String(alpha['CACertificate']), /BEGIN CERTIFICATE/);
      // The key is stored encrypted, never as PEM.
      assert.doesNotMatch(String(alpha['CertificateKey']), /PRIVATE KEY/);
      assert.ok(existsSync(join(dataDir, 'runtimes', 'alpha', 'pki', 'ca.crt')), 'state lives under <dataDir>/runtimes/<name>');

      // ---- objects on both clusters through the kube provider; isolation ----------------
      const a = clientFor(server, alpha);
      const b = clientFor(server, beta);
      clients.push(a, b);
      await a.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'greeting', namespace: 'default' }, data: { hello: 'alpha' } });
      await b.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
      await b.apply({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: 'shop' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'web' } },
          template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', image: 'registry.k8s.io/pause:3.10' }] } },
        },
      });
      assert.deepEqual((await a.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'greeting', namespace: 'default' }))?.['data'], { hello: 'alpha' });
      assert.equal(await b.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'greeting', namespace: 'default' }), undefined);
      assert.equal(await a.get({ apiVersion: 'v1', kind: 'Namespace', name: 'shop' }), undefined);
      assert.equal(await a.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'shop' }), undefined);
      await until('deployment shop/web available on beta', async () => {
        const d = await b.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'shop' });
        return (d?.['status'] as { availableReplicas?: number } | undefined)?.availableReplicas === 1 ? true : undefined;
      });
      assert.equal(await b.delete({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'shop' }), true);
      assert.equal(await b.delete({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'shop' }), false);
      assert.equal(await b.get({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'shop' }), undefined);
      assert.ok(await a.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'greeting', namespace: 'default' }), 'deleting on beta left alpha alone');

      // ---- a simulated cluster's kube-apiserver crashes: restarted and reported --------------
      const oldPid = pidsOf(dataDir, 'alpha')['kube-apiserver']!;
      process.kill(oldPid, 'SIGKILL');
      const restarted = await until('a SimulatedClusterRestarted event on alpha', async () => {
        const e = (await events(server!, alpha['ID'] as number)).find((x) => x['Reason'] === 'SimulatedClusterRestarted');
        return e;
      });
      assert.equal(restarted['Type'], 'Warning');
      assert.match(String(restarted['Note']), /restarted kube-apiserver \(killed by SIGKILL\) of simulated cluster alpha/);
      await reconciledWithEndpoint(server, alpha['ID'] as number);
      assert.notEqual(pidsOf(dataDir, 'alpha')['kube-apiserver'], oldPid);
      assert.ok((await a.version()).gitVersion.startsWith('v1.'));
      assert.ok(await a.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'greeting', namespace: 'default' }), 'data survived the crash');

      // ---- a registered cluster (InfraProvider kubeconfig) goes away and comes back ----------
      const ext = external.get('ext');
      const fields = connectionFieldsFromKubeconfig(ext.kubeconfigPath);
      const extDef = await must(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'existing', InfraProvider: 'kubeconfig' });
      const extInst = await must(server, 'POST', '/v0/kubernetes-runtime-instances', {
        Name: 'ext',
        Location: 'Local',
        KubernetesRuntimeDefinitionID: extDef['ID'],
        ...fields,
      });
      await reconciledWithEndpoint(server, extInst['ID'] as number);
      await ext.stopApiServer({ signal: 'SIGKILL' });
      await must(server, 'PATCH', `/v0/kubernetes-runtime-instances/${String(extInst['ID'])}`, { Reconciled: false });
      const unreachable = await until('a KubernetesRuntimeUnreachable event on ext', async () =>
        (await events(server!, extInst['ID'] as number)).find((x) => x['Reason'] === 'KubernetesRuntimeUnreachable'),
      );
      assert.equal(unreachable['Type'], 'Warning');
      assert.equal(
        unreachable['Note'],
        `KubernetesRuntimeInstance "ext" (ID ${String(extInst['ID'])}): the Kubernetes API server at ${ext.server} is unreachable (connection refused); will retry`,
      );
      // Retried with backoff: the event is counted again while the cluster is down.
      await until('the unreachable event counted at least twice', async () => {
        const e = (await events(server!, extInst['ID'] as number)).find((x) => x['Reason'] === 'KubernetesRuntimeUnreachable');
        return Number(e?.['Count'] ?? 0) >= 2 ? true : undefined;
      });
      assert.equal((await instance(server, extInst['ID'] as number))?.['Reconciled'], false);
      await ext.startApiServer();
      await reconciledWithEndpoint(server, extInst['ID'] as number);

      // ---- server restart: the simulated clusters come back with their data -----------------
      const endpointBefore = (await instance(server, alpha['ID'] as number))!['APIEndpoint'];
      const pidsBefore = Object.values(pidsOf(dataDir, 'alpha'));
      await server.close();
      server = undefined;
      assert.ok(pidsBefore.every((pid) => !processAlive(pid)), 'a stopping server stops its clusters');
      const tRestart = Date.now();
      server = await startControlPlane(dataDir);
      const alphaBack = await reconciledWithEndpoint(server, alpha['ID'] as number);
      await reconciledWithEndpoint(server, beta['ID'] as number);
      t.diagnostic(`both kwok runtimes back ${Date.now() - tRestart} ms after the server restarted`);
      assert.equal(alphaBack['APIEndpoint'], endpointBefore, 'a free port is reused, so the endpoint is stable');
      const a2 = clientFor(server, alphaBack);
      clients.push(a2);
      const cm = await until('ConfigMap greeting readable on alpha after restart', () =>
        a2.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'greeting', namespace: 'default' }),
      );
      assert.deepEqual(cm['data'], { hello: 'alpha' });

      // ---- deletion removes the clusters and their state ------------------------------------
      for (const inst of [alpha, beta, extInst]) {
        await must(server, 'DELETE', `/v0/kubernetes-runtime-instances/${String(inst['ID'])}`);
      }
      for (const inst of [alpha, beta, extInst]) {
        await until(`KubernetesRuntimeInstance ${String(inst['ID'])} deleted`, async () =>
          (await instance(server!, inst['ID'] as number)) === undefined ? true : undefined,
        );
      }
      assert.ok(!existsSync(join(dataDir, 'runtimes', 'alpha')) && !existsSync(join(dataDir, 'runtimes', 'beta')));
      const pidsAfter = pidsBefore.filter(processAlive);
      assert.deepEqual(pidsAfter, []);
      assert.equal((await external.get('ext').request('GET', '/readyz')).status, 200, 'a registered cluster is not ours to remove');
      await must(server, 'DELETE', `/v0/kubernetes-runtime-definitions/${String(def['ID'])}`);
      await must(server, 'DELETE', `/v0/kubernetes-runtime-definitions/${String(extDef['ID'])}`);
    } catch (err) {
      const log = existsSync(LOG_PATH) ? readFileSync(LOG_PATH, 'utf8').trimEnd().split('\n').slice(-60).join('\n') : '(no log)';
      process.stderr.write(`--- end of the server log ${LOG_PATH}:\n${log}\n`);
      throw err;
    } finally {
      for (const c of clients) c.close();
      await server?.close();
      await external?.stopAll();
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(LOG_PATH, { force: true });
    }
  },
);

/** Pids of processes whose command line contains all of `parts` (to find the reaper a server started). */
function pidsWithCmdline(...parts: string[]): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (parts.every((p) => cmd.includes(p))) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

test(
  'a SIGKILLed server: its clusters are reaped, or left running and replaced by the next server; the runtime comes back with its data',
  { skip: SKIP_KUBE ? SKIP_KUBE_REASON : false, timeout: 400_000 },
  async (t) => {
    findKubeBinaries();
    const dataDir = mkdtempSync(join(tmpdir(), 'threeport-runtimes-kill-'));
    const args = ['--port', '0', '--data-dir', dataDir, '--no-auth', '--reconcile-poll-interval', '200ms', '--retry-max', '2s', '--log-level', 'warn'];
    let proc: ServerProcess | undefined;
    const clients: KubeClusterClient[] = [];
    const call = async (method: string, path: string, body?: unknown): Promise<Obj> => {
      const res = await fetch(`${proc!.url}${path}`, {
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      });
      const text = await res.text();
      assert.ok(res.status < 300, `${method} ${path}: HTTP ${res.status} ${text}`);
      return ((JSON.parse(text) as { Data: Obj[] }).Data ?? [])[0]!;
    };
    const reconciledClient = async (id: number, since: number): Promise<{ inst: Obj; client: KubeClusterClient }> => {
      const inst = await until(`instance ${id} Reconciled after ${since}`, async () => {
        const o = await call('GET', `/v0/kubernetes-runtime-instances/${id}`);
        return o['Reconciled'] === true && Date.parse(String(o['UpdatedAt'])) >= since ? o : undefined;
      }, 180_000);
      const cipher = new FieldCipher(readFileSync(join(dataDir, 'encryption.key'), 'utf8').trim());
      const client = kubeClusterClient(connectionFromRuntimeInstance(inst, (v) => cipher.decrypt(v)));
      clients.push(client);
      return { inst, client };
    };
    try {
      proc = await spawnServer(args);
      const def = await call('POST', '/v0/kubernetes-runtime-definitions', { Name: 'local', InfraProvider: 'kwok' });
      const created = await call('POST', '/v0/kubernetes-runtime-instances', { Name: 'gamma', Location: 'Local', KubernetesRuntimeDefinitionID: def['ID'] });
      const id = created['ID'] as number;
      const first = await reconciledClient(id, 0);
      await first.client.apply({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kept', namespace: 'default' }, data: { v: '1' } });

      // 1. SIGKILL: the reaper kills the cluster's processes.
      const pids1 = Object.values(pidsOf(dataDir, 'gamma'));
      assert.equal(pids1.length, 5);
      await proc.kill('SIGKILL');
      await until('the reaper to kill the cluster processes', async () => (pids1.some(processAlive) ? undefined : true), 15_000);
      let since = Date.now();
      proc = await spawnServer(args);
      const second = await reconciledClient(id, since);
      assert.deepEqual((await second.client.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'kept', namespace: 'default' }))?.['data'], { v: '1' });
      assert.equal(second.inst['APIEndpoint'], first.inst['APIEndpoint']);

      // 2. SIGKILL with the reaper gone too: the orphaned processes keep running until the next
      //    server finds them through state.json, kills them and starts the cluster again.
      const pids2 = Object.values(pidsOf(dataDir, 'gamma'));
      const reapers = pidsWithCmdline('threeport-kube-reaper', join(dataDir, 'runtimes', 'gamma'));
      assert.equal(reapers.length, 1);
      process.kill(reapers[0]!, 'SIGKILL');
      await proc.kill('SIGKILL');
      assert.ok(pids2.every(processAlive), 'orphaned cluster processes still run');
      since = Date.now();
      proc = await spawnServer(args);
      const third = await reconciledClient(id, since);
      assert.ok(pids2.every((pid) => !processAlive(pid)), 'the stale processes were killed');
      const pids3 = Object.values(pidsOf(dataDir, 'gamma'));
      assert.ok(pids3.every(processAlive) && pids3.every((p) => !pids2.includes(p)));
      assert.deepEqual((await third.client.get({ apiVersion: 'v1', kind: 'ConfigMap', name: 'kept', namespace: 'default' }))?.['data'], { v: '1' });
      t.diagnostic(`endpoint ${String(third.inst['APIEndpoint'])} (first ${String(first.inst['APIEndpoint'])})`);

      // 3. SIGTERM: a graceful stop stops the cluster too.
      await proc.kill('SIGTERM');
      proc = undefined;
      await until('cluster processes stopped with the server', async () => (pids3.some(processAlive) ? undefined : true), 15_000);
    } finally {
      for (const c of clients) c.close();
      await proc?.kill('SIGKILL');
      // Whatever a killed server left: the reaper (if any) or state.json says which groups are ours.
      for (const pid of pidsWithCmdline('threeport-kube-reaper', dataDir)) process.kill(pid, 'SIGKILL');
      try {
        await killStaleGroups(Object.values(pidsOf(dataDir, 'gamma')), join(dataDir, 'runtimes', 'gamma'));
      } catch {
        // no state
      }
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
);

test('stale cluster processes of an earlier server are killed only when they are ours', async () => {
  const marker = mkdtempSync(join(tmpdir(), 'threeport-stale-'));
  const spawnSleeper = (arg: string): number => {
    const child = spawn('bash', ['-c', 'sleep 60; true', arg], { detached: true, stdio: 'ignore' });
    child.unref();
    return child.pid!;
  };
  const ours = spawnSleeper(marker);
  const other = spawnSleeper('/somewhere/else');
  try {
    await until('sleepers started', async () => (readFileSync(`/proc/${ours}/cmdline`, 'utf8').includes(marker) ? true : undefined), 5_000, 20);
    const killed = await killStaleGroups([ours, other, 999_999_999], marker);
    assert.deepEqual(killed, [ours]);
    await until('the stale process to be gone', async () => {
      try {
        const state = readFileSync(`/proc/${ours}/status`, 'utf8');
        return /^State:\s+Z/m.test(state) ? true : undefined;
      } catch {
        return true;
      }
    }, 5_000, 20);
    assert.ok(processAlive(other), 'a process that is not ours is left alone');
  } finally {
    for (const pid of [ours, other]) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    rmSync(marker, { recursive: true, force: true });
  }
});
