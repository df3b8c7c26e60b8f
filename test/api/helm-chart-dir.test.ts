// Issue 16.4: HelmWorkloadDefinition.Repo names a local directory only under the server's
// --helm-chart-dir; anything else on the server's disk is a 400 and nothing is written.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { call, startTestApi, type TestApi } from '../harness/api-server.js';

describe('local chart directories', () => {
  const root = mkdtempSync(join(tmpdir(), 'threeport-charts-'));
  const charts = join(root, 'charts');
  let limited: TestApi;
  let open: TestApi;
  before(async () => {
    mkdirSync(join(charts, 'web'), { recursive: true });
    mkdirSync(join(root, 'private'));
    symlinkSync(join(root, 'private'), join(charts, 'escape'));
    limited = await startTestApi('embedded', { helmChartDir: charts });
    open = await startTestApi('embedded');
  });
  after(async () => {
    await limited?.stop();
    await open?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const count = async (api: TestApi) =>
    ((await api.server.db.query('SELECT count(*)::int AS n FROM v0_helm_workload_definitions')).rows[0] as { n: number }).n;

  test('under --helm-chart-dir is accepted; outside it, .. and symlinks out are 400', async () => {
    for (const repo of [charts, join(charts, 'web'), `file://${join(charts, 'web')}`, 'https://charts.example.com', 'oci://registry.example.com/charts']) {
      const res = await call(limited, 'POST', '/v0/helm-workload-definitions', { Name: `ok-${Math.random()}`, Repo: repo, Chart: 'web' });
      assert.equal(res.status, 201, `${repo}: ${res.text}`);
    }
    const before = await count(limited);
    for (const repo of ['/etc', join(charts, '..', 'private'), join(charts, 'escape'), 'web', '../private', 'file:///etc']) {
      const res = await call(limited, 'POST', '/v0/helm-workload-definitions', { Name: 'bad', Repo: repo, Chart: 'web' });
      assert.equal(res.status, 400, `${repo}: ${res.text}`);
      assert.match(res.body.Status.error, /^field HelmWorkloadDefinition\.Repo ".*" is outside the server's chart directory; local charts must be under /);
    }
    const def = await call(limited, 'POST', '/v0/helm-workload-definitions', { Name: 'patch-me', Repo: 'https://charts.example.com', Chart: 'web' });
    const patched = await call(limited, 'PATCH', `/v0/helm-workload-definitions/${def.body.Data![0]!['ID']}`, { Repo: '/etc' });
    assert.equal(patched.status, 400);
    assert.equal(await count(limited), before + 1);
  });

  test('without --helm-chart-dir no local directory is accepted', async () => {
    const before = await count(open);
    const res = await call(open, 'POST', '/v0/helm-workload-definitions', { Name: 'local', Repo: '/tmp', Chart: 'web' });
    assert.equal(res.status, 400);
    assert.match(res.body.Status.error, /is a local directory, and this server accepts none \(start it with --helm-chart-dir/);
    assert.equal(await count(open), before);
    assert.equal((await call(open, 'POST', '/v0/helm-workload-definitions', { Name: 'remote', Repo: 'oci://r.example.com/c', Chart: 'web' })).status, 201);
  });
});
