// bench/secrets: SecretInstance delivery on a simulated (kwok) runtime with moto's Secrets
// Manager, two ways, interleaved round by round:
//
//  - direct (what Threeport does): a real control plane (API + controllers, embedded PostgreSQL)
//    reads Secrets Manager and server-side-applies the Secret; time from POST /v0/secret-instances
//    to the Secret present in the workload's namespace, then from a rotation in moto to the
//    Secret holding the new value;
//  - external-secrets v0.16.2 (the alternative the issue names), as a supervised host process
//    pointed at the same runtime: time from applying the SecretStore + ExternalSecret to the
//    Secret, then rotation to Secret; and the RSS of that one extra process per runtime.
// Both refresh every --refresh-ms (default 1000); each rotation waits a random part of that
// interval first. Prints medians.
//
//   npm run build && node dist/bench/secrets.js [--rounds 5] [--refresh-ms 1000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { AWS_ENDPOINT_ENV } from '../src/providers/aws/provider.js';
import { SECRET_REFRESH_ENV } from '../src/controllers/secret/index.js';
import { connectionFromRuntimeInstance } from '../src/providers/kube/connection.js';
import type { KubeObject } from '../src/providers/kube/client.js';
import { externalSecretsLaunch, findSupportPeer, installCrds, SupportPeerSet } from '../src/providers/support-peers/index.js';
import { startMoto } from '../test/harness/moto.js';
import { freePort } from '../src/system.js';
import { clientFor, createRuntimes, get, list, must, startControlPlane, status, until } from '../test/integration/workload-helpers.js';
import { median } from './lib/load.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, 'refresh-ms': { type: 'string', default: '1000' } } });
const ROUNDS = Number(values.rounds);
const REFRESH_MS = Number(values['refresh-ms']);
const REGION = 'us-east-1';
const MiB = 1024 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Rotations land at a random point of the refresh cycle, as real ones do (else the first refresh after delivery decides). */
const phase = (): number => Math.random() * REFRESH_MS;

