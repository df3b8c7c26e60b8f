// Real Kubernetes control planes for tests, without containers: a thin wrapper over the kwok
// runtime provider's production code (src/providers/runtimes/kwok), so tests and the control
// plane run one implementation.
//
// One shared etcd (plain HTTP on 127.0.0.1) backs N independent clusters under different key
// prefixes; each cluster has its own kube-apiserver (own port, CA, serving cert, service-account
// key and admin client cert), kube-controller-manager, kube-scheduler and kwok. Everything lives
// in a temp root that is removed afterwards, even if the test process is killed.
//
//   const set = await startKubeClusters({ names: ['a', 'b'] });
//   try { ... set.get('a').kubeconfigPath ... } finally { await set.stopAll(); }
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BUILD_SCRIPT_REL,
  findKubeBinaries as findProductionBinaries,
  KubeBinariesMissingError,
  packageRoot,
  type KubeBinaries,
} from '../../src/providers/runtimes/kwok/binaries.js';
import { EtcdServer, KwokCluster } from '../../src/providers/runtimes/kwok/cluster.js';
import type { KubeCredentials, KubeRequestOptions, KubeResponse } from '../../src/providers/runtimes/kwok/http.js';
import { killChildrenOnSignals, registerRoot, releaseRoot } from '../../src/providers/runtimes/kwok/processes.js';
import { freePort } from '../../src/system.js';
import type { KubeConnection } from '../../src/providers/kube/connection.js';

export { FatalPollError, kubeRequest, pollUntil } from '../../src/providers/runtimes/kwok/http.js';
export type { KubeCredentials, KubeResponse } from '../../src/providers/runtimes/kwok/http.js';
export { KubeBinariesMissingError } from '../../src/providers/runtimes/kwok/binaries.js';
export type { KubeBinaries } from '../../src/providers/runtimes/kwok/binaries.js';

/** THREEPORT_SKIP_KUBE=1 skips the Kubernetes suites; otherwise missing binaries fail them with instructions. */
export const SKIP_KUBE = process.env['THREEPORT_SKIP_KUBE'] === '1';
export const SKIP_KUBE_REASON = 'THREEPORT_SKIP_KUBE=1: Kubernetes integration tests skipped';

/** The binaries, or KubeBinariesMissingError saying how to build them and how to skip these tests. */
export function findKubeBinaries(): KubeBinaries {
  try {
    return findProductionBinaries();
  } catch (err) {
    if (err instanceof KubeBinariesMissingError) {
      throw new KubeBinariesMissingError(`${err.message}\nor set THREEPORT_SKIP_KUBE=1 to skip the Kubernetes tests`);
    }
    throw err;
  }
}

