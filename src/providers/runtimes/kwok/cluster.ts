// A simulated Kubernetes cluster from real components, without containers: kube-apiserver,
// kube-controller-manager and kube-scheduler as plain processes on 127.0.0.1, kwok simulating
// the kubelet of fake Nodes (so Pods are scheduled and become Ready), and etcd, either its own
// or a shared one under a key prefix.
//
// Everything lives in one directory:
//   state.json          ports and process ids (so a restarted owner finds and replaces stale processes)
//   pki/                CA, serving cert, admin client cert (O=system:masters), service-account keys
//   admin.kubeconfig    the admin kubeconfig (used by the controller manager, scheduler and kwok)
//   etcd/               etcd data (own etcd only): the cluster's objects survive restarts
//   logs/<component>.log
// Starting is idempotent: certificates, ports and etcd data are reused when present.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { createCa, generateKeyPair, issueCertificate } from '../../../crypto/pki.js';
import type { KubeBinaries } from './binaries.js';
import { FatalPollError, kubeRequest, pollUntil, type KubeCredentials, type KubeRequestOptions, type KubeResponse } from './http.js';
import { withPodLifecycleEvents } from './pod-stages.js';
import { ManagedProcess, killStaleGroups } from './processes.js';
import { reusePort } from '../../../system.js';

const KWOK_NODE_ANNOTATION = 'kwok.x-k8s.io/node';
const SERVICE_CIDR = '10.96.0.0/16';
const SERVICE_IP = '10.96.0.1';
const POD_CIDR = '10.244.0.0/16';

/**
 * Simulated clusters get a default StorageClass, as kind's `standard` one, so manifests with
 * PersistentVolumeClaims (upstream's getting-started WordPress) schedule. Backed by the
 * controller manager's host-path provisioner; `Immediate` binding, since that provisioner
 * ignores the node a pod is scheduled to.
 */
export const DEFAULT_STORAGE_CLASS = {
  apiVersion: 'storage.k8s.io/v1',
  kind: 'StorageClass',
  metadata: { name: 'standard', annotations: { 'storageclass.kubernetes.io/is-default-class': 'true' } },
  provisioner: 'kubernetes.io/host-path',
  reclaimPolicy: 'Delete',
  volumeBindingMode: 'Immediate',
} as const;

export type Component = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler' | 'kwok';

export interface KwokClusterSpec {
  /** DNS-label-like; names the cluster in logs and certificates. */
  name: string;
  /** The cluster's directory (created if missing). */
  dir: string;
  bins: KubeBinaries;
  /** The process root the components are registered under (see processes.ts registerRoot). */
  root: string;
  /** Fake (kwok) nodes. Default 1. */
  nodes?: number;
  /** Use this etcd (shared, e.g. by test clusters) under `prefix` instead of running one. */
  externalEtcd?: { endpoint: string; prefix: string };
  /** Progress lines. */
  log?: (line: string) => void;
  /** A component ended without being asked to (crash, kill): the owner may want to reconcile. */
  onUnexpectedExit?: (component: Component, info: string) => void;
}

interface ClusterState {
  apiserverPort?: number;
  etcdClientPort?: number;
  etcdPeerPort?: number;
  pids?: Partial<Record<Component, number>>;
}

export interface ComponentStatus {
  component: Component;
  running: boolean;
  pid: number | undefined;
  rssBytes: number | undefined;
  /** Why it ended, when it is not running. */
  exited: string | undefined;
}

/** The connection an admin client needs. */
export interface KwokClusterCredentials extends KubeCredentials {
  server: string;
  caPem: string;
  clientCertPem: string;
  clientKeyPem: string;
}

function b64(s: string): string {
  return Buffer.from(s).toString('base64');
}

