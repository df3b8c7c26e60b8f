// The support-service peers, for real, out of cluster: each one a supervised host process
// (src/providers/support-peers) pointed at a simulated cluster's API server (kube-apiserver +
// kwok), with moto standing in for Route 53 and Secrets Manager. This is the groundwork of the
// gateway, certificate, DNS and secret controllers: it proves that each peer does its job here.
//
//   cert-manager      SelfSigned -> CA -> Certificate gives a kubernetes.io/tls Secret
//   traefik           routes Host-header requests (HTTP, and HTTPS with that certificate) to a
//                     loopback server through Ingresses and an HTTPRoute
//   external-dns      publishes A and TXT records for those hosts in a moto zone; removes them
//   external-secrets  ExternalSecret -> Secret from moto's Secrets Manager, follows a rotation,
//                     and keeps doing so after its process is killed and restarted
//   pebble + CoreDNS  ACME DNS-01 through cert-manager's Route 53 solver
//
// Binaries: bash scripts/peers/build-support-peers.sh (cached per version; a missing one fails
// the test with the command that builds it).
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import {
  ChangeResourceRecordSetsCommand,
  CreateHostedZoneCommand,
  ListResourceRecordSetsCommand,
  Route53Client,
  type ResourceRecordSet,
} from '@aws-sdk/client-route-53';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { kubeClusterClient, type KubeClusterClient, type KubeObject } from '../../src/providers/kube/index.js';
import {
  certManagerLaunch,
  coreDnsLaunch,
  externalDnsLaunch,
  externalSecretsLaunch,
  findSupportPeer,
  installCrds,
  pebbleEndpoints,
  pebbleLaunch,
  pebbleServingCaPath,
  SupportPeerMissingError,
  SupportPeerSet,
  traefikLaunch,
  type AwsTarget,
  type PeerEvent,
  type SupportPeerName,
} from '../../src/providers/support-peers/index.js';
import { startKubeClusters, SKIP_KUBE, SKIP_KUBE_REASON, type KubeClusterSet } from '../harness/kube-cluster.js';
import { SKIP_AWS, startMoto, type MotoServer } from '../harness/moto.js';
import { freePort, processAlive } from '../../src/system.js';
import { until } from '../harness/until.js';

const NS = 'apps';
const ZONE = 'example.test';
const OWNER = 'threeport-runtime-peers-test';
const REGION = 'us-east-1';
const MiB = 1024 * 1024;
/** THREEPORT_SKIP_PEERS=1 (as for scripts/install-test-deps.sh) skips this suite; otherwise a missing peer fails it. */
const SKIP = SKIP_KUBE
  ? SKIP_KUBE_REASON
  : process.env['THREEPORT_SKIP_PEERS'] === '1'
    ? 'THREEPORT_SKIP_PEERS=1: support-peer tests skipped'
    : (SKIP_AWS ?? false);

test('a peer that is not built fails with the command that builds it', () => {
  const empty = mkdtempSync(join(tmpdir(), 'threeport-peers-none-'));
  const saved = process.env['THREEPORT_CACHE_DIR'];
  process.env['THREEPORT_CACHE_DIR'] = empty;
  try {
    for (const peer of ['traefik', 'gateway-api'] as SupportPeerName[]) {
      assert.throws(
        () => findSupportPeer(peer),
        (err: unknown) =>
          err instanceof SupportPeerMissingError &&
          err.message.includes(join(empty, peer)) &&
          err.message.includes(`scripts/peers/build-support-peers.sh ${peer}`),
      );
    }
  } finally {
    if (saved === undefined) delete process.env['THREEPORT_CACHE_DIR'];
    else process.env['THREEPORT_CACHE_DIR'] = saved;
    rmSync(empty, { recursive: true, force: true });
  }
});

