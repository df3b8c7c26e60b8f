// The dashboard in a real browser: Debian's chromium, driven by playwright-core, against a real
// `threeport server` started by `tptctl up` (embedded PostgreSQL, mutual TLS, real controllers, a
// simulated kwok cluster as the default runtime), reached through `tptctl dashboard`, the proxy a
// user runs. Every test saves a screenshot under test-artefacts/dashboard/. The proxy's refusals,
// the not-found page and the unreachable banner are in dashboard-proxy.test.ts.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { kubernetesRuntime, workload } from '../../src/kinds/index.js';
import { launchBrowser, shot, startDashboardCommand } from './browser.js';
import { findKubeBinaries } from '../../src/providers/runtimes/kwok/binaries.js';
import { until } from '../harness/until.js';
import { ROOT, TptctlHome } from '../e2e/tptctl-harness.js';

const SLOW = 240_000;

/** The kube-apiserver processes of this test's simulated clusters (their command lines name our temp HOME). */
function kubeApiServers(home: string): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
        return cmd.split('\0')[0]!.endsWith('kube-apiserver') && cmd.includes(home);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('dashboard', { timeout: 900_000 }, () => {
  const t = new TptctlHome();
  let proxy: ChildProcess | undefined;
  let url = '';
  let browser: Browser | undefined;
  let page: Page;
  const stopped: number[] = [];

  before(async () => {
    // The simulated cluster's binaries are in the real HOME's cache; tptctl runs with a throwaway HOME.
    const up = await t.run(['up', '-n', 'dash', '--port', '0'], { timeoutMs: SLOW, env: { THREEPORT_K8S_BIN_DIR: findKubeBinaries().dir } });
    assert.equal(up.code, 0, up.stderr);
    const created = await t.run(['create', 'workload', '-c', join(ROOT, 'samples/workload/wordpress-workload-local.yaml')], { cwd: ROOT });
    assert.equal(created.code, 0, created.stderr);
    const started = await startDashboardCommand(t);
    proxy = started.child;
    url = started.url;
    browser = await launchBrowser();
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  });

  after(async () => {
    for (const pid of stopped) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* gone */
      }
    }
    await browser?.close();
    proxy?.kill('SIGTERM');
    await t.cleanup();
  });

  it("shows the quick start's app Healthy", { timeout: SLOW }, async () => {
    await page.goto(url);
    const row = page.locator('.row[data-app="wordpress"]');
    await row.waitFor({ timeout: 30_000 });
    await page.locator('.row[data-app="wordpress"][data-status="Healthy"]').waitFor({ timeout: 200_000 });
    assert.match(await row.innerText(), /Healthy/);
    assert.match(await page.locator('.counts').innerText(), /Healthy\s*1/);
    await shot(page, 'apps-healthy');
  });

  it("draws the app's graph with its runtime node", async () => {
    await page.locator('.row[data-app="wordpress"]').focus();
    await page.keyboard.press('Enter');
    const runtime = page.locator('.node[data-key^="KubernetesRuntimeInstance:"]');
    await runtime.waitFor({ timeout: 30_000 });
    assert.match((await runtime.getAttribute('aria-label')) ?? '', /KubernetesRuntimeInstance threeport-dash/);
    await page.locator('.node[data-key^="WorkloadDefinition:"]').waitFor();
    await page.locator('.node[data-key^="KubernetesRuntimeDefinition:"]').waitFor();
    await shot(page, 'app-graph');
  });

  it('shows the topology: the control plane, its runtime and the apps on it', async () => {
    await page.getByRole('link', { name: 'Topology' }).click();
    await page.locator('.node[data-key="cp"]').waitFor({ timeout: 30_000 });
    const runtime = page.locator('.node[data-key^="KubernetesRuntimeInstance:"]');
    assert.match((await runtime.getAttribute('aria-label')) ?? '', /runtime · kwok · default threeport-dash/);
    assert.match((await page.locator('.node[data-key^="WorkloadInstance:"]').getAttribute('aria-label')) ?? '', /Workload wordpress: Healthy/);
    await shot(page, 'topology');
  });

  it('shows a workload created with tptctl without a reload', { timeout: SLOW }, async () => {
    await page.goto(url);
    await page.locator('.row[data-app="wordpress"]').waitFor();
    await page.evaluate(() => ((globalThis as unknown as { marker: number }).marker = 42));
    const dir = join(t.home, 'second');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'manifest.yaml'), readFileSync(join(ROOT, 'samples/workload/wordpress-manifest-local.yaml'), 'utf8').replaceAll('wordpress', 'blog'));
    writeFileSync(join(dir, 'workload.yaml'), 'Workload:\n  Name: "blog"\n  YAMLDocument: "manifest.yaml"\n');
    const created = await t.run(['create', 'workload', '-c', join(dir, 'workload.yaml')], { cwd: dir });
    assert.equal(created.code, 0, created.stderr);
    await page.locator('.row[data-app="blog"]').waitFor({ timeout: 30_000 });
    assert.equal(await page.evaluate(() => (globalThis as unknown as { marker?: number }).marker), 42, 'the page was not reloaded');
    await page.locator('.row[data-app="blog"][data-status="Healthy"]').waitFor({ timeout: 200_000 });
    await shot(page, 'apps-created-live');
  });

  it("turns the apps' nodes red while their runtime is stopped out of band, and they recover", { timeout: SLOW }, async () => {
    const id = (await t.api('dash').findByName(workload.WorkloadInstance, 'wordpress'))!.ID;
    await page.goto(`${url}#/graph/WorkloadInstance/${id}`);
    const app = page.locator(`.node[data-key="WorkloadInstance:${id}"]`);
    await page.locator(`.node[data-key="WorkloadInstance:${id}"][data-status="Healthy"]`).waitFor({ timeout: 30_000 });
    const pids = kubeApiServers(t.home);
    assert.ok(pids.length > 0, 'the simulated cluster has a kube-apiserver process');
    for (const pid of pids) {
      process.kill(pid, 'SIGSTOP');
      stopped.push(pid);
    }
    try {
      await page.locator(`.node[data-key="WorkloadInstance:${id}"][data-status="Unreachable"]`).waitFor({ timeout: 60_000 });
      await page.locator('.node[data-key^="KubernetesRuntimeInstance:"][data-status="Unreachable"]').waitFor();
      assert.match((await app.getAttribute('aria-label')) ?? '', /Unreachable \(runtime unreachable; last status Healthy\)/);
      assert.equal(await app.locator('rect').evaluate((r) => (globalThis as unknown as { getComputedStyle(e: unknown): { stroke: string } }).getComputedStyle(r).stroke), 'rgb(180, 35, 24)', 'drawn red');
      await shot(page, 'runtime-stopped');
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGCONT');
      stopped.length = 0;
    }
    await page.locator(`.node[data-key="WorkloadInstance:${id}"][data-status="Healthy"]`).waitFor({ timeout: 60_000 });
    await shot(page, 'runtime-recovered');
  });

  it('deletes an app from the page after confirming the ordered list', { timeout: SLOW }, async () => {
    const api = t.api('dash');
    const blog = (await api.findByName(workload.WorkloadInstance, 'blog'))!;
    await page.goto(`${url}#/graph/WorkloadInstance/${blog.ID}`);
    await page.getByRole('button', { name: 'Delete app…' }).click();
    const dialog = page.locator('dialog.confirm');
    await dialog.waitFor();
    const steps = await dialog.locator('ol.plan li').allInnerTexts();
    assert.equal(steps.length, 1);
    assert.match(steps[0]!, /WorkloadInstance blog — the app itself/);
    await shot(page, 'delete-confirm');
    await dialog.getByRole('button', { name: 'Delete 1 object' }).click();
    await until('blog gone from the API', async () => ((await api.findByName(workload.WorkloadInstance, 'blog')) ? undefined : true), 180_000);
    await page.waitForURL(/#\/apps$/, { timeout: 30_000 });
    await page.locator('.row[data-app="wordpress"]').waitFor();
    assert.equal(await page.locator('.row[data-app="blog"]').count(), 0);
    await shot(page, 'deleted');
  });

  it('shows the object detail without secrets, with events and live resources', async () => {
    const api = t.api('dash');
    const wp = (await api.findByName(workload.WorkloadInstance, 'wordpress'))!;
    await page.goto(`${url}#/object/WorkloadInstance/${wp.ID}`);
    await page.getByRole('heading', { name: 'Kubernetes resources' }).waitFor({ timeout: 30_000 });
    assert.match(await page.locator('table.resources').innerText(), /Deployment/);
    assert.ok((await page.locator('ol.timeline li').count()) > 0, 'events are shown');
    await shot(page, 'workload-detail');
    const runtime = (await api.listAll(kubernetesRuntime.KubernetesRuntimeInstance, {}))[0]!;
    await page.goto(`${url}#/object/KubernetesRuntimeInstance/${runtime.ID}`);
    await page.locator('dl.fields').waitFor();
    const fields = await page.locator('dl.fields').innerText();
    assert.match(fields, /CertificateKey\s*\(hidden\)/);
    assert.doesNotMatch(fields, /PRIVATE KEY/);
    await shot(page, 'object-detail');
  });
});
