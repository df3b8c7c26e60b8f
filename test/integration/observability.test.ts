// Observability stacks against real peers: a real `threeport server` (API + controllers,
// embedded PostgreSQL) starts a simulated (kwok) runtime; an ObservabilityStackInstance on it
// runs the real Prometheus (built from its module), VictoriaLogs and vlagent as host processes.
// Prometheus really scrapes the control plane's /metrics, the runtime's API server and an
// annotated pod (on loopback); the log store takes a line through Loki's push API and gets the
// runtime's component logs from the shipper; bad values are 400s, a second stack is a 409, and a
// delete leaves no process and no directory.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import type { RunningServer } from '../../src/server.js';
import { startLocalServer } from '../harness/local-server.js';
import { connectionFromRuntimeInstance } from '../../src/providers/kube/connection.js';
import { kubeClusterClient } from '../../src/providers/kube/client.js';
import { findSupportPeer } from '../../src/providers/support-peers/binaries.js';
import { findKubeBinaries, SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';
import { until } from '../harness/until.js';
import { api, get, must, type Obj } from '../harness/api-calls.js';
import { processAlive } from '../../src/system.js';

const LOG_PATH = join(tmpdir(), `threeport-observability-${process.pid}.log`);
const SKIP_OBS = process.env['THREEPORT_SKIP_OBSERVABILITY'] === '1' ? 'THREEPORT_SKIP_OBSERVABILITY=1' : false;

async function promQuery(base: string, query: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(query)}`);
  const body = (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  assert.equal(body.status, 'success');
  return body.data.result;
}

async function logsQuery(base: string, query: string): Promise<Obj[]> {
  const res = await fetch(`${base}/select/logsql/query`, { method: 'POST', body: new URLSearchParams({ query, limit: '50' }) });
  assert.equal(res.status, 200, await res.clone().text());
  const text = await res.text();
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Obj);
}

test(
  'observability stack on a kwok runtime: real Prometheus scrapes, logs arrive, bad input refused, delete leaves nothing',
  { skip: SKIP_KUBE ? SKIP_KUBE_REASON : SKIP_OBS, timeout: 600_000 },
  async (t) => {
    findKubeBinaries();
    findSupportPeer('prometheus'); // fails with the build command when missing
    findSupportPeer('victoria-logs');
    const dataDir = mkdtempSync(join(tmpdir(), 'threeport-obs-'));
    let server: RunningServer | undefined;
    let workload: Server | undefined;
    try {
      server = await startLocalServer(dataDir, { logPath: LOG_PATH });
      const krd = await must(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'obs', InfraProvider: 'kwok' });
      const kri = await must(server, 'POST', '/v0/kubernetes-runtime-instances', { Name: 'obs', Location: 'Local', KubernetesRuntimeDefinitionID: krd['ID'] });
      const runtime = await until('runtime reconciled', async () => {
        const o = await get(server!, 'kubernetes-runtime-instances', kri['ID']);
        return o?.['Reconciled'] === true && typeof o['APIEndpoint'] === 'string' ? o : undefined;
      }, 240_000);

      // ---- bad input: nothing is written -------------------------------------------------
      const notYaml = await api(server, 'POST', '/v0/observability-stack-definitions', { Name: 'bad', LokiHelmValuesDocument: 'a: [1, 2' });
      assert.equal(notYaml.status, 400, notYaml.text);
      assert.match(notYaml.text, /ObservabilityStackDefinition\.LokiHelmValuesDocument is not valid YAML/);
      const list = await api(server, 'POST', '/v0/metrics-definitions', { Name: 'bad', KubePrometheusStackHelmValuesDocument: '- a\n- b\n' });
      assert.equal(list.status, 400);
      assert.match(list.text, /MetricsDefinition\.KubePrometheusStackHelmValuesDocument must be a YAML mapping/);
      const grafana = await api(server, 'POST', '/v0/observability-stack-definitions', { Name: 'bad', GrafanaHelmValuesDocument: 'a: 1' });
      assert.equal(grafana.status, 400);
      assert.match(grafana.text, /GrafanaHelmValuesDocument: dashboards need Grafana/);
      const dash = await api(server, 'POST', '/v0/observability-dashboard-definitions', { Name: 'dash' });
      assert.equal(dash.status, 400);
      assert.match(dash.text, /not available on this control plane: dashboards need Grafana/);
      assert.equal((await api(server, 'GET', '/v0/observability-stack-definitions?name=bad')).data.length, 0);

      // ---- a workload that declares the scrape annotation: a host process on loopback -------
      workload = createServer((req, res) => {
        if (req.url === '/custom-metrics') res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end('# TYPE obs_test_workload_up gauge\nobs_test_workload_up 42\n');
        else res.writeHead(404).end();
      });
      await new Promise<void>((r) => workload!.listen(0, '127.0.0.1', r));
      const workloadPort = (workload.address() as { port: number }).port;
      const kube = kubeClusterClient(connectionFromRuntimeInstance(runtime, (v) => server!.store.decrypt(v)));
      await kube.apply({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'scraped',
          namespace: 'default',
          annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(workloadPort), 'prometheus.io/path': '/custom-metrics' },
        },
        spec: { containers: [{ name: 'app', image: 'registry.k8s.io/pause:3.10' }] },
      });

      // ---- the stack ---------------------------------------------------------------------
      const t0 = Date.now();
      const def = await must(server, 'POST', '/v0/observability-stack-definitions', {
        Name: 'stack',
        KubePrometheusStackHelmValuesDocument: 'prometheus:\n  prometheusSpec:\n    scrapeInterval: 2s\n',
      });
      const inst = await must(server, 'POST', '/v0/observability-stack-instances', {
        Name: 'stack',
        ObservabilityStackDefinitionID: def['ID'],
        KubernetesRuntimeInstanceID: kri['ID'],
        // Instance values over the definition's: retention from here, the interval from there.
        KubePrometheusStackHelmValuesDocument: 'prometheus:\n  prometheusSpec:\n    retention: 2d\n',
      });
      const ready = await until('stack instance Healthy with URLs', async () => {
        const o = await get(server!, 'observability-stack-instances', inst['ID']);
        return o?.['Reconciled'] === true && o['Status'] === 'Healthy' && o['PrometheusURL'] && o['LogsURL'] ? o : undefined;
      }, 180_000);
      const prom = String(ready['PrometheusURL']);
      const logs = String(ready['LogsURL']);
      assert.match(prom, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.match(logs, /^http:\/\/127\.0\.0\.1:\d+$/);

      // A second stack on the same runtime: 409, nothing written.
      const second = await api(server, 'POST', '/v0/observability-stack-instances', {
        Name: 'second',
        ObservabilityStackDefinitionID: def['ID'],
        KubernetesRuntimeInstanceID: kri['ID'],
      });
      assert.equal(second.status, 409, second.text);

      // Prometheus scraped the control plane's own /metrics: a threeport series, through its HTTP API.
      const own = await until('threeport series in Prometheus', async () => {
        const r = await promQuery(prom, 'threeport_reconciles_total{job="threeport"}');
        return r.length > 0 ? r : undefined;
      }, 120_000);
      t.diagnostic(`first threeport series ${Date.now() - t0} ms after the stack was created`);
      assert.equal(own[0]!.metric['threeport_runtime'], undefined, 'external labels are not on stored series');
      const up = await promQuery(prom, 'up');
      const jobs = Object.fromEntries(up.map((s) => [s.metric['job'], s.value[1]]));
      assert.equal(jobs['threeport'], '1');
      // The runtime's API server, with the runtime's client certificate.
      await until('API server scraped', async () => ((await promQuery(prom, 'up{job="kubernetes-apiservers"} == 1')).length > 0 ? true : undefined), 60_000);
      assert.ok((await promQuery(prom, 'apiserver_request_total{job="kubernetes-apiservers"}')).length > 0);
      // The annotated pod, found by Kubernetes discovery and scraped on loopback.
      const pod = await until('annotated pod scraped', async () => {
        const r = await promQuery(prom, 'obs_test_workload_up');
        return r.length > 0 ? r : undefined;
      }, 90_000).catch(async (err: unknown) => {
        const targets = await (await fetch(`${prom}/api/v1/targets?state=any`)).text();
        const podState = await kube.get({ apiVersion: 'v1', kind: 'Pod', name: 'scraped', namespace: 'default' });
        const log = readFileSync(join(dataDir, 'observability', `observability-stack-instances-${String(inst['ID'])}`, 'prometheus', 'prometheus.log'), 'utf8');
        throw new Error(`${String(err)}\ntargets: ${targets.slice(0, 4000)}\npod status: ${JSON.stringify(podState?.['status'])}\nprometheus log: ${log.slice(-3000)}`);
      });
      assert.equal(pod[0]!.value[1], '42');
      assert.equal(pod[0]!.metric['pod'], 'scraped');
      assert.equal(pod[0]!.metric['instance'], `127.0.0.1:${workloadPort}`);
      const targets = (await (await fetch(`${prom}/api/v1/targets`)).json()) as { data: { activeTargets: { scrapeUrl: string }[] } };
      for (const target of targets.data.activeTargets) assert.match(target.scrapeUrl, /^https?:\/\/127\.0\.0\.1:/, 'every target is on loopback');
      // The merged values took effect: the definition's interval and the instance's retention.
      const flags = (await (await fetch(`${prom}/api/v1/status/flags`)).json()) as { data: Record<string, string> };
      assert.equal(flags.data['storage.tsdb.retention.time'], '2d');
      const cfg = (await (await fetch(`${prom}/api/v1/status/config`)).json()) as { data: { yaml: string } };
      assert.match(cfg.data.yaml, /scrape_interval: 2s/);

      // ---- logs: a line through Loki's push API, and the shipper's runtime logs ------------
      const marker = `hello-observability-${process.pid}`;
      const push = await fetch(`${logs}/insert/loki/api/v1/push`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ streams: [{ stream: { app: 'obs-test' }, values: [[`${Date.now()}000000`, marker]] }] }),
      });
      assert.ok(push.status < 300, `Loki push answered ${push.status}`);
      const found = await until('pushed line queryable', async () => {
        const r = await logsQuery(logs, `"${marker}"`);
        return r.length > 0 ? r : undefined;
      }, 60_000);
      assert.equal(found[0]!['_msg'], marker);
      assert.equal(found[0]!['app'], 'obs-test');
      const shipped = await until('runtime component logs shipped', async () => {
        const r = await logsQuery(logs, 'threeport_runtime:obs file:~"kube-apiserver"');
        return r.length > 0 ? r : undefined;
      }, 90_000);
      assert.match(String(shipped[0]!['file']), /runtimes\/obs\/logs\/kube-apiserver\.log$/);

      // ---- delete: no process, no directory ------------------------------------------------
      const dir = join(dataDir, 'observability', `observability-stack-instances-${String(inst['ID'])}`);
      assert.ok(existsSync(dir));
      const running = processesUnder(dir);
      // Prometheus, VictoriaLogs, vlagent (and the reaper that watches their directory).
      assert.ok(running.length >= 3, `the stack's processes run under ${dir}: ${JSON.stringify(running)}`);
      await must(server, 'DELETE', `/v0/observability-stack-instances/${String(inst['ID'])}`);
      await until('stack instance gone', async () => ((await get(server!, 'observability-stack-instances', inst['ID'])) === undefined ? true : undefined), 60_000);
      assert.deepEqual(running.filter(processAlive), [], 'no stack process is left');
      assert.equal(existsSync(dir), false, 'the stack directory is removed');
      await assert.rejects(fetch(`${prom}/-/ready`));
    } finally {
      workload?.close();
      await server?.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
);

