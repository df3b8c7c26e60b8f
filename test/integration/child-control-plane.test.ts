// Child control planes (spec §3.9, §6.3) against real peers: a parent `threeport server` on the
// harness's PostgreSQL runs a simulated (kwok) cluster; a ControlPlaneInstance on that runtime
// starts a child `threeport server` (own embedded PostgreSQL, own certificates) that answers
// /readyz over mutual TLS and lists its registration (its own IsSelf instance, the genesis copy,
// the runtime). `tptctl get control-planes` on the parent shows the tree. A SIGKILLed child is
// restarted with an event; a restarted parent brings its child back on the same data and port; the
// runtime cannot be deleted under it (409); deleting the instance removes its process, its data
// and its namespace. On a runtime of another kind (kubeconfig) the instance fails at once with a
// terminal error and an event naming the provider.
// Bad input: a second control plane in the same namespace of a runtime is a 409, also when two
// creates race; a missing or unknown runtime is a 400 naming the field.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { ThreeportClient } from '../../src/client/api-client.js';
import { main } from '../../src/cli/main.js';
import { FieldCipher } from '../../src/crypto/field-encryption.js';
import { controlPlane, kubernetesRuntime } from '../../src/kinds/index.js';
import { connectionFromRuntimeInstance } from '../../src/providers/kube/connection.js';
import { kubeClusterClient } from '../../src/providers/kube/client.js';
import { clusterNameFor } from '../../src/providers/runtimes/kwok/runtimes.js';
import type { RunningServer } from '../../src/server.js';
import { startLocalServer } from '../harness/local-server.js';
import { api, must, type Obj } from '../harness/api-calls.js';
import { findKubeBinaries, SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';
import { startTestPostgres, type TestPostgres } from '../harness/postgres.js';
import { until } from '../harness/until.js';
import { processAlive } from '../../src/system.js';

const LOG_PATH = join(tmpdir(), `threeport-child-cp-${process.pid}.log`);

async function events(server: RunningServer, id: unknown): Promise<Obj[]> {
  return (await api(server, 'GET', `/v0/events-join-attached-object-references?objectid=${String(id)}&size=100`)).data;
}

function fromB64(s: unknown): string {
  return Buffer.from(String(s), 'base64').toString('utf8');
}

function readyz(url: string, tls: { ca: string; cert: string; key: string }): Promise<number> {
  return new Promise((resolve) => {
    const req = httpsRequest(new URL('/readyz', url), { ...tls, agent: false, timeout: 3_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(0));
    req.end();
  });
}

async function tptctl(args: string[], configPath: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(['node', 'tptctl', '--threeport-config', configPath, ...args], {
    out: { write: (s: string) => (out += s) },
    err: { write: (s: string) => (err += s) },
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code, out, err };
}

test(
  'child control planes: a ControlPlaneInstance on a kwok runtime runs a supervised child threeport server, registered and onboarded; tree, restart, parent restart, delete, 409, other runtimes refused',
  { skip: SKIP_KUBE ? SKIP_KUBE_REASON : false, timeout: 900_000 },
  async (t) => {
    findKubeBinaries();
    const dataDir = mkdtempSync(join(tmpdir(), 'tp-cpc-'));
    let pg: TestPostgres | undefined;
    let server: RunningServer | undefined;
    try {
      pg = await startTestPostgres();
      const config = { databaseUrl: pg.url, encryptionKey: FieldCipher.generateKey(), logPath: LOG_PATH };
      server = await startLocalServer(dataDir, config);
      let s = server;

      // ---- the parent's runtime and its genesis registration (as tptctl up records them) ----
      const krd = await must(s, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'local', InfraProvider: 'kwok' });
      const kriCreated = await must(s, 'POST', '/v0/kubernetes-runtime-instances', {
        Name: 'threeport-parent',
        Location: 'Local',
        DefaultRuntime: true,
        ThreeportControlPlaneHost: true,
        KubernetesRuntimeDefinitionID: krd['ID'],
      });
      const kri = await until('runtime Reconciled', async () => {
        const o = (await api(s, 'GET', `/v0/kubernetes-runtime-instances/${String(kriCreated['ID'])}`)).data[0];
        return o?.['Reconciled'] === true && o['APIEndpoint'] ? o : undefined;
      }, 240_000);
      const parentDef = await must(s, 'POST', '/v0/control-plane-definitions', { Name: 'parent', Reconciled: true });
      const parent = await must(s, 'POST', '/v0/control-plane-instances', {
        Name: 'parent',
        Namespace: 'threeport-control-plane',
        Genesis: true,
        IsSelf: true,
        ApiServerEndpoint: s.url!.replace('http://', ''),
        KubernetesRuntimeInstanceID: kri['ID'],
        ControlPlaneDefinitionID: parentDef['ID'],
        Reconciled: true,
      });

      // ---- bad input: nothing written ------------------------------------------------------------
      const childDef = await must(s, 'POST', '/v0/control-plane-definitions', { Name: 'child', AuthEnabled: true, OnboardParent: true });
      const missing = await api(s, 'POST', '/v0/control-plane-instances', { Name: 'nort', Namespace: 'x', ControlPlaneDefinitionID: childDef['ID'] });
      assert.equal(missing.status, 400, missing.text);
      assert.match(missing.text, /KubernetesRuntimeInstanceID/);
      const unknown = await api(s, 'POST', '/v0/control-plane-instances', {
        Name: 'badrt',
        Namespace: 'x',
        KubernetesRuntimeInstanceID: 987654321,
        ControlPlaneDefinitionID: childDef['ID'],
      });
      assert.ok([400, 404].includes(unknown.status), unknown.text);
      assert.match(unknown.text, /KubernetesRuntimeInstanceID/);
      const badNs = await api(s, 'POST', '/v0/control-plane-instances', {
        Name: 'badns',
        Namespace: 'Not_A_Namespace',
        KubernetesRuntimeInstanceID: kri['ID'],
        ControlPlaneDefinitionID: childDef['ID'],
      });
      assert.equal(badNs.status, 400, badNs.text);
      assert.match(badNs.text, /Namespace/);
      // Two creates racing for one namespace of a runtime: exactly one wins (registrations, so no child starts).
      const race = await Promise.all(
        ['race-a', 'race-b'].map((Name) =>
          api(s, 'POST', '/v0/control-plane-instances', {
            Name,
            Namespace: 'race',
            KubernetesRuntimeInstanceID: kri['ID'],
            ControlPlaneDefinitionID: childDef['ID'],
            Reconciled: true,
          }),
        ),
      );
      assert.deepEqual(race.map((r) => r.status).sort(), [201, 409], race.map((r) => r.text).join('\n'));
      assert.match(race.find((r) => r.status === 409)!.text, /KubernetesRuntimeInstanceID, Namespace/);
      const names = (await api(s, 'GET', '/v0/control-plane-instances?namespace=race')).data.map((o) => o['Name']);
      assert.equal(names.length, 1, 'the loser wrote nothing');
      const winner = race.find((r) => r.status === 201)!.data[0]!;
      assert.equal((await api(s, 'DELETE', `/v0/control-plane-instances/${String(winner['ID'])}`)).status < 300, true);

      // A runtime of another kind (a registered kubeconfig cluster): refused at once, with a reason, nothing installed.
      const kcd = await must(s, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'registered', InfraProvider: 'kubeconfig', Reconciled: true });
      const kci = await must(s, 'POST', '/v0/kubernetes-runtime-instances', {
        Name: 'registered',
        Location: 'Local',
        APIEndpoint: kri['APIEndpoint'],
        CACertificate: kri['CACertificate'],
        Certificate: kri['Certificate'],
        CertificateKey: s.store.decrypt(String(kri['CertificateKey'])),
        KubernetesRuntimeDefinitionID: kcd['ID'],
        Reconciled: true,
      });
      const onKubeconfig = await must(s, 'POST', '/v0/control-plane-instances', {
        Name: 'on-kubeconfig',
        Namespace: 'elsewhere',
        KubernetesRuntimeInstanceID: kci['ID'],
        ControlPlaneDefinitionID: childDef['ID'],
      });
      const refused = await until('the refusal event', async () => {
        const o = (await api(s, 'GET', `/v0/control-plane-instances/${String(onKubeconfig['ID'])}`)).data[0];
        const e = (await events(s, onKubeconfig['ID'])).find((x) => x['Reason'] === 'ControlPlaneRuntimeNotSupported');
        return o?.['CreationFailed'] === true && e ? e : undefined;
      }, 60_000);
      assert.match(String(refused['Note']), /kubeconfig/);
      assert.equal((await api(s, 'DELETE', `/v0/control-plane-instances/${String(onKubeconfig['ID'])}`)).status < 300, true);

      // ---- the child ------------------------------------------------------------------------------
      const t0 = Date.now();
      const created = await must(s, 'POST', '/v0/control-plane-instances', {
        Name: 'child',
        Namespace: 'child-ns',
        KubernetesRuntimeInstanceID: kri['ID'],
        ControlPlaneDefinitionID: childDef['ID'],
      });
      const dup = await api(s, 'POST', '/v0/control-plane-instances', {
        Name: 'child-again',
        Namespace: 'child-ns',
        KubernetesRuntimeInstanceID: kri['ID'],
        ControlPlaneDefinitionID: childDef['ID'],
      });
      assert.equal(dup.status, 409, dup.text);
      const childId = created['ID'] as number;
      const child = await until('child ControlPlaneInstance Reconciled with its endpoint', async () => {
        const o = (await api(s, 'GET', `/v0/control-plane-instances/${childId}`)).data[0];
        if (o?.['CreationFailed']) throw new Error(`creation failed: ${JSON.stringify((await events(s, childId)).map((e) => e['Note']))}`);
        return o?.['Reconciled'] === true && o['ApiServerEndpoint'] ? o : undefined;
      }, 300_000);
      t.diagnostic(`child control plane Reconciled ${Date.now() - t0} ms after create`);
      assert.equal(child['ParentControlPlaneInstanceID'], parent['ID'], 'registered with its parent');
      assert.match(String(child['ApiServerEndpoint']), /^127\.0\.0\.1:\d+$/);
      assert.match(fromB64(child['CACert']), /BEGIN CERTIFICATE/);
      assert.doesNotMatch(String(child['ClientKey']), /PRIVATE KEY/, 'the client key is stored encrypted');
      const tls = { ca: fromB64(child['CACert']), cert: fromB64(child['ClientCert']), key: fromB64(s.store.decrypt(String(child['ClientKey']))) };
      const url = `https://${String(child['ApiServerEndpoint'])}`;
      assert.equal(await readyz(url, tls), 200, 'the child answers /readyz over mutual TLS');

      // Its own data directory under the runtime's, its own embedded database and key.
      const dir = join(dataDir, 'runtimes', clusterNameFor('threeport-parent'), `cp-${childId}`);
      assert.ok(existsSync(join(dir, 'db')), `the child's embedded PostgreSQL lives in ${dir}`);
      assert.ok(existsSync(join(dir, 'encryption.key')));
      const pid1 = (JSON.parse(readFileSync(join(dir, 'child.json'), 'utf8')) as { pid: number }).pid;
      assert.ok(processAlive(pid1));

      // ---- the child's registration (onboarding) ------------------------------------------------
      const c = new ThreeportClient({ baseUrl: url, tls });
      try {
        const cpis = await c.listAll(controlPlane.ControlPlaneInstance);
        const self = cpis.find((o) => o.IsSelf === true);
        assert.equal(self?.Name, 'child');
        assert.equal(self?.Reconciled, true);
        const genesis = cpis.find((o) => o.Genesis === true);
        assert.equal(genesis?.Name, 'parent');
        assert.equal(genesis?.IsSelf, false);
        assert.equal(self?.ParentControlPlaneInstanceID, genesis?.ID);
        const runtimes = await c.listAll(kubernetesRuntime.KubernetesRuntimeInstance);
        assert.deepEqual(runtimes.map((r) => r.Name), ['threeport-parent']);
        assert.equal(runtimes[0]!.APIEndpoint, kri['APIEndpoint']);
        assert.equal(self?.KubernetesRuntimeInstanceID, runtimes[0]!.ID);
        assert.deepEqual((await c.listAll(controlPlane.ControlPlaneDefinition)).map((d) => d.Name).sort(), ['child', 'parent']);
      } finally {
        c.close();
      }

      // The namespace on the runtime, labelled with the instance.
      const kube = kubeClusterClient(connectionFromRuntimeInstance(kri, (v) => s.store.decrypt(v)));
      try {
        const ns = await kube.get({ apiVersion: 'v1', kind: 'Namespace', name: 'child-ns' });
        assert.equal(ns?.metadata.labels?.['control-plane.threeport.io/control-plane-instance'], String(childId));

        // ---- tptctl get control-planes: the tree ---------------------------------------------------
        const configPath = join(dataDir, 'threeport-config.yaml');
        writeFileSync(configPath, `CurrentControlPlane: parent\nControlPlanes:\n  - Name: parent\n    APIServer: ${s.url!.replace('http://', '')}\n    AuthEnabled: false\n`);
        const got = await tptctl(['get', 'control-planes'], configPath);
        assert.equal(got.code, 0, got.err);
        t.diagnostic(`\n${got.out}`);
        const lines = got.out.trim().split('\n');
        assert.match(lines[0]!, /^NAME\s+CONTROL PLANE DEFINITION/);
        assert.match(lines[1]!, /^parent\s+parent\s+threeport-parent\s+threeport-control-plane\s+\S+\s+genesis, self\s+Healthy/);
        assert.match(lines[2]!, /^└─ child\s+child\s+threeport-parent\s+child-ns\s+127\.0\.0\.1:\d+\s+child\s+Healthy/);

        // ---- SIGKILL: restarted, with an event -------------------------------------------------------
        process.kill(pid1, 'SIGKILL');
        const restarted = await until('ChildControlPlaneRestarted event', async () => {
          const e = (await events(s, childId)).find((x) => x['Reason'] === 'ChildControlPlaneRestarted');
          return e;
        }, 180_000);
        assert.match(String(restarted['Note']), /killed by SIGKILL/);
        const pid2 = await until('a new child process answering /readyz', async () => {
          const p = (JSON.parse(readFileSync(join(dir, 'child.json'), 'utf8')) as { pid: number }).pid;
          return p !== pid1 && processAlive(p) && (await readyz(url, tls)) === 200 ? p : undefined;
        }, 180_000);
        assert.ok(!processAlive(pid1));
        t.diagnostic(`restarted: pid ${pid1} → ${pid2}`);

        // The runtime cannot go while it hosts a control plane.
        const busy = await api(s, 'DELETE', `/v0/kubernetes-runtime-instances/${String(kri['ID'])}`);
        assert.equal(busy.status, 409, busy.text);

        // ---- the parent restarts: the child comes back on its data and port ------------------------
        await s.close();
        await until('child stopped with its parent', () => (processAlive(pid2) ? undefined : true), 30_000);
        server = await startLocalServer(dataDir, config);
        s = server;
        const pid3 = await until('the child again after the parent restarted', async () => {
          const p = (JSON.parse(readFileSync(join(dir, 'child.json'), 'utf8')) as { pid: number }).pid;
          return p !== pid2 && processAlive(p) && (await readyz(url, tls)) === 200 ? p : undefined;
        }, 240_000);
        const c2 = new ThreeportClient({ baseUrl: url, tls });
        try {
          assert.equal((await c2.listAll(controlPlane.ControlPlaneInstance)).filter((o) => o.IsSelf === true).length, 1, 'its data survived, nothing copied twice');
        } finally {
          c2.close();
        }

        // ---- delete: process, data and namespace gone --------------------------------------------
        assert.ok((await api(s, 'DELETE', `/v0/control-plane-instances/${childId}`)).status < 300);
        await until('ControlPlaneInstance gone', async () => ((await api(s, 'GET', `/v0/control-plane-instances/${childId}`)).status === 404 ? true : undefined), 120_000);
        await until('child process gone', () => (processAlive(pid3) ? undefined : true), 30_000);
        assert.ok(!existsSync(dir), 'the child data directory is removed');
        await until('namespace removed', async () => {
          const n = await kube.get({ apiVersion: 'v1', kind: 'Namespace', name: 'child-ns' });
          return !n || n['status'] && (n['status'] as { phase?: string }).phase === 'Terminating' ? true : undefined;
        }, 60_000);
        assert.equal(await readyz(url, tls), 0, 'nothing answers on the child endpoint');
      } finally {
        kube.close();
      }
    } catch (err) {
      if (existsSync(LOG_PATH)) t.diagnostic(`server log (end):\n${readFileSync(LOG_PATH, 'utf8').split('\n').slice(-40).join('\n')}`);
      throw err;
    } finally {
      await server?.close();
      await pg?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
);
