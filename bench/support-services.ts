// bench/support-services: gateways on a simulated (kwok) runtime. Each round starts a real control
// plane (API + controllers, embedded PostgreSQL) with one kwok runtime, then:
//
//  - first app: WorkloadDefinition, WorkloadInstance, GatewayDefinition and GatewayInstance posted
//    at once; time until the first HTTP 200 through the gateway (Host header) from the backend.
//    This includes installing the Gateway API CRDs, the controller workload and starting traefik;
//  - second app on the same runtime, same gateway port, another host: the same time, with the
//    gateway controller already installed;
//  - RSS of the runtime's traefik process.
//
// DNS and TLS are not part of it yet (DomainName kinds and TLS ports are refused until they land).
// Prints medians.
//
//   npm run build && node dist/bench/support-services.js [--rounds 3]
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { HOST_IP, gatewayPeersMissing, httpGet, traefikPids, workloadYaml } from '../test/integration/gateway-helpers.js';
import { clientFor, createRuntimes, must, startControlPlane, until, type Obj } from '../test/integration/workload-helpers.js';
import type { RunningServer } from '../src/server.js';
import { median } from './lib/load.js';
import { rssBytes } from './lib/proc.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' } } });
const ROUNDS = Number(values.rounds);
const MiB = 1024 * 1024;


/** Posts one app with its gateway; resolves with ms until the first 200 through the gateway. */
async function app(server: RunningServer, runtime: Obj, name: string, backendPort: number, gwPort: number, domainId: unknown): Promise<number> {
  const t0 = performance.now();
  const wd = await must(server, 'POST', '/v0/workload-definitions', { Name: name, YAMLDocument: workloadYaml(name, backendPort) });
  const wi = await must(server, 'POST', '/v0/workload-instances', { Name: name, WorkloadDefinitionID: wd['ID'], KubernetesRuntimeInstanceID: runtime['ID'] });
  const gd = await must(server, 'POST', '/v0/gateway-definitions', { Name: name, SubDomain: name, DomainNameDefinitionID: domainId, HttpPorts: [{ Port: gwPort }] });
  await must(server, 'POST', '/v0/gateway-instances', { Name: name, GatewayDefinitionID: gd['ID'], WorkloadInstanceID: wi['ID'], KubernetesRuntimeInstanceID: runtime['ID'] });
  const kube = clientFor(server, runtime);
  let address: string | undefined;
  await until(`${name} answered through the gateway`, async () => {
    if (!address) {
      const gw = await kube.get({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', name: `gateway-${name}`, namespace: name }).catch(() => undefined);
      const a = ((gw?.['status'] as Obj | undefined)?.['addresses'] as Obj[] | undefined)?.[0]?.['value'];
      if (typeof a !== 'string') return undefined;
      address = a;
    }
    const r = await httpGet(address, gwPort, `${name}.bench.test`).catch(() => undefined);
    return r?.status === 200 && r.body.includes(`${name}.bench.test`) ? true : undefined;
  }, 300_000, 25);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const missing = gatewayPeersMissing();
  if (missing || !HOST_IP) throw new Error(missing || 'no non-loopback IPv4 address for the backend');
  const backend = createServer((req, res) => res.end(`backend saw ${req.headers.host ?? ''}`));
  await new Promise<void>((r) => backend.listen(0, HOST_IP, r));
  const backendPort = (backend.address() as { port: number }).port;
  const first: number[] = [];
  const second: number[] = [];
  const rss: number[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const cp = await startControlPlane();
      try {
        const [runtime] = await createRuntimes(cp.server, [`bench${round}`]);
        const dnd = await must(cp.server, 'POST', '/v0/domain-name-definitions', { Name: 'bench', Domain: 'bench.test', Zone: 'Public', AdminEmail: 'a@bench.test' });
        const gwPort = 20_000 + Math.floor(Math.random() * 20_000);
        first.push(await app(cp.server, runtime!, 'shop', backendPort, gwPort, dnd['ID']));
        second.push(await app(cp.server, runtime!, 'blog', backendPort, gwPort, dnd['ID']));
        const pids = traefikPids(cp.dataDir);
        rss.push(pids.reduce((sum, p) => sum + (rssBytes(p) ?? NaN), 0));
        console.log(`round ${round}: first app ${first.at(-1)!.toFixed(0)} ms, second app ${second.at(-1)!.toFixed(0)} ms, traefik processes ${pids.length}, RSS ${(rss.at(-1)! / MiB).toFixed(0)} MiB`);
      } finally {
        await cp.close();
      }
    }
  } finally {
    backend.close();
  }
  console.log(`\nmedians over ${ROUNDS} rounds (one kwok runtime each):`);
  console.log(`  first app: created -> first HTTP answer through the gateway   ${median(first).toFixed(0)} ms`);
  console.log(`  second app on the same runtime (controller installed)        ${median(second).toFixed(0)} ms`);
  console.log(`  traefik RSS per runtime                                      ${(median(rss) / MiB).toFixed(0)} MiB`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
