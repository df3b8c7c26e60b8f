// bench/child-control-plane: what a child control plane on a simulated (kwok) runtime costs.
//
// An in-process parent `threeport server` (API + controllers, embedded PostgreSQL) runs one kwok
// runtime; then, --rounds times, a ControlPlaneInstance (AuthEnabled, OnboardParent) is created
// on it and measured:
//  1. create → the child's /readyz answers 200 (over mutual TLS, with the child's own certificates);
//  2. create → the instance is Reconciled (child registered with its parent and onboarded);
//  3. RSS of the child's process group (its threeport server and its embedded PostgreSQL), once
//     ready and after --settle seconds, and of the server process alone;
//  4. delete → the instance is gone (child stopped, data removed).
// Prints medians.
//
//   npm run build && node dist/bench/child-control-plane.js [--rounds 3] [--settle 10]
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { RunningServer } from '../src/server.js';
import { startLocalServer } from '../test/harness/local-server.js';
import { clusterNameFor } from '../src/providers/runtimes/kwok/runtimes.js';
import { median } from './lib/load.js';
import { groupRssBytes, rssBytes } from './lib/proc.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    settle: { type: 'string', default: '10' },
  },
});
const ROUNDS = Number(values.rounds);
const SETTLE_S = Number(values.settle);
const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Obj = Record<string, unknown>;

async function call(s: RunningServer, method: string, path: string, body?: unknown): Promise<{ status: number; data: Obj[] }> {
  const res = await fetch(`${s.url}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const parsed = (await res.json()) as { Data: Obj[] | null };
  return { status: res.status, data: parsed.Data ?? [] };
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs: number, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await Promise.resolve(check()).catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

function readyz(port: number, dir: string): Promise<boolean> {
  const pki = join(dir, 'pki');
  if (!['ca.crt', 'client.crt', 'client.key'].every((f) => existsSync(join(pki, f)))) return Promise.resolve(false);
  const tls = { ca: readFileSync(join(pki, 'ca.crt')), cert: readFileSync(join(pki, 'client.crt')), key: readFileSync(join(pki, 'client.key')) };
  return new Promise((resolve) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/readyz', ...tls, agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
    req.end();
  });
}


const dataDir = mkdtempSync(join(tmpdir(), 'tp-bcp-'));
const server = await startLocalServer(dataDir, { logLevel: 'warn', logPath: join(tmpdir(), `threeport-bench-child-cp-${process.pid}.log`) });
try {
  const krd = (await call(server, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'local', InfraProvider: 'kwok' })).data[0]!;
  const kri = (await call(server, 'POST', '/v0/kubernetes-runtime-instances', { Name: 'bench', Location: 'Local', KubernetesRuntimeDefinitionID: krd['ID'] })).data[0]!;
  await waitFor('runtime Reconciled', async () => ((await call(server, 'GET', `/v0/kubernetes-runtime-instances/${String(kri['ID'])}`)).data[0]?.['Reconciled'] === true ? true : undefined), 300_000, 250);
  const cpd = (await call(server, 'POST', '/v0/control-plane-definitions', { Name: 'bench-child', AuthEnabled: true, OnboardParent: true })).data[0]!;
  await waitFor('definition Reconciled', async () => ((await call(server, 'GET', `/v0/control-plane-definitions/${String(cpd['ID'])}`)).data[0]?.['Reconciled'] === true ? true : undefined), 60_000);

  const toReady: number[] = [];
  const toReconciled: number[] = [];
  const rssReady: number[] = [];
  const rssServer: number[] = [];
  const toDeleted: number[] = [];
  let rssSettled = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    const created = await call(server, 'POST', '/v0/control-plane-instances', {
      Name: `child-${i}`,
      Namespace: `child-${i}`,
      KubernetesRuntimeInstanceID: kri['ID'],
      ControlPlaneDefinitionID: cpd['ID'],
    });
    if (created.status !== 201) throw new Error(`create failed: HTTP ${created.status}`);
    const id = created.data[0]!['ID'] as number;
    const dir = join(dataDir, 'runtimes', clusterNameFor('bench'), `cp-${id}`);
    const state = await waitFor('child.json', () => {
      try {
        return JSON.parse(readFileSync(join(dir, 'child.json'), 'utf8')) as { port: number; pid: number };
      } catch {
        return undefined;
      }
    }, 120_000, 20);
    await waitFor('child /readyz', async () => ((await readyz(state.port, dir)) ? true : undefined), 180_000, 20);
    toReady.push(performance.now() - t0);
    rssReady.push(groupRssBytes(state.pid));
    rssServer.push(rssBytes(state.pid) ?? 0);
    await waitFor('instance Reconciled', async () => ((await call(server, 'GET', `/v0/control-plane-instances/${id}`)).data[0]?.['Reconciled'] === true ? true : undefined), 180_000);
    toReconciled.push(performance.now() - t0);
    if (i === ROUNDS - 1 && SETTLE_S > 0) {
      await sleep(SETTLE_S * 1000);
      rssSettled = groupRssBytes(state.pid);
    }
    const t1 = performance.now();
    await call(server, 'DELETE', `/v0/control-plane-instances/${id}`);
    await waitFor('instance gone', async () => ((await call(server, 'GET', `/v0/control-plane-instances/${id}`)).status === 404 ? true : undefined), 120_000);
    toDeleted.push(performance.now() - t1);
    process.stdout.write(`round ${i + 1}: readyz ${sec(toReady.at(-1)!)}, reconciled ${sec(toReconciled.at(-1)!)}, rss ${mib(rssReady.at(-1)!)} (server ${mib(rssServer.at(-1)!)}), delete ${sec(toDeleted.at(-1)!)}\n`);
  }
  process.stdout.write(
    [
      `child control plane on a kwok runtime, ${ROUNDS} rounds (medians):`,
      `  create → child /readyz:        ${sec(median(toReady))}`,
      `  create → instance Reconciled:  ${sec(median(toReconciled))} (registered and onboarded)`,
      `  child RSS when ready:          ${mib(median(rssReady))} (threeport server ${mib(median(rssServer))}, the rest its PostgreSQL)`,
      ...(SETTLE_S > 0 ? [`  child RSS after ${SETTLE_S} s:          ${mib(rssSettled)}`] : []),
      `  delete → instance gone:        ${sec(median(toDeleted))}`,
      '',
    ].join('\n'),
  );
} finally {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
}
