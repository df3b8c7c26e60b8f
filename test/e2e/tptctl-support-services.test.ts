// End to end, issue 11's done-when: upstream's wordpress-workload-remote.yaml shape (a Workload
// config with a Gateway, a DomainName with TLS and a Secret) deployed by tptctl on a simulated
// runtime with moto as AWS. The real peers: kube-apiserver + kwok, traefik (Gateway API),
// cert-manager (CA issuer: no ACME directory is configured), external-dns publishing to moto's
// Route 53, and Secrets Manager on moto.
//
// The WordPress image cannot run on kwok, so the manifest is the test's: a Service `web` whose
// endpoints are a loopback HTTP server started here; the ports are free high ones instead of 80
// and 443, which traefik would have to bind on the host. Everything else is upstream's shape.
//
// It checks: HTTPS through the gateway with the issued certificate reaches the backend; the
// plain port redirects; the A record is in moto's zone; the Kubernetes Secret holds the Secret's
// data; and `tptctl delete workload -c` leaves no Threeport object, Kubernetes object, record or
// support-service process behind.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CreateHostedZoneCommand, ListResourceRecordSetsCommand, Route53Client, type ResourceRecordSet } from '@aws-sdk/client-route-53';
import { main as tptctlMain } from '../../src/cli/main.js';
import { AWS_ENDPOINT_ENV } from '../../src/providers/aws/provider.js';
import { SECRET_REFRESH_ENV } from '../../src/controllers/secret/index.js';
import { KubeError } from '../../src/providers/kube/errors.js';
import { SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';
import { SKIP_AWS, startMoto, type MotoServer } from '../harness/moto.js';
import { motoDefaultAccount } from '../aws/helpers.js';
import {
  HOST_IP,
  certManagerPids,
  dnsPeersMissing,
  httpGet,
  peerPids,
  startBackend,
  tlsPeersMissing,
  traefikPids,
  untilHttps,
  workloadYaml,
} from '../integration/gateway-helpers.js';
import { clientFor, createRuntimes, events, list, must, startControlPlane, until, type ControlPlane, type Obj } from '../integration/workload-helpers.js';

const DOMAIN = 'example.test';
const HOST = `blog.${DOMAIN}`;
const SECRET_DATA = { WORDPRESS_PASSWORD: 'admin_password', WORDPRESS_SMTP_PASSWORD: 'smtp_password' };

const skip = SKIP_KUBE
  ? SKIP_KUBE_REASON
  : (SKIP_AWS ?? (HOST_IP === undefined ? 'no non-loopback IPv4 address for the backend' : (dnsPeersMissing() || tlsPeersMissing())));

/** upstream's samples/workload/wordpress-workload-remote.yaml, less its RDS and S3 (covered by aws/), on our runtime and ports. */
function workloadConfig(runtime: string, port: number): string {
  return `Workload:
  Name: "shop"
  YAMLDocument: "shop-manifest.yaml"
  KubernetesRuntimeInstance:
    Name: ${runtime}
  DomainName:
    Name: example-domain
    Domain: ${DOMAIN}
    Zone: Public
    AdminEmail: admin@${DOMAIN}
  Secret:
    Name: wordpress-secret
    AwsAccountName: default-account
    Data:
      WORDPRESS_PASSWORD: ${SECRET_DATA.WORDPRESS_PASSWORD}
      WORDPRESS_SMTP_PASSWORD: ${SECRET_DATA.WORDPRESS_SMTP_PASSWORD}
  Gateway:
    Name: web-service-gateway
    HttpPorts:
      - Port: ${port}
        HTTPSRedirect: true
        Path: "/"
      - Port: ${port + 1}
        TLSEnabled: true
        Path: "/"
    ServiceName: web
    SubDomain: blog
`;
}

async function tptctl(configPath: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await tptctlMain(['node', 'tptctl', '--threeport-config', configPath, ...args], {
    out: { write: (s: string) => (out += s) },
    err: { write: (s: string) => (err += s) },
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code, out, err };
}

function decoded(secret: Obj | undefined): Record<string, string> | undefined {
  const data = secret?.['data'] as Record<string, string> | undefined;
  return data ? Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])) : undefined;
}

