// End to end: upstream's samples/observability/observability-stack.yaml through our tptctl,
// against a control plane from `tptctl up` with its real controllers, changing only the runtime
// name (the sample names an EKS runtime; ours is the default simulated one). Metrics and logs
// are real (Prometheus, VictoriaLogs and vlagent as host processes); `tptctl get
// observability-stacks` shows the status and URLs; delete leaves no process.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { kubernetesRuntime, observability } from '../../src/kinds/index.js';
import { findSupportPeer } from '../../src/providers/support-peers/binaries.js';
import { upstreamThreeport } from '../harness/upstream-threeport.js';
import { findKubeBinaries, SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';
import type { ThreeportClient } from '../../src/client/api-client.js';
import { eventually, parseTable, TptctlHome } from './tptctl-harness.js';

const CP = 'obs';
const SKIP = SKIP_KUBE ? SKIP_KUBE_REASON : process.env['THREEPORT_SKIP_OBSERVABILITY'] === '1' ? 'THREEPORT_SKIP_OBSERVABILITY=1' : false;

function processesUnder(dir: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir)) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe('upstream observability sample through tptctl', { skip: SKIP, timeout: 600_000 }, () => {
  const t = new TptctlHome();
  let api: ThreeportClient;
  let runtimeName: string;

  before(async () => {
    findSupportPeer('prometheus');
    findSupportPeer('victoria-logs');
    const bins = findKubeBinaries();
    // The throwaway HOME has no build cache: point the control plane at the machine's.
    const cache = process.env['THREEPORT_CACHE_DIR'] ?? join(homedir(), '.cache', 'threeport');
    const up = await t.run(['up', '-n', CP, '--port', '0'], { env: { THREEPORT_K8S_BIN_DIR: bins.dir, THREEPORT_CACHE_DIR: cache }, timeoutMs: 180_000 });
    assert.equal(up.code, 0, `tptctl up failed: ${up.stderr}`);
    api = t.api(CP);
    const kri = await eventually(
      'the default runtime reconciled',
      async () => {
        const [r] = await api.listAll(kubernetesRuntime.KubernetesRuntimeInstance, { DefaultRuntime: true });
        return r?.Reconciled && r.APIEndpoint ? r : undefined;
      },
      240_000,
    );
    runtimeName = kri.Name!;
  });

  after(() => t.cleanup());

  it('creates the stack, shows it with its URLs, scrapes the control plane, takes logs, and deletes it', async () => {
    const sample = readFileSync(join(upstreamThreeport().moduleDir, 'samples', 'observability', 'observability-stack.yaml'), 'utf8');
    assert.match(sample, /Name: eks-remote/);
    const config = join(t.home, 'observability-stack.yaml');
    writeFileSync(config, sample.replace('Name: eks-remote', `Name: ${runtimeName}`));

    const create = await t.run(['create', 'observability-stack', '-c', config]);
    assert.equal(create.code, 0, create.stderr);
    const row = await eventually(
      'tptctl get observability-stacks shows Healthy with URLs',
      async () => {
        const r = await t.run(['get', 'observability-stacks']);
        const rows = parseTable(r.stdout).rows;
        const found = rows.find((x) => x['NAME'] === 'observability');
        return found && found['STATUS'] === 'Healthy' && /^http:\/\/127\.0\.0\.1:\d+$/.test(found['PROMETHEUS URL'] ?? '') ? found : undefined;
      },
      180_000,
    ).catch(async (err: unknown) => {
      const get = await t.run(['get', 'observability-stacks']);
      const describe = await t.run(['describe', 'observability-stack-instance', '-n', 'observability']);
      throw new Error(`${String(err)}\n${get.stdout}${get.stderr}\n${describe.stdout}${describe.stderr}`);
    });
    assert.match(row['LOGS URL'] ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(row['KUBERNETES RUNTIME INSTANCE'], runtimeName);
    const prom = row['PROMETHEUS URL']!;

    // Real metrics: the control plane's own series, through Prometheus' HTTP API.
    await eventually(
      'a threeport series in Prometheus',
      async () => {
        const res = await fetch(`${prom}/api/v1/query?query=${encodeURIComponent('threeport_reconciles_total{job="threeport"}')}`);
        const body = (await res.json()) as { data: { result: unknown[] } };
        return body.data.result.length > 0 ? true : undefined;
      },
      120_000,
    );
    // Real logs: the runtime's kube-apiserver log, shipped by vlagent.
    const logs = row['LOGS URL']!;
    await eventually(
      'runtime logs in the log store',
      async () => {
        const res = await fetch(`${logs}/select/logsql/query`, { method: 'POST', body: new URLSearchParams({ query: 'file:~"kube-apiserver"', limit: '1' }) });
        return (await res.text()).includes('kube-apiserver') ? true : undefined;
      },
      90_000,
    );

    const [inst] = await api.listAll(observability.ObservabilityStackInstance, { Name: 'observability' });
    const dir = join(t.threeportDir, CP, 'observability', `observability-stack-instances-${String(inst!.ID)}`);
    const pids = processesUnder(dir);
    assert.ok(pids.length >= 3, `the stack's processes run under ${dir}`);

    const del = await t.run(['delete', 'observability-stack', '-c', config]);
    assert.equal(del.code, 0, del.stderr);
    await eventually(
      'the stack is gone',
      async () => ((await api.listAll(observability.ObservabilityStackInstance, { Name: 'observability' })).length === 0 ? true : undefined),
      60_000,
    );
    assert.deepEqual(processesUnder(dir), [], 'no stack process is left');
    assert.equal(existsSync(dir), false);
  });
});
