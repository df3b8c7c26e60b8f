// Gateways on a simulated runtime, end to end with the real peers: a real `threeport server`
// (API + controllers), a kwok runtime (real kube-apiserver), the Gateway API CRDs v1.4.0 and
// traefik v3.6.12 as the supervised host process the gateway controller starts.
//
// The backend is an HTTP server this test starts on the host's own non-loopback address (the API
// server refuses 127.0.0.0/8 in EndpointSlices), reached through the workload's selector-less
// Service and the EndpointSlice the workload declares: a real request with a Host header goes
// through the real traefik to it. Then: traefik killed → restarted with an event; a ServiceName
// the workload lacks → an event naming it; bad ports → 400s naming the field; deleting the
// workload deletes its gateway, its routes, traefik and the controller WorkloadInstance.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';
import { HOST_IP, gatewayPeersMissing as peersMissing, httpGet, startBackend, traefikPids, workloadYaml } from './gateway-helpers.js';
import { LABEL_GATEWAY_INSTANCE } from '../../src/controllers/gateway/render.js';
import { api, clientFor, createRuntimes, events, get, must, startControlPlane, until, type ControlPlane, type Obj } from './workload-helpers.js';

const skip = SKIP_KUBE ? SKIP_KUBE_REASON : HOST_IP === undefined ? 'no non-loopback IPv4 address for the backend' : peersMissing();