/** Path of the helm binary built by the same script (`--print-helm-dir`), or $THREEPORT_HELM_BIN. */
export function findHelmBinary(): string {
  let path = process.env['THREEPORT_HELM_BIN'];
  if (!path) {
    const root = packageRoot();
    if (!root) throw new Error(`cannot find ${BUILD_SCRIPT_REL}`);
    const r = spawnSync('bash', [join(root, BUILD_SCRIPT_REL), '--print-helm-dir'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${BUILD_SCRIPT_REL} --print-helm-dir failed: ${r.stderr}`);
    path = join(r.stdout.trim(), 'helm');
  }
  if (!existsSync(path)) {
    throw new KubeBinariesMissingError(`helm is missing at ${path}; build it with:  bash ${BUILD_SCRIPT_REL}`);
  }
  return path;
}

export interface KubeCluster extends KubeCredentials {
  readonly name: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  readonly caPem: string;
  readonly clientCertPem: string;
  readonly clientKeyPem: string;
  /** Admin (system:masters) kubeconfig for this cluster. */
  readonly kubeconfigPath: string;
  /** Working directory of this cluster (pki/, logs/). */
  readonly dir: string;
  readonly nodeNames: readonly string[];
  /** The production object underneath. */
  readonly cluster: KwokCluster;
  /** The admin connection, for the kube provider. */
  connection(label?: string): KubeConnection;
  /** Sends an authenticated request to this cluster's API server. */
  request(method: string, path: string, opts?: KubeRequestOptions): Promise<KubeResponse>;
  apiServerRunning(): boolean;
  /** Stops (by default SIGTERM, then SIGKILL after 5 s) only the kube-apiserver. */
  stopApiServer(opts?: { signal?: NodeJS.Signals }): Promise<void>;
  /** Starts the kube-apiserver again (same port, certs and etcd prefix) and waits for /readyz. */
  startApiServer(opts?: { timeoutMs?: number }): Promise<void>;
  /** Process ids and RSS of this cluster's components (shared etcd excluded). */
  processes(): { component: string; pid: number | undefined; rssBytes: number | undefined }[];
  /** Stops every process of this cluster. Idempotent. */
  stop(): Promise<void>;
}

export interface KubeClusterSet {
  readonly clusters: readonly KubeCluster[];
  /** http://127.0.0.1:<port> of the shared etcd. */
  readonly etcdEndpoint: string;
  get(name: string): KubeCluster;
  etcdRssBytes(): number | undefined;
  /** Stops all clusters and etcd, removes all temp dirs. Idempotent; never throws. */
  stopAll(): Promise<void>;
}

export interface StartKubeClustersOptions {
  /** Cluster names (DNS-label-like). Default ['a']. */
  names?: string[];
  /** Fake (kwok) nodes per cluster. Default 1. */
  nodesPerCluster?: number;
  /** Budget for bringing everything up. Default 180 s. */
  timeoutMs?: number;
  /** Progress lines; default writes to stderr. */
  log?: (line: string) => void;
}

function defaultLog(line: string): void {
  process.stderr.write(`[kube-harness] ${line}\n`);
}

function secondsSince(t0: number): string {
  return `${((Date.now() - t0) / 1000).toFixed(1)}s`;
}

function handle(c: KwokCluster): KubeCluster {
  return {
    name: c.name,
    get server() {
      return c.server;
    },
    get caPem() {
      return c.credentials.caPem;
    },
    get clientCertPem() {
      return c.credentials.clientCertPem;
    },
    get clientKeyPem() {
      return c.credentials.clientKeyPem;
    },
    kubeconfigPath: c.kubeconfigPath,
    dir: c.dir,
    nodeNames: c.nodeNames,
    cluster: c,
    connection: (label = `test cluster ${c.name}`) => ({ label, ...c.credentials }),
    request: (method, path, opts) => c.request(method, path, opts),
    apiServerRunning: () => c.apiServerRunning(),
    stopApiServer: (opts) => c.stopApiServer(opts),
    startApiServer: (opts) => c.startApiServer(opts),
    processes: () =>
      c.status().map((s) => ({ component: `${c.name}/${s.component}`, pid: s.pid, rssBytes: s.rssBytes })),
    stop: () => c.stop(),
  };
}

/**
 * Starts one shared etcd and one control plane per name (in parallel). On failure everything
 * started so far is stopped before the error is thrown.
 */
export async function startKubeClusters(opts: StartKubeClustersOptions = {}): Promise<KubeClusterSet> {
  const names = opts.names ?? ['a'];
  const log = opts.log ?? defaultLog;
  const timeoutMs = opts.timeoutMs ?? 180_000;
  if (new Set(names).size !== names.length) throw new Error(`duplicate cluster names: ${names.join(', ')}`);
  const bins = findKubeBinaries();

  const t0 = Date.now();
  const root = mkdtempSync(join(tmpdir(), 'threeport-kube-'));
  killChildrenOnSignals();
  registerRoot(root, { removeOnExit: true });
  mkdirSync(join(root, 'etcd-logs'));
  const etcd = new EtcdServer({
    name: 'threeport-test',
    bin: bins.etcd,
    dataDir: join(root, 'etcd-data'),
    logPath: join(root, 'etcd-logs', 'etcd.log'),
    root,
    clientPort: await freePort(),
    peerPort: await freePort(),
  });

  const clusters: KwokCluster[] = [];
  let stoppedAll = false;
  const stopAll = async (): Promise<void> => {
    if (stoppedAll) return;
    stoppedAll = true;
    const t = Date.now();
    await Promise.all(clusters.map((c) => c.stop().catch(() => undefined)));
    await etcd.stop().catch(() => undefined);
    releaseRoot(root, { remove: true });
    log(`stopped ${clusters.length} cluster(s) and etcd in ${secondsSince(t)}`);
  };

  try {
    await etcd.start({ timeoutMs: 30_000 });
    log(`etcd ready on ${etcd.endpoint} after ${secondsSince(t0)}`);
    for (const [i, name] of names.entries()) {
      const dir = join(root, name);
      mkdirSync(dir);
      clusters.push(
        new KwokCluster({
          name,
          dir,
          bins,
          root,
          nodes: opts.nodesPerCluster ?? 1,
          externalEtcd: { endpoint: etcd.endpoint, prefix: `/threeport-test/${i}-${name}` },
          log,
        }),
      );
    }
    const remaining = Math.max(10_000, timeoutMs - (Date.now() - t0));
    await Promise.all(clusters.map((c) => c.start({ timeoutMs: remaining })));
    log(`${names.length} cluster(s) ready after ${secondsSince(t0)} (root ${root})`);
  } catch (err) {
    await stopAll();
    throw err;
  }

  const handles = clusters.map(handle);
  return {
    clusters: handles,
    etcdEndpoint: etcd.endpoint,
    get(name: string): KubeCluster {
      const c = handles.find((x) => x.name === name);
      if (!c) throw new Error(`no cluster named ${name}`);
      return c;
    },
    etcdRssBytes: () => etcd.rssBytes(),
    stopAll,
  };
}

/** Starts clusters, runs `fn`, and always stops everything afterwards. */
export async function withKubeClusters<T>(opts: StartKubeClustersOptions, fn: (set: KubeClusterSet) => Promise<T>): Promise<T> {
  const set = await startKubeClusters(opts);
  try {
    return await fn(set);
  } finally {
    await set.stopAll();
  }
}
