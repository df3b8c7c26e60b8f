// bench/support-services: gateways on a simulated (kwok) runtime. Each round starts a real control
// plane (API + controllers, embedded PostgreSQL) with one kwok runtime, then:
//
//  - first app: WorkloadDefinition, WorkloadInstance, GatewayDefinition and GatewayInstance posted
//    at once; time until the first HTTP 200 through the gateway (Host header) from the backend.
//    This includes installing the Gateway API CRDs, the controller workload and starting traefik;
//  - second app on the same runtime, same gateway port, another host: the same time, with the
//    gateway controller already installed;
//  - for both apps, the time until external-dns has published the app's host in Route 53 (moto):
//    each app posts a DomainNameInstance with its gateway; the first one starts external-dns;
//  - RSS of the runtime's traefik and external-dns processes;
//  - TLS, on a second kwok runtime: two apps with a TLS port (CA issuer: the domain is not a
//    Public zone there) and a plain port redirecting to it, timed to the first HTTPS 200 checked
//    against the issued CA (the first includes cert-manager's CRDs, process and issuers); RSS of
//    cert-manager.
//
// Prints medians.
//
//   npm run build && node dist/bench/support-services.js [--rounds 3]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateHostedZoneCommand, ListResourceRecordSetsCommand, Route53Client } from '@aws-sdk/client-route-53';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { HOST_IP, curlHttps, dnsPeersMissing, httpGet, peerPids, tlsPeersMissing, workloadYaml } from '../test/integration/gateway-helpers.js';
import { clientFor, createRuntimes, must, startControlPlane, until, type Obj } from '../test/integration/workload-helpers.js';
import type { RunningServer } from '../src/server.js';
import { median } from './lib/load.js';
import { rssBytes } from './lib/proc.js';
import { startMoto } from '../test/harness/moto.js';
import { AWS_ENDPOINT_ENV } from '../src/providers/aws/provider.js';
import { MOTO_ACCOUNT_ID, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../test/aws/helpers.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
const ROUNDS = Number(values.rounds);
const MiB = 1024 * 1024;
const WORK = mkdtempSync(join(tmpdir(), 'threeport-bench-tls-'));


interface Dns {
  route53: Route53Client;
  zoneId: string;
  domainId: unknown;
}

/** Posts one app with its gateway and DomainNameInstance; ms until the first 200 through the gateway, and until its A record is in Route 53. */
async function app(server: RunningServer, runtime: Obj, name: string, backendPort: number, gwPort: number, dns: Dns): Promise<{ answered: number; published: number }> {
  const t0 = performance.now();
  const wd = await must(server, 'POST', '/v0/workload-definitions', { Name: name, YAMLDocument: workloadYaml(name, backendPort) });
  const wi = await must(server, 'POST', '/v0/workload-instances', { Name: name, WorkloadDefinitionID: wd['ID'], KubernetesRuntimeInstanceID: runtime['ID'] });
  await must(server, 'POST', '/v0/domain-name-instances', { Name: name, DomainNameDefinitionID: dns.domainId, WorkloadInstanceID: wi['ID'], KubernetesRuntimeInstanceID: runtime['ID'] });
  const gd = await must(server, 'POST', '/v0/gateway-definitions', { Name: name, SubDomain: name, DomainNameDefinitionID: dns.domainId, HttpPorts: [{ Port: gwPort }] });
  await must(server, 'POST', '/v0/gateway-instances', { Name: name, GatewayDefinitionID: gd['ID'], WorkloadInstanceID: wi['ID'], KubernetesRuntimeInstanceID: runtime['ID'] });
  const kube = clientFor(server, runtime);
  let address: string | undefined;
  let answered: number | undefined;
  let published: number | undefined;
  await until(`${name} answered through the gateway and published in Route 53`, async () => {
    if (!address) {
      const gw = await kube.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: `gateway-${name}`, namespace: name }).catch(() => undefined);
      const a = ((gw?.['status'] as Obj | undefined)?.['addresses'] as Obj[] | undefined)?.[0]?.['value'];
      if (typeof a !== 'string') return undefined;
      address = a;
    }
    if (answered === undefined) {
      const r = await httpGet(address, gwPort, `${name}.bench.test`).catch(() => undefined);
      if (r?.status === 200 && r.body.includes(`${name}.bench.test`)) answered = performance.now() - t0;
    }
    if (published === undefined) {
      const rs = (await dns.route53.send(new ListResourceRecordSetsCommand({ HostedZoneId: dns.zoneId }))).ResourceRecordSets ?? [];
      if (rs.some((r) => r.Type === 'A' && r.Name === `${name}.bench.test.` && r.ResourceRecords?.some((v) => v.Value === address))) published = performance.now() - t0;
    }
    return answered !== undefined && published !== undefined ? true : undefined;
  }, 300_000, 25);
  return { answered: answered!, published: published! };
}

