// bench/scale-out: workloads on 3 registered clusters (real kube-apiservers with kwok, InfraProvider
// kubeconfig), one `--role api` process and 1, 2 and 3 `--role controllers` replicas on one
// PostgreSQL. For each replica count, per round:
//  - time from POSTing N WorkloadInstances (round-robin over the clusters) to all Healthy;
//  - WorkloadInstance reconciles per second (sum of the replicas' threeport_reconciles_total);
//  - each replica's RSS (VmRSS) once all are Healthy;
//  - with 2 or more replicas: SIGKILL the owner of one runtime and time until another replica
//    holds its lease (threeport_leases) and reports it in threeport_lease_owned;
// then the instances are deleted and the replicas stopped. Prints medians over the rounds.
//
//   npm run build && node dist/bench/scale-out.js [--instances 60] [--rounds 1] [--lease 5s]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { FieldCipher } from '../src/crypto/field-encryption.js';
import { LEASE_TABLE } from '../src/store/leases.js';
import { connectionFieldsFromKubeconfig } from '../src/providers/kube/connection.js';
import type { RunningServer } from '../src/server.js';
import { startTestPostgres } from '../test/harness/postgres.js';
import { startKubeClusters } from '../test/harness/kube-cluster.js';
import { spawnServer } from '../test/harness/server-process.js';
import { counter, deployment, owners, rssMb, startReplica, type Replica } from '../test/harness/controller-replicas.js';
import { until } from '../test/harness/until.js';
import { api, must } from '../test/harness/api-calls.js';
import { median } from './lib/load.js';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '60' },
    rounds: { type: 'string', default: '1' },
    replicas: { type: 'string', default: '1,2,3' },
    lease: { type: 'string', default: '5s' },
  },
});
const N = Number(values.instances);
const ROUNDS = Number(values.rounds);
const COUNTS = values.replicas.split(',').map(Number);

const pgServer = await startTestPostgres();
const kube = await startKubeClusters({ names: ['c1', 'c2', 'c3'] });
const dataDir = mkdtempSync(join(tmpdir(), 'threeport-scale-out-'));
const key = FieldCipher.generateKey();
const apiProc = await spawnServer(['--role', 'api', '--port', '0', '--host', '127.0.0.1', '--no-auth', '--database-url', pgServer.url, '--data-dir', join(dataDir, 'api')], { ENCRYPTION_KEY: key });
const server = { url: apiProc.url } as RunningServer;
const db = new pg.Client({ connectionString: pgServer.url });
await db.connect();
const results = new Map<number, { healthyS: number[]; perS: number[]; rss: number[]; failoverS: number[] }>();
let replicas: Replica[] = [];
let serial = 0;

async function countWhere(status: string, ids: unknown[]): Promise<number> {
  const all = (await api(server, 'GET', '/v0/workload-instances?size=-1')).data;
  const wanted = new Set(ids.map(String));
  return all.filter((o) => wanted.has(String(o['ID'])) && o['Status'] === status).length;
}

