// bench/dashboard: the dashboard against a real `threeport server` child process (--role api,
// --no-auth, embedded PostgreSQL) holding N apps (WorkloadInstances on one runtime).
//  1. Apps view: time from navigation until the view has rendered its rows and the count of all
//     N apps, in Debian's chromium (playwright-core), over several fresh pages.
//  2. Fan-out: C event-stream clients connected; status changes (PATCH Status of a different app
//     each time) paced at R per second; for each change and client the time from sending the
//     PATCH until that client has the change event.
//  3. The server's extra RSS (VmRSS of the server process) with the C clients connected.
// Prints medians (and p99 for the fan-out), and the gzipped size of the page's initial JavaScript.
//
//   npm run build && node dist/bench/dashboard.js [--apps 1000] [--clients 50] [--rate 100] [--seconds 5] [--runs 5]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { spawnServer } from '../test/harness/server-process.js';
import { BUNDLE_DIR } from '../src/dashboard/routes.js';

const { values } = parseArgs({
  options: {
    apps: { type: 'string', default: '1000' },
    clients: { type: 'string', default: '50' },
    rate: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '5' },
    runs: { type: 'string', default: '5' },
  },
});
const APPS = Number(values.apps);
const CLIENTS = Number(values.clients);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const RUNS = Number(values.runs);
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
};
const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

async function call(base: string, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${base}${path}`, { method, ...(body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) });
  const parsed = (await res.json()) as { Data?: Array<Record<string, unknown>>; Status?: { error?: string } };
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${parsed.Status?.error}`);
  return parsed.Data?.[0] ?? {};
}

/** One event-stream client; calls `onChange(id)` for every change event. */
function streamClient(base: string, onChange: (id: number) => void): Promise<http.ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${base}/dashboard/api/events`, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buf += chunk;
        let at;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, at);
          buf = buf.slice(at + 2);
          if (frame.includes('event: change')) {
            const m = /"id":(\d+)/.exec(frame);
            if (m) onChange(Number(m[1]));
          }
          if (frame.includes('event: hello')) resolve(req);
        }
      });
    });
    req.on('error', reject);
  });
}

const dataDir = mkdtempSync(join(tmpdir(), 'threeport-bench-dashboard-'));
const server = await spawnServer(['--role', 'api', '--no-auth', '--port', '0', '--data-dir', dataDir]);
const base = server.url;
try {
  // Fixtures: one runtime, one definition, N apps.
  const krd = await call(base, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'bench', InfraProvider: 'kwok' });
  const kri = await call(base, 'POST', '/v0/kubernetes-runtime-instances', { Name: 'bench', Location: 'Local', KubernetesRuntimeDefinitionID: krd['ID'] });
  const wd = await call(base, 'POST', '/v0/workload-definitions', {
    Name: 'bench',
    YAMLDocument: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench\ndata:\n  a: b\n',
  });
  const t0 = performance.now();
  const ids: number[] = [];
  for (let i = 0; i < APPS; i += 25) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(25, APPS - i) }, (_, j) =>
        call(base, 'POST', '/v0/workload-instances', {
          Name: `app-${String(i + j).padStart(4, '0')}`,
          KubernetesRuntimeInstanceID: kri['ID'],
          WorkloadDefinitionID: wd['ID'],
          Status: ['Healthy', 'Healthy', 'Healthy', 'Reconciling', 'Down'][(i + j) % 5],
        }),
      ),
    );
    ids.push(...batch.map((o) => Number(o['ID'])));
  }
  console.log(`fixtures: ${APPS} apps created in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // 1. Apps view render time.
  const browser = await chromium.launch({ executablePath: process.env['THREEPORT_CHROMIUM'] ?? '/usr/bin/chromium', args: CHROMIUM_ARGS });
  const renders: number[] = [];
  try {
    for (let run = 0; run < RUNS; run++) {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const started = performance.now();
      await page.goto(`${base}/dashboard/#/apps`);
      await page.waitForFunction((n) => {
        const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): { length: number }; querySelector(s: string): { textContent: string | null } | null } }).document;
        return doc.querySelectorAll('.row').length > 0 && (doc.querySelector('#apps-title')?.textContent ?? '').includes(`(${n})`);
      }, APPS);
      renders.push(performance.now() - started);
      await page.close();
    }
  } finally {
    await browser.close();
  }

  // 2 and 3. Fan-out and RSS.
  const before = rssKb(server.child.pid!);
  const sentAt = new Map<number, number>();
  const latencies: number[] = [];
  const acks: number[] = [];
  let received = 0;
  const clients = await Promise.all(
    Array.from({ length: CLIENTS }, () =>
      streamClient(base, (id) => {
        const s = sentAt.get(id);
        if (s !== undefined) {
          latencies.push(performance.now() - s);
          received++;
        }
      }),
    ),
  );
  await new Promise((r) => setTimeout(r, 500));
  const connected = rssKb(server.child.pid!);
  const total = RATE * SECONDS;
  const start = performance.now();
  const writes: Promise<unknown>[] = [];
  for (let i = 0; i < total; i++) {
    // A paced producer: change i goes out at start + i/RATE seconds.
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const id = ids[i % ids.length]!;
    const sent = performance.now();
    sentAt.set(id, sent);
    writes.push(call(base, 'PATCH', `/v0/workload-instances/${id}`, { Status: i % 2 ? 'Healthy' : 'Down' }).then(() => acks.push(performance.now() - sent)));
  }
  await Promise.all(writes);
  const deadline = Date.now() + 15_000;
  while (received < total * CLIENTS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const loaded = rssKb(server.child.pid!);
  for (const c of clients) c.destroy();

  console.log(`\nbench/dashboard: ${APPS} apps, ${CLIENTS} event-stream clients, ${RATE} changes/s for ${SECONDS} s`);
  const script = /src="\/dashboard\/(assets\/[^"]+\.js)"/.exec(readFileSync(join(BUNDLE_DIR, 'index.html'), 'utf8'))![1]!;
  console.log(`initial JavaScript: ${(gzipSync(readFileSync(join(BUNDLE_DIR, script))).length / 1024).toFixed(1)} KB gzipped (budget 300 KB)`);
  console.log(`apps view rendered (chromium, ${RUNS} fresh pages): median ${median(renders).toFixed(0)} ms (min ${Math.min(...renders).toFixed(0)}, max ${Math.max(...renders).toFixed(0)})`);
  console.log(
    `status change → seen by each of ${CLIENTS} clients: median ${median(latencies).toFixed(1)} ms, p99 ${pct(latencies, 99).toFixed(1)} ms (${received}/${total * CLIENTS} deliveries)`,
  );
  console.log(`(the PATCH itself, sent → acknowledged: median ${median(acks).toFixed(1)} ms, p99 ${pct(acks, 99).toFixed(1)} ms; load on this shared machine: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')})`);
  console.log(`server RSS: ${(before / 1024).toFixed(1)} MiB before, +${((connected - before) / 1024).toFixed(1)} MiB with ${CLIENTS} clients connected, +${((loaded - before) / 1024).toFixed(1)} MiB after the load`);
} finally {
  await server.kill();
  rmSync(dataDir, { recursive: true, force: true });
}
