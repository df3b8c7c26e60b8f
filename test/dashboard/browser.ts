// What the dashboard's browser tests share: Debian's chromium through playwright-core, screenshots
// under test-artefacts/dashboard/, starting `tptctl dashboard` and reading the URL it prints.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ROOT, TPTCTL, type TptctlHome } from '../e2e/tptctl-harness.js';

export const CHROMIUM = process.env['THREEPORT_CHROMIUM'] ?? '/usr/bin/chromium';
/** The flags the machine needs (../shared/notes/environment.md). */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
export const ARTEFACTS = join(ROOT, 'test-artefacts', 'dashboard');

/** evil.test resolves to 127.0.0.1 in this browser, as a DNS-rebinding attacker's name would. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, '--host-resolver-rules=MAP evil.test 127.0.0.1'] });
}

export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(ARTEFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTEFACTS, `${name}.png`), fullPage: true });
}

/** Runs `tptctl dashboard --port 0` in the test's HOME; resolves with the URL it prints. */
export async function startDashboardCommand(t: TptctlHome): Promise<{ child: ChildProcess; url: string; port: number }> {
  const child = spawn(process.execPath, [TPTCTL, 'dashboard', '--port', '0'], { env: t.env(), stdio: ['ignore', 'pipe', 'pipe'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /http:\/\/127\.0\.0\.1:\d+\/dashboard\//.exec(out);
      if (m) resolve(m[0]);
    });
    child.once('exit', (code) => reject(new Error(`tptctl dashboard exited with ${code}: ${out}`)));
  });
  return { child, url, port: Number(new URL(url).port) };
}

/** A raw HTTP request with any Host header (fetch will not send a foreign one). */
export function raw(port: number, method: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