export function kubeconfigYaml(name: string, server: string, caPem: string, certPem: string, keyPem: string): string {
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

function httpGet(url: string, timeoutMs = 3_000): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest(url, { agent: false, timeout: timeoutMs }, (res) => {
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

function httpPost(url: string, body: string, timeoutMs = 3_000): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest(
      url,
      { method: 'POST', agent: false, timeout: timeoutMs, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout: POST ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}

function secondsSince(t0: number): string {
  return `${((Date.now() - t0) / 1000).toFixed(1)}s`;
}

function writeAtomic(path: string, content: string, mode = 0o600): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, path);
}

/** An etcd process on 127.0.0.1 (plain HTTP) with its data under `dataDir`. */
export class EtcdServer {
  readonly process: ManagedProcess;
  readonly endpoint: string;
  readonly name: string;

  constructor(opts: {
    name: string;
    bin: string;
    dataDir: string;
    logPath: string;
    root: string;
    clientPort: number;
    peerPort: number;
    /** Skip fsync: faster, but an OS crash may lose recent writes (process crashes do not). Default true. */
    unsafeNoFsync?: boolean;
    onUnexpectedExit?: (info: string) => void;
  }) {
    this.endpoint = `http://127.0.0.1:${opts.clientPort}`;
    this.name = opts.name;
    const peer = `http://127.0.0.1:${opts.peerPort}`;
    this.process = new ManagedProcess({
      name: `${opts.name}/etcd`,
      bin: opts.bin,
      args: [
        `--name=${opts.name}`,
        `--data-dir=${opts.dataDir}`,
        `--listen-client-urls=${this.endpoint}`,
        `--advertise-client-urls=${this.endpoint}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=${opts.name}=${peer}`,
        '--initial-cluster-state=new',
        ...(opts.unsafeNoFsync === false ? [] : ['--unsafe-no-fsync']),
        '--log-level=warn',
      ],
      logPath: opts.logPath,
      root: opts.root,
      cwd: opts.root,
      ...(opts.onUnexpectedExit ? { onUnexpectedExit: opts.onUnexpectedExit } : {}),
    });
  }

  async start(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (!this.process.running) this.process.start();
    await pollUntil(
      `etcd health on ${this.endpoint}`,
      async () => {
        this.process.assertRunning();
        const r = await httpGet(`${this.endpoint}/health`).catch(() => undefined);
        if (!(r?.status === 200 && r.body.includes('"true"'))) return undefined;
        // Another process's etcd may hold the port while ours fails to bind it: check the member name.
        const m = await httpPost(`${this.endpoint}/v3/cluster/member/list`, '{}').catch(() => undefined);
        const names = ((m && (JSON.parse(m.body) as { members?: { name?: string }[] }).members) ?? []).map((x) => x.name);
        if (!names.includes(this.name)) {
          throw new FatalPollError(`another etcd (members ${names.join(', ') || 'unknown'}) answers on ${this.endpoint}, not ${this.name}`);
        }
        return true;
      },
      { timeoutMs: opts.timeoutMs ?? 30_000, ...(opts.signal ? { signal: opts.signal } : {}) },
    );
  }

  stop(): Promise<void> {
    return this.process.stop('SIGTERM', 5_000);
  }

  rssBytes(): number | undefined {
    return this.process.rssBytes();
  }
}

export class KwokCluster {
  readonly name: string;
  readonly dir: string;
  readonly kubeconfigPath: string;
  readonly nodeNames: readonly string[];
  #server = '';
  #creds: KwokClusterCredentials | undefined;
  #etcd: EtcdServer | undefined;
  #apiserver: ManagedProcess | undefined;
  #others: ManagedProcess[] = [];
  #stopped = false;
  readonly #spec: KwokClusterSpec;
  readonly #log: (line: string) => void;

  constructor(spec: KwokClusterSpec) {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(spec.name)) {
      throw new Error(`bad simulated cluster name ${JSON.stringify(spec.name)}: use lower-case letters, digits and '-'`);
    }
    this.#spec = spec;
    this.name = spec.name;
    this.dir = spec.dir;
    this.kubeconfigPath = join(spec.dir, 'admin.kubeconfig');
    this.nodeNames = Array.from({ length: spec.nodes ?? 1 }, (_, i) => `kwok-node-${i}`);
    this.#log = spec.log ?? (() => {});
  }

  /** https://127.0.0.1:<port> (known once started). */
  get server(): string {
    return this.#server;
  }

  get credentials(): KwokClusterCredentials {
    if (!this.#creds) throw new Error(`simulated cluster ${this.name} has not been started`);
    return this.#creds;
  }

  get etcdEndpoint(): string | undefined {
    return this.#spec.externalEtcd?.endpoint ?? this.#etcd?.endpoint;
  }

  #statePath(): string {
    return join(this.dir, 'state.json');
  }

  #readState(): ClusterState {
    try {
      return JSON.parse(readFileSync(this.#statePath(), 'utf8')) as ClusterState;
    } catch {
      return {};
    }
  }

  #writeState(state: ClusterState): void {
    writeAtomic(this.#statePath(), JSON.stringify(state, null, 2) + '\n', 0o600);
  }

  #recordPids(): void {
    const pids: Partial<Record<Component, number>> = {};
    for (const [component, p] of this.#processes()) if (p.pid !== undefined && p.running) pids[component] = p.pid;
    this.#writeState({ ...this.#readState(), pids });
  }

  *#processes(): Generator<[Component, ManagedProcess]> {
    if (this.#etcd) yield ['etcd', this.#etcd.process];
    if (this.#apiserver) yield ['kube-apiserver', this.#apiserver];
    const names: Component[] = ['kube-controller-manager', 'kube-scheduler', 'kwok'];
    for (const [i, p] of this.#others.entries()) yield [names[i]!, p];
  }

  /** Certificates: reused when present, so the connection stored on a runtime instance stays valid. */
  async #ensurePki(): Promise<void> {
    const pki = join(this.dir, 'pki');
    mkdirSync(pki, { recursive: true, mode: 0o700 });
    const path = (f: string): string => join(pki, f);
    const files = ['ca.crt', 'ca.key', 'apiserver.crt', 'apiserver.key', 'admin.crt', 'admin.key', 'sa.key', 'sa.pub'];
    if (!files.every((f) => existsSync(path(f)))) {
      const ca = await createCa(`threeport-${this.name}-ca`);
      const [serving, admin, sa] = await Promise.all([
        issueCertificate(ca, {
          commonName: 'kube-apiserver',
          usage: 'server',
          dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
          ips: ['127.0.0.1', SERVICE_IP],
        }),
        issueCertificate(ca, { commonName: 'threeport-admin', usage: 'client', organizations: ['system:masters'] }),
        generateKeyPair(),
      ]);
      const content: Record<string, string> = {
        'ca.crt': ca.cert,
        'ca.key': ca.key,
        'apiserver.crt': serving.cert,
        'apiserver.key': serving.key,
        'admin.crt': admin.cert,
        'admin.key': admin.key,
        'sa.key': sa.privateKey,
        'sa.pub': sa.publicKey,
      };
      for (const [f, c] of Object.entries(content)) writeAtomic(path(f), c, f.endsWith('.key') ? 0o600 : 0o644);
    }
    this.#creds = {
      server: this.#server,
      caPem: readFileSync(path('ca.crt'), 'utf8'),
      clientCertPem: readFileSync(path('admin.crt'), 'utf8'),
      clientKeyPem: readFileSync(path('admin.key'), 'utf8'),
    };
    writeAtomic(
      this.kubeconfigPath,
      kubeconfigYaml(this.name, this.#server, this.#creds.caPem, this.#creds.clientCertPem, this.#creds.clientKeyPem),
    );
  }

  #build(state: ClusterState): void {
    const { bins, root } = this.#spec;
    const dir = this.dir;
    const pki = join(dir, 'pki');
    const logs = join(dir, 'logs');
    const onExit = (component: Component) => (info: string) => {
      this.#log(`${this.name}: ${component} ${info}`);
      this.#spec.onUnexpectedExit?.(component, info);
    };
    const proc = (component: Component, bin: string, args: string[], env?: NodeJS.ProcessEnv): ManagedProcess =>
      new ManagedProcess({
        name: `${this.name}/${component}`,
        bin,
        args,
        logPath: join(logs, `${component}.log`),
        root,
        cwd: dir,
        onUnexpectedExit: onExit(component),
        ...(env ? { env } : {}),
      });
    let etcdEndpoint: string;
    let etcdPrefix: string;
    if (this.#spec.externalEtcd) {
      etcdEndpoint = this.#spec.externalEtcd.endpoint;
      etcdPrefix = this.#spec.externalEtcd.prefix;
    } else {
      this.#etcd = new EtcdServer({
        name: this.name,
        bin: bins.etcd,
        dataDir: join(dir, 'etcd'),
        logPath: join(logs, 'etcd.log'),
        root,
        clientPort: state.etcdClientPort!,
        peerPort: state.etcdPeerPort!,
        onUnexpectedExit: onExit('etcd'),
      });
      etcdEndpoint = this.#etcd.endpoint;
      etcdPrefix = '/registry';
    }
    this.#apiserver = proc('kube-apiserver', bins.kubeApiserver, [
      `--etcd-servers=${etcdEndpoint}`,
      `--etcd-prefix=${etcdPrefix}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${state.apiserverPort}`,
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
    this.#others = [
      proc('kube-controller-manager', bins.kubeControllerManager, [
        `--kubeconfig=${kubeconfig}`,
        '--secure-port=0', // no serving endpoint at all
        '--leader-elect=false',
        `--cluster-name=${this.name}`,
        `--service-account-private-key-file=${join(pki, 'sa.key')}`,
        `--root-ca-file=${join(pki, 'ca.crt')}`,
        `--service-cluster-ip-range=${SERVICE_CIDR}`,
        '--use-service-account-credentials=false',
        '--kube-api-qps=100',
        '--kube-api-burst=200',
        '--profiling=false',
        // A real provisioner for the default StorageClass (see DEFAULT_STORAGE_CLASS): claims bind
        // to host-path volumes under /tmp/hostpath_pv, deleted with their claims. kwok pods never
        // mount them; what matters is that PVC-backed StatefulSets and Deployments schedule.
        '--enable-hostpath-provisioner',
      ]),
      proc('kube-scheduler', bins.kubeScheduler, [`--kubeconfig=${kubeconfig}`, '--secure-port=0', '--leader-elect=false', '--profiling=false']),
      proc(
        'kwok',
        bins.kwok,
        [
          `--kubeconfig=${kubeconfig}`,
          `--config=${this.#stagesFile(bins.kwokStages)}`,
          '--manage-all-nodes=false',
          `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION}=fake`,
          `--cidr=${POD_CIDR}`,
          // Node heartbeats through leases: without them the node's status heartbeat can miss the
          // controller manager's 50 s grace, and the node lifecycle controller then marks every pod
          // NotReady for good (kwok's pod-ready stage only handles Pending pods).
          '--node-lease-duration-seconds=40',
        ],
        // kwok also reads ~/.kwok/kwok.yaml; keep any such file out.
        { ...process.env, HOME: dir },
      ),
    ];
  }

  /** This cluster's kwok stages: the built file, with pods that emit the kubelet's events (pod-stages.ts). */
  #stagesFile(built: string): string {
    const path = join(this.dir, 'kwok-stages.yaml');
    writeFileSync(path, withPodLifecycleEvents(readFileSync(built, 'utf8')), { mode: 0o600 });
    return path;
  }

  /** The default StorageClass, created once per cluster (an existing one, or one the user changed, is kept). */
  async #ensureStorageClass(): Promise<void> {
    const r = await this.request('POST', '/apis/storage.k8s.io/v1/storageclasses', { body: DEFAULT_STORAGE_CLASS });
    if (r.status !== 201 && r.status !== 409) {
      throw new Error(`${this.name}: creating the default StorageClass failed: HTTP ${r.status} ${r.body}`);
    }
  }

  request(method: string, path: string, opts?: KubeRequestOptions): Promise<KubeResponse> {
    return kubeRequest(this.credentials, method, path, opts);
  }

  apiServerRunning(): boolean {
    return this.#apiserver?.running === true;
  }

  #withLog(err: unknown, p: ManagedProcess | undefined): Error {
    const msg = err instanceof Error ? err.message : String(err);
    if (!p || msg.includes('end of ')) return err instanceof Error ? err : new Error(msg);
    return new Error(`${msg}\nend of ${p.logPath}:\n${p.logTail()}`);
  }

  async #waitReadyz(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    const t0 = Date.now();
    await pollUntil(
      `${this.name}: kube-apiserver /readyz on ${this.#server}`,
      async () => {
        this.#apiserver!.assertRunning();
        const r = await this.request('GET', '/readyz', { timeoutMs: 3_000 }).catch(() => undefined);
        return r?.status === 200 ? true : undefined;
      },
      {
        timeoutMs,
        ...(signal ? { signal } : {}),
        onWait: (ms) => this.#log(`${this.name}: waiting for kube-apiserver /readyz (${Math.round(ms / 1000)}s)`),
      },
    ).catch((err: unknown) => {
      throw this.#withLog(err, this.#apiserver);
    });
    this.#log(`${this.name}: kube-apiserver ready on ${this.#server} after ${secondsSince(t0)}`);
  }

  #assertComponentsRunning(): void {
    for (const p of this.#others) p.assertRunning();
  }

  /**
   * Starts every component that is not running and waits until the cluster serves, its default
   * ServiceAccount exists and its fake nodes are Ready. Idempotent: on a fresh owner it first
   * kills processes a previous owner left behind (recorded in state.json). Returns the
   * components it (re)started.
   */
  async start(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Component[]> {
    if (this.#stopped) throw new Error(`simulated cluster ${this.name} has been stopped; make a new one`);
    const t0 = Date.now();
    const timeoutMs = opts.timeoutMs ?? 180_000;
    const deadline = t0 + timeoutMs;
    const signal = opts.signal;
    mkdirSync(join(this.dir, 'logs'), { recursive: true, mode: 0o700 });

    if (!this.#apiserver) {
      // First start by this owner: stale processes of an earlier owner go, ports are kept if free.
      const state = this.#readState();
      const stale = await killStaleGroups(Object.values(state.pids ?? {}), this.dir);
      if (stale.length > 0) this.#log(`${this.name}: killed ${stale.length} stale process group(s) of an earlier run`);
      const next: ClusterState = {
        apiserverPort: await reusePort(state.apiserverPort, this.dir),
        ...(this.#spec.externalEtcd
          ? {}
          : { etcdClientPort: await reusePort(state.etcdClientPort, this.dir), etcdPeerPort: await reusePort(state.etcdPeerPort, this.dir) }),
      };
      this.#writeState(next);
      this.#server = `https://127.0.0.1:${next.apiserverPort}`;
      await this.#ensurePki();
      this.#build(next);
    }

    const started: Component[] = [];
    const remaining = (): number => Math.max(1_000, deadline - Date.now());
    try {
      if (this.#etcd && !this.#etcd.process.running) {
        started.push('etcd');
        await this.#etcd.start({ timeoutMs: Math.min(30_000, remaining()), ...(signal ? { signal } : {}) }).catch((err: unknown) => {
          throw this.#withLog(err, this.#etcd?.process);
        });
      }
      if (!this.#apiserver!.running) {
        started.push('kube-apiserver');
        this.#apiserver!.start();
      }
      // The others retry until the API server answers.
      const names: Component[] = ['kube-controller-manager', 'kube-scheduler', 'kwok'];
      for (const [i, p] of this.#others.entries()) {
        if (!p.running) {
          started.push(names[i]!);
          p.start();
        }
      }
      this.#recordPids();
      await this.#waitReadyz(remaining(), signal);
      this.#assertComponentsRunning();

      for (const node of this.nodeNames) await this.#createFakeNode(node);
      await this.#ensureStorageClass();

      await pollUntil(
        `${this.name}: ServiceAccount default/default (kube-controller-manager)`,
        async () => {
          this.#assertComponentsRunning();
          const r = await this.request('GET', '/api/v1/namespaces/default/serviceaccounts/default');
          return r.status === 200 ? true : undefined;
        },
        {
          timeoutMs: remaining(),
          ...(signal ? { signal } : {}),
          onWait: (ms) => this.#log(`${this.name}: waiting for the default ServiceAccount (${Math.round(ms / 1000)}s)`),
        },
      ).catch((err: unknown) => {
        throw this.#withLog(err, this.#others[0]);
      });

      await pollUntil(
        `${this.name}: fake nodes Ready (kwok)`,
        async () => {
          this.#assertComponentsRunning();
          for (const node of this.nodeNames) {
            const r = await this.request('GET', `/api/v1/nodes/${node}`);
            const n = r.json as { status?: { conditions?: { type: string; status: string }[] } } | undefined;
            const ready = n?.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
            if (!ready) return undefined;
          }
          return true;
        },
        {
          timeoutMs: remaining(),
          ...(signal ? { signal } : {}),
          onWait: (ms) => this.#log(`${this.name}: waiting for fake nodes to be Ready (${Math.round(ms / 1000)}s)`),
        },
      ).catch((err: unknown) => {
        throw this.#withLog(err, this.#others[2]);
      });
    } finally {
      this.#recordPids();
    }
    if (started.length > 0) {
      this.#log(`${this.name}: cluster ready after ${secondsSince(t0)}, started ${started.join(', ')} (kubeconfig ${this.kubeconfigPath})`);
    }
    return started;
  }

  async #createFakeNode(node: string): Promise<void> {
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

  /** Stops (by default SIGTERM, then SIGKILL after 5 s) only the kube-apiserver; with `expected: false` it counts as a crash. */
  async stopApiServer(opts: { signal?: NodeJS.Signals; expected?: boolean } = {}): Promise<void> {
    const t0 = Date.now();
    await this.#apiserver?.stop(opts.signal ?? 'SIGTERM', 5_000, { expected: opts.expected ?? true });
    this.#log(`${this.name}: kube-apiserver stopped (${opts.signal ?? 'SIGTERM'}) in ${secondsSince(t0)}`);
  }

  /** Starts the kube-apiserver again (same port, certs and etcd) and waits for /readyz. */
  async startApiServer(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (this.#stopped) throw new Error(`${this.name} has been stopped`);
    if (!this.#apiserver) throw new Error(`${this.name} has not been started`);
    if (!this.#apiserver.running) this.#apiserver.start();
    this.#recordPids();
    await this.#waitReadyz(opts.timeoutMs ?? 90_000, opts.signal);
  }

  /** Every component, running or not. */
  status(): ComponentStatus[] {
    return [...this.#processes()].map(([component, p]) => ({
      component,
      running: p.running,
      pid: p.running ? p.pid : undefined,
      rssBytes: p.rssBytes(),
      exited: p.running ? undefined : p.exited,
    }));
  }

  /** True when every component process is running (it says nothing about readiness). */
  healthy(): boolean {
    const s = this.status();
    return s.length > 0 && s.every((c) => c.running);
  }

  /** Sum of the resident memory of this cluster's processes (a shared etcd excluded). */
  rssBytes(): number {
    return this.status().reduce((sum, c) => sum + (c.rssBytes ?? 0), 0);
  }

  /** Stops every process of this cluster (clients first). Idempotent. The directory stays. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    // Clients first, so they do not log connection errors against a dying API server.
    await Promise.all(this.#others.map((p) => p.stop('SIGTERM', 3_000)));
    await this.#apiserver?.stop('SIGTERM', 3_000);
    await this.#etcd?.stop();
    if (existsSync(this.dir)) this.#writeState({ ...this.#readState(), pids: {} });
  }
}
