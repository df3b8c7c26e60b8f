// Real Kubernetes control planes for tests, without containers.
//
// One shared etcd (plain HTTP on 127.0.0.1) backs N independent clusters; each cluster has its own
// kube-apiserver (own --etcd-prefix, port, CA, serving cert, service-account key and admin client
// cert), kube-controller-manager, kube-scheduler and kwok, which simulates the kubelet of fake
// Nodes so that Pods get scheduled and become Ready. Binaries come from
// scripts/k8s/build-test-bins.sh (cached per machine, outside the repo).
//
//   const set = await startKubeClusters({ names: ['a', 'b'] });
//   try { ... set.get('a').kubeconfigPath ... } finally { await set.stopAll(); }
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kubeRequest, pollUntil, type KubeCredentials, type KubeRequestOptions, type KubeResponse } from './kube-http.js';
import { ManagedProcess, freePort, registerRoot, releaseRoot } from './kube-procs.js';
import { createCertificateAuthority, generateKeyPairPem } from './pki.js';

export { FatalPollError, kubeRequest, pollUntil } from './kube-http.js';
export type { KubeCredentials, KubeResponse } from './kube-http.js';

const BUILD_SCRIPT_REL = 'scripts/k8s/build-test-bins.sh';
const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
const SERVICE_CIDR = '10.96.0.0/16';
const SERVICE_IP = '10.96.0.1';
const POD_CIDR = '10.244.0.0/16';

// ---------------------------------------------------------------------------------------------
// Binaries

export interface KubeBinaries {
  dir: string;
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kwok: string;
  /** kwok Stage objects (node/pod lifecycle), written by the build script. */
  kwokStages: string;
}