test('gateways: traefik on a simulated runtime routes Host-header requests to the workload, and goes with the last gateway', { skip, timeout: 600_000 }, async (t) => {
  let cp: ControlPlane | undefined;
  let backend: Awaited<ReturnType<typeof startBackend>> | undefined;
  try {
    backend = await startBackend();
    const backendPort = backend.port;

    cp = await startControlPlane();
    const server = cp.server;
    const [runtime] = await createRuntimes(server, ['gw']);
    const kube = clientFor(server, runtime!);

    await t.test('bad ports are refused with a 400 naming the field, and nothing is written', async () => {
      const bad = async (body: Obj, plural = 'gateway-definitions'): Promise<string> => {
        const r = await api(server, 'POST', `/v0/${plural}`, body);
        assert.equal(r.status, 400, r.text);
        return r.text;
      };
      assert.match(await bad({ Name: 'bad1', HttpPorts: [{ Port: 70000 }] }), /HttpPorts\[0\]: field GatewayHttpPort\.Port must be between 1 and 65535, got 70000/);
      assert.match(await bad({ Name: 'bad2', TcpPorts: [{ Port: 0 }] }), /TcpPorts\[0\]: field GatewayTcpPort\.Port must be between 1 and 65535, got 0/);
      assert.match(await bad({ Name: 'bad3', HttpPorts: [{ Port: 8080 }], TcpPorts: [{ Port: 8080 }] }), /TcpPorts\[0\]\.Port: port 8080 is used twice \(also GatewayDefinition\.HttpPorts\[0\]\.Port\)/);
      assert.match(await bad({ Name: 'bad4', HttpPorts: [{ Port: 443, TLSEnabled: true }] }), /HttpPorts\[0\]\.TLSEnabled: TLS needs a host name for its certificate: set DomainNameDefinitionID/);
      assert.match(await bad({ GatewayDefinitionID: 1, Port: -1 }, 'gateway-http-ports'), /GatewayHttpPort\.Port must be between 1 and 65535/);
      assert.equal((await api(server, 'GET', '/v0/gateway-definitions?size=-1')).data.length, 0);
    });

    const gwPort = 20_000 + Math.floor(Math.random() * 20_000);
    const wd = await must(server, 'POST', '/v0/workload-definitions', { Name: 'shop', YAMLDocument: workloadYaml('shop', backendPort) });
    const wi = await must(server, 'POST', '/v0/workload-instances', { Name: 'shop', WorkloadDefinitionID: wd['ID'], KubernetesRuntimeInstanceID: runtime!['ID'] });
    const dnd = await must(server, 'POST', '/v0/domain-name-definitions', { Name: 'example', Domain: 'example.test', Zone: 'Public', AdminEmail: 'admin@example.test' });
    const gd = await must(server, 'POST', '/v0/gateway-definitions', {
      Name: 'shop-gateway',
      SubDomain: 'shop',
      DomainNameDefinitionID: dnd['ID'],
      ServiceName: 'web',
      HttpPorts: [{ Port: gwPort, Path: '/' }],
      TcpPorts: [{ Port: gwPort + 2 }],
    });
    const t0 = Date.now();
    const gi = await must(server, 'POST', '/v0/gateway-instances', { Name: 'shop-gateway', GatewayDefinitionID: gd['ID'], WorkloadInstanceID: wi['ID'], KubernetesRuntimeInstanceID: runtime!['ID'] });

    let address = '';
    await t.test('the GatewayInstance becomes Healthy once traefik Programmed the Gateway and Accepted the route', async () => {
      await until('GatewayInstance Healthy', async () => {
        const o = await get(server, 'gateway-instances', gi['ID']);
        if (o?.['CreationFailed'] === true) throw new Error(`failed: ${JSON.stringify((await events(server, gi['ID'])).map((e) => e['Note']))}`);
        return o?.['Status'] === 'Healthy' ? o : undefined;
      }, 240_000);
      t.diagnostic(`Healthy ${Date.now() - t0} ms after the GatewayInstance was created`);
      const gateway = await kube.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'gateway-shop-gateway', namespace: 'shop' });
      const conditions = ((gateway?.['status'] as Obj | undefined)?.['conditions'] ?? []) as Obj[];
      assert.equal(conditions.find((c) => c['type'] === 'Programmed')?.['status'], 'True');
      const spec = gateway?.['spec'] as { listeners: Obj[] };
      assert.deepEqual(spec.listeners.map((l) => [l['protocol'], l['port'], l['hostname']]), [['HTTP', gwPort, 'shop.example.test'], ['TCP', gwPort + 2, undefined]]);
      const tcpRoute = await kube.get({ apiVersion: 'gateway.networking.k8s.io/v1alpha2', kind: 'TCPRoute', name: `gateway-shop-gateway-${gwPort + 2}`, namespace: 'shop' });
      const refs = (((tcpRoute?.['spec'] as Obj)['rules'] as Obj[])[0]?.['backendRefs'] ?? []) as Obj[];
      assert.deepEqual(refs.map((r) => [r['name'], r['port']]), [['web', 80]]);
      address = String((((gateway?.['status'] as Obj)['addresses'] as Obj[])[0] ?? {})['value']);
      assert.match(address, /^127\./);
      const route = await kube.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', name: `gateway-shop-gateway-${gwPort}`, namespace: 'shop' });
      assert.deepEqual((route?.['spec'] as Obj)['hostnames'], ['shop.example.test']);
      const rt = await get(server, 'kubernetes-runtime-instances', runtime!['ID']);
      const controllerWi = await get(server, 'workload-instances', rt?.['GatewayWorkloadInstanceID']);
      assert.equal(controllerWi?.['Name'], 'gateway-controller-gw');
      assert.equal(traefikPids(cp!.dataDir).length, 1);
    });

    await t.test('a real request with the Host header goes through traefik to the backend', async () => {
      const r = await until('routed', async () => {
        const got = await httpGet(address, gwPort, 'shop.example.test', '/cart').catch(() => undefined);
        return got?.status === 200 ? got : undefined;
      }, 60_000);
      assert.equal(r.body, 'backend saw shop.example.test /cart');
      const other = await httpGet(address, gwPort, 'elsewhere.test');
      assert.equal(other.status, 404);
      // The TCP port proxies bytes, whatever the host.
      const tcp = await until('routed over TCP', async () => {
        const got = await httpGet(address, gwPort + 2, 'any.host', '/raw').catch(() => undefined);
        return got?.status === 200 ? got : undefined;
      }, 60_000);
      assert.equal(tcp.body, 'backend saw any.host /raw');
    });

    await t.test('a killed traefik is restarted, with an event on the runtime', async () => {
      const [pid] = traefikPids(cp!.dataDir);
      process.kill(pid!, 'SIGKILL');
      await until('SupportPeerRestarted event', async () => {
        const es = await events(server, runtime!['ID']);
        return es.find((e) => e['Reason'] === 'SupportPeerRestarted');
      }, 60_000);
      const r = await until('routed again', async () => {
        const got = await httpGet(address, gwPort, 'shop.example.test').catch(() => undefined);
        return got?.status === 200 ? got : undefined;
      }, 60_000);
      assert.match(r.body, /backend saw shop\.example\.test/);
    });

    await t.test('a ServiceName the workload lacks gets an event that names it', async () => {
      const gd2 = await must(server, 'POST', '/v0/gateway-definitions', { Name: 'nope-gateway', ServiceName: 'nope', HttpPorts: [{ Port: gwPort + 1 }] });
      const gi2 = await must(server, 'POST', '/v0/gateway-instances', { Name: 'nope-gateway', GatewayDefinitionID: gd2['ID'], WorkloadInstanceID: wi['ID'], KubernetesRuntimeInstanceID: runtime!['ID'] });
      const e = await until('GatewayServiceNotFound event', async () => (await events(server, gi2['ID'])).find((x) => x['Reason'] === 'GatewayServiceNotFound'), 60_000);
      assert.match(String(e['Note']), /ServiceName "nope", but WorkloadInstance "shop" has no Service named "nope" \(it has: web, admin\)/);
    });

    await t.test('on a registered (kubeconfig) cluster the gateway is refused with an event that says why', async () => {
      const def = await must(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'existing', InfraProvider: 'kubeconfig' });
      const real = await must(server, 'POST', '/v0/kubernetes-runtime-instances', { Name: 'real', Location: 'Local', KubernetesRuntimeDefinitionID: def['ID'] });
      const gi3 = await must(server, 'POST', '/v0/gateway-instances', { Name: 'real-gateway', GatewayDefinitionID: gd['ID'], WorkloadInstanceID: wi['ID'], KubernetesRuntimeInstanceID: real['ID'] });
      const e = await until('GatewayControllerUnavailable event', async () => (await events(server, gi3['ID'])).find((x) => x['Reason'] === 'GatewayControllerUnavailable'), 60_000);
      assert.match(String(e['Note']), /only available on simulated \(kwok\) runtimes.*traefik's official Helm chart, which is not in the traefik Go module/);
      assert.equal((await get(server, 'gateway-instances', gi3['ID']))?.['CreationFailed'], true);
    });

    await t.test('deleting the workload deletes its gateways, their routes, traefik and the controller workload', async () => {
      await must(server, 'DELETE', `/v0/workload-instances/${String(wi['ID'])}`);
      await until('GatewayInstances gone', async () => ((await api(server, 'GET', '/v0/gateway-instances?size=-1')).data.length === 0 ? true : undefined), 120_000);
      await until('WorkloadInstances gone', async () => ((await api(server, 'GET', '/v0/workload-instances?size=-1')).data.length === 0 ? true : undefined), 120_000);
      for (const [apiVersion, kind] of [['gateway.networking.k8s.io/v1', 'HTTPRoute'], ['gateway.networking.k8s.io/v1', 'Gateway'], ['gateway.networking.k8s.io/v1alpha2', 'TCPRoute']] as const) {
        const left = await kube.list(apiVersion, kind, { labelSelector: LABEL_GATEWAY_INSTANCE });
        assert.deepEqual(left.items.map((o) => o.metadata.name), [], `${kind}s left`);
      }
      assert.equal(await kube.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'GatewayClass', name: 'threeport-traefik' }).then((o) => o?.metadata.name), undefined);
      await until('no traefik process', async () => (traefikPids(cp!.dataDir).length === 0 ? true : undefined), 30_000);
      const rt = await get(server, 'kubernetes-runtime-instances', runtime!['ID']);
      assert.equal(rt?.['GatewayWorkloadInstanceID'] ?? null, null);
      await until('controller WorkloadDefinition gone', async () => {
        const wds = (await api(server, 'GET', '/v0/workload-definitions?size=-1')).data.map((d) => d['Name']);
        return wds.includes('gateway-controller-gw') ? undefined : true;
      }, 60_000);
    });
  } finally {
    await cp?.close();
    await backend?.close();
  }
});