/** Posts one app whose gateway has a TLS port (gwPort + 1) and a plain port redirecting to it; ms until the first HTTPS 200, checked against the issued CA. */
async function tlsApp(server: RunningServer, runtime: Obj, name: string, backendPort: number, gwPort: number, domainId: unknown): Promise<number> {
  const t0 = performance.now();
  const wd = await must(server, 'POST', '/v0/workload-definitions', { Name: `${name}-tls`, YAMLDocument: workloadYaml(name, backendPort) });
  const wi = await must(server, 'POST', '/v0/workload-instances', { Name: `${name}-tls`, WorkloadDefinitionID: wd['ID'], KubernetesRuntimeInstanceID: runtime['ID'] });
  const HttpPorts = [{ Port: gwPort, HTTPSRedirect: true }, { Port: gwPort + 1, TLSEnabled: true }];
  const gd = await must(server, 'POST', '/v0/gateway-definitions', { Name: `${name}-tls`, SubDomain: name, DomainNameDefinitionID: domainId, HttpPorts });
  await must(server, 'POST', '/v0/gateway-instances', { Name: `${name}-tls`, GatewayDefinitionID: gd['ID'], WorkloadInstanceID: wi['ID'], KubernetesRuntimeInstanceID: runtime['ID'] });
  const kube = clientFor(server, runtime);
  let address: string | undefined;
  let caFile: string | undefined;
  await until(`${name} answered over HTTPS through the gateway`, async () => {
    if (!address) {
      const gw = await kube.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: `gateway-${name}-tls`, namespace: name }).catch(() => undefined);
      const a = ((gw?.['status'] as Obj | undefined)?.['addresses'] as Obj[] | undefined)?.[0]?.['value'];
      if (typeof a !== 'string') return undefined;
      address = a;
    }
    if (!caFile) {
      const secret = await kube.get({ apiVersion: 'v1', kind: 'Secret', name: `gateway-${name}-tls-tls`, namespace: name }).catch(() => undefined);
      const ca = (secret?.['data'] as Record<string, string> | undefined)?.['ca.crt'];
      if (!ca) return undefined;
      caFile = join(WORK, `${name}-${String(runtime['ID'])}-ca.pem`);
      writeFileSync(caFile, Buffer.from(ca, 'base64'));
    }
    const r = await curlHttps(address, gwPort + 1, `${name}.private.test`, caFile);
    return r.status === 200 && r.body.includes(`${name}.private.test`) ? true : undefined;
  }, 300_000, 25);
  return performance.now() - t0;
}

/** RSS of the support peer `bin` started under the control plane's data directory. */
function peerRss(dataDir: string, bin: string): { count: number; bytes: number } {
  const pids = peerPids(dataDir, bin);
  return { count: pids.length, bytes: pids.reduce((sum, p) => sum + (rssBytes(p) ?? NaN), 0) };
}

