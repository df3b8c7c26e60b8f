// DNS records for gateways on a simulated runtime, end to end with the real peers: a real control
// plane (API + controllers, embedded PostgreSQL), a kwok runtime (real kube-apiserver), traefik
// v3.6.12 serving the Gateway API, external-dns v0.23.0 as the supervised host process the DNS
// controller starts, and moto standing in for Route 53 (THREEPORT_AWS_ENDPOINT_URL).
//
// A workload with a Gateway and a DomainName (upstream's shape): once it is Healthy, its host
// names are in moto's zone with the gateway's address and a TXT ownership record for the runtime;
// `tptctl get domain-names` shows it. No AwsAccount, or a domain no zone serves, is a Warning event and Status Error,
// once. Deleting the DomainNameInstance removes the records and (its runtime's last) external-dns;
// deleting the workload deletes its gateway and DomainNameInstances, removes the records, and
// leaves no external-dns process, controller workload or route behind; then the definitions can be
// deleted (issue 16).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CreateHostedZoneCommand, ListResourceRecordSetsCommand, Route53Client, type ResourceRecordSet } from '@aws-sdk/client-route-53';
import { SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';
import { SKIP_AWS, startMoto, type MotoServer } from '../harness/moto.js';
import { AWS_ENDPOINT_ENV } from '../../src/providers/aws/provider.js';
import { main as tptctlMain } from '../../src/cli/main.js';
import { motoDefaultAccount } from '../aws/helpers.js';
import { HOST_IP, dnsPeersMissing, peerPids, workloadYaml } from './gateway-helpers.js';
import { api, createRuntimes, events, get, list, must, startControlPlane, status, until, type ControlPlane } from './workload-helpers.js';

const skip = SKIP_KUBE
  ? SKIP_KUBE_REASON
  : (SKIP_AWS ?? (HOST_IP === undefined ? 'no non-loopback IPv4 address for the backend' : dnsPeersMissing()));

const externalDnsPids = (dataDir: string): number[] => peerPids(dataDir, 'external-dns');

async function tptctl(args: string[], configPath: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await tptctlMain(['node', 'tptctl', '--threeport-config', configPath, ...args], {
    out: { write: (s: string) => (out += s) },
    err: { write: (s: string) => (err += s) },
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code, out, err };
}

test('DNS records: external-dns publishes a workload gateway host in Route 53 (moto) and removes it with the DomainNameInstance or the workload', { skip, timeout: 900_000 }, async (t) => {
  let cp: ControlPlane | undefined;
  let moto: MotoServer | undefined;
  let backend: Server | undefined;
  const savedEndpoint = process.env[AWS_ENDPOINT_ENV];
  try {
    moto = await startMoto();
    process.env[AWS_ENDPOINT_ENV] = moto.url;
    const route53 = new Route53Client({ endpoint: moto.url, region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
    const zone = await route53.send(new CreateHostedZoneCommand({ Name: 'example.test', CallerReference: `dns-${Date.now()}` }));
    const zoneId = zone.HostedZone!.Id!.replace(/^\/hostedzone\//, '');
    const records = async (): Promise<ResourceRecordSet[]> => (await route53.send(new ListResourceRecordSetsCommand({ HostedZoneId: zoneId }))).ResourceRecordSets ?? [];
    const named = (rs: ResourceRecordSet[], host: string): ResourceRecordSet[] => rs.filter((r) => r.Name === `${host}.` || r.Name === `a-${host}.`);

    backend = createServer((req, res) => res.end(`backend saw ${req.headers.host ?? ''}`));
    await new Promise<void>((r) => backend!.listen(0, HOST_IP, r));
    const backendPort = (backend.address() as { port: number }).port;

    cp = await startControlPlane();
    const server = cp.server;
    const [runtime] = await createRuntimes(server, ['dns']);
    const owner = `threeport-dns-${String(runtime!['ID'])}`;
    // Upstream's Workload config shape, as tptctl posts it: definitions, then instances.
    const gwPort = 20_000 + Math.floor(Math.random() * 20_000);
    const wd = await must(server, 'POST', '/v0/workload-definitions', { Name: 'shop', YAMLDocument: workloadYaml('shop', backendPort) });
    const wi = await must(server, 'POST', '/v0/workload-instances', { Name: 'shop', WorkloadDefinitionID: wd['ID'], KubernetesRuntimeInstanceID: runtime!['ID'] });
    const dnd = await must(server, 'POST', '/v0/domain-name-definitions', { Name: 'example', Domain: 'example.test', Zone: 'Public', AdminEmail: 'admin@example.test' });
    const dniBody = { Name: 'example', DomainNameDefinitionID: dnd['ID'], WorkloadInstanceID: wi['ID'], KubernetesRuntimeInstanceID: runtime!['ID'] };
    await t.test('with no AwsAccount to publish with: a Warning event and Status Error (upstream’s test has none)', async () => {
      const other = await must(server, 'POST', '/v0/domain-name-definitions', { Name: 'other', Domain: 'other.test', Zone: 'Public', AdminEmail: 'admin@other.test' });
      const lonely = await must(server, 'POST', '/v0/domain-name-instances', { ...dniBody, Name: 'noaccount', DomainNameDefinitionID: other['ID'] });
      const e = await until('AwsAccountNotFound event', async () => (await events(server, lonely['ID'])).find((x) => x['Reason'] === 'AwsAccountNotFound'), 60_000);
      assert.match(String(e['Note']), /no AwsAccount is the default \(DefaultAccount: true\) to publish DNS records with/);
      assert.equal((await get(server, 'domain-name-instances', lonely['ID']))?.['Status'], 'Error');
    });
    await must(server, 'POST', '/v0/aws-accounts', motoDefaultAccount());

    let dni = await must(server, 'POST', '/v0/domain-name-instances', dniBody);
    const gd = await must(server, 'POST', '/v0/gateway-definitions', {
      Name: 'shop-gateway',
      SubDomain: 'shop',
      DomainNameDefinitionID: dnd['ID'],
      ServiceName: 'web',
      HttpPorts: [{ Port: gwPort, Path: '/' }],
    });
    const gi = await must(server, 'POST', '/v0/gateway-instances', { Name: 'shop-gateway', GatewayDefinitionID: gd['ID'], WorkloadInstanceID: wi['ID'], KubernetesRuntimeInstanceID: runtime!['ID'] });

    const healthy = (plural: string, id: unknown, what: string) =>
      until(`${what} Healthy`, async () => {
        const o = await get(server, plural, id);
        if (o?.['Status'] === 'Error' || o?.['CreationFailed'] === true) throw new Error(`${what} failed: ${JSON.stringify((await events(server, id)).map((e) => e['Note']))}`);
        return o?.['Status'] === 'Healthy' ? o : undefined;
      }, 300_000);

    let address = '';
    await t.test('once the workload is Healthy, its gateway host is in the zone at the gateway address, owned by the runtime', async () => {
      await status(server, wi['ID'], 'Healthy', 240_000);
      await healthy('gateway-instances', gi['ID'], 'GatewayInstance');
      dni = await healthy('domain-name-instances', dni['ID'], 'DomainNameInstance');
      assert.equal(dni['Reconciled'], true);
      const rs = await records();
      const a = rs.find((r) => r.Type === 'A' && r.Name === 'shop.example.test.');
      address = a?.ResourceRecords?.[0]?.Value ?? '';
      assert.match(address, /^127\./, `an A record for shop.example.test (zone: ${JSON.stringify(rs.map((r) => `${r.Type} ${r.Name}`))})`);
      const txt = named(rs, 'shop.example.test').filter((r) => r.Type === 'TXT');
      assert.ok(txt.some((r) => r.ResourceRecords?.some((v) => v.Value?.includes(`external-dns/owner=${owner}`))), `a TXT ownership record for ${owner}`);
      const published = (await events(server, dni['ID'])).find((e) => e['Reason'] === 'DnsRecordsPublished');
      assert.match(String(published?.['Note']), new RegExp(`shop\\.example\\.test → ${address.replace(/\./g, '\\.')}`));
      const rt = await get(server, 'kubernetes-runtime-instances', runtime!['ID']);
      assert.equal((await get(server, 'workload-instances', rt?.['DnsControllerInstanceId']))?.['Name'], 'external-dns-dns');
      assert.equal(externalDnsPids(cp!.dataDir).length, 1);
    });

    await t.test('tptctl get domain-names shows the live status', async () => {
      const configPath = join(cp!.dataDir, 'threeport-config.yaml');
      writeFileSync(configPath, `CurrentControlPlane: test\nControlPlanes:\n  - Name: test\n    APIServer: ${server.url!.replace('http://', '')}\n    AuthEnabled: false\n`);
      const got = await tptctl(['get', 'domain-names'], configPath);
      assert.equal(got.code, 0, got.err);
      assert.match(got.out, /example\s+example\s+example\s+dns\s+Healthy/);
    });

    await t.test('a domain that no hosted zone serves: a Warning event and Status Error, once (no crash loop)', async () => {
      const nowhere = await must(server, 'POST', '/v0/domain-name-definitions', { Name: 'nowhere', Domain: 'nowhere.test', Zone: 'Public', AdminEmail: 'admin@nowhere.test' });
      const bad = await must(server, 'POST', '/v0/domain-name-instances', { ...dniBody, Name: 'nowhere', DomainNameDefinitionID: nowhere['ID'] });
      const e = await until('HostedZoneNotFound event', async () => (await events(server, bad['ID'])).find((x) => x['Reason'] === 'HostedZoneNotFound'), 60_000);
      assert.equal(e['Type'], 'Warning');
      assert.match(String(e['Note']), /no public Route 53 hosted zone in AwsAccount "default-account" serves nowhere\.test/);
      const o = await get(server, 'domain-name-instances', bad['ID']);
      assert.equal(o?.['Status'], 'Error');
      assert.equal(o?.['CreationFailed'], true);
      // The other domain's records are untouched, and the failure is not retried.
      await healthy('domain-name-instances', dni['ID'], 'DomainNameInstance');
      assert.equal((await events(server, bad['ID'])).find((x) => x['Reason'] === 'HostedZoneNotFound')?.['Count'], 1);
    });

    await t.test('a killed external-dns is restarted, with an event on the runtime', async () => {
      const [pid] = externalDnsPids(cp!.dataDir);
      process.kill(pid!, 'SIGKILL');
      const e = await until('SupportPeerRestarted event', async () => (await events(server, runtime!['ID'])).find((x) => x['Reason'] === 'SupportPeerRestarted' && String(x['Note']).startsWith('external-dns')), 60_000);
      assert.match(String(e['Note']), /external-dns restarted \(pid \d+\)/);
    });

    await t.test('deleting the DomainNameInstance removes its records, then the runtime’s external-dns', async () => {
      await must(server, 'DELETE', `/v0/domain-name-instances/${String(dni['ID'])}`);
      await until('the DomainNameInstance gone', async () => ((await get(server, 'domain-name-instances', dni['ID'])) ? undefined : true), 120_000);
      assert.deepEqual(named(await records(), 'shop.example.test').map((r) => r.Type), [], 'no record of shop.example.test is left');
      // The unknown-zone instance remains, so the controller stays installed but publishes nothing.
      assert.equal((await get(server, 'gateway-instances', gi['ID']))?.['Status'], 'Healthy', 'the gateway is untouched');
      dni = await must(server, 'POST', '/v0/domain-name-instances', dniBody);
      await healthy('domain-name-instances', dni['ID'], 'DomainNameInstance (again)');
      assert.equal(named(await records(), 'shop.example.test').filter((r) => r.Type === 'A').length, 1);
    });

    await t.test('deleting the workload deletes its gateway and DomainNameInstances, the records and external-dns; the definitions can then go', async () => {
      await must(server, 'DELETE', `/v0/workload-instances/${String(wi['ID'])}`);
      await until('WorkloadInstances gone', async () => ((await list(server, 'workload-instances')).length === 0 ? true : undefined), 180_000);
      assert.deepEqual(await list(server, 'domain-name-instances'), []);
      assert.deepEqual(await list(server, 'gateway-instances'), []);
      assert.deepEqual(named(await records(), 'shop.example.test'), [], 'no record of shop.example.test is left');
      assert.deepEqual(externalDnsPids(cp!.dataDir), [], 'no external-dns process is left');
      const rt = await get(server, 'kubernetes-runtime-instances', runtime!['ID']);
      assert.equal(rt?.['DnsControllerInstanceId'] ?? null, null);
      assert.ok(!(await list(server, 'workload-definitions')).some((d) => d['Name'] === 'external-dns-dns'), 'the controller WorkloadDefinition is gone');
      for (const [plural, id] of [['gateway-definitions', gd['ID']], ['domain-name-definitions', dnd['ID']], ['workload-definitions', wd['ID']]] as const) {
        const r = await api(server, 'DELETE', `/v0/${plural}/${String(id)}`);
        assert.equal(r.status, 200, `${plural}: ${r.text}`);
      }
    });
  } finally {
    await cp?.close();
    await moto?.stop().catch(() => undefined);
    await new Promise((r) => (backend ? backend.close(r) : r(undefined)));
    if (savedEndpoint === undefined) delete process.env[AWS_ENDPOINT_ENV];
    else process.env[AWS_ENDPOINT_ENV] = savedEndpoint;
  }
});
