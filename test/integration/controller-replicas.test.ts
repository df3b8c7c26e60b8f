// Three `threeport server --role controllers` processes on one PostgreSQL, with workloads on two
// registered clusters (real kube-apiservers with kwok, InfraProvider kubeconfig):
// - each runtime has exactly one watcher: one live lease row, and exactly one replica's
//   threeport_lease_owned metric names it (sampled throughout, never two);
// - the owner of a runtime is killed with SIGKILL: another replica takes the runtime within the
//   lease time (token incremented), and a change made after the kill is reflected (a new instance
//   becomes Healthy, a resource deleted out of band is restored);
// - no WorkloadEvent is recorded twice.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { FieldCipher } from '../../src/crypto/field-encryption.js';
import { WorkloadEvent } from '../../src/kinds/workload.js';
import { LEASE_TABLE } from '../../src/store/leases.js';
import { connectionFieldsFromKubeconfig } from '../../src/providers/kube/connection.js';
import { spawnServer, type ServerProcess } from '../harness/server-process.js';
import { deployment, owners, startReplica, type Replica } from '../harness/controller-replicas.js';
import { startTestPostgres, type TestPostgres } from '../harness/postgres.js';
import { SKIP_KUBE, SKIP_KUBE_REASON, findKubeBinaries, startKubeClusters, type KubeClusterSet } from '../harness/kube-cluster.js';
import { until } from '../harness/until.js';
import { api, get, must, type Obj } from '../harness/api-calls.js';
import type { RunningServer } from '../../src/server.js';

const LEASE = '3s';