async function main(): Promise<void> {
  const missing = dnsPeersMissing() || tlsPeersMissing();
  if (missing || !HOST_IP) throw new Error(missing || 'no non-loopback IPv4 address for the backend');
  const moto = await startMoto();
  process.env[AWS_ENDPOINT_ENV] = moto.url;
  const route53 = new Route53Client({ endpoint: moto.url, region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
  const backend = createServer((req, res) => res.end(`backend saw ${req.headers.host ?? ''}`));
  await new Promise<void>((r) => backend.listen(0, HOST_IP, r));
  const backendPort = (backend.address() as { port: number }).port;
  const first: number[] = [];
  const second: number[] = [];
  const firstDns: number[] = [];
  const secondDns: number[] = [];
  const rss: number[] = [];
  const dnsRss: number[] = [];
  const tlsFirst: number[] = [];
  const tlsSecond: number[] = [];
  const certRss: number[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      await moto.reset();
      const zone = await route53.send(new CreateHostedZoneCommand({ Name: 'bench.test', CallerReference: `bench-${round}-${Date.now()}` }));
      const cp = await startControlPlane();
      try {
        const [runtime] = await createRuntimes(cp.server, [`bench${round}`]);
        await must(cp.server, 'POST', '/v0/aws-accounts', {
          Name: 'bench',
          AccountID: MOTO_ACCOUNT_ID,
          DefaultAccount: true,
          DefaultRegion: 'us-east-1',
          AccessKeyID: TEST_ACCESS_KEY_ID,
          SecretAccessKey: TEST_SECRET_ACCESS_KEY,
        });
        const dnd = await must(cp.server, 'POST', '/v0/domain-name-definitions', { Name: 'bench', Domain: 'bench.test', Zone: 'Public', AdminEmail: 'a@bench.test' });
        const dns: Dns = { route53, zoneId: zone.HostedZone!.Id!.replace(/^\/hostedzone\//, ''), domainId: dnd['ID'] };
        const gwPort = 20_000 + Math.floor(Math.random() * 20_000);
        const a = await app(cp.server, runtime!, 'shop', backendPort, gwPort, dns);
        const b = await app(cp.server, runtime!, 'blog', backendPort, gwPort, dns);
        first.push(a.answered);
        firstDns.push(a.published);
        second.push(b.answered);
        secondDns.push(b.published);
        const traefik = peerRss(cp.dataDir, 'traefik');
        const externalDns = peerRss(cp.dataDir, 'external-dns');
        rss.push(traefik.bytes);
        dnsRss.push(externalDns.bytes);
        // TLS on its own runtime, with a domain that is not a Public zone: the CA issuer.
        const [tlsRuntime] = await createRuntimes(cp.server, [`tls${round}`]);
        const privateDomain = await must(cp.server, 'POST', '/v0/domain-name-definitions', { Name: 'private', Domain: 'private.test', Zone: 'Private', AdminEmail: 'a@private.test' });
        tlsFirst.push(await tlsApp(cp.server, tlsRuntime!, 'shop', backendPort, gwPort + 10, privateDomain['ID']));
        tlsSecond.push(await tlsApp(cp.server, tlsRuntime!, 'blog', backendPort, gwPort + 10, privateDomain['ID']));
        const certManager = peerRss(cp.dataDir, 'cert-manager-controller');
        certRss.push(certManager.bytes);
        console.log(
          `round ${round}: first app ${a.answered.toFixed(0)} ms (record ${a.published.toFixed(0)} ms), second app ${b.answered.toFixed(0)} ms (record ${b.published.toFixed(0)} ms), ` +
            `traefik ${traefik.count} process(es) ${(traefik.bytes / MiB).toFixed(0)} MiB, external-dns ${externalDns.count} process(es) ${(externalDns.bytes / MiB).toFixed(0)} MiB; ` +
            `TLS first app ${tlsFirst.at(-1)!.toFixed(0)} ms, TLS second app ${tlsSecond.at(-1)!.toFixed(0)} ms, cert-manager ${certManager.count} process(es) ${(certManager.bytes / MiB).toFixed(0)} MiB`,
        );
      } finally {
        await cp.close();
      }
    }
  } finally {
    backend.close();
    await moto.stop();
    rmSync(WORK, { recursive: true, force: true });
  }
  console.log(`\nmedians over ${ROUNDS} rounds (one kwok runtime each):`);
  console.log(`  first app: created -> first HTTP answer through the gateway   ${median(first).toFixed(0)} ms`);
  console.log(`  first app: created -> A record in Route 53 (moto)             ${median(firstDns).toFixed(0)} ms`);
  console.log(`  second app on the same runtime (controller installed)        ${median(second).toFixed(0)} ms`);
  console.log(`  second app: created -> A record in Route 53                  ${median(secondDns).toFixed(0)} ms`);
  console.log(`  traefik RSS per runtime                                      ${(median(rss) / MiB).toFixed(0)} MiB`);
  console.log(`  external-dns RSS per runtime                                 ${(median(dnsRss) / MiB).toFixed(0)} MiB`);
  console.log(`  TLS first app: created -> first HTTPS answer (CA issuer)      ${median(tlsFirst).toFixed(0)} ms`);
  console.log(`  TLS second app on the same runtime (cert-manager running)    ${median(tlsSecond).toFixed(0)} ms`);
  console.log(`  cert-manager RSS per runtime                                 ${(median(certRss) / MiB).toFixed(0)} MiB`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
