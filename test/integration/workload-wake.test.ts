// A WorkloadInstance created on a runtime that is still starting waits for it as a reaction:
// the real server (API + controllers, embedded PostgreSQL) with a real kwok runtime. The
// instance's wait is a backstop requeue (no poll runs it while the runtime starts), and the
// runtime's Reconciled write wakes it through the declared watch (src/controllers/graph.ts).
import assert from 'node:assert/strict';
import test from 'node:test';
import { WorkloadDefinition } from '../../src/kinds/workload.js';
import { QUEUE_TABLE } from '../../src/store/schema.js';
import { WATCH_BACKSTOP_MS } from '../../src/reconcile/watches.js';
import type { Settlement } from '../../src/reconcile/types.js';
import { SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';
import { must, startControlPlane, status, until, type ControlPlane } from './workload-helpers.js';

const YAML_DOC = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec: { containers: [{ name: web, image: nginx }] }
`;

test('a workload waiting for its runtime is woken when the runtime becomes ready, with no poll', { skip: SKIP_KUBE ? SKIP_KUBE_REASON : false, timeout: 600_000 }, async () => {
  const settled: Array<Settlement & { at: number }> = [];
  const cp: ControlPlane = await startControlPlane({ onSettled: (s) => settled.push({ ...s, at: Date.now() }) });
  try {
    const server = cp.server;
    const wd = await must(server, 'POST', '/v0/workload-definitions', { Name: 'web', YAMLDocument: YAML_DOC });
    await until('WorkloadDefinition Reconciled', async () => ((await server.store.getObject(WorkloadDefinition, Number(wd['ID'])))['Reconciled'] === true ? true : undefined), 60_000);
    const krd = await must(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'kwok-wake', InfraProvider: 'kwok' });
    const kri = await must(server, 'POST', '/v0/kubernetes-runtime-instances', { Name: 'wake', Location: 'Local', KubernetesRuntimeDefinitionID: krd['ID'] });
    const wi = await must(server, 'POST', '/v0/workload-instances', {
      Name: 'web-1',
      WorkloadDefinitionID: wd['ID'],
      KubernetesRuntimeInstanceID: kri['ID'],
    });
    const wiId = Number(wi['ID']);
    const kriId = Number(kri['ID']);
    const ofWi = () => settled.filter((s) => s.kind === 'WorkloadInstance' && s.id === wiId);
    const runtimeReady = () => settled.find((s) => s.kind === 'KubernetesRuntimeInstance' && s.id === kriId && s.outcome === 'reconciled');

    await until('the instance to wait for its runtime', async () => (ofWi().some((s) => s.outcome === 'requeued') ? true : undefined), 120_000);
    if (!runtimeReady()) {
      // Still starting: the waiting row is due only at the backstop, with no failed attempts.
      const row = (
        await server.store.db.query<{ attempts: number; ms: number }>(
          `SELECT attempts, (extract(epoch FROM not_before - now()) * 1000)::float8 AS ms FROM ${QUEUE_TABLE} WHERE kind = 'WorkloadInstance' AND object_id = $1`,
          [wiId],
        )
      ).rows[0];
      if (!runtimeReady() && row) {
        assert.equal(row.attempts, 0);
        assert.ok(row.ms > WATCH_BACKSTOP_MS / 2, `the wait is a backstop, not a poll (due in ${Math.round(row.ms)} ms)`);
      }
    }
    const ready = await until('the runtime Reconciled', async () => runtimeReady(), 300_000);
    const runsBefore = ofWi().filter((s) => s.at - s.durationMs <= ready.at);
    // One wait per reason (definition, runtime); a poll every 1–10 s over the runtime's start-up would be many.
    assert.ok(runsBefore.every((s) => s.outcome === 'requeued'), JSON.stringify(runsBefore));
    assert.ok(runsBefore.length <= 2, `the waiting instance ran ${runsBefore.length} times while its runtime started`);
    const woken = await until('the instance to run after the runtime is ready', async () => ofWi().find((s) => s.at - s.durationMs > ready.at), 120_000);
    console.log(`# woken ${Math.round(woken.at - woken.durationMs - ready.at)} ms after the runtime's Reconciled commit (${runsBefore.length} wait(s) before)`);
    assert.equal(woken.attempt, 1, 'a wake-up, not a retry');
    await status(server, wiId, 'Healthy', 180_000);
  } finally {
    await cp.close();
  }
});