test('controllers replicas share runtimes through leases: one watcher per runtime, failover after SIGKILL, no duplicate events', { skip: SKIP_KUBE ? SKIP_KUBE_REASON : false, timeout: 900_000 }, async (t) => {
  findKubeBinaries();
  let pgServer: TestPostgres | undefined;
  let kube: KubeClusterSet | undefined;
  let apiProc: ServerProcess | undefined;
  const replicas: Replica[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), 'threeport-replicas-'));
  let db: pg.Client | undefined;
  try {
    pgServer = await startTestPostgres();
    kube = await startKubeClusters({ names: ['east', 'west'] });
    const key = FieldCipher.generateKey();
    apiProc = await spawnServer(['--role', 'api', '--port', '0', '--host', '127.0.0.1', '--no-auth', '--database-url', pgServer.url, '--data-dir', join(dataDir, 'api')], { ENCRYPTION_KEY: key });
    const server = { url: apiProc.url } as RunningServer;
    for (const n of ['r1', 'r2', 'r3']) replicas.push(await startReplica({ name: n, dataDir, databaseUrl: pgServer.url, key, lease: LEASE }));
    db = new pg.Client({ connectionString: pgServer.url });
    await db.connect();

    // Two registered clusters, two workload instances on each.
    const def = await must(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'registered', InfraProvider: 'kubeconfig' });
    const runtimes: Obj[] = [];
    for (const name of ['east', 'west']) {
      const fields = connectionFieldsFromKubeconfig(kube.get(name).kubeconfigPath);
      runtimes.push(await must(server, 'POST', '/v0/kubernetes-runtime-instances', { Name: name, Location: 'Local', KubernetesRuntimeDefinitionID: def['ID'], ...fields }));
    }
    for (const r of runtimes) {
      await until(`runtime ${String(r['Name'])} reconciled`, async () => ((await get(server, 'kubernetes-runtime-instances', r['ID']))?.['Reconciled'] === true ? true : undefined), 120_000);
    }
    const wd = await must(server, 'POST', '/v0/workload-definitions', { Name: 'web', YAMLDocument: deployment('web') });
    const instances: Obj[] = [];
    for (const r of runtimes) {
      for (const i of [1, 2]) {
        instances.push(await must(server, 'POST', '/v0/workload-instances', { Name: `web-${String(r['Name'])}-${i}`, WorkloadDefinitionID: wd['ID'], KubernetesRuntimeInstanceID: r['ID'] }));
      }
    }
    const healthy = (id: unknown, timeoutMs = 180_000): Promise<unknown> =>
      until(`WorkloadInstance ${String(id)} Healthy`, async () => ((await get(server, 'workload-instances', id))?.['Status'] === 'Healthy' ? true : undefined), timeoutMs);
    for (const wi of instances) await healthy(wi['ID']);

    // At most one watcher per runtime at every sample (bounded sampling throughout the test).
    let samples = 0;
    let sampling = true;
    const violations: string[] = [];
    // The replicas are read one after another, so a hand-over between two reads can show both
    // holders once; two owners in two consecutive samples is a real double watcher.
    const sampler = (async () => {
      let previous = new Map<string, string[]>();
      while (sampling && samples < 2_000) {
        samples++;
        const now = await owners(replicas);
        for (const [lease, holders] of now) {
          const key = [...holders].sort().join(', ');
          if (holders.length > 1 && [...(previous.get(lease) ?? [])].sort().join(', ') === key) violations.push(`${lease}: ${key}`);
        }
        previous = now;
        await new Promise((r) => setTimeout(r, 250));
      }
    })();

    const runtimeLeases = runtimes.map((r) => `runtime:${String(r['ID'])}`);
    const leaseRows = async (): Promise<Map<string, { holder: string; token: number }>> => {
      const res = await db!.query<{ name: string; holder: string; token: string }>(
        `SELECT name, holder, token FROM ${LEASE_TABLE} WHERE name = ANY($1) AND expires_at > now()`, [runtimeLeases]);
      return new Map(res.rows.map((r) => [r.name, { holder: r.holder, token: Number(r.token) }]));
    };
    // Each runtime: one live lease, and exactly one replica's metric names it, the same holder.
    const settled = await until('each runtime owned by exactly one replica', async () => {
      const rows = await leaseRows();
      const metric = await owners(replicas);
      const ok = runtimeLeases.every((l) => rows.has(l) && metric.get(l)?.length === 1 && metric.get(l)![0] === rows.get(l)!.holder);
      return ok ? rows : undefined;
    }, 60_000);
    t.diagnostic(`owners: ${[...settled].map(([l, r]) => `${l}=${r.holder}`).join(' ')}`);

    // /readyz?verbose names the holder and what it owns.
    const eastLease = runtimeLeases[0]!;
    const eastOwner = settled.get(eastLease)!.holder;
    const ownerPid = Number(eastOwner.split('/')[1]);
    const victim = replicas.find((r) => r.child.pid === ownerPid);
    assert.ok(victim, `the owner ${eastOwner} is one of the replicas`);
    const verbose = await fetch(`${victim.metricsUrl}/readyz?verbose`).then((r) => r.text());
    assert.match(verbose, new RegExp(`holder ${eastOwner.replace(/[/.]/g, '\\$&')}`));
    assert.match(verbose, new RegExp(`owns ${eastLease}\\b`));

    // SIGKILL the owner of east.
    const killedAt = Date.now();
    victim.child.kill('SIGKILL');
    await victim.exited;
    const survivors = replicas.filter((r) => r !== victim);

    // Changes made after the kill: a new instance on east, and a resource deleted out of band.
    const late = await must(server, 'POST', '/v0/workload-instances', { Name: 'web-east-late', WorkloadDefinitionID: wd['ID'], KubernetesRuntimeInstanceID: runtimes[0]!['ID'] });
    const wri = (await api(server, 'GET', `/v0/workload-resource-instances?workloadinstanceid=${String(instances[0]!['ID'])}&size=-1`)).data
      .find((w) => (w['JSONDefinition'] as { kind: string }).kind === 'ConfigMap')!;
    const cm = wri['JSONDefinition'] as { metadata: { name: string; namespace: string } };
    const east = kube.get('east');
    const cmPath = `/api/v1/namespaces/${cm.metadata.namespace}/configmaps/${cm.metadata.name}`;
    assert.equal((await east.request('DELETE', cmPath)).status, 200);

    const moved = await until('east taken over by a surviving replica', async () => {
      const row = (await leaseRows()).get(eastLease);
      return row && row.holder !== eastOwner ? row : undefined;
    }, 60_000);
    t.diagnostic(`east moved to ${moved.holder} ${Date.now() - killedAt} ms after the SIGKILL (lease ${LEASE})`);
    assert.ok(moved.token > settled.get(eastLease)!.token, 'a takeover increments the fencing token');
    assert.ok(survivors.some((r) => moved.holder.split('/')[1] === String(r.child.pid)));
    await healthy(late['ID']);
    await until('the ConfigMap deleted out of band is restored', async () => ((await east.request('GET', cmPath)).status === 200 ? true : undefined), 120_000);
    await until('east owned by exactly one surviving replica (metric)', async () => ((await owners(survivors)).get(eastLease)?.length === 1 ? true : undefined), 30_000);
    for (const wi of instances) await healthy(wi['ID']);

    sampling = false;
    await sampler;
    t.diagnostic(`${samples} ownership samples`);
    assert.deepEqual(violations, [], 'no runtime had two watchers at once');

    // No duplicate WorkloadEvents (one per Kubernetes event UID).
    const dupes = await db.query(
      `SELECT data->>'RuntimeEventUID' AS uid, count(*)::int AS n FROM ${WorkloadEvent.table}
       WHERE deleted_at IS NULL AND data ? 'RuntimeEventUID' GROUP BY 1 HAVING count(*) > 1`);
    assert.deepEqual(dupes.rows, []);
    const total = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${WorkloadEvent.table} WHERE deleted_at IS NULL`);
    t.diagnostic(`${total.rows[0]!.n} WorkloadEvents, none twice`);
    assert.ok(total.rows[0]!.n > 0, 'the watches recorded Kubernetes events');
  } catch (err) {
    for (const r of replicas) t.diagnostic(`replica ${r.name} stderr: ${r.stderr().slice(-3_000)}`);
    throw err;
  } finally {
    await db?.end().catch(() => {});
    for (const r of replicas) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGTERM');
    await Promise.all(replicas.map((r) => r.exited));
    await apiProc?.kill();
    await kube?.stopAll();
    await pgServer?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
