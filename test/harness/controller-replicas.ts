// `threeport server --role controllers` replicas as child processes on one PostgreSQL, and who
// owns which lease according to their /metrics (test/integration/controller-replicas.test.ts,
// bench/scale-out.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { THREEPORT_BIN } from './server-process.js';
import { freePort } from '../../src/system.js';
import { until } from './until.js';

export interface Replica {
  name: string;
  child: ChildProcess;
  metricsUrl: string;
  exited: Promise<unknown>;
  stderr: () => string;
}

/** A Deployment and a ConfigMap, as one WorkloadDefinition YAMLDocument. */
export function deployment(name: string): string {
  const d = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name, image: 'registry.k8s.io/pause:3.10' }] } },
    },
  };
  const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${name}-config` }, data: { greeting: 'hello' } };
  return `${JSON.stringify(d)}\n---\n${JSON.stringify(cm)}\n`;
}

export async function startReplica(o: { name: string; dataDir: string; databaseUrl: string; key: string; lease: string }): Promise<Replica> {
  const port = await freePort();
  const args = [THREEPORT_BIN, 'server', '--role', 'controllers', '--no-auth', '--database-url', o.databaseUrl, '--data-dir', join(o.dataDir, o.name)];
  args.push('--metrics-port', String(port), '--host', '127.0.0.1', '--reconcile-lease', o.lease, '--reconcile-poll-interval', '200ms', '--resync-interval', '0');
  args.push('--log-level', process.env['THREEPORT_TEST_LOG_LEVEL'] ?? 'warn');
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ENCRYPTION_KEY: o.key } });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  child.stdout!.on('data', () => {});
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const metricsUrl = `http://127.0.0.1:${port}`;
  await until(`controllers replica ${o.name} ready`, async () => {
    if (child.exitCode !== null) throw new Error(`replica ${o.name} exited with ${child.exitCode}: ${stderr}`);
    const r = await fetch(`${metricsUrl}/readyz`).catch(() => undefined);
    return r?.ok ? true : undefined;
  }, 60_000);
  return { name: o.name, child, metricsUrl, exited, stderr: () => stderr };
}

export function alive(r: Replica): boolean {
  return r.child.exitCode === null && r.child.signalCode === null;
}

/** lease → holders, from every live replica's threeport_lease_owned metric. */
export async function owners(replicas: readonly Replica[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const r of replicas) {
    if (!alive(r)) continue;
    const text = await fetch(`${r.metricsUrl}/metrics`).then((x) => x.text()).catch(() => '');
    for (const m of text.matchAll(/^threeport_lease_owned\{lease="([^"]+)",holder="([^"]+)"\} 1$/gm)) {
      (out.get(m[1]!) ?? out.set(m[1]!, []).get(m[1]!)!).push(m[2]!);
    }
  }
  return out;
}

/** Sum of a counter's samples whose labels include `match`, from a replica's /metrics. */
export async function counter(r: Replica, name: string, match: string): Promise<number> {
  if (!alive(r)) return 0;
  const text = await fetch(`${r.metricsUrl}/metrics`).then((x) => x.text()).catch(() => '');
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) && line.includes(match)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** Resident set size (VmRSS) of a replica, in MB. */
export function rssMb(r: Replica): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${r.child.pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}