test('upstream wordpress-workload-remote shape through tptctl: HTTPS through the gateway, DNS record, Secret delivered, delete leaves nothing', { skip, timeout: 900_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'tptctl-support-'));
  const saved = Object.fromEntries([AWS_ENDPOINT_ENV, SECRET_REFRESH_ENV].map((k) => [k, process.env[k]]));
  let cp: ControlPlane | undefined;
  let moto: MotoServer | undefined;
  let backend: Awaited<ReturnType<typeof startBackend>> | undefined;
  try {
    backend = await startBackend();
    moto = await startMoto();
    process.env[AWS_ENDPOINT_ENV] = moto.url;
    process.env[SECRET_REFRESH_ENV] = '1000';
    const route53 = new Route53Client({ endpoint: moto.url, region: 'us-east-1', credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } });
    const zone = await route53.send(new CreateHostedZoneCommand({ Name: DOMAIN, CallerReference: `e2e-${Date.now()}` }));
    const zoneId = zone.HostedZone!.Id!.replace(/^\/hostedzone\//, '');
    const records = async (): Promise<ResourceRecordSet[]> =>
      ((await route53.send(new ListResourceRecordSetsCommand({ HostedZoneId: zoneId }))).ResourceRecordSets ?? []).filter((r) => r.Name?.endsWith(`${HOST}.`));

    cp = await startControlPlane();
    const server = cp.server;
    const [runtime] = await createRuntimes(server, ['web']);
    const kube = clientFor(server, runtime!);
    await must(server, 'POST', '/v0/aws-accounts', motoDefaultAccount());

    const configPath = join(work, 'threeport-config.yaml');
    writeFileSync(configPath, `CurrentControlPlane: test\nControlPlanes:\n  - Name: test\n    APIServer: ${server.url!.replace('http://', '')}\n    AuthEnabled: false\n`);
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const workload = join(work, 'wordpress-workload-remote.yaml');
    writeFileSync(workload, workloadConfig(String(runtime!['Name']), port));
    writeFileSync(join(work, 'shop-manifest.yaml'), workloadYaml('shop', backend.port));

    const t0 = Date.now();
    const created = await tptctl(configPath, ['create', 'workload', '-c', workload]);
    assert.equal(created.code, 0, created.err);

    const [gi] = await until('the GatewayInstance', async () => (await list(server, 'gateway-instances')).find((g) => g['Name'] === 'web-service-gateway'), 60_000).then((g) => [g]);
    await until('GatewayInstance Healthy', async () => ((await list(server, 'gateway-instances')).find((g) => g['ID'] === gi!['ID'])?.['Status'] === 'Healthy' ? true : undefined), 300_000).catch(async (err: unknown) => {
      const notes = (await events(server, gi!['ID'])).map((e) => `${String(e['Reason'])}: ${String(e['Note'])}`);
      throw new Error(`${(err as Error).message}\n  events:\n    ${notes.join('\n    ')}`);
    });

    await t.test('HTTPS through the gateway with the issued certificate reaches the backend; the plain port redirects', async () => {
      const gateway = await kube.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'gateway-web-service-gateway', namespace: 'shop' });
      const address = String((((gateway?.['status'] as Obj)['addresses'] as Obj[])[0] ?? {})['value']);
      const tls = await kube.get({ apiVersion: 'v1', kind: 'Secret', name: 'gateway-web-service-gateway-tls', namespace: 'shop' });
      const data = tls?.['data'] as Record<string, string>;
      const caFile = join(work, 'ca.pem');
      writeFileSync(caFile, Buffer.from(data['ca.crt']!, 'base64'));
      assert.equal(new X509Certificate(Buffer.from(data['tls.crt']!, 'base64')).subjectAltName, `DNS:${HOST}`);
      const r = await untilHttps(address, port + 1, HOST, caFile, '/');
      t.diagnostic(`HTTPS answered ${Date.now() - t0} ms after tptctl create`);
      assert.equal(r.body, `backend saw ${HOST}:${port + 1} /`);
      const plain = await httpGet(address, port, HOST, '/');
      assert.equal(plain.status, 301);
      assert.equal(plain.location, `https://${HOST}:${port + 1}/`);
    });

    await t.test("the gateway's host name is published in moto's Route 53 zone", async () => {
      const found = await until('the A record', async () => {
        const a = (await records()).find((r) => r.Type === 'A' && r.Name === `${HOST}.`);
        return a?.ResourceRecords?.length ? a : undefined;
      }, 120_000);
      assert.ok(found.ResourceRecords!.every((v) => /^\d+\.\d+\.\d+\.\d+$/.test(v.Value ?? '')), JSON.stringify(found));
    });

    await t.test("the Secret's data reaches a Kubernetes Secret in the workload's namespace", async () => {
      const delivered = await until('the Secret', async () => decoded(await kube.get({ apiVersion: 'v1', kind: 'Secret', name: 'wordpress-secret', namespace: 'shop' })), 120_000);
      assert.deepEqual(delivered, SECRET_DATA);
    });

    await t.test('tptctl get gateways and get domain-names show them', async () => {
      const gateways = await tptctl(configPath, ['get', 'gateways']);
      assert.equal(gateways.code, 0, gateways.err);
      assert.match(gateways.out, /web-service-gateway/);
      const names = await tptctl(configPath, ['get', 'domain-names']);
      assert.equal(names.code, 0, names.err);
      assert.match(names.out, /example-domain/);
    });

    await t.test('tptctl delete workload -c leaves nothing behind', async () => {
      const deleted = await tptctl(configPath, ['delete', 'workload', '-c', workload]);
      assert.equal(deleted.code, 0, deleted.err);
      const kinds = [
        'workload-instances',
        'workload-definitions',
        'gateway-instances',
        'gateway-definitions',
        'domain-name-instances',
        'domain-name-definitions',
        'secret-instances',
        'secret-definitions',
      ];
      await until('no Threeport object of the workload left', async () => {
        for (const k of kinds) if ((await list(server, k)).length > 0) return undefined;
        return true;
      }, 300_000).catch(async (err: unknown) => {
        const left: string[] = [];
        for (const k of kinds) for (const o of await list(server, k)) left.push(`${k}/${String(o['Name'])}`);
        throw new Error(`${(err as Error).message}: ${left.join(', ')}`);
      });
      await until('the DNS records removed', async () => ((await records()).length === 0 ? true : undefined), 120_000);
      await until('the namespace gone', async () => ((await kube.get({ apiVersion: 'v1', kind: 'Namespace', name: 'shop' })) ? undefined : true), 120_000);
      for (const [apiVersion, kind] of [
        ['cert-manager.io/v1', 'Certificate'],
        ['gateway.networking.k8s.io/v1', 'HTTPRoute'],
        ['gateway.networking.k8s.io/v1', 'Gateway'],
      ] as const) {
        // The CRDs may be gone with the controller that brought them: then nothing of the kind is left.
        const left = (await kube.list(apiVersion, kind).catch((e: unknown) => (e instanceof KubeError && e.failure === 'UnknownKind' ? { items: [] } : Promise.reject(e)))).items;
        assert.deepEqual(left.map((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`), [], `${kind} left behind`);
      }
      await until('no support-service process', async () =>
        certManagerPids(cp!.dataDir).length + traefikPids(cp!.dataDir).length + peerPids(cp!.dataDir, 'external-dns').length === 0 ? true : undefined,
      120_000);
    });
  } finally {
    await cp?.close();
    await backend?.close();
    await moto?.stop();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    rmSync(work, { recursive: true, force: true });
  }
});
