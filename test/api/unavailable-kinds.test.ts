// Kinds with no controller in this build (KindInput.unavailable): a write that would wait for a
// reconcile is a 400 with the declared reason and stores nothing; registering an existing thing
// (Reconciled: true) works, and such an object deletes in one phase.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { call, startTestApi, type TestApi } from '../harness/api-server.js';
import { KINDS } from '../../src/kinds/index.js';

describe('unavailable kinds', () => {
  let api: TestApi;
  before(async () => {
    api = await startTestApi('embedded');
  });
  after(async () => {
    await api?.stop();
  });

  test('a create that asks for a reconcile is refused with the reason; nothing is stored', async () => {
    const dashboard = KINDS.find((k) => k.name === 'ObservabilityDashboardInstance')!;
    assert.ok(dashboard.unavailable, 'ObservabilityDashboardInstance has no controller yet');
    const refs = { ObservabilityDashboardDefinitionID: 1, KubernetesRuntimeInstanceID: 1 };
    for (const body of [{ Name: 'dash' }, { Name: 'dash', Reconciled: false }]) {
      const res = await call(api, 'POST', '/v0/observability-dashboard-instances', { ...body, ...refs });
      assert.equal(res.status, 400, res.text);
      assert.equal(res.body.Status.error, `ObservabilityDashboardInstance is not available on this control plane: ${dashboard.unavailable}`);
    }
    assert.equal((await call(api, 'GET', '/v0/observability-dashboard-instances')).body.Meta.TotalCount, 0);
  });

  test('registration with Reconciled: true works; asking for a reconcile later is refused; delete is immediate', async () => {
    const created = await call(api, 'POST', '/v0/observability-dashboard-definitions', { Name: 'existing', Reconciled: true });
    assert.equal(created.status, 201, created.text);
    const id = created.body.Data![0]!['ID'];
    const ask = await call(api, 'PATCH', `/v0/observability-dashboard-definitions/${id}`, { Reconciled: false });
    assert.equal(ask.status, 400, ask.text);
    assert.match(ask.body.Status.error, /^ObservabilityDashboardDefinition is not available on this control plane: /);
    const rename = await call(api, 'PATCH', `/v0/observability-dashboard-definitions/${id}`, { GrafanaHelmChartVersion: '1.2.3' });
    assert.equal(rename.status, 200, rename.text);
    assert.equal(rename.body.Data![0]!['Reconciled'], true);
    const put = await call(api, 'PUT', `/v0/observability-dashboard-definitions/${id}`, { Name: 'existing' });
    assert.equal(put.status, 400, 'a PUT without Reconciled: true would ask for a reconcile');
    const del = await call(api, 'DELETE', `/v0/observability-dashboard-definitions/${id}`);
    assert.equal(del.status, 200, del.text);
    assert.equal((await call(api, 'GET', `/v0/observability-dashboard-definitions/${id}`)).status, 404, 'gone in one phase');
  });
});