function decoded(s: KubeObject | undefined): Record<string, string> | undefined {
  if (!s) return undefined;
  return Object.fromEntries(Object.entries((s['data'] ?? {}) as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

async function main(): Promise<void> {
  const moto = await startMoto();
  process.env[AWS_ENDPOINT_ENV] = moto.url;
  process.env[SECRET_REFRESH_ENV] = String(REFRESH_MS);
  const cp = await startControlPlane();
  const work = mkdtempSync(join(tmpdir(), 'threeport-bench-secrets-'));
  let peers: SupportPeerSet | undefined;
  try {
    const server = cp.server;
    const [runtime] = await createRuntimes(server, ['secrets']);
    const kube = clientFor(server, runtime!);
    await must(server, 'POST', '/v0/aws-accounts', { Name: 'bench', AccountID: '123456789012', DefaultAccount: true, DefaultRegion: REGION, AccessKeyID: 'AKIABENCHBENCHBENCH1', SecretAccessKey: 'bench-secret-access-key' });
    const wd = await must(server, 'POST', '/v0/workload-definitions', { Name: 'app', YAMLDocument: 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {a: b}\n' });
    await until('definition', async () => ((await get(server, 'workload-definitions', wd['ID']))?.['Reconciled'] === true ? true : undefined));
    const wi = await must(server, 'POST', '/v0/workload-instances', { Name: 'app', WorkloadDefinitionID: wd['ID'], KubernetesRuntimeInstanceID: runtime!['ID'] });
    await status(server, wi['ID'], 'Healthy');
    const nsWri = (await list(server, 'workload-resource-instances', `workloadinstanceid=${String(wi['ID'])}`)).find((w) => (w['JSONDefinition'] as KubeObject).kind === 'Namespace')!;
    const ns = (nsWri['JSONDefinition'] as KubeObject).metadata.name!;

    // external-secrets against the same runtime's API server.
    const conn = connectionFromRuntimeInstance(runtime!, (v) => server.store.decrypt(v));
    await installCrds(conn, findSupportPeer('external-secrets').crdFiles);
    peers = new SupportPeerSet({ dir: join(work, 'peers'), kube: conn, removeOnExit: true });
    const eso = await peers.start(externalSecretsLaunch(peers, { aws: { endpoint: moto.url, region: REGION, accessKeyId: 'bench', secretAccessKey: 'bench' }, metricsPort: await freePort() }));
    await kube.apply({ apiVersion: 'external-secrets.io/v1', kind: 'SecretStore', metadata: { name: 'aws', namespace: ns }, spec: { provider: { aws: { service: 'SecretsManager', region: REGION } } } } as KubeObject);
    const sm = new SecretsManagerClient({ endpoint: moto.url, region: REGION, credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' } });

    const r = { directCreate: [] as number[], directRotate: [] as number[], esoCreate: [] as number[], esoRotate: [] as number[] };
    const waitValue = async (name: string, v: string): Promise<void> => {
      await until(`Secret ${name} = ${v}`, async () => (decoded(await kube.get({ apiVersion: 'v1', kind: 'Secret', name, namespace: ns }))?.['key'] === v ? true : undefined), 120_000, 20);
    };
    for (let i = 0; i < ROUNDS; i++) {
      // direct
      const sd = await must(server, 'POST', '/v0/secret-definitions', { Name: `direct-${i}`, Data: { key: 'v1' } });
      await until('definition stored', async () => ((await get(server, 'secret-definitions', sd['ID']))?.['Reconciled'] === true ? true : undefined), 60_000, 20);
      let t = performance.now();
      const si = await must(server, 'POST', '/v0/secret-instances', { Name: `direct-${i}`, SecretDefinitionID: sd['ID'], KubernetesRuntimeInstanceID: runtime!['ID'], WorkloadInstanceID: wi['ID'] });
      await waitValue(`direct-${i}`, 'v1');
      r.directCreate.push(performance.now() - t);
      await sleep(phase());
      t = performance.now();
      await sm.send(new PutSecretValueCommand({ SecretId: `direct-${i}`, SecretString: JSON.stringify({ key: 'v2' }) }));
      await waitValue(`direct-${i}`, 'v2');
      r.directRotate.push(performance.now() - t);
      await must(server, 'DELETE', `/v0/secret-instances/${String(si['ID'])}`);

      // external-secrets
      await sm.send(new CreateSecretCommand({ Name: `eso-${i}`, SecretString: JSON.stringify({ key: 'v1' }) }));
      t = performance.now();
      await kube.apply({
        apiVersion: 'external-secrets.io/v1',
        kind: 'ExternalSecret',
        metadata: { name: `eso-${i}`, namespace: ns },
        spec: { refreshInterval: `${REFRESH_MS}ms`, secretStoreRef: { name: 'aws', kind: 'SecretStore' }, target: { name: `eso-${i}` }, dataFrom: [{ extract: { key: `eso-${i}` } }] },
      } as KubeObject);
      await waitValue(`eso-${i}`, 'v1');
      r.esoCreate.push(performance.now() - t);
      await sleep(phase());
      t = performance.now();
      await sm.send(new PutSecretValueCommand({ SecretId: `eso-${i}`, SecretString: JSON.stringify({ key: 'v2' }) }));
      await waitValue(`eso-${i}`, 'v2');
      r.esoRotate.push(performance.now() - t);
      await kube.delete({ apiVersion: 'external-secrets.io/v1', kind: 'ExternalSecret', name: `eso-${i}`, namespace: ns });
    }
    const f = (xs: number[]): string => `${median(xs).toFixed(0)} ms (n=${xs.length}, min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`;
    console.log(`refresh interval ${REFRESH_MS} ms, ${ROUNDS} rounds, medians:`);
    console.log(`  direct           SecretInstance created -> Secret present: ${f(r.directCreate)}`);
    console.log(`  direct           rotation in Secrets Manager -> Secret:     ${f(r.directRotate)}`);
    console.log(`  external-secrets ExternalSecret applied -> Secret present:  ${f(r.esoCreate)}`);
    console.log(`  external-secrets rotation in Secrets Manager -> Secret:     ${f(r.esoRotate)}`);
    console.log(`  external-secrets process RSS per runtime: ${((eso.rssBytes() ?? 0) / MiB).toFixed(0)} MiB; direct delivery: no extra process`);
    console.log(`  control plane process RSS (API + all controllers + kwok supervision): ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB`);
    kube.close();
  } finally {
    await peers?.stopAll();
    await cp.close();
    await moto.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