test('the supervisor restarts a dying peer with backoff, then gives up with an event; peers get no inherited environment', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'threeport-peers-supervisor-'));
  const events: PeerEvent[] = [];
  process.env['THREEPORT_TEST_LEAK_MARKER'] = 'must-not-reach-peers';
  const set = new SupportPeerSet({
    dir: join(dir, 'set'),
    kube: { label: 'unused', server: 'https://127.0.0.1:1' },
    removeOnExit: true,
    restart: { initialDelayMs: 20, maxDelayMs: 100, maxConsecutiveFailures: 3 },
    onEvent: (e) => events.push(e),
  });
  try {
    const flaky = await set.start({
      name: 'flaky',
      bin: '/bin/sh',
      args: ['-c', 'echo "marker=${THREEPORT_TEST_LEAK_MARKER:-unset} kubeconfig=$KUBECONFIG"; echo ready; sleep 0.2; exit 3'],
      env: { PATH: '/usr/bin:/bin', KUBECONFIG: set.kubeconfigPath },
      ready: { kind: 'log', pattern: /ready/ },
    });
    await until('the supervisor to give up', () => (flaky.failed ? true : undefined), 30_000, 20);
    assert.deepEqual(
      events.map((e) => e.reason),
      ['SupportPeerStarted', 'SupportPeerExited', 'SupportPeerRestarted', 'SupportPeerExited', 'SupportPeerRestarted', 'SupportPeerExited', 'SupportPeerRestarted', 'SupportPeerFailed'],
    );
    assert.deepEqual(events.filter((e) => e.reason === 'SupportPeerExited').map((e) => /restarting in (\d+) ms/.exec(e.message)?.[1]), ['20', '40', '80']);
    assert.match(events.at(-1)!.message, /^flaky exited with code 3 4 times in a row; not restarting it/);
    assert.equal(flaky.restarts, 3);
    assert.match(readFileSync(flaky.logPath, 'utf8'), new RegExp(`marker=unset kubeconfig=${set.kubeconfigPath}`));
    assert.equal(statSync(set.kubeconfigPath).mode & 0o777, 0o600);

    // A peer that dies before it is ready fails start() with the end of its log.
    await assert.rejects(
      set.start({ name: 'broken', bin: '/bin/sh', args: ['-c', 'echo "no such flag: --bogus" >&2; exit 2'], env: { PATH: '/usr/bin:/bin' }, ready: { kind: 'tcp', host: '127.0.0.1', port: await freePort() } }),
      /broken exited with code 2 before it was ready; end of .*broken\.log:\n[^]*no such flag: --bogus/,
    );
  } finally {
    delete process.env['THREEPORT_TEST_LEAK_MARKER'];
    await set.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
});

function obj(apiVersion: string, kind: string, name: string, body: Record<string, unknown>, namespace: string | undefined = NS): KubeObject {
  return { apiVersion, kind, metadata: { name, ...(namespace ? { namespace } : {}) }, ...body };
}

function condition(o: KubeObject | undefined, type: string): string | undefined {
  const conds = (o?.['status'] as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
  return conds.find((c) => c.type === type)?.status;
}

interface Reply {
  status: number;
  body: string;
}

/** One HTTP(S) request to 127.0.0.1:<port> carrying a Host header (and, over TLS, the same SNI name). */
function send(port: number, host: string, opts: { tls?: { ca: string }; path?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const common = { host: '127.0.0.1', port, path: opts.path ?? '/', method: 'GET', headers: { host }, timeout: 5_000 };
    const onResponse = (res: import('node:http').IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    };
    const req = opts.tls
      ? httpsRequest({ ...common, servername: host, ca: opts.tls.ca, agent: false }, onResponse)
      : httpRequest({ ...common, agent: false }, onResponse);
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', reject);
    req.end();
  });
}

/** The reply when it is a 200; otherwise throws it, so that a time-out says what came back. */
function ok(reply: Reply): Reply {
  if (reply.status !== 200) throw new Error(`HTTP ${reply.status}: ${reply.body.slice(0, 200)}`);
  return reply;
}

