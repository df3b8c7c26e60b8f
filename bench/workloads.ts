// bench/workloads: N workload instances (a Deployment, a Service and a ConfigMap each, one
// WorkloadDefinition) across 3 simulated clusters, through a real `threeport server` child
// process (API + controllers, embedded PostgreSQL), against the same manifests applied directly
// with client-node (the limit the clusters' API servers set).
//
//  - baseline: for each instance a namespace, then the three objects by server-side apply,
//    `--apply-concurrency` requests in flight per cluster; until every Deployment has a ready
//    replica;
//  - threeport: POST the WorkloadInstances (round-robin over the clusters), until every one has
//    Status Healthy (the server's own view, as `tptctl get workloads` shows it);
//  - reconciles per second (the server's /metrics), the server's peak RSS (VmHWM), the ratio.
// The baseline runs first by default; its objects stay in place (idle) while threeport runs.
//
//   npm run build && node dist/bench/workloads.js [--instances 1000] [--concurrency 24]
//       [--apply-concurrency 16] [--baseline first|last|skip]
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FieldCipher } from '../src/crypto/field-encryption.js';
import { connectionFromRuntimeInstance } from '../src/providers/kube/connection.js';
import { kubeClusterClient, type KubeClusterClient, type KubeObject } from '../src/providers/kube/client.js';
import { findKubeBinaries } from '../src/providers/runtimes/kwok/binaries.js';
import { kubeRequest } from '../src/providers/runtimes/kwok/http.js';
import { backoffDelay } from '../src/system.js';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '24' },
    'apply-concurrency': { type: 'string', default: '16' },
    baseline: { type: 'string', default: 'first' },
    clusters: { type: 'string', default: '3' },
    'timeout-minutes': { type: 'string', default: '30' },
    /** Append the server's log lines (level warn and up) to this file. */
    'server-log': { type: 'string' },
  },
});
const N = Number(values.instances);
const CONCURRENCY = Number(values.concurrency);
const APPLY_CONCURRENCY = Number(values['apply-concurrency']);
const CLUSTERS = Number(values.clusters);
const BASELINE = values.baseline as 'first' | 'last' | 'skip';
const TIMEOUT_MS = Number(values['timeout-minutes']) * 60_000;
const BIN = fileURLToPath(new URL('../src/bin/threeport.js', import.meta.url));

type Obj = Record<string, unknown>;
const sec = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const mib = (kib: number): string => `${(kib / 1024).toFixed(0)} MiB`;

function manifest(name: string): KubeObject[] {
  const labels = { app: name };
  return [
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${name}-config` }, data: { GREETING: 'hello', LEVEL: 'info' } },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name },
      spec: { selector: labels, ports: [{ port: 80, targetPort: 8080 }] },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            containers: [
              {
                name: 'web',
                image: 'registry.k8s.io/pause:3.10',
                ports: [{ containerPort: 8080 }],
                envFrom: [{ configMapRef: { name: `${name}-config` } }],
              },
            ],
          },
        },
      },
    },
  ];
}

async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

async function retrying<T>(what: string, fn: () => Promise<T>, attempts = 8): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts) throw new Error(`${what}: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, backoffDelay(i, { initialMs: 200, maxMs: 30_000 })));
    }
  }
}

async function until<T>(what: string, check: () => Promise<T | undefined>, intervalMs = 500, timeoutMs = TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// ---- the control plane ----------------------------------------------------------------------

interface Server {
  url: string;
  child: ChildProcess;
  dataDir: string;
  key: string;
}

async function startServer(): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), 'threeport-bench-workloads-'));
  const key = FieldCipher.generateKey();
  const child = spawn(
    process.execPath,
    [
      // e.g. BENCH_SERVER_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the control plane
      ...(process.env['BENCH_SERVER_NODE_FLAGS'] ?? '').split(' ').filter((f) => f),
      BIN,
      'server',
      '--port',
      '0',
      '--no-auth',
      '--data-dir',
      dataDir,
      '--log-level',
      'warn',
      '--resync-interval',
      '0',
      '--reconcile-concurrency',
      `WorkloadInstance=${CONCURRENCY}`,
    ],
    {
      env: { ...process.env, ENCRYPTION_KEY: key },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stderr}`)), 60_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (values['server-log']) appendFileSync(values['server-log'], `${line}\n`);
      if (!line.includes('"listening"')) return;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}: ${stderr}`)));
  });
  return { url, child, dataDir, key };
}