export class KubeBinariesMissingError extends Error {
  override name = 'KubeBinariesMissingError';
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, BUILD_SCRIPT_REL))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find ${BUILD_SCRIPT_REL} above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** Locates the binaries: $THREEPORT_K8S_BIN_DIR, else `build-test-bins.sh --print-dir`. */
export function findKubeBinaries(): KubeBinaries {
  let dir = process.env.THREEPORT_K8S_BIN_DIR;
  const script = join(repoRoot(), BUILD_SCRIPT_REL);
  if (!dir) {
    const r = spawnSync('bash', [script, '--print-dir'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${script} --print-dir failed: ${r.stderr}`);
    dir = r.stdout.trim();
  }
  const bins = {
    dir,
    etcd: join(dir, 'etcd'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
    kubeScheduler: join(dir, 'kube-scheduler'),
    kwok: join(dir, 'kwok'),
    kwokStages: [join(dir, 'kwok-stages.yaml'), join(dir, '..', 'etc', 'kwok-stages.yaml')].find((p) =>
      existsSync(p),
    ) ?? join(dir, '..', 'etc', 'kwok-stages.yaml'),
  };
  const missing = Object.entries(bins)
    .filter(([k, p]) => k !== 'dir' && !existsSync(p))
    .map(([, p]) => p);
  if (missing.length > 0) {
    throw new KubeBinariesMissingError(
      `Kubernetes test binaries are missing:\n  ${missing.join('\n  ')}\n` +
        `Build them once per machine with:  bash ${BUILD_SCRIPT_REL}\n` +
        `(the cold build takes about 6 minutes on 2 cores; alternatively point THREEPORT_K8S_BIN_DIR at a directory` +
        ` holding them, or set THREEPORT_SKIP_KUBE=1 to skip the Kubernetes tests)`,
    );
  }
  return bins;
}

/** Path of the helm binary built by the same script (`--print-helm-dir`), or $THREEPORT_HELM_BIN. */
export function findHelmBinary(): string {
  const env = process.env.THREEPORT_HELM_BIN;
  const script = join(repoRoot(), BUILD_SCRIPT_REL);
  let path = env;
  if (!path) {
    const r = spawnSync('bash', [script, '--print-helm-dir'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${script} --print-helm-dir failed: ${r.stderr}`);
    path = join(r.stdout.trim(), 'helm');
  }
  if (!existsSync(path)) {
    throw new KubeBinariesMissingError(`helm is missing at ${path}; build it with:  bash ${BUILD_SCRIPT_REL}`);
  }
  return path;
}

// ---------------------------------------------------------------------------------------------
// Public handles

export interface KubeCluster extends KubeCredentials {
  readonly name: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  readonly caPem: string;
  readonly clientCertPem: string;
  readonly clientKeyPem: string;
  /** Admin (system:masters) kubeconfig for this cluster. */
  readonly kubeconfigPath: string;
  /** Working directory of this cluster (pki/, logs/). Removed by stop(). */
  readonly dir: string;
  readonly nodeNames: readonly string[];
  /** Sends an authenticated request to this cluster's API server. */
  request(method: string, path: string, opts?: KubeRequestOptions): Promise<KubeResponse>;
  apiServerRunning(): boolean;
  /** Stops (by default SIGTERM, then SIGKILL after 5 s) only the kube-apiserver. */
  stopApiServer(opts?: { signal?: NodeJS.Signals }): Promise<void>;
  /** Starts the kube-apiserver again (same port, certs and etcd prefix) and waits for /readyz. */
  startApiServer(opts?: { timeoutMs?: number }): Promise<void>;
  /** Process ids and RSS of this cluster's components (shared etcd excluded). */
  processes(): { component: string; pid: number | undefined; rssBytes: number | undefined }[];
  /** Stops every process of this cluster and removes its directory. Idempotent. */
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

// ---------------------------------------------------------------------------------------------
// Implementation

function defaultLog(line: string): void {
  process.stderr.write(`[kube-harness] ${line}\n`);
}

function b64(s: string): string {
  return Buffer.from(s).toString('base64');
}

function kubeconfigYaml(name: string, server: string, caPem: string, certPem: string, keyPem: string): string {
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: ${name}`,
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(caPem)}`,
    'users:',
    `- name: ${name}-admin`,
    '  user:',
    `    client-certificate-data: ${b64(certPem)}`,
    `    client-key-data: ${b64(keyPem)}`,
    'contexts:',
    `- name: ${name}`,
    '  context:',
    `    cluster: ${name}`,
    `    user: ${name}-admin`,
    `current-context: ${name}`,
    '',
  ].join('\n');
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest(url, { agent: false, timeout: 3_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: GET ${url}`)));
    req.on('error', reject);
    req.end();
  });
}

function secondsSince(t0: number): string {
  return `${((Date.now() - t0) / 1000).toFixed(1)}s`;
}

class Cluster implements KubeCluster {
  readonly server: string;
  readonly kubeconfigPath: string;
  readonly nodeNames: string[];
  caPem = '';
  clientCertPem = '';
  clientKeyPem = '';
  private readonly apiserver: ManagedProcess;
  private readonly others: ManagedProcess[];
  private stopped = false;

  constructor(
    readonly name: string,
    readonly dir: string,
    private readonly port: number,
    private readonly log: (line: string) => void,
    bins: KubeBinaries,
    root: string,
    etcdEndpoint: string,
    etcdPrefix: string,
    nodes: number,
  ) {
    this.server = `https://127.0.0.1:${port}`;
    this.kubeconfigPath = join(dir, 'admin.kubeconfig');
    this.nodeNames = Array.from({ length: nodes }, (_, i) => `kwok-node-${i}`);
    const pki = join(dir, 'pki');
    const logs = join(dir, 'logs');
    const proc = (component: string, bin: string, args: string[], env?: NodeJS.ProcessEnv): ManagedProcess =>
      new ManagedProcess({
        name: `${name}/${component}`,
        bin,
        args,
        logPath: join(logs, `${component}.log`),
        root,
        cwd: dir,
        ...(env ? { env } : {}),
      });
    this.apiserver = proc('kube-apiserver', bins.kubeApiserver, [
      `--etcd-servers=${etcdEndpoint}`,
      `--etcd-prefix=${etcdPrefix}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${join(pki, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
      `--client-ca-file=${join(pki, 'ca.crt')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(pki, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      `--service-cluster-ip-range=${SERVICE_CIDR}`,
      '--authorization-mode=RBAC',
      '--allow-privileged=true',
      // The "kubernetes" Service would get 127.0.0.1 endpoints, which validation rejects.
      '--endpoint-reconciler-type=none',
      '--enable-priority-and-fairness=false',
      '--profiling=false',
      '--goaway-chance=0',
    ]);
    const kubeconfig = this.kubeconfigPath;
    this.others = [
      proc('kube-controller-manager', bins.kubeControllerManager, [
        `--kubeconfig=${kubeconfig}`,
        '--secure-port=0', // no serving endpoint at all
        '--leader-elect=false',
        `--cluster-name=${name}`,
        `--service-account-private-key-file=${join(pki, 'sa.key')}`,
        `--root-ca-file=${join(pki, 'ca.crt')}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--use-service-account-credentials=false',
        '--kube-api-qps=100',
        '--kube-api-burst=200',
        '--profiling=false',
      ]),
      proc('kube-scheduler', bins.kubeScheduler, [
        `--kubeconfig=${kubeconfig}`,
        '--secure-port=0',
        '--leader-elect=false',
        '--profiling=false',
      ]),
      proc(
        'kwok',
        bins.kwok,
        [
          `--kubeconfig=${kubeconfig}`,
          `--config=${bins.kwokStages}`,
          '--manage-all-nodes=false',
          `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
          `--cidr=${POD_CIDR}`,
        ],
        // kwok also reads ~/.kwok/kwok.yaml; keep any such file out.
        { ...process.env, HOME: dir },
      ),
    ];
  }

  async writePki(): Promise<void> {
    const pki = join(this.dir, 'pki');
    mkdirSync(pki, { recursive: true });
    mkdirSync(join(this.dir, 'logs'), { recursive: true });
    const ca = await createCertificateAuthority(`threeport-test-${this.name}-ca`);
    const [serving, admin, sa] = await Promise.all([
      ca.issue({
        commonName: 'kube-apiserver',
        server: true,
        dnsNames: [
          'localhost',
          'kubernetes',
          'kubernetes.default',
          'kubernetes.default.svc',
          'kubernetes.default.svc.cluster.local',
        ],
        ipAddresses: ['127.0.0.1', SERVICE_IP],
      }),
      ca.issue({ commonName: 'threeport-test-admin', organizations: ['system:masters'], client: true }),
      generateKeyPairPem(),
    ]);
    const files: Record<string, string> = {
      'ca.crt': ca.certPem,
      'ca.key': ca.keyPem,
      'apiserver.crt': serving.certPem,
      'apiserver.key': serving.keyPem,
      'admin.crt': admin.certPem,
      'admin.key': admin.keyPem,
      'sa.key': sa.privateKeyPem,
      'sa.pub': sa.publicKeyPem,
    };
    for (const [f, content] of Object.entries(files)) {
      writeFileSync(join(pki, f), content, { mode: f.endsWith('.key') ? 0o600 : 0o644 });
    }
    this.caPem = ca.certPem;
    this.clientCertPem = admin.certPem;
    this.clientKeyPem = admin.keyPem;
    writeFileSync(
      this.kubeconfigPath,
      kubeconfigYaml(this.name, this.server, ca.certPem, admin.certPem, admin.keyPem),
      { mode: 0o600 },
    );
  }

  request(method: string, path: string, opts?: KubeRequestOptions): Promise<KubeResponse> {
    return kubeRequest(this, method, path, opts);
  }

  apiServerRunning(): boolean {
    return this.apiserver.running;
  }

  private async waitReadyz(timeoutMs: number): Promise<void> {
    const t0 = Date.now();
    await pollUntil(
      `${this.name}: kube-apiserver /readyz on ${this.server}`,
      async () => {
        this.apiserver.assertRunning();
        const r = await this.request('GET', '/readyz', { timeoutMs: 3_000 }).catch(() => undefined);
        return r?.status === 200 ? true : undefined;
      },
      { timeoutMs, onWait: (ms) => this.log(`${this.name}: waiting for kube-apiserver /readyz (${Math.round(ms / 1000)}s)`) },
    ).catch((err: unknown) => {
      throw this.withLog(err, this.apiserver);
    });
    this.log(`${this.name}: kube-apiserver ready on ${this.server} after ${secondsSince(t0)}`);
  }

  private withLog(err: unknown, p: ManagedProcess): Error {
    const msg = err instanceof Error ? err.message : String(err);
    if (msg.includes('end of ')) return err instanceof Error ? err : new Error(msg);
    return new Error(`${msg}\nend of ${p.logPath}:\n${p.logTail()}`);
  }

  private assertComponentsRunning(): void {
    for (const p of this.others) p.assertRunning();
  }

  async start(timeoutMs: number): Promise<void> {
    const t0 = Date.now();
    const deadline = t0 + timeoutMs;
    this.apiserver.start();
    // The others retry until the API server answers.
    for (const p of this.others) p.start();
    await this.waitReadyz(timeoutMs);
    this.assertComponentsRunning();

    for (const node of this.nodeNames) await this.createFakeNode(node);

    await pollUntil(
      `${this.name}: ServiceAccount default/default (kube-controller-manager)`,
      async () => {
        this.assertComponentsRunning();
        const r = await this.request('GET', '/api/v1/namespaces/default/serviceaccounts/default');
        return r.status === 200 ? true : undefined;
      },
      {
        timeoutMs: Math.max(1_000, deadline - Date.now()),
        onWait: (ms) => this.log(`${this.name}: waiting for the default ServiceAccount (${Math.round(ms / 1000)}s)`),
      },
    ).catch((err: unknown) => {
      throw this.withLog(err, this.others[0]!);
    });

    await pollUntil(
      `${this.name}: fake nodes Ready (kwok)`,
      async () => {
        this.assertComponentsRunning();
        for (const node of this.nodeNames) {
          const r = await this.request('GET', `/api/v1/nodes/${node}`);
          const n = r.json as { status?: { conditions?: { type: string; status: string }[] } } | undefined;
          const ready = n?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
          if (!ready) return undefined;
        }
        return true;
      },
      {
        timeoutMs: Math.max(1_000, deadline - Date.now()),
        onWait: (ms) => this.log(`${this.name}: waiting for fake nodes to be Ready (${Math.round(ms / 1000)}s)`),
      },
    ).catch((err: unknown) => {
      throw this.withLog(err, this.others[2]!);
    });
    this.log(`${this.name}: cluster ready after ${secondsSince(t0)} (kubeconfig ${this.kubeconfigPath})`);
  }

  private async createFakeNode(node: string): Promise<void> {
    const resources = { cpu: '32', memory: '256Gi', pods: '110', 'ephemeral-storage': '1Ti' };
    const body = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: node,
        annotations: { [KWOK_NODE_ANNOTATION]: 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
        labels: {
          'kubernetes.io/hostname': node,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          type: 'kwok',
        },
      },
      spec: {},
      // Nodes accept status on create (as a kubelet registering itself does).
      status: { allocatable: resources, capacity: resources },
    };
    const r = await this.request('POST', '/api/v1/nodes', { body });
    if (r.status !== 201 && r.status !== 409) {
      throw new Error(`${this.name}: creating node ${node} failed: HTTP ${r.status} ${r.body}`);
    }
  }

  async stopApiServer(opts: { signal?: NodeJS.Signals } = {}): Promise<void> {
    const t0 = Date.now();
    await this.apiserver.stop(opts.signal ?? 'SIGTERM');
    this.log(`${this.name}: kube-apiserver stopped (${opts.signal ?? 'SIGTERM'}) in ${secondsSince(t0)}`);
  }

  async startApiServer(opts: { timeoutMs?: number } = {}): Promise<void> {
    if (this.stopped) throw new Error(`${this.name} has been stopped`);
    this.apiserver.start();
    await this.waitReadyz(opts.timeoutMs ?? 90_000);
  }

  processes(): { component: string; pid: number | undefined; rssBytes: number | undefined }[] {
    return [this.apiserver, ...this.others].map((p) => ({
      component: p.name,
      pid: p.running ? p.pid : undefined,
      rssBytes: p.rssBytes(),
    }));
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // Clients first, so they do not log connection errors against a dying API server.
    await Promise.all(this.others.map((p) => p.stop('SIGTERM', 3_000)));
    await this.apiserver.stop('SIGTERM', 3_000);
  }
}

/**
 * Starts one shared etcd and one control plane per name (in parallel). On failure everything
 * started so far is stopped before the error is thrown.
 */
export async function startKubeClusters(opts: StartKubeClustersOptions = {}): Promise<KubeClusterSet> {
  const names = opts.names ?? ['a'];
  const log = opts.log ?? defaultLog;
  const timeoutMs = opts.timeoutMs ?? 180_000;
  for (const n of names) {
    if (!/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/.test(n)) throw new Error(`bad cluster name ${JSON.stringify(n)}`);
  }
  if (new Set(names).size !== names.length) throw new Error(`duplicate cluster names: ${names.join(', ')}`);
  const bins = findKubeBinaries();

  const t0 = Date.now();
  const root = mkdtempSync(join(tmpdir(), 'threeport-kube-'));
  registerRoot(root);
  mkdirSync(join(root, 'etcd-logs'));

  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const etcdEndpoint = `http://127.0.0.1:${clientPort}`;
  const etcd = new ManagedProcess({
    name: 'etcd',
    bin: bins.etcd,
    args: [
      '--name=threeport-test',
      `--data-dir=${join(root, 'etcd-data')}`,
      `--listen-client-urls=${etcdEndpoint}`,
      `--advertise-client-urls=${etcdEndpoint}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=threeport-test=http://127.0.0.1:${peerPort}`,
      '--initial-cluster-state=new',
      // Throwaway data: durability is not needed, speed is.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ],
    logPath: join(root, 'etcd-logs', 'etcd.log'),
    root,
    cwd: root,
  });

  const clusters: Cluster[] = [];
  let stoppedAll = false;
  const stopAll = async (): Promise<void> => {
    if (stoppedAll) return;
    stoppedAll = true;
    const t = Date.now();
    await Promise.all(clusters.map((c) => c.stop().catch(() => undefined)));
    await etcd.stop('SIGTERM', 3_000).catch(() => undefined);
    releaseRoot(root);
    log(`stopped ${clusters.length} cluster(s) and etcd in ${secondsSince(t)}`);
  };

  try {
    etcd.start();
    await pollUntil(
      `etcd health on ${etcdEndpoint}`,
      async () => {
        etcd.assertRunning();
        const r = await httpGet(`${etcdEndpoint}/health`).catch(() => undefined);
        return r?.status === 200 && r.body.includes('"true"') ? true : undefined;
      },
      { timeoutMs: 30_000 },
    );
    log(`etcd ready on ${etcdEndpoint} after ${secondsSince(t0)}`);

    for (const [i, name] of names.entries()) {
      const dir = join(root, name);
      mkdirSync(dir);
      const port = await freePort();
      clusters.push(
        new Cluster(name, dir, port, log, bins, root, etcdEndpoint, `/threeport-test/${i}-${name}`, opts.nodesPerCluster ?? 1),
      );
    }
    await Promise.all(clusters.map((c) => c.writePki()));
    log(`certificates for ${names.length} cluster(s) written after ${secondsSince(t0)}`);
    const remaining = Math.max(10_000, timeoutMs - (Date.now() - t0));
    await Promise.all(clusters.map((c) => c.start(remaining)));
    log(`${names.length} cluster(s) ready after ${secondsSince(t0)} (root ${root})`);
  } catch (err) {
    await stopAll();
    throw err;
  }

  return {
    clusters,
    etcdEndpoint,
    get(name: string): KubeCluster {
      const c = clusters.find((x) => x.name === name);
      if (!c) throw new Error(`no cluster named ${name}`);
      return c;
    },
    etcdRssBytes: () => etcd.rssBytes(),
    stopAll,
  };
}

/** Starts clusters, runs `fn`, and always stops everything afterwards. */
export async function withKubeClusters<T>(
  opts: StartKubeClustersOptions,
  fn: (set: KubeClusterSet) => Promise<T>,
): Promise<T> {
  const set = await startKubeClusters(opts);
  try {
    return await fn(set);
  } finally {
    await set.stopAll();
  }
}