test('support peers against a simulated cluster and moto', { skip: SKIP, timeout: 900_000 }, async (t) => {
  // Each part first finds the peers it runs: a missing one fails that part, naming the command
  // that builds it (findSupportPeer throws SupportPeerMissingError).

  const work = mkdtempSync(join(tmpdir(), 'threeport-peers-'));
  let clusters: KubeClusterSet | undefined;
  let moto: MotoServer | undefined;
  let peers: SupportPeerSet | undefined;
  let client: KubeClusterClient | undefined;
  let backend: Server | undefined;
  const events: PeerEvent[] = [];
  try {
    [clusters, moto] = await Promise.all([startKubeClusters({ names: ['peers'], log: () => {} }), startMoto()]);
    const cluster = clusters.get('peers');
    const c = (client = kubeClusterClient(cluster.connection('simulated runtime "peers"')));
    const aws: AwsTarget = { endpoint: moto.url, region: REGION, accessKeyId: 'testing', secretAccessKey: 'testing' };
    const awsClient = { endpoint: moto.url, region: REGION, credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' } };
    const route53 = new Route53Client(awsClient);
    const secrets = new SecretsManagerClient(awsClient);
    peers = new SupportPeerSet({ dir: join(work, 'peers'), kube: cluster.connection(), removeOnExit: true, onEvent: (e) => events.push(e) });
    const set = peers;

    for (const ns of [NS, 'cert-manager']) await c.apply(obj('v1', 'Namespace', ns, {}, undefined));
    // What a first use installs: the peer's CRDs, from the same module version as its binary.
    const crdsOf = async (peer: SupportPeerName): Promise<void> => {
      const names = await installCrds(cluster.connection(), findSupportPeer(peer).crdFiles);
      t.diagnostic(`${peer}: ${names.length} CRDs established`);
    };

    const zone = await route53.send(new CreateHostedZoneCommand({ Name: ZONE, CallerReference: `peers-${Date.now()}` }));
    const zoneId = zone.HostedZone!.Id!.replace(/^\/hostedzone\//, '');
    const records = async (): Promise<ResourceRecordSet[]> =>
      (await route53.send(new ListResourceRecordSetsCommand({ HostedZoneId: zoneId }))).ResourceRecordSets ?? [];

    const corednsPort = await freePort();
    await crdsOf('cert-manager');
    await crdsOf('gateway-api');
    const startedAt = Date.now();
    await set.start(
      certManagerLaunch(set, {
        clusterResourceNamespace: 'cert-manager',
        dns01Nameservers: [`127.0.0.1:${corednsPort}`],
        recursiveOnly: true,
        dns01CheckRetryPeriod: '2s',
        minimumBackoff: '5s',
        aws,
      }),
    );
    t.diagnostic(`cert-manager ready after ${Date.now() - startedAt} ms`);

    // A part that fails says what its peers logged.
    const part = (name: string, peersOfPart: string[], fn: () => Promise<void>): Promise<void> =>
      t.test(name, async () => {
        try {
          await fn();
        } catch (err) {
          const logs = peersOfPart.map((p) => set.get(p)).filter((p) => p !== undefined).map((p) => `--- end of ${p.logPath}:\n${p.logTail(40)}`);
          if (err instanceof Error && logs.length > 0) err.message += `\n${logs.join('\n')}`;
          throw err;
        }
      });

    let caPem = '';
    await part('cert-manager: SelfSigned -> CA -> Certificate gives a valid kubernetes.io/tls Secret', ['cert-manager'], async () => {
      await c.apply(obj('cert-manager.io/v1', 'Issuer', 'selfsigned', { spec: { selfSigned: {} } }));
      await c.apply(
        obj('cert-manager.io/v1', 'Certificate', 'root-ca', {
          spec: { isCA: true, commonName: 'threeport test CA', secretName: 'root-ca', privateKey: { algorithm: 'ECDSA', size: 256 }, issuerRef: { name: 'selfsigned', kind: 'Issuer' } },
        }),
      );
      await c.apply(obj('cert-manager.io/v1', 'Issuer', 'ca', { spec: { ca: { secretName: 'root-ca' } } }));
      await c.apply(
        obj('cert-manager.io/v1', 'Certificate', 'app', {
          spec: { secretName: 'app-tls', dnsNames: [`app.${ZONE}`], privateKey: { algorithm: 'ECDSA', size: 256 }, issuerRef: { name: 'ca', kind: 'Issuer' } },
        }),
      );
      const t0 = Date.now();
      const cert = await until('Certificate app Ready', async () => {
        const got = await c.get({ apiVersion: 'cert-manager.io/v1', kind: 'Certificate', name: 'app', namespace: NS });
        return condition(got, 'Ready') === 'True' ? got : undefined;
      }, 60_000);
      t.diagnostic(`CA chain to Ready in ${Date.now() - t0} ms`);
      assert.ok(cert);
      const secret = await c.get({ apiVersion: 'v1', kind: 'Secret', name: 'app-tls', namespace: NS });
      assert.equal(secret?.['type'], 'kubernetes.io/tls');
      const data = secret?.['data'] as Record<string, string>;
      const leaf = new X509Certificate(Buffer.from(data['tls.crt']!, 'base64'));
      caPem = Buffer.from(data['ca.crt']!, 'base64').toString('utf8');
      const ca = new X509Certificate(caPem);
      assert.equal(leaf.subjectAltName, `DNS:app.${ZONE}`);
      assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), 'the leaf is signed by the CA cert-manager made');
      assert.ok(ca.ca, 'the root is a CA');
      assert.ok(leaf.checkPrivateKey(createPrivateKey(Buffer.from(data['tls.key']!, 'base64'))), 'tls.key matches tls.crt');
    });

    // A loopback HTTP server stands for the app. The API server refuses 127.0.0.0/8 Endpoints, so
    // Ingresses reach it through an ExternalName Service (localhost) and the HTTPRoute through a
    // traefik file-provider service.
    backend = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`hello from the backend: ${req.headers.host ?? ''} ${req.url ?? ''}`);
    });
    const backendServer = backend;
    await new Promise<void>((resolve) => backendServer.listen(0, '127.0.0.1', resolve));
    const backendPort = (backendServer.address() as { port: number }).port;
    const [webPort, websecurePort, pingPort] = [await freePort(), await freePort(), await freePort()];

    await part('traefik routes Host-header requests through Ingresses (HTTP, HTTPS with the issued certificate) and an HTTPRoute', ['traefik'], async () => {
      await c.apply(obj('v1', 'Service', 'app', { spec: { type: 'ExternalName', externalName: 'localhost', ports: [{ name: 'http', port: backendPort }] } }));
      const rule = (host: string): Record<string, unknown> => ({
        host,
        http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'app', port: { name: 'http' } } } }] },
      });
      await c.apply(obj('networking.k8s.io/v1', 'Ingress', 'plain', { spec: { rules: [rule(`plain.${ZONE}`)] } }));
      // spec.tls only hands traefik the certificate; its router serves TLS when annotated so.
      const secure = obj('networking.k8s.io/v1', 'Ingress', 'secure', { spec: { tls: [{ hosts: [`app.${ZONE}`], secretName: 'app-tls' }], rules: [rule(`app.${ZONE}`)] } });
      secure.metadata.annotations = { 'traefik.ingress.kubernetes.io/router.entrypoints': 'websecure', 'traefik.ingress.kubernetes.io/router.tls': 'true' };
      await c.apply(secure);
      await c.apply(obj('gateway.networking.k8s.io/v1', 'GatewayClass', 'traefik', { spec: { controllerName: 'traefik.io/gateway-controller' } }, undefined));
      // traefik binds a Gateway listener to the entry point with the same port.
      await c.apply(
        obj('gateway.networking.k8s.io/v1', 'Gateway', 'web', {
          spec: { gatewayClassName: 'traefik', listeners: [{ name: 'http', protocol: 'HTTP', port: webPort, allowedRoutes: { namespaces: { from: 'Same' } } }] },
        }),
      );
      await c.apply(
        obj('gateway.networking.k8s.io/v1', 'HTTPRoute', 'route', {
          spec: {
            parentRefs: [{ name: 'web' }],
            hostnames: [`route.${ZONE}`],
            rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ group: 'traefik.io', kind: 'TraefikService', name: 'loopback-app@file' }] }],
          },
        }),
      );
      const fileConfig = `http:\n  services:\n    loopback-app:\n      loadBalancer:\n        servers:\n          - url: http://127.0.0.1:${backendPort}\n`;
      const t0 = Date.now();
      await set.start(traefikLaunch(set, { webPort, websecurePort, pingPort, fileConfig }), { timeoutMs: 90_000 });
      t.diagnostic(`traefik ready after ${Date.now() - t0} ms`);

      const plain = await until('HTTP through the Ingress', async () => {
        return ok(await send(webPort, `plain.${ZONE}`, { path: '/x' }));
      }, 60_000);
      assert.equal(plain.body, `hello from the backend: plain.${ZONE} /x`);
      const overTls = await until('HTTPS through the Ingress', async () => {
        return ok(await send(websecurePort, `app.${ZONE}`, { tls: { ca: caPem } }));
      }, 60_000);
      assert.equal(overTls.body, `hello from the backend: app.${ZONE} /`, 'served over TLS with the certificate cert-manager issued (verified against its CA)');
      const routed = await until('HTTP through the HTTPRoute', async () => {
        return ok(await send(webPort, `route.${ZONE}`, { path: '/r' }));
      }, 60_000);
      assert.equal(routed.body, `hello from the backend: route.${ZONE} /r`);
      assert.equal((await send(webPort, `nobody.${ZONE}`)).status, 404, 'an unknown host is not routed');

      // Statuses the controllers will report from.
      const ingress = await until('Ingress status address', async () => {
        const got = await c.get({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', name: 'plain', namespace: NS });
        const lb = (got?.['status'] as { loadBalancer?: { ingress?: { ip?: string }[] } } | undefined)?.loadBalancer?.ingress;
        return lb?.length ? lb : undefined;
      }, 30_000);
      assert.equal(ingress[0]?.ip, '127.0.0.1');
      const gateway = await until('Gateway Programmed', async () => {
        const got = await c.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: 'web', namespace: NS });
        return condition(got, 'Programmed') === 'True' ? got : undefined;
      }, 30_000);
      assert.deepEqual((gateway['status'] as { addresses?: { value: string }[] }).addresses?.map((a) => a.value), ['127.0.0.1']);
      const route = await c.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', name: 'route', namespace: NS });
      const parent = (route?.['status'] as { parents?: { conditions: { type: string; status: string }[] }[] } | undefined)?.parents?.[0];
      assert.equal(parent?.conditions.find((x) => x.type === 'Accepted')?.status, 'True');
    });

    await part('external-dns publishes A and TXT records for the routed hosts in the Route 53 zone, and removes them on delete', ['external-dns'], async () => {
      const t0 = Date.now();
      await set.start(
        externalDnsLaunch(set, {
          sources: ['ingress', 'gateway-httproute'],
          domainFilters: [ZONE],
          txtOwnerId: OWNER,
          aws,
          metricsPort: await freePort(),
          interval: '5s',
        }),
      );
      const aRecord = (rs: ResourceRecordSet[], host: string): ResourceRecordSet | undefined => rs.find((r) => r.Type === 'A' && r.Name === `${host}.`);
      const hosts = [`plain.${ZONE}`, `app.${ZONE}`, `route.${ZONE}`];
      const published = await until('A records for every host', async () => {
        const rs = await records();
        return hosts.every((h) => aRecord(rs, h)) ? rs : undefined;
      }, 90_000);
      t.diagnostic(`external-dns published ${hosts.length} hosts ${Date.now() - t0} ms after start`);
      for (const h of hosts) assert.deepEqual(aRecord(published, h)?.ResourceRecords?.map((r) => r.Value), ['127.0.0.1'], h);
      const owned = published.filter((r) => r.Type === 'TXT' && r.ResourceRecords?.some((v) => v.Value?.includes(`external-dns/owner=${OWNER}`)));
      for (const h of hosts) assert.ok(owned.some((r) => r.Name?.includes(h)), `an ownership TXT record for ${h}`);

      await c.delete({ apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', name: 'plain', namespace: NS });
      await until('the deleted Ingress host to leave the zone', async () => {
        const rs = await records();
        return !rs.some((r) => r.Name?.includes(`plain.${ZONE}`)) ? true : undefined;
      }, 90_000);
      const after = await records();
      assert.ok(aRecord(after, `route.${ZONE}`) && aRecord(after, `app.${ZONE}`), 'the other hosts stay');
    });

    await part('external-secrets turns an ExternalSecret into a Secret from Secrets Manager, and follows rotations across a restart', ['external-secrets'], async () => {
      await crdsOf('external-secrets');
      await secrets.send(new CreateSecretCommand({ Name: 'threeport/app-db', SecretString: JSON.stringify({ password: 'first-Pa55' }) }));
      const peer = await set.start(externalSecretsLaunch(set, { aws, metricsPort: await freePort() }));
      await c.apply(
        obj('external-secrets.io/v1', 'SecretStore', 'aws', { spec: { provider: { aws: { service: 'SecretsManager', region: REGION } } } }),
      );
      await c.apply(
        obj('external-secrets.io/v1', 'ExternalSecret', 'app-db', {
          spec: {
            refreshInterval: '1s',
            secretStoreRef: { name: 'aws', kind: 'SecretStore' },
            target: { name: 'app-db' },
            data: [{ secretKey: 'password', remoteRef: { key: 'threeport/app-db', property: 'password' } }],
          },
        }),
      );
      const password = async (): Promise<string | undefined> => {
        const s = await c.get({ apiVersion: 'v1', kind: 'Secret', name: 'app-db', namespace: NS });
        const v = (s?.['data'] as Record<string, string> | undefined)?.['password'];
        return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
      };
      const t0 = Date.now();
      await until('the Secret from Secrets Manager', async () => ((await password()) === 'first-Pa55' ? true : undefined), 60_000);
      t.diagnostic(`ExternalSecret -> Secret in ${Date.now() - t0} ms`);

      await secrets.send(new PutSecretValueCommand({ SecretId: 'threeport/app-db', SecretString: JSON.stringify({ password: 'second-Pa55' }) }));
      await until('the rotated value', async () => ((await password()) === 'second-Pa55' ? true : undefined), 60_000);

      // The supervisor restarts a peer that dies, with events.
      const before = peer.pid;
      process.kill(before!, 'SIGKILL');
      await until('a restart', () => (peer.restarts === 1 && peer.running && peer.pid !== before ? true : undefined), 30_000);
      assert.deepEqual(
        events.filter((e) => e.peer === 'external-secrets').map((e) => e.reason),
        ['SupportPeerStarted', 'SupportPeerExited', 'SupportPeerRestarted'],
      );
      assert.match(events.find((e) => e.reason === 'SupportPeerExited')!.message, /killed by SIGKILL; restarting in \d+ ms/);
      await secrets.send(new PutSecretValueCommand({ SecretId: 'threeport/app-db', SecretString: JSON.stringify({ password: 'third-Pa55' }) }));
      await until('the value rotated after the restart', async () => ((await password()) === 'third-Pa55' ? true : undefined), 60_000);
    });

    await part('ACME: pebble, CoreDNS over the Route 53 zone and cert-manager’s route53 DNS-01 solver issue a certificate', ['cert-manager', 'pebble', 'coredns'], async () => {
      // moto's default SOA record does not parse as DNS; write a real one first.
      await route53.send(
        new ChangeResourceRecordSetsCommand({
          HostedZoneId: zoneId,
          ChangeBatch: {
            Changes: [
              {
                Action: 'UPSERT',
                ResourceRecordSet: { Name: `${ZONE}.`, Type: 'SOA', TTL: 60, ResourceRecords: [{ Value: `ns1.${ZONE}. hostmaster.${ZONE}. 1 7200 900 1209600 60` }] },
              },
            ],
          },
        }),
      );
      await set.start(coreDnsLaunch(set, { port: corednsPort, healthPort: await freePort(), zones: [{ name: ZONE, hostedZoneId: zoneId }], aws }));
      const pebblePorts = { port: await freePort(), managementPort: await freePort() };
      await set.start(
        pebbleLaunch(set, { ...pebblePorts, httpPort: await freePort(), tlsPort: await freePort(), dnsServer: `127.0.0.1:${corednsPort}` }),
      );
      const { directory } = pebbleEndpoints(pebblePorts);
      await c.apply(
        obj(
          'cert-manager.io/v1',
          'ClusterIssuer',
          'pebble',
          {
            spec: {
              acme: {
                server: directory,
                caBundle: Buffer.from(readFileSync(pebbleServingCaPath())).toString('base64'),
                email: 'ops@example.test',
                privateKeySecretRef: { name: 'pebble-account' },
                solvers: [{ dns01: { route53: { region: REGION, hostedZoneID: zoneId } } }],
              },
            },
          },
          undefined,
        ),
      );
      await c.apply(
        obj('cert-manager.io/v1', 'Certificate', 'acme', {
          spec: { secretName: 'acme-tls', dnsNames: [`acme.${ZONE}`], issuerRef: { name: 'pebble', kind: 'ClusterIssuer' } },
        }),
      );
      const t0 = Date.now();
      await until('the ACME Certificate Ready', async () => {
        const got = await c.get({ apiVersion: 'cert-manager.io/v1', kind: 'Certificate', name: 'acme', namespace: NS });
        return condition(got, 'Ready') === 'True' ? got : undefined;
      }, 300_000, 1_000);
      t.diagnostic(`ACME DNS-01 certificate issued in ${Date.now() - t0} ms`);
      const secret = await c.get({ apiVersion: 'v1', kind: 'Secret', name: 'acme-tls', namespace: NS });
      const chainPem = Buffer.from((secret?.['data'] as Record<string, string>)['tls.crt']!, 'base64').toString('utf8');
      const [leafPem, intermediatePem] = chainPem.split(/(?<=-----END CERTIFICATE-----)\s*/).filter((p) => p.includes('BEGIN'));
      const leaf = new X509Certificate(leafPem!);
      assert.equal(leaf.subjectAltName, `DNS:acme.${ZONE}`);
      assert.ok(intermediatePem && leaf.checkIssued(new X509Certificate(intermediatePem)), 'signed by pebble’s intermediate');
      assert.match(leaf.issuer, /Pebble/i);
      // The solver removed its challenge record afterwards.
      await until('the _acme-challenge record to go', async () => ((await records()).some((r) => r.Name?.startsWith('_acme-challenge')) ? undefined : true), 60_000);
    });

    await t.test('every peer process is gone after the set stops', async () => {
      for (const r of set.rss()) t.diagnostic(`RSS ${r.peer}: ${r.rssBytes === undefined ? '?' : (r.rssBytes / MiB).toFixed(0)} MiB`);
      const pids = set.peers.map((p) => p.pid);
      assert.deepEqual(set.peers.map((p) => p.name).sort(), ['cert-manager', 'coredns', 'external-dns', 'external-secrets', 'pebble', 'traefik']);
      await set.stopAll();
      assert.deepEqual(pids.filter(processAlive), []);
    });
  } finally {
    await peers?.stopAll().catch(() => undefined);
    client?.close();
    await new Promise<void>((resolve) => (backend ? backend.close(() => resolve()) : resolve()));
    await moto?.stop().catch(() => undefined);
    await clusters?.stopAll();
    rmSync(work, { recursive: true, force: true });
  }
});
