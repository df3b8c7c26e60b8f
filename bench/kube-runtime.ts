// bench/kube-runtime: what a simulated Kubernetes cluster (InfraProvider kwok) costs.
//
//  1. cold start: a new cluster from the cached binaries (certificates, etcd, kube-apiserver,
//     controller manager, scheduler, kwok, fake node Ready), median of --rounds;
//  2. warm start: the same cluster started again from its directory (as after a server restart);
//  3. memory: RSS sum of one cluster's processes (its own etcd included), once ready and after
//     --settle seconds;
//  4. the runtime reconciler: POST KubernetesRuntimeInstance to Reconciled with APIEndpoint, on
//     an in-process `threeport server` (API + controllers, embedded PostgreSQL), median of --rounds.
//
//   npm run build && node dist/bench/kube-runtime.js [--rounds 3] [--settle 10]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../src/logger.js';
import { startServer } from '../src/server.js';
import { KwokRuntimes } from '../src/providers/runtimes/kwok/runtimes.js';
import { findKubeBinaries } from '../src/providers/runtimes/kwok/binaries.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    settle: { type: 'string', default: '10' },
  },
});
const ROUNDS = Number(values.rounds);
const SETTLE_S = Number(values.settle);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

async function clusterStarts(): Promise<{ cold: number[]; warm: number[]; rssReady: number[]; rssSettled: number; perComponent: string }> {
  const cold: number[] = [];
  const warm: number[] = [];
  const rssReady: number[] = [];
  let rssSettled = 0;
  let perComponent = '';
  for (let i = 0; i < ROUNDS; i++) {
    const dataDir = mkdtempSync(join(tmpdir(), 'threeport-bench-kwok-'));
    const runtimes = new KwokRuntimes({ dataDir });
    try {
      const t0 = performance.now();
      const first = await runtimes.ensure('bench');
      const coldMs = performance.now() - t0;
      cold.push(coldMs);
      rssReady.push(first.cluster.rssBytes());
      if (i === ROUNDS - 1 && SETTLE_S > 0) {
        await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
        rssSettled = first.cluster.rssBytes();
        perComponent = first.cluster
          .status()
          .map((c) => `${c.component}=${mib(c.rssBytes ?? 0)}`)
          .join(' ');
      }
      await runtimes.stop('bench');
      const t1 = performance.now();
      await runtimes.ensure('bench');
      const warmMs = performance.now() - t1;
      warm.push(warmMs);
      console.log(`round ${i + 1}: cold start ${sec(coldMs)}, warm start ${sec(warmMs)}, RSS when ready ${mib(rssReady.at(-1)!)}`);
    } finally {
      await runtimes.stopAll();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }
  return { cold, warm, rssReady, rssSettled, perComponent };
}

async function reconcileTimes(): Promise<number[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'threeport-bench-runtime-'));
  const server = await startServer({
    port: 0,
    host: '127.0.0.1',
    role: 'all',
    dataDir,
    auth: false,
    controllers: { resyncIntervalMs: 0 },
    logger: createLogger({ level: 'silent' }),
  });
  const call = async (method: string, path: string, body?: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const json = (await res.json()) as { Data: Record<string, unknown>[] | null };
    if (res.status >= 300) throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(json)}`);
    return json.Data?.[0] ?? {};
  };
  const times: number[] = [];
  try {
    const def = await call('POST', '/v0/kubernetes-runtime-definitions', { Name: 'bench', InfraProvider: 'kwok' });
    for (let i = 0; i < ROUNDS; i++) {
      const t0 = performance.now();
      const inst = await call('POST', '/v0/kubernetes-runtime-instances', { Name: `bench-${i}`, Location: 'Local', KubernetesRuntimeDefinitionID: def['ID'] });
      const deadline = Date.now() + 180_000;
      for (;;) {
        const o = await call('GET', `/v0/kubernetes-runtime-instances/${String(inst['ID'])}`);
        if (o['Reconciled'] === true && o['APIEndpoint']) break;
        if (Date.now() > deadline) throw new Error(`bench-${i} not Reconciled within 180 s`);
        await new Promise((r) => setTimeout(r, 20));
      }
      const ms = performance.now() - t0;
      times.push(ms);
      console.log(`round ${i + 1}: KubernetesRuntimeInstance create → Reconciled ${sec(ms)}`);
      await call('DELETE', `/v0/kubernetes-runtime-instances/${String(inst['ID'])}`);
      const t1 = performance.now();
      for (;;) {
        const res = await fetch(`${server.url}/v0/kubernetes-runtime-instances/${String(inst['ID'])}`);
        await res.arrayBuffer();
        if (res.status === 404) break;
        if (Date.now() > deadline) throw new Error(`bench-${i} not deleted`);
        await new Promise((r) => setTimeout(r, 20));
      }
      console.log(`round ${i + 1}: delete → gone ${sec(performance.now() - t1)}`);
    }
  } finally {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return times;
}

const bins = findKubeBinaries();
console.log(`binaries: ${bins.dir}; rounds ${ROUNDS}; ${new Date().toISOString()}`);
const starts = await clusterStarts();
const reconciles = await reconcileTimes();
console.log('\nsummary (medians)');
console.log(`  simulated cluster cold start (new certificates and etcd): ${sec(median(starts.cold))}  [${starts.cold.map(sec).join(', ')}]`);
console.log(`  simulated cluster warm start (existing directory):        ${sec(median(starts.warm))}  [${starts.warm.map(sec).join(', ')}]`);
console.log(`  RSS of one cluster when ready (own etcd included):        ${mib(median(starts.rssReady))}`);
if (SETTLE_S > 0) console.log(`  RSS after ${SETTLE_S} s idle: ${mib(starts.rssSettled)} (${starts.perComponent})`);
console.log(`  runtime reconciler, create → Reconciled:                  ${sec(median(reconciles))}  [${reconciles.map(sec).join(', ')}]`);
