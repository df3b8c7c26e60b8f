// TLS on gateway ports, end to end with the real peers: a real control plane (API + controllers),
// a kwok runtime, traefik v3.6.12 and cert-manager v1.21.2 as the supervised host processes the
// gateway controller starts, and for ACME a real pebble (the ACME server), moto's Route 53 and
// CoreDNS serving moto's zone over DNS (for pebble's validation and cert-manager's self check).
//
//   - the CA issuer (the default, a domain whose Zone is not Public): an HTTPS request with the
//     host name, checked against the issued CA by curl, reaches the test's HTTP backend through
//     traefik; the plain port redirects to it; issuance and a renewal are events;
//   - ACME DNS-01 through Route 53 (a Public zone, the server has an ACME directory): the same
//     request, checked against pebble's root;
//   - deleting the workload removes the routes, the Certificates and their Secrets, the issuers,
//     and cert-manager's process;
//   - bad input: TLS without a domain name, TLS on a TCP port, redirect with nowhere to go: 400s.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ChangeResourceRecordSetsCommand, CreateHostedZoneCommand, Route53Client } from '@aws-sdk/client-route-53';
import { SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';
import { SKIP_AWS, startMoto, type MotoServer } from '../harness/moto.js';
import { freePort } from '../../src/system.js';
import { motoDefaultAccount, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../aws/helpers.js';
import { AWS_ENDPOINT_ENV } from '../../src/providers/aws/provider.js';
import { coreDnsLaunch, pebbleEndpoints, pebbleLaunch, pebbleServingCaPath, SupportPeerSet } from '../../src/providers/support-peers/index.js';
import { LABEL_GATEWAY_INSTANCE } from '../../src/controllers/gateway/render.js';
import { HOST_IP, certManagerPids, curlHttps, httpGet, startBackend, tlsPeersMissing, traefikPids, untilHttps, workloadYaml } from './gateway-helpers.js';
import { api, clientFor, createRuntimes, events, get, kubeCall, must, startControlPlane, until, type ControlPlane, type Obj } from './workload-helpers.js';

const REGION = 'us-east-1';
const ACME_ZONE = 'acme.test';
const skip = SKIP_KUBE
  ? SKIP_KUBE_REASON
  : HOST_IP === undefined
    ? 'no non-loopback IPv4 address for the backend'
    : (SKIP_AWS ?? tlsPeersMissing(true));

const SETTINGS_ENV = [
  'THREEPORT_ACME_DIRECTORY_URL',
  'THREEPORT_ACME_CA_BUNDLE',
  'THREEPORT_DNS01_NAMESERVERS',
  'THREEPORT_DNS01_CHECK_RETRY_PERIOD',
  'THREEPORT_CERTIFICATE_CHECK_INTERVAL_MS',
  AWS_ENDPOINT_ENV,
];

function httpsGetPem(url: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => ((res.statusCode ?? 0) === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${res.statusCode ?? 0}`))));
    });
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end();
  });
}

test('TLS on gateway ports: cert-manager issues from a CA and through ACME DNS-01, traefik serves HTTPS, delete leaves nothing', { skip, timeout: 900_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'threeport-gateway-tls-'));
  const saved = Object.fromEntries(SETTINGS_ENV.map((k) => [k, process.env[k]]));
  let cp: ControlPlane | undefined;
  let backend: Awaited<ReturnType<typeof startBackend>> | undefined;
  let moto: MotoServer | undefined;
  let acmePeers: SupportPeerSet | undefined;
  try {
    backend = await startBackend();
    const backendPort = backend.port;

    // The public DNS and the ACME CA, as the tests have them: moto's Route 53 zone, CoreDNS
    // serving it, pebble validating through that CoreDNS.
    moto = await startMoto();
    const route53 = new Route53Client({ endpoint: moto.url, region: REGION, credentials: { accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY } });
    const zone = await route53.send(new CreateHostedZoneCommand({ Name: ACME_ZONE, CallerReference: `tls-${Date.now()}` }));
    const zoneId = zone.HostedZone!.Id!.replace(/^\/hostedzone\//, '');
    // moto's default SOA record does not parse as DNS: a real one first.
    await route53.send(
      new ChangeResourceRecordSetsCommand({
        HostedZoneId: zoneId,
        ChangeBatch: { Changes: [{ Action: 'UPSERT', ResourceRecordSet: { Name: `${ACME_ZONE}.`, Type: 'SOA', TTL: 60, ResourceRecords: [{ Value: `ns1.${ACME_ZONE}. hostmaster.${ACME_ZONE}. 1 7200 900 1209600 60` }] } }] },
      }),
    );
    acmePeers = new SupportPeerSet({ dir: join(work, 'acme'), kube: { label: 'unused', server: 'https://127.0.0.1:1' }, removeOnExit: true });
    const dnsPort = await freePort();
    const aws = { endpoint: moto.url, region: REGION, accessKeyId: TEST_ACCESS_KEY_ID, secretAccessKey: TEST_SECRET_ACCESS_KEY };
    await acmePeers.start(coreDnsLaunch(acmePeers, { port: dnsPort, healthPort: await freePort(), zones: [{ name: ACME_ZONE, hostedZoneId: zoneId }], aws }));
    const pebblePorts = { port: await freePort(), managementPort: await freePort() };
    await acmePeers.start(pebbleLaunch(acmePeers, { ...pebblePorts, httpPort: await freePort(), tlsPort: await freePort(), dnsServer: `127.0.0.1:${dnsPort}` }));
    const pebble = pebbleEndpoints(pebblePorts);

    // The server's ACME settings (docs/support-services.md, "TLS").
    process.env['THREEPORT_ACME_DIRECTORY_URL'] = pebble.directory;
    process.env['THREEPORT_ACME_CA_BUNDLE'] = pebbleServingCaPath();
    process.env['THREEPORT_DNS01_NAMESERVERS'] = `127.0.0.1:${dnsPort}`;
    process.env['THREEPORT_DNS01_CHECK_RETRY_PERIOD'] = '2s';
    process.env['THREEPORT_CERTIFICATE_CHECK_INTERVAL_MS'] = '1000';
    process.env[AWS_ENDPOINT_ENV] = moto.url;

    cp = await startControlPlane();
    let server = cp.server;
    const [runtime] = await createRuntimes(server, ['tls']);
    let kube = clientFor(server, runtime!);
    await must(server, 'POST', '/v0/aws-accounts', motoDefaultAccount(REGION));
    const privateDomain = await must(server, 'POST', '/v0/domain-name-definitions', { Name: 'example', Domain: 'example.test', Zone: 'Private', AdminEmail: 'admin@example.test' });
    const publicDomain = await must(server, 'POST', '/v0/domain-name-definitions', { Name: 'acme', Domain: ACME_ZONE, Zone: 'Public', AdminEmail: 'admin@acme.test' });

    await t.test('bad TLS ports are refused with a 400 that says why, and nothing is written', async () => {
      const bad = async (body: Obj): Promise<string> => {
        const r = await api(server, 'POST', '/v0/gateway-definitions', body);
        assert.equal(r.status, 400, r.text);
        return r.text;
      };
      assert.match(
        await bad({ Name: 'bad1', HttpPorts: [{ Port: 443, TLSEnabled: true }] }),
        /HttpPorts\[0\]\.TLSEnabled: TLS needs a host name for its certificate: set DomainNameDefinitionID/,
      );
      assert.match(await bad({ Name: 'bad2', DomainNameDefinitionID: privateDomain['ID'], TcpPorts: [{ Port: 5432, TLSEnabled: true }] }), /TcpPorts\[0\]\.TLSEnabled: TLS on TCP ports is not supported/);
      assert.match(
        await bad({ Name: 'bad3', DomainNameDefinitionID: privateDomain['ID'], HttpPorts: [{ Port: 443, TLSEnabled: true, HTTPSRedirect: true }] }),
        /HttpPorts\[0\]: TLSEnabled and HTTPSRedirect cannot both be true on one port/,
      );
      assert.match(await bad({ Name: 'bad4', HttpPorts: [{ Port: 80, HTTPSRedirect: true }] }), /HttpPorts\[0\]\.HTTPSRedirect: there is no TLSEnabled HTTP port in this definition to redirect to/);
      assert.equal((await api(server, 'GET', '/v0/gateway-definitions?size=-1')).data.length, 0);
    });

    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const wd = await must(server, 'POST', '/v0/workload-definitions', { Name: 'shop', YAMLDocument: workloadYaml('shop', backendPort) });
    const wi = await must(server, 'POST', '/v0/workload-instances', { Name: 'shop', WorkloadDefinitionID: wd['ID'], KubernetesRuntimeInstanceID: runtime!['ID'] });
    const gd = await must(server, 'POST', '/v0/gateway-definitions', {
      Name: 'shop-gateway',
      SubDomain: 'shop',
      DomainNameDefinitionID: privateDomain['ID'],
      ServiceName: 'web',
      HttpPorts: [{ Port: port, HTTPSRedirect: true }, { Port: port + 1, TLSEnabled: true }],
    });
    const gi = await must(server, 'POST', '/v0/gateway-instances', { Name: 'shop-gateway', GatewayDefinitionID: gd['ID'], WorkloadInstanceID: wi['ID'], KubernetesRuntimeInstanceID: runtime!['ID'] });
    const healthy = (id: unknown, what: string, timeoutMs: number) =>
      until(what, async () => {
        const o = await get(server, 'gateway-instances', id);
        if (o?.['CreationFailed'] === true) throw new Error(`failed: ${JSON.stringify((await events(server, id)).map((e) => e['Note']))}`);
        return o?.['Status'] === 'Healthy' ? o : undefined;
      }, timeoutMs).catch(async (err: unknown) => {
        const notes = (await events(server, id)).map((e) => `${String(e['Reason'])}: ${String(e['Note'])}`);
        throw new Error(`${(err as Error).message}\n  events:\n    ${notes.join('\n    ')}`);
      });

    let address = '';
    const caFile = join(work, 'ca.pem');
    await t.test('CA issuer: the GatewayInstance is Healthy once the Certificate is Ready, and curl gets the backend over HTTPS', async () => {
      const t0 = Date.now();
      await healthy(gi['ID'], 'GatewayInstance Healthy (CA issuer)', 240_000);
      t.diagnostic(`Healthy ${Date.now() - t0} ms after the GatewayInstance was created (cert-manager and traefik start included)`);
      const cert = await kube.get({ apiVersion: 'cert-manager.io/v1', kind: 'Certificate', name: 'gateway-shop-gateway-tls', namespace: 'shop' });
      const spec = cert?.['spec'] as Obj;
      assert.deepEqual(spec['dnsNames'], ['shop.example.test']);
      assert.deepEqual(spec['issuerRef'], { group: 'cert-manager.io', kind: 'ClusterIssuer', name: 'threeport-ca' });
      const gateway = await kube.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'gateway-shop-gateway', namespace: 'shop' });
      const listeners = (gateway?.['spec'] as { listeners: Obj[] }).listeners;
      assert.deepEqual(listeners.map((l) => [l['name'], l['protocol'], l['port'], l['hostname']]), [
        [`http-${port}`, 'HTTP', port, 'shop.example.test'],
        [`https-${port + 1}`, 'HTTPS', port + 1, 'shop.example.test'],
      ]);
      assert.deepEqual((listeners[1]!['tls'] as Obj)['certificateRefs'], [{ group: '', kind: 'Secret', name: 'gateway-shop-gateway-tls' }]);
      address = String((((gateway?.['status'] as Obj)['addresses'] as Obj[])[0] ?? {})['value']);

      const secret = await kube.get({ apiVersion: 'v1', kind: 'Secret', name: 'gateway-shop-gateway-tls', namespace: 'shop' });
      const data = secret?.['data'] as Record<string, string>;
      writeFileSync(caFile, Buffer.from(data['ca.crt']!, 'base64'));
      const leaf = new X509Certificate(Buffer.from(data['tls.crt']!, 'base64'));
      assert.equal(leaf.subjectAltName, 'DNS:shop.example.test');
      assert.match(leaf.issuer, /Threeport CA for runtime tls/);

      const r = await untilHttps(address, port + 1, 'shop.example.test', caFile, '/cart');
      assert.equal(r.body, `backend saw shop.example.test:${port + 1} /cart`, 'curl sends the port in Host on a non-default port');
      const plain = await httpGet(address, port, 'shop.example.test', '/cart');
      assert.equal(plain.status, 301);
      assert.equal(plain.location, `https://shop.example.test:${port + 1}/cart`);

      const issued = (await events(server, gi['ID'])).find((e) => e['Reason'] === 'CertificateIssued');
      assert.match(String(issued?.['Note']), /Certificate shop\/gateway-shop-gateway-tls for shop\.example\.test from ClusterIssuer threeport-ca is Ready \(revision 1\): valid until \d{4}-.*, renewal at \d{4}-/);
      const installed = (await events(server, gi['ID'])).find((e) => e['Reason'] === 'CertificateControllerInstalled');
      assert.match(String(installed?.['Note']), /cert-manager v1\.21\.2 started for KubernetesRuntimeInstance "tls": CA issuer threeport-ca; ACME https:\/\/127\.0\.0\.1:\d+\/dir for Public zones, Route 53 in us-east-1/);
      assert.equal(certManagerPids(cp!.dataDir).length, 1);
      const runtimeEvents = (await events(server, runtime!['ID'])).filter((e) => e['Reason'] === 'SupportPeerStarted').map((e) => String(e['Note']));
      assert.ok(runtimeEvents.some((n) => n.startsWith('cert-manager is ready')), runtimeEvents.join('; '));
    });

    await t.test('a renewal is observed and shows as an event with the new validity', async () => {
      // What `cmctl renew` does: the Issuing condition, set on the Certificate's status.
      const path = '/apis/cert-manager.io/v1/namespaces/shop/certificates/gateway-shop-gateway-tls/status';
      const current = await kube.get({ apiVersion: 'cert-manager.io/v1', kind: 'Certificate', name: 'gateway-shop-gateway-tls', namespace: 'shop' });
      const conditions = ((current?.['status'] as Obj)['conditions'] as Obj[]).filter((c) => c['type'] !== 'Issuing');
      conditions.push({ type: 'Issuing', status: 'True', reason: 'ManuallyTriggered', message: 'renewal requested by the test', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') });
      const r = await kubeCall(server, runtime!, 'PATCH', path, { status: { conditions } }, 'application/merge-patch+json');
      assert.equal(r.status, 200, r.body);
      const renewed = await until('CertificateRenewed event', async () => (await events(server, gi['ID'])).find((e) => e['Reason'] === 'CertificateRenewed'), 60_000);
      assert.match(String(renewed['Note']), /is Ready \(revision 2\): valid until/);
      const again = await curlHttps(address, port + 1, 'shop.example.test', caFile);
      assert.equal(again.status, 200, again.stderr);
    });

    await t.test('a killed cert-manager is restarted with an event; after a server restart it is back and HTTPS is served', async () => {
      const [pid] = certManagerPids(cp!.dataDir);
      const lastBefore = Math.max(0, ...(await events(server, runtime!['ID'])).map((e) => Number(e['ID'])));
      process.kill(pid!, 'SIGKILL');
      const restarted = await until('SupportPeerRestarted for cert-manager', async () =>
        // The supervisor's backoff restart says SupportPeerRestarted; a gateway reconcile that gets
        // there first starts it afresh (SupportPeerStarted). Either way: a new pid, with an event.
        (await events(server, runtime!['ID'])).find(
          (e) =>
            Number(e['ID']) > lastBefore &&
            ((e['Reason'] === 'SupportPeerRestarted' && String(e['Note']).startsWith('cert-manager restarted')) ||
            (e['Reason'] === 'SupportPeerStarted' && String(e['Note']).startsWith('cert-manager is ready') && !String(e['Note']).includes(`(pid ${String(pid)})`))),
        ), 60_000).catch(async (err: unknown) => {
        const seen = (await events(server, runtime!['ID'])).map((e) => `${String(e['Reason'])}: ${String(e['Note'])}`);
        throw new Error(`${(err as Error).message}; killed pid ${String(pid)}; runtime events:\n  ${seen.join('\n  ')}`);
      });
      assert.ok(restarted);
      server = await cp!.restart();
      kube.close();
      kube = clientFor(server, (await get(server, 'kubernetes-runtime-instances', runtime!['ID']))!);
      await until('cert-manager back after the server restart', async () => (certManagerPids(cp!.dataDir).length === 1 ? true : undefined), 180_000);
      await healthy(gi['ID'], 'GatewayInstance Healthy after the restart', 180_000);
      const r = await untilHttps(address, port + 1, 'shop.example.test', caFile, '/again');
      assert.equal(r.body, `backend saw shop.example.test:${port + 1} /again`);
    });

    await t.test('ACME DNS-01 through Route 53 (pebble, moto, CoreDNS): a Public zone gets an ACME certificate', async () => {
      const gd2 = await must(server, 'POST', '/v0/gateway-definitions', {
        Name: 'acme-gateway',
        SubDomain: 'shop',
        DomainNameDefinitionID: publicDomain['ID'],
        ServiceName: 'web',
        HttpPorts: [{ Port: port + 2, TLSEnabled: true }],
      });
      const gi2 = await must(server, 'POST', '/v0/gateway-instances', { Name: 'acme-gateway', GatewayDefinitionID: gd2['ID'], WorkloadInstanceID: wi['ID'], KubernetesRuntimeInstanceID: runtime!['ID'] });
      const waiting = await until('WaitingForCertificate event', async () => (await events(server, gi2['ID'])).find((e) => e['Reason'] === 'WaitingForCertificate'), 120_000);
      assert.match(String(waiting['Note']), /^waiting for the certificate: Certificate shop\/gateway-acme-gateway-tls .*\(host shop\.acme\.test, ClusterIssuer threeport-acme-\d+\)/);
      const t0 = Date.now();
      await healthy(gi2['ID'], 'GatewayInstance Healthy (ACME)', 400_000);
      t.diagnostic(`ACME certificate issued and served ${Date.now() - t0} ms after the first wait event`);
      const issuer = await kube.get({ apiVersion: 'cert-manager.io/v1', kind: 'ClusterIssuer', name: `threeport-acme-${String(publicDomain['ID'])}` });
      const acme = (issuer?.['spec'] as Obj)['acme'] as Obj;
      assert.equal(acme['server'], pebble.directory);
      assert.equal(acme['email'], 'admin@acme.test');

      const root = await httpsGetPem(pebble.rootsUrl, readFileSync(pebbleServingCaPath(), 'utf8'));
      const rootFile = join(work, 'pebble-root.pem');
      writeFileSync(rootFile, root);
      const r = await untilHttps(address, port + 2, 'shop.acme.test', rootFile, '/acme');
      assert.equal(r.body, `backend saw shop.acme.test:${port + 2} /acme`);
      const issued = (await events(server, gi2['ID'])).find((e) => e['Reason'] === 'CertificateIssued');
      assert.match(String(issued?.['Note']), /for shop\.acme\.test from ClusterIssuer threeport-acme-\d+ is Ready \(revision 1\)/);
    });

    await t.test('deleting the workload removes routes, Certificates, Secrets, issuers and cert-manager', async () => {
      await must(server, 'DELETE', `/v0/workload-instances/${String(wi['ID'])}`);
      await until('GatewayInstances gone', async () => ((await api(server, 'GET', '/v0/gateway-instances?size=-1')).data.length === 0 ? true : undefined), 180_000);
      for (const [apiVersion, kind] of [
        ['gateway.networking.k8s.io/v1', 'HTTPRoute'],
        ['gateway.networking.k8s.io/v1', 'Gateway'],
        ['cert-manager.io/v1', 'Certificate'],
        ['v1', 'Secret'],
      ] as const) {
        const left = await kube.list(apiVersion, kind, { labelSelector: LABEL_GATEWAY_INSTANCE });
        assert.deepEqual(left.items.map((o) => o.metadata.name), [], `${kind}s left`);
      }
      assert.deepEqual((await kube.list('cert-manager.io/v1', 'ClusterIssuer')).items.map((o) => o.metadata.name), [], 'ClusterIssuers left');
      assert.deepEqual((await kube.list('cert-manager.io/v1', 'Certificate')).items.map((o) => o.metadata.name), [], 'Certificates left (the CA too)');
      await until('no cert-manager or traefik process', async () => (certManagerPids(cp!.dataDir).length + traefikPids(cp!.dataDir).length === 0 ? true : undefined), 30_000);
      await until('the cert-manager namespace gone', async () => ((await kube.get({ apiVersion: 'v1', kind: 'Namespace', name: 'threeport-cert-manager' })) ? undefined : true), 60_000);
    });
  } finally {
    await cp?.close();
    await acmePeers?.stopAll().catch(() => undefined);
    await moto?.stop().catch(() => undefined);
    await backend?.close();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(work, { recursive: true, force: true });
  }
});