async function call(server: Server, method: string, path: string, body?: unknown): Promise<Obj[]> {
  const res = await fetch(`${server.url}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return ((JSON.parse(text) as { Data: Obj[] | null }).Data ?? []) as Obj[];
}

/** CPU seconds (user + system) a process has used. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** VmHWM (peak RSS) and VmRSS of a process, in KiB. */
function memory(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(/(\d+) kB/.exec(status.split('\n').find((l) => l.startsWith(name)) ?? '')?.[1] ?? 0);
  return { peak: field('VmHWM:'), now: field('VmRSS:') };
}

async function reconcileCount(server: Server): Promise<{ reconciled: number; attempts: number }> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  let reconciled = 0;
  let attempts = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('threeport_reconciles_total{') || !line.includes('kind="WorkloadInstance"')) continue;
    const n = Number(line.split(' ').pop());
    attempts += n;
    if (line.includes('outcome="reconciled"')) reconciled += n;
  }
  return { reconciled, attempts };
}

// ---- the two runs ---------------------------------------------------------------------------

async function baselineRun(clients: KubeClusterClient[]): Promise<number> {
  const t0 = performance.now();
  const byCluster = clients.map(() => [] as number[]);
  for (let i = 0; i < N; i++) byCluster[i % clients.length]!.push(i);
  await Promise.all(
    clients.map((client, c) =>
      pool(byCluster[c]!, APPLY_CONCURRENCY, async (i) => {
        const ns = `base-${i}`;
        const apply = (o: KubeObject): Promise<KubeObject> =>
          retrying(`apply ${o.kind} ${ns}/${o.metadata.name}`, () => client.apply(o, { fieldManager: 'bench-baseline' }));
        await apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { bench: 'baseline' } } });
        for (const o of manifest(`app-${i}`)) {
          o.metadata.namespace = ns;
          o.metadata.labels = { bench: 'baseline' };
          await apply(o);
        }
      }),
    ),
  );
  const applied = performance.now() - t0;
  await until('every baseline Deployment ready', async () => {
    let ready = 0;
    for (const client of clients) {
      const list = await client.list('apps/v1', 'Deployment', { labelSelector: 'bench=baseline' });
      ready += list.items.filter((d) => ((d['status'] as { readyReplicas?: number } | undefined)?.readyReplicas ?? 0) >= 1).length;
    }
    return ready >= N ? true : undefined;
  });
  const total = performance.now() - t0;
  console.log(`baseline (client-node, server-side apply): applied in ${sec(applied)}, all ready in ${sec(total)}`);
  return total;
}

async function threeportRun(server: Server, runtimes: Obj[]): Promise<{ ms: number; rate: number; attempts: number }> {
  const [wd] = await call(server, 'POST', '/v0/workload-definitions', {
    Name: 'bench-app',
    YAMLDocument: manifest('app').map((o) => JSON.stringify(o)).join('\n---\n'),
  });
  await until('the definition reconciled', async () => ((await call(server, 'GET', `/v0/workload-definitions/${String(wd!['ID'])}`))[0]?.['Reconciled'] === true ? true : undefined), 100);
  const before = await reconcileCount(server);
  const cpu0 = cpuSeconds(server.child.pid!);
  const t0 = performance.now();
  await pool(
    Array.from({ length: N }, (_, i) => i),
    32,
    async (i) => {
      await call(server, 'POST', '/v0/workload-instances', {
        Name: `app-${i}`,
        WorkloadDefinitionID: wd!['ID'],
        KubernetesRuntimeInstanceID: runtimes[i % runtimes.length]!['ID'],
      });
    },
  );
  const created = performance.now() - t0;
  let reconciledAt = 0;
  let lastReport = 0;
  await until('every WorkloadInstance Healthy', async () => {
    const all = await call(server, 'GET', '/v0/workload-instances?size=-1');
    const healthy = all.filter((o) => o['Status'] === 'Healthy').length;
    const reconciled = all.filter((o) => o['Reconciled'] === true).length;
    if (!reconciledAt && reconciled >= N) reconciledAt = performance.now() - t0;
    if (performance.now() - lastReport > 10_000) {
      lastReport = performance.now();
      const statuses: Record<string, number> = {};
      for (const o of all) statuses[String(o['Status'])] = (statuses[String(o['Status'])] ?? 0) + 1;
      console.log(`  ${sec(performance.now() - t0)}: ${JSON.stringify(statuses)}, reconciled ${reconciled}, peak RSS ${mib(memory(server.child.pid!).peak)}`);
    }
    return healthy >= N ? true : undefined;
  }, 1_000);
  const total = performance.now() - t0;
  const cpu = cpuSeconds(server.child.pid!) - cpu0;
  console.log(`control plane CPU during the run: ${cpu.toFixed(1)} s over ${sec(total)} (${((cpu * 100_000) / total).toFixed(0)}% of one core)`);
  const after = await reconcileCount(server);
  const reconciles = after.reconciled - before.reconciled;
  console.log(
    `threeport: ${N} instances created through the API in ${sec(created)}, all Reconciled in ${sec(reconciledAt || total)}, all Healthy in ${sec(total)}`,
  );
  return { ms: total, rate: reconciles / ((reconciledAt || total) / 1000), attempts: after.attempts - before.attempts };
}

async function main(): Promise<void> {
  findKubeBinaries();
  console.log(`bench/workloads: ${N} instances × (Deployment, Service, ConfigMap) over ${CLUSTERS} kwok clusters; WorkloadInstance concurrency ${CONCURRENCY}`);
  const server = await startServer();
  const clients: KubeClusterClient[] = [];
  try {
    const [rdef] = await call(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'bench', InfraProvider: 'kwok' });
    const created = await Promise.all(
      Array.from({ length: CLUSTERS }, (_, i) =>
        call(server, 'POST', '/v0/kubernetes-runtime-instances', { Name: `bench-${i}`, Location: 'Local', KubernetesRuntimeDefinitionID: rdef!['ID'] }),
      ),
    );
    const runtimes = await Promise.all(
      created.map(([c]) =>
        until(`runtime ${String(c!['Name'])}`, async () => {
          const [o] = await call(server, 'GET', `/v0/kubernetes-runtime-instances/${String(c!['ID'])}`);
          return o?.['Reconciled'] === true && o['APIEndpoint'] ? o : undefined;
        }),
      ),
    );
    const cipher = new FieldCipher(server.key);
    for (const r of runtimes) {
      const conn = connectionFromRuntimeInstance(r, (v) => cipher.decrypt(v));
      clients.push(kubeClusterClient(conn));
      // A simulated node holds 110 pods: add fake nodes (kwok runs them) for both runs' pods.
      const perCluster = Math.ceil(N / CLUSTERS) * 2 + 20;
      for (let n = 0; n < Math.ceil(perCluster / 110); n++) {
        const name = `bench-node-${n}`;
        const resources = { cpu: '32', memory: '256Gi', pods: '110', 'ephemeral-storage': '1Ti' };
        const res = await kubeRequest({ server: conn.server, caPem: conn.caPem!, clientCertPem: conn.clientCertPem!, clientKeyPem: conn.clientKeyPem! }, 'POST', '/api/v1/nodes', {
          body: {
            apiVersion: 'v1',
            kind: 'Node',
            metadata: {
              name,
              annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
              labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', type: 'kwok' },
            },
            spec: {},
            status: { allocatable: resources, capacity: resources },
          },
        });
        if (res.status !== 201) throw new Error(`creating node ${name}: HTTP ${res.status} ${res.body}`);
      }
    }
    await until('the extra nodes Ready', async () => {
      for (const c of clients) {
        const nodes = await c.list('v1', 'Node');
        if (!nodes.items.every((n) => ((n['status'] as { conditions?: Array<{ type: string; status: string }> })?.conditions ?? []).some((x) => x.type === 'Ready' && x.status === 'True'))) return undefined;
      }
      return true;
    });
    const idle = memory(server.child.pid!);
    console.log(`control plane up with ${CLUSTERS} clusters: RSS ${mib(idle.now)}`);

    let baseline: number | undefined;
    if (BASELINE === 'first') baseline = await baselineRun(clients);
    const tp = await threeportRun(server, runtimes);
    if (BASELINE === 'last') baseline = await baselineRun(clients);
    const mem = memory(server.child.pid!);
    console.log(`reconciles: ${tp.attempts} WorkloadInstance attempts; ${tp.rate.toFixed(1)} successful reconciles/s until all Reconciled`);
    console.log(`control plane peak RSS ${mib(mem.peak)} (now ${mib(mem.now)}); simulated clusters run as separate processes`);
    if (baseline !== undefined) {
      const ratio = tp.ms / baseline;
      console.log(`ratio threeport / direct apply = ${ratio.toFixed(2)}× (goal ≤ 1.5×)`);
    }
  } finally {
    for (const c of clients) c.close();
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));
    rmSync(server.dataDir, { recursive: true, force: true });
  }
}

await main();
