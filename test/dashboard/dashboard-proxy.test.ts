// The dashboard proxy and the page's error states in a real browser, against a control plane
// started by `tptctl up --no-local-runtime` (mutual TLS, embedded PostgreSQL, real controllers; no
// simulated cluster needed): a foreign Host header and a write without the session token are
// refused, an unknown ID gets the not-found page, an unreachable control plane gets the banner,
// and `tptctl dashboard` with no control plane is a clear CLI error.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { TptctlHome } from '../e2e/tptctl-harness.js';
import { launchBrowser, raw, shot, startDashboardCommand } from './browser.js';

describe('dashboard proxy', { timeout: 300_000 }, () => {
  const t = new TptctlHome();
  let proxy: ChildProcess | undefined;
  let url = '';
  let port = 0;
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    const up = await t.run(['up', '-n', 'dashproxy', '--port', '0', '--no-local-runtime'], { timeoutMs: 180_000 });
    assert.equal(up.code, 0, up.stderr);
    ({ child: proxy, url, port } = await startDashboardCommand(t));
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  });

  after(async () => {
    await browser?.close();
    proxy?.kill('SIGTERM');
    await t.cleanup();
  });

  it('the proxy refuses a foreign Host header and writes without the session token', async () => {
    const foreign = await raw(port, 'GET', '/dashboard/api/apps', { host: `evil.test:${port}` });
    assert.equal(foreign.status, 403);
    assert.match(foreign.body, /is not this proxy's address/);
    const noToken = await raw(port, 'DELETE', '/v0/workload-instances/987654321', { host: `127.0.0.1:${port}` });
    assert.equal(noToken.status, 403);
    assert.match(noToken.body, /needs the session token/);
    const token = (JSON.parse((await raw(port, 'GET', '/dashboard/session', { host: `127.0.0.1:${port}` })).body) as { token: string }).token;
    const withToken = await raw(port, 'DELETE', '/v0/workload-instances/987654321', { host: `127.0.0.1:${port}`, 'x-threeport-session': token });
    assert.equal(withToken.status, 404, 'with the token the request reaches the control plane');
    // In the browser: a rebinding name that resolves to the proxy gets nothing.
    await page.goto(`http://evil.test:${port}/dashboard/`);
    assert.match(await page.locator('body').innerText(), /is not this proxy's address/);
    await shot(page, 'proxy-foreign-host');
  });

  it('tptctl dashboard with no current control plane is a clear CLI error', async () => {
    const empty = new TptctlHome();
    try {
      const r = await empty.run(['dashboard']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no control plane is configured in .*config\.yaml: start one with "tptctl up -n <name>"/);
    } finally {
      await empty.cleanup();
    }
  });

  it('shows a not-found page for an unknown ID', async () => {
    await page.goto(`${url}#/object/WorkloadInstance/987654321`);
    await page.getByRole('heading', { name: 'Not found' }).waitFor();
    assert.match(await page.locator('.notfound').innerText(), /There is no WorkloadInstance with ID 987654321/);
    await shot(page, 'not-found');
  });

  // Last: it restarts the control plane.
  it('shows a banner while the control plane is unreachable, retries, and recovers when it is back', async () => {
    await page.goto(url);
    await page.getByRole('heading', { name: /^Apps/ }).waitFor({ timeout: 20_000 });
    const apiPort = new URL(`https://${t.controlPlane('dashproxy')!.APIServer!}`).port;
    const down = await t.run(['down', '-n', 'dashproxy', '--keep-data']);
    assert.equal(down.code, 0, down.stderr);
    const banner = page.getByRole('alert');
    await banner.waitFor({ timeout: 30_000 });
    assert.match(await banner.innerText(), /Control plane unreachable\..*Retrying every 2 seconds/s);
    assert.match(await page.locator('.live').innerText(), /Reconnecting/);
    await shot(page, 'unreachable-banner');
    const up = await t.run(['up', '-n', 'dashproxy', '--port', apiPort, '--no-local-runtime'], { timeoutMs: 180_000 });
    assert.equal(up.code, 0, up.stderr);
    await banner.waitFor({ state: 'detached', timeout: 60_000 });
    await page.locator('.live', { hasText: 'Live' }).waitFor({ timeout: 30_000 });
    await shot(page, 'unreachable-recovered');
  });
});
