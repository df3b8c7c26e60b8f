// bench/observability: an ObservabilityStackInstance on a simulated (kwok) runtime, through a real
// `threeport server` (API + controllers, embedded PostgreSQL) and the real peers (Prometheus,
// VictoriaLogs, vlagent as host processes). Per run: time from the instance's create to Healthy
// (processes started and ready), and to the first scraped sample of the control plane's own
// /metrics answering through Prometheus' HTTP API; the RSS of the stack's processes once the
// first sample is in; then delete. The upstream sample's values (none: Prometheus' default 15 s
// scrape interval, whose first scrape is spread by Prometheus over the interval). Medians.
//
//   node dist/bench/observability.js [--runs 3]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { createLogger } from '../src/logger.js';
import { startServer } from '../src/server.js';
import { api, get, must } from '../test/harness/api-calls.js';
import { median } from './lib/load.js';
import { processes, rssBytes } from './lib/proc.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const RUNS = Number(values.runs);

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 300_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resident memory (MiB) of each process whose command line names `dir`, by executable name. */
function rssUnder(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const { pid, argv } of processes()) {
    if (!argv.some((a) => a.includes(dir))) continue;
    const name = argv[0]!.split('/').pop()!;
    const rss = rssBytes(pid);
    if (rss !== undefined && ['prometheus', 'victoria-logs', 'vlagent'].includes(name)) out[name] = rss / 2 ** 20;
  }
  return out;
}

const dataDir = mkdtempSync(join(tmpdir(), 'threeport-bench-obs-'));
const server = await startServer({
  port: 0,
  host: '127.0.0.1',
  role: 'all',
  dataDir,
  auth: false,
  controllers: { pollIntervalMs: 50, resyncIntervalMs: 0 },
  logger: createLogger({ level: 'warn', destination: join(dataDir, 'server.log') }),
});
try {
  const krd = await must(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'bench', InfraProvider: 'kwok' });
  const kri = await must(server, 'POST', '/v0/kubernetes-runtime-instances', { Name: 'bench', Location: 'Local', KubernetesRuntimeDefinitionID: krd['ID'] });
  await until('runtime', async () => ((await get(server, 'kubernetes-runtime-instances', kri['ID']))?.['Reconciled'] === true ? true : undefined));
  const def = await must(server, 'POST', '/v0/observability-stack-definitions', { Name: 'bench' });

  const healthy: number[] = [];
  const firstSample: number[] = [];
  const rss: Record<string, number[]> = {};
  for (let run = 0; run < RUNS; run++) {
    const t0 = performance.now();
    const inst = await must(server, 'POST', '/v0/observability-stack-instances', {
      Name: `bench-${run}`,
      ObservabilityStackDefinitionID: def['ID'],
      KubernetesRuntimeInstanceID: kri['ID'],
    });
    const ready = await until('Healthy', async () => {
      const o = await get(server, 'observability-stack-instances', inst['ID']);
      return o?.['Status'] === 'Healthy' && o['PrometheusURL'] ? o : undefined;
    });
    healthy.push(performance.now() - t0);
    const prom = String(ready['PrometheusURL']);
    await until('first sample', async () => {
      const r = await fetch(`${prom}/api/v1/query?query=${encodeURIComponent('up{job="threeport"}')}`);
      const body = (await r.json()) as { data: { result: unknown[] } };
      return body.data.result.length > 0 ? true : undefined;
    });
    firstSample.push(performance.now() - t0);
    const dir = join(dataDir, 'observability', `observability-stack-instances-${String(inst['ID'])}`);
    for (const [name, mib] of Object.entries(rssUnder(dir))) (rss[name] ??= []).push(mib);
    await must(server, 'DELETE', `/v0/observability-stack-instances/${String(inst['ID'])}`);
    await until('deleted', async () => ((await api(server, 'GET', `/v0/observability-stack-instances/${String(inst['ID'])}`)).status === 404 ? true : undefined));
  }
  const fmt = (ms: number[]): string => `${(median(ms) / 1000).toFixed(2)} s (runs: ${ms.map((m) => (m / 1000).toFixed(2)).join(', ')})`;
  console.log(`observability stack on a kwok runtime, ${RUNS} runs, medians`);
  console.log(`  create -> Healthy (processes ready):          ${fmt(healthy)}`);
  console.log(`  create -> first control-plane sample in Prometheus: ${fmt(firstSample)}`);
  const total = Object.values(rss).reduce((sum, v) => sum + median(v), 0);
  for (const [name, v] of Object.entries(rss)) console.log(`  RSS ${name}: ${median(v).toFixed(1)} MiB`);
  console.log(`  RSS of the stack's processes together: ${total.toFixed(1)} MiB`);
} finally {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
}