try {
  // Three runtimes, registered once; the default runtime is the first.
  const def = await must(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'registered', InfraProvider: 'kubeconfig' });
  const runtimes = [];
  for (const c of kube.clusters) {
    runtimes.push(await must(server, 'POST', '/v0/kubernetes-runtime-instances', { Name: c.name, Location: 'Local', KubernetesRuntimeDefinitionID: def['ID'], ...connectionFieldsFromKubeconfig(c.kubeconfigPath) }));
  }
  const wd = await must(server, 'POST', '/v0/workload-definitions', { Name: 'bench', YAMLDocument: deployment('bench') });

  for (const count of COUNTS) {
    const r = { healthyS: [] as number[], perS: [] as number[], rss: [] as number[], failoverS: [] as number[] };
    results.set(count, r);
    for (let round = 0; round < ROUNDS; round++) {
      replicas = [];
      for (let i = 0; i < count; i++) replicas.push(await startReplica({ name: `r${count}-${round}-${i}`, dataDir, databaseUrl: pgServer.url, key, lease: values.lease }));
      const before = (await Promise.all(replicas.map((x) => counter(x, 'threeport_reconciles_total', 'kind="WorkloadInstance"')))).reduce((a, b) => a + b, 0);
      const t0 = Date.now();
      const ids: unknown[] = [];
      for (let i = 0; i < N; i++) {
        const rt = runtimes[i % runtimes.length]!;
        ids.push((await must(server, 'POST', '/v0/workload-instances', { Name: `bench-${serial++}`, WorkloadDefinitionID: wd['ID'], KubernetesRuntimeInstanceID: rt['ID'] }))['ID']);
      }
      await until(`${N} instances Healthy with ${count} replicas`, async () => ((await countWhere('Healthy', ids)) === N ? true : undefined), 1_800_000, 500);
      const seconds = (Date.now() - t0) / 1000;
      const after = (await Promise.all(replicas.map((x) => counter(x, 'threeport_reconciles_total', 'kind="WorkloadInstance"')))).reduce((a, b) => a + b, 0);
      r.healthyS.push(seconds);
      r.perS.push((after - before) / seconds);
      for (const x of replicas) r.rss.push(rssMb(x));
      console.log(`${count} replica(s), round ${round + 1}: ${N} Healthy in ${seconds.toFixed(1)} s, ${((after - before) / seconds).toFixed(1)} reconciles/s, RSS ${replicas.map((x) => rssMb(x).toFixed(0)).join('/')} MB`);

      if (count >= 2) {
        const lease = `runtime:${String(runtimes[0]!['ID'])}`;
        const row = (await db.query<{ holder: string }>(`SELECT holder FROM ${LEASE_TABLE} WHERE name = $1 AND expires_at > now()`, [lease])).rows[0];
        const victim = replicas.find((x) => row && row.holder.split('/')[1] === String(x.child.pid));
        if (victim) {
          const tk = Date.now();
          victim.child.kill('SIGKILL');
          await victim.exited;
          await until('a dead replica\'s runtime watched again', async () => {
            const now = (await db.query<{ holder: string }>(`SELECT holder FROM ${LEASE_TABLE} WHERE name = $1 AND expires_at > now()`, [lease])).rows[0];
            return now && now.holder !== row!.holder && (await owners(replicas)).get(lease)?.length === 1 ? true : undefined;
          }, 120_000, 100);
          r.failoverS.push((Date.now() - tk) / 1000);
          console.log(`  failover of ${lease}: ${((Date.now() - tk) / 1000).toFixed(1)} s (lease ${values.lease})`);
        }
      }
      for (const id of ids) await api(server, 'DELETE', `/v0/workload-instances/${String(id)}`);
      await until('instances deleted', async () => {
        const left = (await api(server, 'GET', '/v0/workload-instances?size=-1')).data.filter((o) => ids.map(String).includes(String(o['ID'])));
        return left.length === 0 ? true : undefined;
      }, 1_800_000, 500);
      for (const x of replicas) if (x.child.exitCode === null && x.child.signalCode === null) x.child.kill('SIGTERM');
      await Promise.all(replicas.map((x) => x.exited));
    }
  }
  console.log(`\nscale-out: ${N} workload instances on 3 registered clusters, ${ROUNDS} round(s), medians`);
  console.log('replicas | to all Healthy (s) | reconciles/s | RSS per replica (MB) | failover (s)');
  for (const [count, r] of results) {
    console.log(`${count} | ${median(r.healthyS).toFixed(1)} | ${median(r.perS).toFixed(1)} | ${median(r.rss).toFixed(0)} | ${r.failoverS.length ? median(r.failoverS).toFixed(1) : '-'}`);
  }
} finally {
  for (const x of replicas) if (x.child.exitCode === null && x.child.signalCode === null) x.child.kill('SIGKILL');
  await db.end().catch(() => {});
  await apiProc.kill();
  await kube.stopAll();
  await pgServer.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