/** PIDs of processes whose command line names a path under `dir` (the stack's own processes). */
function processesUnder(dir: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes(dir) && !cmd.includes('node')) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function eventNotes(server: RunningServer, objectId: unknown): Promise<string[]> {
  const r = await api(server, 'GET', `/v0/events-join-attached-object-references?objectid=${String(objectId)}&size=100`);
  return r.data.map((e) => `${String(e['Reason'])}: ${String(e['Note'])}`);
}

test(
  'metrics and logging parts alone, optional parts, values errors and real clusters',
  { skip: SKIP_KUBE ? SKIP_KUBE_REASON : SKIP_OBS, timeout: 600_000 },
  async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'threeport-obs-parts-'));
    let server: RunningServer | undefined;
    try {
      server = await startLocalServer(dataDir, { logPath: LOG_PATH });
      const krd = await must(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'parts', InfraProvider: 'kwok' });
      const kri = await must(server, 'POST', '/v0/kubernetes-runtime-instances', { Name: 'parts', Location: 'Local', KubernetesRuntimeDefinitionID: krd['ID'] });
      await until('runtime reconciled', async () => ((await get(server!, 'kubernetes-runtime-instances', kri['ID']))?.['Reconciled'] === true ? true : undefined), 240_000);
      const settled = (plural: string, id: unknown, status: string): Promise<Obj> =>
        until(`${plural} ${String(id)} ${status}`, async () => {
          const o = await get(server!, plural, id);
          return o?.['Status'] === status ? o : undefined;
        }, 180_000);

      // MetricsInstance alone: Prometheus, no log store.
      const md = await must(server, 'POST', '/v0/metrics-definitions', { Name: 'm' });
      const mi = await must(server, 'POST', '/v0/metrics-instances', { Name: 'm', MetricsDefinitionID: md['ID'], KubernetesRuntimeInstanceID: kri['ID'] });
      const metrics = await settled('metrics-instances', mi['ID'], 'Healthy');
      assert.match(String(metrics['PrometheusURL']), /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(metrics['LogsURL'] ?? null, null);
      const ready = await fetch(`${String(metrics['PrometheusURL'])}/-/ready`);
      assert.equal(ready.status, 200);

      // A mapped value that is wrong: Status Error naming the field and key; fixing it recovers.
      const ld = await must(server, 'POST', '/v0/logging-definitions', { Name: 'l' });
      const li = await must(server, 'POST', '/v0/logging-instances', {
        Name: 'l',
        LoggingDefinitionID: ld['ID'],
        KubernetesRuntimeInstanceID: kri['ID'],
        LokiHelmValuesDocument: 'loki:\n  limits_config:\n    retention_period: 1h\n',
      });
      await settled('logging-instances', li['ID'], 'Error');
      const notes = await until('error event', async () => {
        const n = await eventNotes(server!, li['ID']);
        return n.some((x) => x.includes('retention_period')) ? n : undefined;
      });
      assert.ok(notes.some((n) => /LokiHelmValuesDocument: loki\.limits_config\.retention_period must be/.test(n)), notes.join('\n'));
      await must(server, 'PATCH', `/v0/logging-instances/${String(li['ID'])}`, { LokiHelmValuesDocument: 'loki:\n  limits_config:\n    retention_period: 48h\n' });
      const logging = await settled('logging-instances', li['ID'], 'Healthy');
      assert.match(String(logging['LogsURL']), /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(logging['PrometheusURL'] ?? null, null);

      // A stack with MetricsEnabled false: logs only; its ignored values are named.
      const sd = await must(server, 'POST', '/v0/observability-stack-definitions', { Name: 's' });
      const si = await must(server, 'POST', '/v0/observability-stack-instances', {
        Name: 's',
        ObservabilityStackDefinitionID: sd['ID'],
        KubernetesRuntimeInstanceID: kri['ID'],
        MetricsEnabled: false,
        PromtailHelmValuesDocument: 'config:\n  clients: []\n',
      });
      const stack = await settled('observability-stack-instances', si['ID'], 'Healthy');
      assert.equal(stack['PrometheusURL'] ?? null, null);
      assert.match(String(stack['LogsURL']), /^http:\/\/127\.0\.0\.1:\d+$/);
      const stackNotes = await until('events', async () => {
        const n = await eventNotes(server!, si['ID']);
        return n.some((x) => x.startsWith('HelmValuesIgnored')) ? n : undefined;
      });
      assert.ok(stackNotes.some((n) => n.includes('PromtailHelmValues config.clients')), stackNotes.join('\n'));
      assert.ok(stackNotes.some((n) => n.startsWith('DashboardsUnavailable')));

      // A real (registered EKS) cluster: refused clearly, not Reconciling forever.
      const eksDef = await must(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'real', InfraProvider: 'eks', Reconciled: true });
      const eks = await must(server, 'POST', '/v0/kubernetes-runtime-instances', { Name: 'real', Location: 'NorthAmerica:NewYork', KubernetesRuntimeDefinitionID: eksDef['ID'], Reconciled: true });
      const real = await must(server, 'POST', '/v0/observability-stack-instances', { Name: 'real', ObservabilityStackDefinitionID: sd['ID'], KubernetesRuntimeInstanceID: eks['ID'] });
      await settled('observability-stack-instances', real['ID'], 'Error');
      const realNotes = await until('refusal event', async () => {
        const n = await eventNotes(server!, real['ID']);
        return n.some((x) => x.includes('official charts')) ? n : undefined;
      });
      assert.ok(realNotes.some((n) => n.includes('only simulated (kwok) runtimes are served')));

      // A part that a stack uses cannot be deleted: 409 (the stack goes first below).
      await must(server, 'PATCH', `/v0/observability-stack-instances/${String(si['ID'])}`, { MetricsInstanceID: mi['ID'] });
      const inUse = await api(server, 'DELETE', `/v0/metrics-instances/${String(mi['ID'])}`);
      assert.equal(inUse.status, 409, inUse.text);
      assert.ok(await get(server, 'metrics-instances', mi['ID']));

      // Delete everything: nothing left running under the observability directory.
      const root = join(dataDir, 'observability');
      assert.ok(processesUnder(root).length >= 3);
      for (const [plural, id] of [['observability-stack-instances', si['ID']], ['metrics-instances', mi['ID']], ['logging-instances', li['ID']], ['observability-stack-instances', real['ID']]] as const) {
        await must(server, 'DELETE', `/v0/${plural}/${String(id)}`);
        await until(`${plural} ${String(id)} deleted`, async () => ((await get(server!, plural, id)) === undefined ? true : undefined), 60_000);
      }
      assert.deepEqual(processesUnder(root).filter(processAlive), []);
      assert.deepEqual(existsSync(root) ? readdirSync(root) : [], []);
    } finally {
      await server?.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
);
